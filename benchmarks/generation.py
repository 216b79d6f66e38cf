"""Greedy-generation speed of the 30.6M Perceiver AR CLM, with and without the kv-cache, and their equality.

    .venv/bin/python benchmarks/generation.py                      # batch 1, 512-token prompt, 256 new tokens
    .venv/bin/python benchmarks/generation.py --batch 8 --no-uncached
    .venv/bin/python benchmarks/generation.py --profile            # top operators of the cached run
    .venv/bin/python benchmarks/generation.py --prompt-len 16 --new-tokens 1024 --no-uncached   # past max_latents

Weights are random (seeded): speed does not depend on them, and greedy outputs are compared token for token. The
side-by-side comparison with perceiver-io 0.11 is in ``benchmarks/run.py --cases gen``.
"""

from __future__ import annotations

import argparse
import time

import torch

from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig


def timed_generate(model, x, new_tokens: int, use_cache: bool, **options) -> tuple[torch.Tensor, float]:
    t = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(x, new_tokens, num_latents=1, use_cache=use_cache, **options)
    return out, time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt-len", type=int, default=512)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--window-rule", default="restart", choices=["restart", "slide"])
    p.add_argument("--restart-latents", type=int, default=None, help="latents after a restart (default max_latents/2)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions of the cached run (median)")
    p.add_argument("--no-uncached", action="store_true", help="skip the (slow) uncached run and the equality check")
    p.add_argument("--profile", action="store_true", help="print the top operators of one cached run")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CausalLanguageModel(CausalLanguageModelConfig()).eval()  # the documented 30.6M config
    x = torch.randint(3, 262, (args.batch, args.prompt_len), generator=torch.Generator().manual_seed(1))
    n = args.batch * args.new_tokens

    options = dict(window_rule=args.window_rule, restart_latents=args.restart_latents)
    timed_generate(model, x, 8, use_cache=True)  # warm-up
    runs = [timed_generate(model, x, args.new_tokens, use_cache=True, **options) for _ in range(args.reps)]
    cached, times = runs[0][0], sorted(t for _, t in runs)
    median = times[len(times) // 2]
    print(f"cached:   {n / median:8.1f} tokens/s  ({median:.2f} s for {args.new_tokens} tokens x batch {args.batch}, "
          f"{1000 * median / args.new_tokens:.1f} ms/step, {args.threads} threads)")

    if not args.no_uncached:
        uncached, t = timed_generate(model, x, args.new_tokens, use_cache=False, **options)
        print(f"uncached: {n / t:8.1f} tokens/s  ({t:.2f} s)")
        same = torch.equal(cached, uncached)
        print(f"cached output == uncached output: {same}  (cache speed-up {t / median:.1f}x)")
        if not same:
            raise SystemExit("cached and uncached greedy outputs differ")

    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            timed_generate(model, x, args.new_tokens, use_cache=True, **options)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
