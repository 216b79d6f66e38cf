"""What one benchmark case keeps in memory at its peak: the process's live heap at its high-water mark (memray),
grouped by the source line that allocated it, next to the peak RSS.

    .venv/bin/python benchmarks/memory_peak.py --case clm_train_b2_s4096
    cd /tmp && <repo>/benchmarks/.venv-perceiver-io/bin/python -P <repo>/benchmarks/memory_peak.py --lib pio ...

Peak RSS = live heap + the libraries' code and data (~150 MB of torch, MKL, oneDNN) + what the allocator holds but
does not use (freed blocks inside glibc's heap). Uses the case definitions of ``benchmarks/worker.py`` (``--lib pio``
needs ``--model-config "$(.venv/bin/python benchmarks/cases.py <case>)"``) and needs ``memray`` (in the ``benchmarks``
extra; ``setup_perceiver_io.sh`` installs it into perceiver-io's venv).
"""

import argparse
import collections
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # worker.py (works with python -P too)

import torch  # noqa: E402

import worker  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    worker.add_case_arguments(p)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rows", type=int, default=15)
    args = p.parse_args()
    import memray

    torch.set_num_threads(2)
    out = Path(tempfile.mkdtemp()) / "trace.bin"
    with memray.Tracker(out):
        step, _ = worker.make_step(args.lib, worker.CASES[args.case], args.precision, args.model_config)
        for _ in range(args.steps):
            step()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    reader = memray.FileReader(out)
    by_line = collections.Counter()
    for record in reader.get_high_watermark_allocation_records(merge_threads=True):
        frames = [f"{Path(file).name}:{line} {func}" for func, file, line in record.stack_trace()
                  if "memray" not in file and "memory_peak.py" not in file]
        by_line[frames[0] if frames else "(no Python frame)"] += record.size
    print(f"{args.lib} {args.case} {args.precision}: live heap at its peak {reader.metadata.peak_memory / 2**20:.0f} MB, "
          f"peak RSS {rss:.0f} MB (RSS includes the tracker's own use)\n")
    print("| MB | allocated at |\n|---|---|")
    for where, size in by_line.most_common(args.rows):
        print(f"| {size / 2**20:.1f} | {where} |")


if __name__ == "__main__":
    main()
