"""CPU threads of a training process: all usable cores by default, or a fixed number for reproducible results.

"Usable" is what the process may really run on: its CPU affinity (``os.sched_getaffinity``, e.g. ``taskset`` or a
batch scheduler's pinning), capped by a cgroup CPU quota (a container limited to 2 CPUs on a 64-core host, where
``os.cpu_count()`` and OpenMP's default would say 64). On CPU, the same seed and the same thread count give the
same losses; a different thread count changes the order of floating-point sums, so results differ in the last bits.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> Optional[float]:
    """The CPU quota of this process's cgroup in CPUs (``quota / period``, the smallest along the hierarchy), or
    None if there is none. Reads cgroup v2 (``cpu.max``) and v1 (``cpu/cpu.cfs_quota_us``, ``cpu.cfs_period_us``)."""
    limits = []
    for directory in _cgroup_dirs(root, proc_cgroup):
        v2, v1 = directory / "cpu.max", directory / "cpu.cfs_quota_us"
        try:
            if v2.is_file():
                quota, period = v2.read_text().split()[:2]
                if quota != "max":
                    limits.append(int(quota) / int(period))
            elif v1.is_file():
                quota = int(v1.read_text())
                if quota > 0:
                    limits.append(quota / int((directory / "cpu.cfs_period_us").read_text()))
        except (OSError, ValueError):
            continue
    return min(limits) if limits else None


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """Directories of this process's cgroup and its ancestors, in the v2 hierarchy and the v1 ``cpu`` controller."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    out = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            base = root  # v2 unified hierarchy
        elif "cpu" in controllers.split(","):
            base = root / "cpu" if (root / "cpu").is_dir() else root / controllers
        else:
            continue
        parts = Path(path.lstrip("/")).parts
        out += [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]
    return out or [root, root / "cpu"]


def usable_cpus() -> int:
    """The number of CPUs this process can use: its affinity, capped by the cgroup quota (rounded up), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        n = min(n, math.ceil(limit))
    return max(1, n)


def resolve_cpu_threads(cpu_threads: Optional[int] = None) -> int:
    """``cpu_threads`` if given, else ``OMP_NUM_THREADS`` if set, else :func:`usable_cpus`."""
    if cpu_threads is not None:
        if isinstance(cpu_threads, bool) or not isinstance(cpu_threads, int) or cpu_threads < 1:
            raise ValueError(f"cpu_threads must be a positive integer or None (all usable cores), got {cpu_threads!r}")
        return cpu_threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return usable_cpus()


def set_cpu_threads(cpu_threads: Optional[int] = None) -> int:
    """Set torch's intra-op threads of this process and return their number.

    Args:
        cpu_threads: torch threads of the training process on the CPU. None: all usable cores (the CPU affinity,
            capped by a container's CPU quota), or ``OMP_NUM_THREADS`` if set. A fixed number makes CPU results
            reproducible across machines with different core counts.
    """
    import torch

    n = resolve_cpu_threads(cpu_threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if cpu_threads is not None:  # child processes (DDP ranks) inherit an explicit choice
        os.environ["OMP_NUM_THREADS"] = str(n)
    return n


__all__ = ["cgroup_cpu_limit", "resolve_cpu_threads", "set_cpu_threads", "usable_cpus"]
