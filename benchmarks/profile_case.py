"""Where the time of one benchmark case goes: torch.profiler's top operators for one step (after a warm-up).

    .venv/bin/python benchmarks/profile_case.py --case clm_train_b4_s1024 --precision bf16-mixed
    cd /tmp && <repo>/benchmarks/.venv-perceiver-io/bin/python -P <repo>/benchmarks/profile_case.py --lib pio ...

Uses the case definitions of ``benchmarks/worker.py`` (same models, inputs and steps); ``--lib pio`` needs the case's
model config: ``--model-config "$(.venv/bin/python benchmarks/cases.py <case>)"``.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # worker.py (works with python -P too)

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import worker  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    worker.add_case_arguments(p)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--no-warmup", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    step, _ = worker.make_step(args.lib, worker.CASES[args.case], args.precision, args.model_config)
    if not args.no_warmup:
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        step()
    print(f"{args.lib} {args.case} {args.precision}, {args.threads} threads")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
