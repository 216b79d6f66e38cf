"""One benchmark case of one library, in its own process; prints one JSON line (prefixed ``RESULT``) on stdout.

Run by ``benchmarks/run.py``; standalone so that it works in three interpreters:

    ours:  .venv/bin/python benchmarks/worker.py --lib ours --case clm_train_b2_s4096 --precision fp32
    pio:   cd /tmp && <repo>/benchmarks/.venv-perceiver-io/bin/python -P <repo>/benchmarks/worker.py --lib pio ...
    hf:    .venv/bin/python benchmarks/worker.py --lib hf --case mlm_s512 ...

``--lib pio`` imports perceiver-io 0.11.0 (also named ``perceiver``), so it must run with ``-P`` from a directory
that does not hold our package. Everything a case needs (model config, inputs, loss, optimizer) is defined here, once,
for all libraries. Peak memory is this process's own maximum RSS (``ru_maxrss``), which includes the model, the
optimizer state and the interpreter; it is read after the timed repetitions.

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

# --- cases ----------------------------------------------------------------------------------------------------------
# kind, batch, seq, latents (CLM) / None, and the model config overrides. CLM = the documented 30.6M config.
CLM_30M = dict(vocab_size=262, max_seq_len=4096, max_latents=512, num_channels=512, num_heads=8,
               num_self_attention_layers=8, num_self_attention_rotary_layers=1, self_attention_widening_factor=4,
               cross_attention_widening_factor=4, cross_attention_dropout=0.5, post_attention_dropout=0.0,
               residual_dropout=0.0, output_norm=False, output_bias=True, abs_pos_emb=True, init_scale=0.02)

CASES = {
    "clm_train_b2_s4096": dict(kind="clm_train", batch=2, seq=4096, latents=512),
    "clm_train_b4_s1024": dict(kind="clm_train", batch=4, seq=1024, latents=256),
    # the first case with the config field activation_checkpointing=True (perceiver-io 0.11.0's fails in its forward;
    # run.py then compares with its plain run)
    "clm_train_b2_s4096_ckpt": dict(kind="clm_train", batch=2, seq=4096, latents=512, checkpointing=True),
    "mlm_s2048": dict(kind="mlm", batch=1, seq=2048),
    "mlm_s512": dict(kind="mlm", batch=1, seq=512),
    "gen_b1": dict(kind="gen", batch=1, seq=512, new=256),
    "gen_b8": dict(kind="gen", batch=8, seq=512, new=256),
    # long generation past max_latents (512) and max_seq_len (4096), timed per token (per-chunk tokens/s); the
    # warm-up generates warmup_new tokens only
    "gen_long_1k": dict(kind="gen", batch=1, seq=16, new=1024, chunked=True, warmup_new=32),
    "gen_long_5k": dict(kind="gen", batch=1, seq=16, new=5000, chunked=True, warmup_new=32),
    "long_8k": dict(kind="long", batch=1, seq=8192, latents=1024),
    "long_16k": dict(kind="long", batch=1, seq=16384, latents=1024),
    "long_32k": dict(kind="long", batch=1, seq=32768, latents=1024),
    # tiny versions for the CI smoke run (seconds)
    "smoke_clm": dict(kind="clm_train", batch=1, seq=128, latents=32, tiny=True),
    "smoke_mlm": dict(kind="mlm", batch=1, seq=64, tiny=True),
    "smoke_gen": dict(kind="gen", batch=1, seq=32, new=8, tiny=True),
    "smoke_gen_long": dict(kind="gen", batch=1, seq=16, new=300, chunked=True, warmup_new=8, tiny=True),
    "smoke_long": dict(kind="long", batch=1, seq=256, latents=32, tiny=True),
}

CLM_TINY = dict(CLM_30M, max_seq_len=256, max_latents=64, num_channels=64, num_heads=4, num_self_attention_layers=2)


def clm_config(case: dict) -> dict:
    if case.get("tiny"):
        if case["kind"] == "long":
            return dict(CLM_TINY, max_seq_len=case["seq"], max_latents=case["latents"], cross_attention_dropout=0.0)
        return dict(CLM_TINY)
    if case["kind"] == "long":
        # the 30.6M model with a context of `seq` and 1024 latents; no prefix dropout, so every prefix position is
        # attended (the hardest case for memory)
        return dict(CLM_30M, max_seq_len=case["seq"], max_latents=case["latents"], cross_attention_dropout=0.0)
    return dict(CLM_30M, activation_checkpointing=case.get("checkpointing", False))


def mlm_sizes(tiny: bool) -> dict:
    """The 201M deepmind/language-perceiver configuration (or a tiny one with the same structure)."""
    if tiny:
        return dict(d_model=32, d_latents=64, num_latents=16, layers=2, qk=32, v=64, dec_v=32, heads=4, max_seq_len=64)
    return dict(d_model=768, d_latents=1280, num_latents=256, layers=26, qk=256, v=1280, dec_v=768, heads=8,
                max_seq_len=2048)


# --- model builders -------------------------------------------------------------------------------------------------


def build_clm(lib: str, case: dict):
    cfg = clm_config(case)
    if lib == "ours":
        from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig
        return CausalLanguageModel(CausalLanguageModelConfig(**cfg))
    from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig
    return CausalLanguageModel(CausalLanguageModelConfig(**cfg))


def build_pio_clm_hf(case: dict):
    from perceiver.model.text.clm import CausalLanguageModelConfig, PerceiverCausalLanguageModel
    from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModelConfig
    config = PerceiverCausalLanguageModelConfig(CausalLanguageModelConfig(**clm_config(case)))
    config.is_decoder = True
    return PerceiverCausalLanguageModel(config)


def build_mlm(lib: str, case: dict):
    s = mlm_sizes(case.get("tiny", False))
    if lib == "hf":
        import transformers
        config = transformers.PerceiverConfig(
            d_model=s["d_model"], d_latents=s["d_latents"], num_latents=s["num_latents"], num_blocks=1,
            num_self_attends_per_block=s["layers"], num_self_attention_heads=s["heads"],
            num_cross_attention_heads=s["heads"], qk_channels=s["qk"], v_channels=s["v"], vocab_size=262,
            max_position_embeddings=s["max_seq_len"],
        )
        return transformers.PerceiverForMaskedLM(config)
    if lib == "ours":
        from perceiver.model.text.mlm import (MaskedLanguageModel, MaskedLanguageModelConfig, TextDecoderConfig,
                                              TextEncoderConfig)
    else:
        from perceiver.model.text.mlm import (MaskedLanguageModel, MaskedLanguageModelConfig, TextDecoderConfig,
                                              TextEncoderConfig)
    encoder = TextEncoderConfig(
        vocab_size=262, max_seq_len=s["max_seq_len"], num_input_channels=s["d_model"],
        num_cross_attention_heads=s["heads"], num_cross_attention_qk_channels=s["qk"],
        num_cross_attention_v_channels=s["v"], num_cross_attention_layers=1, cross_attention_widening_factor=1,
        num_self_attention_heads=s["heads"], num_self_attention_qk_channels=s["qk"],
        num_self_attention_v_channels=s["v"], num_self_attention_layers_per_block=s["layers"],
        num_self_attention_blocks=1, first_self_attention_block_shared=True, self_attention_widening_factor=1,
        dropout=0.1, init_scale=0.02,
    )
    decoder = TextDecoderConfig(
        vocab_size=262, max_seq_len=s["max_seq_len"], num_cross_attention_heads=s["heads"],
        num_cross_attention_qk_channels=s["qk"], num_cross_attention_v_channels=s["dec_v"],
        cross_attention_widening_factor=1, cross_attention_residual=False, dropout=0.1, init_scale=0.02,
    )
    return MaskedLanguageModel(MaskedLanguageModelConfig(encoder, decoder, num_latents=s["num_latents"],
                                                         num_latent_channels=s["d_latents"]))


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


def make_step(lib: str, case: dict, precision: str):
    """(step function, model, batch size in tokens or None). Each call of the step is one timed repetition."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    kind, b, n = case["kind"], case["batch"], case["seq"]
    if kind in ("clm_train", "long"):
        model = build_clm(lib, case).train()
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
        model = build_mlm(lib, case).train()
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
            model = build_clm(lib, case).eval()

            def generate(new, streamer):
                return model.generate(x, new, num_latents=1, use_cache=True, streamer=streamer)
        else:
            model = build_pio_clm_hf(case).eval()

            def generate(new, streamer):
                return model.generate(input_ids=x, max_new_tokens=new, min_new_tokens=new, num_latents=1,
                                      do_sample=False, use_cache=True, pad_token_id=0, streamer=streamer)

        def step(new=case["new"]):
            # both libraries call a streamer's put() with the prompt, then with each new token
            step.clock = TokenClock() if case.get("chunked") else None
            with torch.inference_mode(), autocast(precision):
                step.out = generate(new, step.clock)

        return step, model
    raise ValueError(kind)


def add_case_arguments(p) -> None:
    """``--lib``, ``--case`` and ``--precision``: the arguments of every script that runs one case of this file."""
    p.add_argument("--lib", choices=["ours", "pio", "hf"], default="ours")
    p.add_argument("--case", choices=list(CASES), required=True)
    p.add_argument("--precision", choices=["fp32", "bf16-mixed"], default="fp32")


# --- measurement ----------------------------------------------------------------------------------------------------


class TokenClock:
    """A generation streamer that records when each new token arrives (the first put() is the prompt)."""

    def __init__(self):
        self.start, self.times, self.prompt_seen = time.perf_counter(), [], False

    def put(self, ids) -> None:
        if self.prompt_seen:
            self.times.append(time.perf_counter())
        self.prompt_seen = True

    def end(self) -> None:
        pass

    def chunk_tokens_per_s(self, chunk: int = 128) -> list[float]:
        """Tokens/s of each run of ``chunk`` new tokens (the first includes the prompt's pass)."""
        edges = [self.start] + self.times[chunk - 1 :: chunk]
        return [chunk / (b - a) for a, b in zip(edges, edges[1:])]


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
    step, model = make_step(args.lib, case, args.precision)
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
        step(case["warmup_new"]) if "warmup_new" in case else step()
    times, chunks = [], []
    for _ in range(args.reps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
        if case.get("chunked"):
            chunks.append(step.clock.chunk_tokens_per_s())
    result["times"] = times
    result["median_s"] = statistics.median(times)
    result["max_rss_mb"] = max_rss_mb()
    if case["kind"] == "gen":
        result["batch_tokens"] = case["batch"] * case["new"]
        result["tokens_per_s"] = result["batch_tokens"] / result["median_s"]
        out = step.out
        result["new_tokens"] = int(out.shape[1] - case["seq"])
        result["first_tokens"] = out[0, case["seq"]: case["seq"] + 16].tolist()
        if case.get("chunked"):  # tokens/s of each chunk of 128 new tokens, per timed repetition
            result["chunk_tokens_per_s"] = chunks
            result["growth_tokens"] = clm_config(case)["max_latents"]  # steps before the latent window is full
            result["last_tokens"] = out[0, -16:].tolist()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
