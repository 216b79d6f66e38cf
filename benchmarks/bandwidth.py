"""The memory-bandwidth ceiling of batch-1 decoding on this machine: prints one table.

    .venv/bin/python benchmarks/bandwidth.py

Batch-1 greedy decoding of the 30.6M CLM reads every weight matrix once per token (q/k/v/o and MLP of 9 layers:
112 MiB in fp32) for a matrix-vector product each. This script measures, for 1 and 2 threads:

- the streaming read rate of the machine (``sum`` over 256 MiB),
- the same 112 MiB of weights as matrix-vector products (``F.linear`` with one row), in fp32 and in bf16,

and the tokens/s that each rate would allow if decoding did nothing but read the weights.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

WEIGHTS = [(2048, 512)] * 14 + [(512, 2048)] * 14  # 28 x 4 MiB = 112 MiB in fp32, like the decoder's matrices


def median_time(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()

    torch.manual_seed(0)
    big = torch.randn(64 * 2**20)  # 256 MiB
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t = median_time(lambda: big.sum(), max(3, args.reps // 4))
        rows.append((threads, "read 256 MiB (sum)", big.numel() * 4 / t / 1e9, None))
        for dtype in (torch.float32, torch.bfloat16):
            ws = [torch.randn(shape).to(dtype) for shape in WEIGHTS]
            xs = {k: torch.randn(1, k).to(dtype) for k in (512, 2048)}
            nbytes = sum(w.numel() * w.element_size() for w in ws)
            t = median_time(lambda: [F.linear(xs[w.shape[1]], w) for w in ws], args.reps)
            rows.append((threads, f"matrix-vector, {str(dtype)[6:]} weights ({nbytes / 2**20:.0f} MiB)",
                         nbytes / t / 1e9, 1 / t))

    print("| threads | what | GB/s | tokens/s if decoding only read the weights |")
    print("|---|---|---|---|")
    for threads, what, gbs, tps in rows:
        print(f"| {threads} | {what} | {gbs:.1f} | {'-' if tps is None else f'{tps:.0f}'} |")
    read = max(r[2] for r in rows if r[3] is None)
    print(f"\nfp32 ceiling at the best read rate ({read:.1f} GB/s): "
          f"{read * 1e9 / (112 * 2**20):.0f} tokens/s for 112 MiB of fp32 weights per token")


if __name__ == "__main__":
    main()
