"""Where a sweep's points run: one point per device at a time, each process pinned to its device."""

from __future__ import annotations

import os
import re
from typing import Sequence


class SweepError(ValueError):
    """A sweep that cannot start as asked (the message says why and what to do)."""


def visible_devices(spec: str | Sequence[str] = "auto") -> list[str]:
    """The devices points run on, one point at a time each: ``"auto"`` (every visible GPU, else the CPU), ``"cpu"``,
    or GPU indices (``"0,1,3"`` or a list)."""
    if spec == "auto":
        import torch

        n = torch.cuda.device_count()
        if n == 0:
            return ["cpu"]
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return [d.strip() for d in visible.split(",")][:n] if visible else [str(i) for i in range(n)]
    ids = [d.strip() for d in (spec.split(",") if isinstance(spec, str) else spec) if str(d).strip()]
    if ids == ["cpu"]:
        return ids
    if not ids or not all(re.fullmatch(r"[0-9]+|[A-Za-z0-9-]+", str(d)) for d in ids) or "cpu" in ids:
        raise SweepError(f"devices {spec!r}: give auto, cpu, or GPU indices such as 0,1")
    return [str(d) for d in ids]


def device_env(device: str) -> dict[str, str]:
    """The environment that pins a point to ``device`` (no GPU visible for ``cpu``)."""
    return {"CUDA_VISIBLE_DEVICES": "" if device == "cpu" else device}
