"""One benchmark case of one library, in its own process; prints one JSON line (prefixed ``RESULT``) on stdout.

Run by ``benchmarks/run.py``; standalone so that it works in three interpreters:

    ours:  .venv/bin/python benchmarks/worker.py --lib ours --case clm_train_b2_s4096 --precision fp32
    pio:   cd /tmp && <repo>/benchmarks/.venv-perceiver-io/bin/python -P <repo>/benchmarks/worker.py --lib pio ... \
               --model-config "$(<repo>/.venv/bin/python <repo>/benchmarks/cases.py <case>)"
    hf:    .venv/bin/python benchmarks/worker.py --lib hf --case mlm_s512 ...

``--lib pio`` imports perceiver-io 0.11.0 (also named ``perceiver``), so it must run with ``-P`` from a directory
that does not hold our package. Everything a case needs (inputs, loss, optimizer) is defined here, once, for all
libraries; its model config comes from our presets (``cases.py``). Peak memory is this process's own maximum RSS
(``ru_maxrss``), which includes the model, the optimizer state and the interpreter; it is read after the timed
repetitions.

Precision: ``fp32``, or ``bf16-mixed`` = fp32 weights with ``torch.autocast("cpu", torch.bfloat16)`` around the
forward pass and the loss (what Lightning's ``precision="bf16-mixed"`` does on CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# the cases (kind, batch, seq, latents) and their model configs (from our presets) are in cases.py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cases.py, also under python -P
from cases import CASES  # noqa: E402


def case_model_config(lib: str, case: dict, given: str | None = None) -> dict:
    """The model config of ``case``: ``given`` (JSON, what run.py passes), else computed from our presets, which
    perceiver-io's interpreter cannot import."""
    if given:
        return json.loads(given)
    if lib == "pio":
        raise SystemExit("--lib pio needs --model-config: pass "
                         "\"$(.venv/bin/python benchmarks/cases.py <case>)\" (run.py does this)")
    from cases import model_config

    return model_config(case)


# --- model builders -------------------------------------------------------------------------------------------------


def build_clm(config: dict):
    """Our CausalLanguageModel, or perceiver-io's under its interpreter (the same import path and field names)."""
    from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig
    return CausalLanguageModel(CausalLanguageModelConfig(**config))


def build_pio_clm_hf(config: dict):
    from perceiver.model.text.clm import CausalLanguageModelConfig, PerceiverCausalLanguageModel
    from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModelConfig
    hf_config = PerceiverCausalLanguageModelConfig(CausalLanguageModelConfig(**config))
    hf_config.is_decoder = True
    return PerceiverCausalLanguageModel(hf_config)


def build_mlm(lib: str, config: dict):
    enc, dec = config["encoder"], config["decoder"]
    if lib == "hf":
        import transformers
        hf_config = transformers.PerceiverConfig(
            d_model=enc["num_input_channels"], d_latents=config["num_latent_channels"],
            num_latents=config["num_latents"], num_blocks=enc["num_self_attention_blocks"],
            num_self_attends_per_block=enc["num_self_attention_layers_per_block"],
            num_self_attention_heads=enc["num_self_attention_heads"],
            num_cross_attention_heads=enc["num_cross_attention_heads"],
            qk_channels=enc["num_self_attention_qk_channels"],
            v_channels=enc["num_self_attention_v_channels"], vocab_size=enc["vocab_size"],
            max_position_embeddings=enc["max_seq_len"],
        )
        return transformers.PerceiverForMaskedLM(hf_config)
    from perceiver.model.text.mlm import (MaskedLanguageModel, MaskedLanguageModelConfig, TextDecoderConfig,
                                          TextEncoderConfig)
    rest = {k: v for k, v in config.items() if k not in ("encoder", "decoder")}
    return MaskedLanguageModel(MaskedLanguageModelConfig(TextEncoderConfig(**enc), TextDecoderConfig(**dec), **rest))


# --- steps ----------------------------------------------------------------------------------------------------------


def autocast(precision: str):
    import torch
    if precision == "bf16-mixed":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def clm_logits(lib: str, model, x, prefix_len: int):
    if lib == "ours":
        return model(x, prefix_len)
    return model(x, prefix_len=prefix_len).logits


def make_step(lib: str, case: dict, precision: str, model_config: str | None = None):
    """(step function, model). Each call of the step is one timed repetition. ``model_config``: the case's model
    config as JSON (see ``case_model_config``)."""
    import torch
    import torch.nn.functional as F

    config = case_model_config(lib, case, model_config)
    torch.manual_seed(0)
    kind, b, n = case["kind"], case["batch"], case["seq"]
    if kind in ("clm_train", "long"):
        model = build_clm(config).train()
        x = torch.randint(0, 262, (b, n))
        labels = torch.randint(0, 262, (b, case["latents"]))
        prefix_len = n - case["latents"]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True) if kind == "clm_train" else None

        def step():
            with autocast(precision):
                logits = clm_logits(lib, model, x, prefix_len)
                loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())
            loss.backward()
            if opt is not None:
                opt.step()
            model.zero_grad(set_to_none=True)

        return step, model

    if kind == "mlm":
        model = build_mlm(lib, config).train()
        x = torch.randint(0, 262, (b, n))
        labels = torch.randint(0, 262, (b, n))

        def step():
            with autocast(precision):
                if lib == "hf":
                    # HF decodes all max_position_embeddings output queries whatever the input length
                    logits = model(inputs=x).logits[:, : x.shape[1]]
                else:
                    logits = model(x)
                loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())
            loss.backward()
            model.zero_grad(set_to_none=True)

        return step, model

    if kind == "gen":
        g = torch.Generator().manual_seed(1)
        x = torch.randint(3, 262, (b, n), generator=g)
        if lib == "ours":
            model = build_clm(config).eval()

            def step():
                with torch.inference_mode(), autocast(precision):
                    step.out = model.generate(x, case["new"], num_latents=1, use_cache=True)
        else:
            model = build_pio_clm_hf(config).eval()

            def step():
                with torch.inference_mode(), autocast(precision):
                    step.out = model.generate(input_ids=x, max_new_tokens=case["new"], min_new_tokens=case["new"],
                                              num_latents=1, do_sample=False, use_cache=True, pad_token_id=0)
        return step, model
    raise ValueError(kind)


def add_case_arguments(p) -> None:
    """``--lib``, ``--case`` and ``--precision``: the arguments of every script that runs one case of this file."""
    p.add_argument("--lib", choices=["ours", "pio", "hf"], default="ours")
    p.add_argument("--case", choices=list(CASES), required=True)
    p.add_argument("--precision", choices=["fp32", "bf16-mixed"], default="fp32")
    p.add_argument("--model-config", default=None,
                   help="the case's model config as JSON (default: from our presets, benchmarks/cases.py)")


# --- measurement ----------------------------------------------------------------------------------------------------


def matmul_peak(precision: str, tiny: bool) -> float:
    """GFLOP/s of a large square matrix product in this process, in the dtype the case's matmuls run in."""
    import torch
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
    # bf16 matmuls without native support (no avx512_bf16/AMX) run ~50x slower: a smaller size keeps this short
    # (512² understated the bf16 rate that the models' own GEMMs reach: effective/peak came out above 1)
    n = 256 if tiny else (1024 if dtype == torch.bfloat16 else 2048)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(3):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def count_flops(step) -> float:
    """FLOPs of one step (matrix products and attention, forward and backward), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main():
    p = argparse.ArgumentParser()
    add_case_arguments(p)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--count-flops", action="store_true", help="count FLOPs in an extra, untimed step")
    args = p.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    import perceiver
    if args.lib == "pio":
        assert "site-packages" in perceiver.__file__, f"perceiver-io expected, got {perceiver.__file__}"
    elif args.lib == "ours":
        assert "site-packages" not in perceiver.__file__ or "perceiver_io" not in perceiver.__file__

    case = CASES[args.case]
    step, model = make_step(args.lib, case, args.precision, args.model_config)
    result = dict(lib=args.lib, case=args.case, precision=args.precision, threads=args.threads,
                  torch=torch.__version__, params=sum(p.numel() for p in model.parameters()))
    if args.lib == "hf":
        import transformers
        result["transformers"] = transformers.__version__
    elif args.lib == "pio":
        import transformers
        result["transformers"] = transformers.__version__
    result["matmul_gflops"] = matmul_peak(args.precision, case.get("tiny", False))
    if args.count_flops and case["kind"] != "gen":
        result["flops"] = count_flops(step)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.reps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    result["times"] = times
    result["median_s"] = statistics.median(times)
    result["max_rss_mb"] = max_rss_mb()
    if case["kind"] == "gen":
        result["batch_tokens"] = case["batch"] * case["new"]
        result["tokens_per_s"] = result["batch_tokens"] / result["median_s"]
        out = step.out
        result["new_tokens"] = int(out.shape[1] - case["seq"])
        result["first_tokens"] = out[0, case["seq"]: case["seq"] + 16].tolist()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
