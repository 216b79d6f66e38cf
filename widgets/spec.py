"""What the workbench trains: tasks, presets, the data/trainer settings, and the CLI configuration they become.

Nothing here restates a model default or names a task. Tasks, their presets and what they link from the data
come from the registry (``perceiver.tasks``); model fields from the config dataclasses; the settings' types,
defaults and help from the signatures of the data module, ``pytorch_lightning.Trainer``, the optimizer and
``seed_everything``. A preset only lists what it changes.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from perceiver import tasks as registry
from perceiver.model.core.presets import merge, preset_fields
from perceiver.tasks import Task, drop_fields
from perceiver.training.threads import set_cpu_threads


def resolve_task(name: str | Task) -> Task:
    return name if isinstance(name, Task) else registry.get(name)


# --- settings: derived from signatures ----------------------------------------------------------------------------


def _trainer():
    import pytorch_lightning as pl

    return pl.Trainer


def _seed_everything():
    import pytorch_lightning as pl

    return pl.seed_everything


#: setting name -> (owner whose signature gives type, default and help; parameter name); "data" is the task's data
#: module class
SETTINGS: dict[str, tuple[Callable[[], Callable] | str, str]] = {
    "source": ("data", "source"),
    "max_seq_len": ("data", "max_seq_len"),
    "batch_size": ("data", "batch_size"),
    "devices": (_trainer, "devices"),
    "precision": (_trainer, "precision"),
    "max_steps": (_trainer, "max_steps"),
    "optimizer": (lambda: optimizer_class, "name"),
    "lr": (lambda: torch.optim.AdamW, "lr"),
    "seed": (_seed_everything, "seed"),
    "cpu_threads": (lambda: set_cpu_threads, "cpu_threads"),
}

#: optimizers offered by name -> class path (the CLI resolves ``Lamb`` via ``perceiver.training.optim``)
OPTIMIZERS = {
    "AdamW": "torch.optim.AdamW",
    "Adam": "torch.optim.Adam",
    "SGD": "torch.optim.SGD",
    "Lamb": "pytorch_optimizer.Lamb",
}


def optimizer_class(name: str = "AdamW"):
    """The optimizer class called ``name`` (one of ``OPTIMIZERS``)."""
    module, _, cls = OPTIMIZERS[name].rpartition(".")
    return getattr(importlib.import_module(module), cls)


def setting_owners(t: str | Task) -> dict[str, tuple[Callable, str]]:
    """setting name -> (class or function whose signature defines it, parameter name) for task ``t``. Settings
    that the task's data module does not take are left out."""
    t = resolve_task(t)
    out = {}
    for name, (owner, param) in SETTINGS.items():
        if owner == "data":  # the data module or the first base class that declares it (subclasses pass **kwargs)
            owner = next((c for c in t.data_class.__mro__ if param in inspect.signature(c.__init__).parameters), None)
            if owner is None:
                continue
        else:
            owner = owner()
        out[name] = (owner, param)
    return out


# --- presets ------------------------------------------------------------------------------------------------------

#: settings every workbench run starts from (before a preset): offline data, CPU-friendly loading
BASE_SETTINGS = {"source": "sample", "devices": -1, "max_steps": 1000, "optimizer": "AdamW", "seed": 0}
BASE_EXTRA = {"data": {"num_workers": 0}, "trainer": {"log_every_n_steps": 1, "enable_model_summary": False}}


def preset(t: str | Task, name: str) -> dict[str, dict[str, Any]]:
    """The model fields, settings and extra CLI configuration of the workbench preset ``name`` of task ``t``."""
    t = resolve_task(t)
    p = t.run_preset(name)
    model = drop_fields(preset_fields(t.config_class, p.model), t.linked_fields)
    return {"model": model, "settings": {**BASE_SETTINGS, **p.settings}, "extra": merge(BASE_EXTRA, p.extra)}


# --- model configs ------------------------------------------------------------------------------------------------


def build_model_config(t: str | Task, values: dict, data_module) -> Any:
    """The task's config dataclass from form values plus the fields linked from ``data_module`` (the task's
    ``links``, e.g. ``vocab_size``); raises ``ConfigError`` naming the field if invalid."""
    t = resolve_task(t)
    return t.build_config(values, {attr: getattr(data_module, attr) for attr in t.links})


def parameter_count(t: str | Task, config) -> int:
    """Number of parameters of the backend model for ``config``; built on the meta device (no memory, fast)."""
    with torch.device("meta"):
        model = resolve_task(t).model_class(config)
    return sum(p.numel() for p in model.parameters())


def format_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def model_cli_args(t: str | Task, config) -> dict:
    """The ``model:`` section of the CLI config: config fields without the data-linked ones."""
    return drop_fields(dataclasses.asdict(config), resolve_task(t).linked_fields)


# --- devices ------------------------------------------------------------------------------------------------------


def resolve_devices(devices, precision: Optional[str] = None, log: Callable[[str], None] = print) -> dict:
    """Trainer arguments for ``devices``: all GPUs for -1/"auto" when there are any (DDP for more than one),
    otherwise one CPU device."""
    n_gpu = torch.cuda.device_count()
    if devices in (-1, "-1", "auto"):
        if n_gpu == 0:
            log("No GPU found; training on 1 CPU device.")
            return {"accelerator": "cpu", "devices": 1, "strategy": "auto"}
        log(f"Found {n_gpu} GPU(s); training on all of them" + (" with DDP." if n_gpu > 1 else "."))
        return {"accelerator": "gpu", "devices": -1, "strategy": "ddp" if n_gpu > 1 else "auto"}
    if n_gpu == 0:
        if devices not in (1, "1", "cpu"):
            log(f"No GPU found; devices={devices!r} becomes 1 CPU device.")
        return {"accelerator": "cpu", "devices": 1, "strategy": "auto"}
    count = len(devices) if isinstance(devices, list) else int(devices)
    return {"accelerator": "gpu", "devices": devices, "strategy": "ddp" if count > 1 else "auto"}


# --- the CLI configuration ----------------------------------------------------------------------------------------


def cli_config(task: str, config, settings: dict, run_dir: str | Path, extra: Optional[dict] = None,
               log: Callable[[str], None] = print) -> dict:
    """The complete configuration for ``python -m <task.cli> fit --config <yaml>``."""
    extra = extra or {}
    run_dir = str(Path(run_dir).resolve())
    t = resolve_task(task)
    trainer = {
        **resolve_devices(settings["devices"], settings.get("precision"), log),
        "precision": settings.get("precision"),
        "max_steps": settings["max_steps"],
        "check_val_every_n_epoch": None,  # validate every val_check_interval steps, across epochs
        "enable_progress_bar": False,  # the journal prints compact progress lines instead
        "default_root_dir": run_dir,
        "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger",
                   "init_args": {"save_dir": run_dir, "name": "", "version": "logs"}},
        "callbacks": [{"class_path": "perceiver.training.journal.RunJournal",
                       "init_args": {"run_dir": run_dir, **extra.get("journal", {})}}],
        **extra.get("trainer", {}),
    }
    if isinstance(trainer.get("val_check_interval"), int) and trainer["val_check_interval"] > settings["max_steps"] > 0:
        trainer["val_check_interval"] = max(1, settings["max_steps"] // 2)  # short runs still validate (twice)
    data_args = {**t.data_args, **{k: settings[k] for k in ("source", "max_seq_len", "batch_size") if k in settings},
                 **extra.get("data", {})}
    return {
        "seed_everything": settings["seed"],
        "cpu_threads": settings.get("cpu_threads"),  # None: all usable cores
        "trainer": trainer,
        "model": {**model_cli_args(task, config), **extra.get("model", {})},
        "data": {"class_path": t.data.replace(":", "."), "init_args": data_args},
        "optimizer": {"class_path": OPTIMIZERS[settings["optimizer"]], "init_args": {"lr": settings["lr"]}},
        "checkpoint": {"dirpath": str(Path(run_dir, "checkpoints"))},
        **{k: v for k, v in extra.items() if k not in ("trainer", "data", "model", "journal")},
    }


def to_yaml(cfg: dict) -> str:
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False)
