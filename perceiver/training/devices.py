"""The ``devices`` a run asks for, checked when it is typed and resolved when the run starts.

A configuration keeps what the user chose (``devices: -1``: all GPUs), so the same YAML file runs on a laptop and on
a GPU machine. Only the process that trains decides what that means there (:func:`resolve_devices`): all GPUs
(Lightning picks DDP for more than one), or one CPU device when the machine has none. ``devices: cpu`` is one CPU
device on every machine, GPUs or not (CPU results that do not depend on the machine: the notebook references).
"""

from __future__ import annotations

from typing import Any, Callable

from perceiver.model.core.config import ConfigError

ALL = (-1, "-1", "auto")
"""Values that mean "every accelerator this machine has"."""
CPU = "cpu"
"""The value that means "one CPU device", GPUs or not."""


def check_devices(devices: Any) -> Any:
    """``devices`` if it is something Lightning accepts: -1 or "auto" (all), "cpu" (one CPU device), a positive count,
    or a list of device indices (also written "0,1"). Raises ``ConfigError`` naming the field ``devices`` otherwise."""
    if devices in ALL or devices == CPU:
        return devices
    if isinstance(devices, bool):
        pass
    elif isinstance(devices, int) and devices > 0:
        return devices
    elif isinstance(devices, (list, tuple)) and devices and all(isinstance(d, int) and d >= 0 for d in devices):
        return devices
    elif isinstance(devices, str):
        parts = [p.strip() for p in devices.strip("[] ").split(",")]
        if parts and all(p.isdigit() for p in parts) and (len(parts) > 1 or int(parts[0]) > 0):
            return devices
    raise ConfigError("Trainer", "devices", f"must be -1 (all GPUs, or 1 CPU device without a GPU), 'cpu' (1 CPU "
                                            f"device), a positive number of devices or a list of GPU indices such as "
                                            f"0,1; got {devices!r}")


def resolve_devices(devices: Any, accelerator: Any = "auto", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trainer arguments for ``devices`` on this machine: ``devices=-1``/``"auto"`` without a GPU becomes one CPU
    device (Lightning refuses -1 on the CPU), ``"cpu"`` one CPU device anywhere; everything else is left to
    Lightning."""
    import torch

    check_devices(devices)
    if devices == CPU:
        return {"accelerator": "cpu", "devices": 1}
    if devices in ALL and accelerator in ("auto", None, "gpu", "cuda") and torch.cuda.device_count() == 0:
        if accelerator in ("gpu", "cuda"):
            return {"accelerator": accelerator, "devices": devices}  # Lightning says clearly that there is no GPU
        log("No GPU found; training on 1 CPU device.")
        return {"accelerator": "cpu", "devices": 1}
    if devices in ALL and torch.cuda.device_count() > 0 and accelerator in ("auto", None, "gpu", "cuda"):
        n = torch.cuda.device_count()
        log(f"Found {n} GPU(s); training on all of them" + (" with DDP." if n > 1 else "."))
    return {"accelerator": accelerator if accelerator is not None else "auto", "devices": devices}
