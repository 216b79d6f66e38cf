"""float32 CPU matrix products: PyTorch's default (MKL) against oneDNN, which ``perceiver.model.core.ops.linear``
uses (every linear layer of the models).

For each row count M of ``x (M, K) @ W (N, K)ᵀ``, over the weight shapes of the documented 30.6M CLM (channels 512:
q/k/v/o 512x512, MLP 512x2048 and 2048x512, 9 layers: 108 MiB, more than the caches hold), and for the input
gradient ``g @ W`` of training. M = 1 is batch-1 decoding (one pass over all weights: GB/s is what counts), larger M
is training and prompt processing (GFLOP/s).
MKL and oneDNN take turns in each round; the table has each one's best round.

    .venv/bin/python benchmarks/cpu_matmul.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from perceiver.model.core.ops import linear, onednn_linear

SHAPES = ([(512, 512)] * 4 + [(2048, 512), (512, 2048)]) * 9  # (N, K) of the 9 layers of the 30.6M CLM


def mean_time(fn, repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, nargs="+", default=[1, 8, 64, 512, 4096])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    weights = [torch.randn(n, k) * 0.02 for n, k in SHAPES]
    nbytes = sum(w.numel() for w in weights) * 4
    print(f"threads {args.threads}, torch {torch.__version__}, weights: {nbytes / 2**20:.1f} MiB\n")
    print("| product | M | MKL ms | oneDNN ms | MKL | oneDNN | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for m in args.rows:
        xs = {k: torch.randn(m, k) for k in (512, 2048)}
        gs = {n: torch.randn(m, n) for n in (512, 2048)}
        flops = sum(2 * m * n * k for n, k in SHAPES)
        cases = {
            "x @ Wᵀ": lambda: [linear(xs[w.shape[1]], w) for w in weights],
            "g @ W (input grad)": lambda: [linear(gs[w.shape[0]], w.t()) for w in weights],
        }
        for name, fn in cases.items():
            best = {True: float("inf"), False: float("inf")}
            repeats = max(2, 40 // m)
            for _ in range(args.rounds):
                for on in (False, True):
                    with onednn_linear(on), torch.inference_mode():
                        best[on] = min(best[on], mean_time(fn, repeats))
            if m == 1:
                unit = lambda t: f"{nbytes / t / 1e9:.1f} GB/s"  # noqa: E731
            else:
                unit = lambda t: f"{flops / t / 1e9:.0f} GFLOP/s"  # noqa: E731
            print(f"| {name} | {m} | {best[False] * 1e3:.2f} | {best[True] * 1e3:.2f} | {unit(best[False])} | "
                  f"{unit(best[True])} | {best[False] / best[True]:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
