"""Compute accounting during training: tokens seen, FLOPs done, achieved FLOP/s and model FLOPs utilisation (MFU).

``ComputeMonitor`` (added by the CLI to every run) logs after each training step, through Lightning (so CSV,
TensorBoard and the run journal get them):

    tokens        input tokens seen so far, all devices (cumulative)
    flops         model FLOPs done so far, all devices (cumulative; forward + backward, see
                  ``perceiver.model.core.flops`` for what is counted)
    flops_per_s   FLOPs of this step / its wall time, all devices
    mfu           flops_per_s / (devices × the matrix-product peak of one device)

The peak: on a GPU, the vendor's dense peak for the precision (``GPU_PEAKS``) if the GPU is known, else measured; on
a CPU, measured at start (:func:`measure_peak`: a square matrix product in the precision's dtype, timed in this
process with its threads). Achieved FLOP/s count the time between the ends of consecutive steps (data loading and the
optimizer included); the first step after the start or a validation counts from its own start.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from perceiver.model.core.ops import linear

METRICS = ("tokens", "flops", "flops_per_s", "mfu")
"""The names ComputeMonitor logs."""

# Dense (no sparsity) matrix-product peaks of one GPU in FLOP/s by dtype, from the vendors' datasheets. float32 is
# the TF32 tensor-core rate when TF32 is allowed and the plain rate otherwise. Patterns match
# ``torch.cuda.get_device_name`` and are tried in order (more specific names first).
GPU_PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"H100.*PCIe", {"bfloat16": 756e12, "float16": 756e12, "tf32": 378e12, "float32": 51.2e12}),
    (r"H100|H200|GH200", {"bfloat16": 989.4e12, "float16": 989.4e12, "tf32": 494.7e12, "float32": 66.9e12}),
    (r"A100", {"bfloat16": 312e12, "float16": 312e12, "tf32": 156e12, "float32": 19.5e12}),
    (r"L40S", {"bfloat16": 362e12, "float16": 362e12, "tf32": 183e12, "float32": 91.6e12}),
    (r"\bL4\b", {"bfloat16": 121e12, "float16": 121e12, "tf32": 60e12, "float32": 30.3e12}),
    (r"\bA10\b", {"bfloat16": 125e12, "float16": 125e12, "tf32": 62.5e12, "float32": 31.2e12}),
    (r"V100", {"float16": 125e12, "float32": 15.7e12}),
    (r"\bT4\b", {"float16": 65e12, "float32": 8.1e12}),
)


@dataclass(frozen=True)
class Peak:
    """The matrix-product peak of one device: FLOP/s, the dtype it is for, and where it comes from."""

    flops_per_s: float
    dtype: str
    device: str
    source: str  # "datasheet" or "measured"

    def __str__(self) -> str:
        return f"{format_flops(self.flops_per_s)}/s ({self.dtype}, {self.device}, {self.source})"


def format_flops(x: float) -> str:
    """1.23e12 -> '1.23 TFLOP'."""
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}FLOP"
    return f"{x:.3g} FLOP"


def precision_dtype(precision: Any) -> torch.dtype:
    """The dtype of the matrix products under a Lightning ``precision`` ("bf16-mixed", "32-true", 16, ...)."""
    p = str(precision)
    if p.startswith("bf16"):
        return torch.bfloat16
    if p.startswith("16"):
        return torch.float16
    if p.startswith("64"):
        return torch.float64
    return torch.float32


def dtype_key(device: torch.device, dtype: torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if name == "float32" and device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return name


@lru_cache(maxsize=None)
def measure_peak(device: str = "cpu", dtype: torch.dtype = torch.float32, min_time_s: float = 0.02,
                 max_n: Optional[int] = None) -> float:
    """FLOP/s of a square matrix product on ``device`` in ``dtype``, by the kernel the models' linear layers use
    (:func:`perceiver.model.core.ops.linear`: oneDNN for float32 on a CPU): the size doubles from 256 until the best
    of a few products takes ``min_time_s`` (or the size reaches ``max_n``), then the best of the products timed at that
    size within about 8 × ``min_time_s``. Cached per process; about 0.2 s on a CPU. Small sizes understate the peak
    where the device is slow (e.g. bf16 without bf16 hardware), and a busy machine understates it too."""
    dev = torch.device(device)
    max_n = max_n or (16384 if dev.type == "cuda" else 4096)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def best_of(a, b, reps: int, budget_s: float) -> float:
        times, spent = [], 0.0
        while len(times) < reps and (len(times) < 2 or spent < budget_s):
            sync()
            t = time.perf_counter()
            linear(a, b)
            sync()
            times.append(time.perf_counter() - t)
            spent += times[-1]
        return min(times)

    g = torch.Generator(device=dev).manual_seed(0)  # not the global RNG: how many sizes run depends on timing
    n = 256
    while True:
        a = torch.randn(n, n, device=dev, generator=g).to(dtype)
        b = torch.randn(n, n, device=dev, generator=g).to(dtype)
        linear(a, b)  # warm-up
        best = best_of(a, b, 5, 2 * min_time_s)
        if best >= min_time_s or 2 * n > max_n:
            break
        n *= 2
    best = min(best, best_of(a, b, 20, 8 * min_time_s))
    return 2 * n**3 / best


def datasheet_peak(gpu_name: str, dtype: str) -> Optional[float]:
    """The dense peak (FLOP/s) of the GPU called ``gpu_name`` in ``dtype`` ("bfloat16", "tf32", ...) from
    ``GPU_PEAKS``, or None if it is not there."""
    table = next((peaks for pattern, peaks in GPU_PEAKS if re.search(pattern, gpu_name)), {})
    return table.get(dtype)


def device_peak(device: torch.device | str, dtype: torch.dtype = torch.float32, measure: bool = False) -> Peak:
    """The matrix-product peak of ``device`` in ``dtype``: the datasheet value for a known GPU (unless ``measure``),
    otherwise measured (:func:`measure_peak`)."""
    device = torch.device(device)
    key = dtype_key(device, dtype)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        known = datasheet_peak(name, key)
        if known is not None and not measure:
            return Peak(known, key, name, "datasheet")
        return Peak(measure_peak(f"cuda:{index}", dtype), key, name, "measured")
    return Peak(measure_peak(str(device), dtype), key, f"{device.type} ({torch.get_num_threads()} threads)", "measured")


class ComputeMonitor(Callback):
    """Logs ``tokens``, ``flops``, ``flops_per_s`` and ``mfu`` after every training step (see the module docstring).

    The FLOPs of a step come from the Lightning module's ``step_cost(batch)`` (``LitModel``: the backend config's
    analytic ``flops``); a module without it logs nothing. The totals are saved in checkpoints, so a resumed run
    continues counting. Put it before ``RunJournal`` in the callbacks (the CLI does), so the journal records this
    step's values.

    Args:
        peak_flops: the matrix-product peak of one device in FLOP/s (default: :func:`device_peak`).
        measure: measure the peak on a known GPU too, instead of taking the datasheet value.
    """

    def __init__(self, peak_flops: Optional[float] = None, measure: bool = False):
        self.peak_flops = peak_flops
        self.measure = measure
        self.peak: Optional[Peak] = None
        self.tokens = 0
        self.flops = 0
        self._t_last: Optional[float] = None

    def state_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "flops": self.flops}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokens, self.flops = int(state["tokens"]), int(state["flops"])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        device, dtype = trainer.strategy.root_device, precision_dtype(trainer.precision)
        if self.peak_flops is not None:
            self.peak = Peak(float(self.peak_flops), dtype_key(device, dtype), str(device), "given")
        else:
            self.peak = device_peak(device, dtype, self.measure)
        self._t_last = None
        if trainer.is_global_zero:
            print(f"[compute] peak {self.peak}, {trainer.world_size} device(s)", flush=True)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._t_last is None:
            self._t_last = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._t_last = None  # the next step counts from its own start, not across the validation

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        cost = getattr(pl_module, "step_cost", lambda b: None)(batch)
        if cost is None or self.peak is None:
            return
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)  # time the work, not its queueing
        now = time.perf_counter()
        seconds = max(now - (self._t_last if self._t_last is not None else now), 1e-9)
        self._t_last = now
        tokens, flops = (c * trainer.world_size for c in cost)
        self.tokens += tokens
        self.flops += flops
        achieved = flops / seconds
        values = {"tokens": self.tokens, "flops": self.flops, "flops_per_s": achieved,
                  "mfu": achieved / (trainer.world_size * self.peak.flops_per_s)}
        for name, value in values.items():
            # float64: cumulative counts stay exact (float32 would round them beyond 2^24)
            pl_module.log(name, torch.tensor(float(value), dtype=torch.float64), on_step=True, on_epoch=False)


def mean_mfu(values: list[Optional[float]]) -> Optional[float]:
    """Mean MFU over steps, without the first (it includes warm-up)."""
    vals = [v for v in (values[1:] or values) if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


__all__ = ["ComputeMonitor", "GPU_PEAKS", "METRICS", "Peak", "datasheet_peak", "device_peak", "format_flops",
           "measure_peak", "precision_dtype"]
