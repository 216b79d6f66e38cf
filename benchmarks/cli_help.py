"""How long the CLI takes to answer ``--help`` (and, for comparison, what it cannot avoid importing).

    .venv/bin/python benchmarks/cli_help.py                 # 5 rounds, commands taking turns, median wall time
    .venv/bin/python benchmarks/cli_help.py --rounds 3 --quick

Each command runs in a fresh process, from the repository root; the commands take turns in every round, so a busy
machine slows all of them alike. ``clm --help`` is answered from the task registry (no torch, no Lightning: target
under 3 s); ``fit --help`` builds Lightning's full parser, so it cannot be faster than importing Lightning, which the
last rows measure. The load average is printed with the table: compare rows of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
COMMANDS = {
    "clm --help": [PY, "-m", "perceiver.scripts.text.clm", "--help"],
    "mlm --help": [PY, "-m", "perceiver.scripts.text.mlm", "--help"],
    "clm fit --help": [PY, "-m", "perceiver.scripts.text.clm", "fit", "--help"],
    "clm fit --print_config": [PY, "-m", "perceiver.scripts.text.clm", "fit", "--print_config"],
    "python (empty)": [PY, "-c", "pass"],
    "import torch": [PY, "-c", "import torch"],
    "import pytorch_lightning": [PY, "-c", "import pytorch_lightning"],
}
QUICK = ("clm --help", "mlm --help", "python (empty)", "import torch")


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    args = p.parse_args()
    names = [n for n in COMMANDS if not args.quick or n in QUICK]
    times: dict[str, list[float]] = {n: [] for n in names}
    timed(COMMANDS["python (empty)"])  # warm the file cache once
    for _ in range(args.rounds):
        for name in names:
            times[name].append(timed(COMMANDS[name]))
    load = os.getloadavg()
    print(f"{len(names)} commands x {args.rounds} rounds, {os.cpu_count()} CPUs, load average after: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"| command | median s | min s | max s |\n|---|---|---|---|")
    for name in names:
        t = times[name]
        print(f"| `{name}` | {statistics.median(t):.2f} | {min(t):.2f} | {max(t):.2f} |")


if __name__ == "__main__":
    main()
