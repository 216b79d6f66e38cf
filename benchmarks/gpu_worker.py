"""One GPU-check measurement of one library, in its own process; prints one JSON line (prefixed ``RESULT``).

Run by ``benchmarks/gpu_check.py``, in our interpreter (``--lib ours``) or perceiver-io 0.11's (``--lib pio``, with
``-P`` from a directory without our package, like ``worker.py``). Models, inputs and the loss come from ``worker.py``,
so both libraries build the same architecture with the same sizes.

    --case train_clm   the 30.6M CLM (or a tiny one): ``--steps`` timed training steps (forward, loss, backward,
                       fused AdamW) after ``--warmup`` untimed ones, bf16 autocast, optionally ``torch.compile``d
    --case train_mlm   the 201M MLM (or a tiny one), the same loop
    --case gen         greedy kv-cached generation (512-token prompt, 256 new tokens; tiny: 32 and 8)
    --case flops       ours only: FlopCounterMode over one training step on the device against the analytic count
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # worker.py (``-P`` leaves the script's folder out)

import worker  # noqa: E402


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device, precision: str):
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")


def train_case(kind: str, tiny: bool) -> dict:
    if kind == "train_clm":
        return dict(kind="clm_train", batch=2 if tiny else 16, seq=256 if tiny else 4096, latents=64 if tiny else 512,
                    tiny=tiny)
    return dict(kind="mlm", batch=2 if tiny else 8, seq=64 if tiny else 2048, tiny=tiny)


def stage_case(kind: str, tiny: bool) -> dict:
    """The benchmark case of a ``--case`` (train_clm, train_mlm or gen)."""
    return train_case(kind, tiny) if kind != "gen" else dict(worker.CASES["smoke_gen" if tiny else "gen_b1"])


def build(lib: str, case: dict, model_config: str | None = None):
    """The model of a train case; ``model_config`` (JSON) is required for perceiver-io (see benchmarks/cases.py)."""
    config = worker.case_model_config(lib, case, model_config)
    return worker.build_clm(config) if case["kind"] == "clm_train" else worker.build_mlm(lib, config)


def ours_flops_per_step(kind: str, tiny: bool) -> int:
    """Analytic training FLOPs of one step of a train case (our library; the same for perceiver-io's model)."""
    import torch

    case = train_case(kind, tiny)
    with torch.device("meta"):
        model = build("ours", case)
    return model.config.flops(case["seq"]).step(case["batch"])


def train(args, device) -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    case = train_case(args.case, args.tiny)
    b, n = case["batch"], case["seq"]
    model = build(args.lib, case, args.model_config).to(device).train()
    x = torch.randint(0, 262, (b, n), device=device)
    if case["kind"] == "clm_train":
        prefix_len = n - case["latents"]
        labels = torch.randint(0, 262, (b, case["latents"]), device=device)
        forward = lambda m: worker.clm_logits(args.lib, m, x, prefix_len)  # noqa: E731
    else:
        labels = torch.randint(0, 262, (b, n), device=device)
        forward = lambda m: m(x)  # noqa: E731
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")

    def step(m):
        with autocast(device, args.precision):
            logits = forward(m)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    result = dict(batch=b, seq=n, compiled=False)
    runner = model
    t = time.perf_counter()
    if args.compile:
        try:
            runner = torch.compile(model, backend=args.compile_backend)
            for _ in range(args.warmup):
                step(runner)
            result["compiled"] = True
        except Exception as e:  # report it and measure the eager model instead
            result["compile_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            runner = model
    if not result["compiled"]:
        for _ in range(args.warmup):
            step(runner)
    sync(device)
    result["warmup_s"] = time.perf_counter() - t
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    for _ in range(args.steps):
        loss = step(runner)
    sync(device)
    seconds = time.perf_counter() - t
    result.update(steps=args.steps, seconds=seconds, tokens_per_s=args.steps * b * n / seconds,
                  step_s=seconds / args.steps, final_loss=float(loss))
    if device.type == "cuda":
        result["max_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def generate(args, device) -> dict:
    import torch

    case = stage_case("gen", args.tiny)
    # builds the model and the greedy generate call
    step, model = worker.make_step(args.lib, case, "fp32", args.model_config)
    model.to(device)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(3, 262, (case["batch"], case["seq"]), generator=g).to(device)
    new = case["new"]

    def run(tokens: int):
        with torch.inference_mode(), autocast(device, args.precision):
            if args.lib == "ours":
                return model.generate(x, tokens, num_latents=1, use_cache=True)
            return model.generate(input_ids=x, max_new_tokens=tokens, min_new_tokens=tokens, num_latents=1,
                                  do_sample=False, use_cache=True, pad_token_id=0)

    run(4)  # warm-up (CUDA context, kernels)
    sync(device)
    t = time.perf_counter()
    out = run(new)
    sync(device)
    seconds = time.perf_counter() - t
    return dict(batch=case["batch"], prompt=case["seq"], new_tokens=int(out.shape[1] - case["seq"]), seconds=seconds,
                tokens_per_s=case["batch"] * new / seconds, first_tokens=out[0, case["seq"]: case["seq"] + 8].tolist())


def count_flops(args, device) -> dict:
    """FlopCounterMode over one training-mode forward and backward pass of our CLM and MLM on ``device``."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    out = {}
    for kind in ("train_clm", "train_mlm"):
        torch.manual_seed(0)
        case = dict(train_case(kind, args.tiny), batch=1)
        model = build("ours", case).to(device).train()
        n = case["seq"]
        x = torch.randint(0, 262, (1, n), device=device)
        with FlopCounterMode(display=False) as counter, autocast(device, args.precision):
            logits = model(x, n - case["latents"]) if kind == "train_clm" else model(x)
            F.cross_entropy(logits.flatten(0, 1).float(), torch.zeros(logits.shape[:2], dtype=torch.long,
                                                                          device=device).flatten()).backward()
        flops = model.config.flops(n)
        # on a CPU, whether attention is counted depends on the kernel torch picks (see Flops.flop_counter_total)
        out[kind] = dict(counted=counter.get_total_flops(), analytic=flops.forward_backward,
                         device_convention=None if device.type == "cpu" else flops.flop_counter_total(device.type))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lib", choices=["ours", "pio"], default="ours")
    p.add_argument("--case", choices=["train_clm", "train_mlm", "gen", "flops"], required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", choices=["fp32", "bf16-mixed"], default="bf16-mixed")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--compile-backend", default="inductor")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--tiny", action="store_true", help="tiny models (the dry run)")
    p.add_argument("--model-config", default=None,
                   help="the case's model config as JSON (needed with --lib pio; gpu_check.py passes it)")
    args = p.parse_args()

    import torch

    import perceiver

    if args.lib == "pio":
        assert "site-packages" in perceiver.__file__, f"perceiver-io expected, got {perceiver.__file__}"
    device = torch.device(args.device)
    result = dict(lib=args.lib, case=args.case, device=str(device), precision=args.precision, torch=torch.__version__,
                  device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        fn = {"train_clm": train, "train_mlm": train, "gen": generate, "flops": count_flops}[args.case]
        result.update(fn(args, device), status="ok")
    except Exception as e:
        result.update(status="error", error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
        traceback.print_exc()
    print("RESULT " + json.dumps(result), flush=True)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
