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
from perceiver.runs import paths
from perceiver.tasks import Task, drop_fields
from perceiver.training.devices import resolve_devices
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

#: precisions offered (Lightning accepts each of them under several aliases: 32, "32", "32-true", ...)
PRECISIONS = ["32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true"]

#: our own help where the owner's docstring would mislead in the workbench (Lightning's devices default is "auto"
#: and its text speaks of Trainer internals; torch's lr help is about tensor learning rates)
HELP = {
    "devices": "-1: every GPU of the machine that trains (DDP for more than one), or one CPU device if it has none. "
               "cpu: one CPU device, GPUs or not. Or a number of GPUs, or GPU indices such as 0,1. Exported as typed, "
               "so the YAML file runs anywhere.",
    "precision": "``32-true``: float32. ``bf16-mixed``: bfloat16 autocast (GPUs with bf16, recent CPUs). "
                 "``16-mixed``: float16 autocast with loss scaling (GPUs). ``bf16-true``/``16-true``/``64-true``: "
                 "parameters and computation in that type.",
    "lr": "Learning rate of the optimizer; with the preset's warmup/cosine schedule, its peak value.",
    "seed": "Seed of every random number generator (weights, data order, masks, dropout): two CPU runs with the "
            "same seed and settings have the same losses.",
    "max_steps": "Number of optimizer steps to train for.",
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
BASE_SETTINGS = {"source": "sample", "devices": -1, "precision": "32-true", "max_steps": 1000, "optimizer": "AdamW",
                 "seed": 0}
BASE_EXTRA = {"data": {"num_workers": 0}}


def preset(t: str | Task, name: str) -> dict[str, dict[str, Any]]:
    """The model fields, the settings the preset defines (only those) and the extra CLI configuration of the
    workbench preset ``name`` of task ``t``."""
    t = resolve_task(t)
    p = t.run_preset(name)
    model = drop_fields(preset_fields(t.config_class, p.model), t.linked_fields)
    return {"model": model, "settings": dict(p.settings), "extra": merge(BASE_EXTRA, p.extra), "model_name": p.model}


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


def compute_estimate(config, settings: dict) -> Optional[dict]:
    """Training FLOPs per token and per step of ``config`` (its analytic ``flops``, for max_seq_len tokens per
    example and the settings' batch size) and the step time at the matrix-product peak of one device that the
    settings train on (``perceiver.training.compute.device_peak``: a GPU's datasheet value, else measured once per
    process). None if the config has no ``flops``."""
    from perceiver.training.compute import device_peak, precision_dtype

    flops = getattr(config, "flops", None)
    if flops is None:
        return None
    per_example = flops()
    per_step = per_example.step(settings.get("batch_size") or 1)
    resolved = resolve_devices(settings.get("devices", -1), log=lambda _: None)  # as the run will, on this machine
    gpu = resolved["accelerator"] != "cpu" and torch.cuda.is_available()
    peak = device_peak("cuda" if gpu else "cpu", precision_dtype(settings.get("precision")))
    return {"per_token": per_example.per_token, "per_step": per_step, "peak": peak,
            "step_s": per_step / peak.flops_per_s}


def format_compute(estimate: Optional[dict]) -> str:
    """`` · 1.55 MFLOP/token · 99.2 GFLOP/step · ≥ 47 ms/step at 2.1 TFLOP/s (...)`` (empty without an estimate)."""
    from perceiver.training.compute import format_flops

    if estimate is None:
        return ""
    s = estimate["step_s"]
    step = f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"
    return (f" · {format_flops(estimate['per_token'])}/token · {format_flops(estimate['per_step'])}/step"
            f" · ≥ {step}/step at {estimate['peak']}")


def model_cli_args(t: str | Task, config) -> dict:
    """The ``model:`` section of the CLI config: config fields without the data-linked ones."""
    return drop_fields(dataclasses.asdict(config), resolve_task(t).linked_fields)


# --- the CLI configuration ----------------------------------------------------------------------------------------


def cli_config(task: str | Task, config, settings: dict, run_dir: str | Path = paths.DEFAULT_RUN_DIR,
               extra: Optional[dict] = None) -> dict:
    """The configuration for ``python -m <task.cli> fit --config <yaml>``: what the user chose, as typed. Devices
    stay as chosen (``-1`` becomes one CPU device only where there is no GPU, when the run starts) and paths stay
    relative (run paths to the repository root, see ``perceiver.runs.paths``), so the file runs on any machine.
    ``extra["trainer"]`` takes any ``pytorch_lightning.Trainer`` argument (``logger: false``, a list of loggers,
    ``enable_checkpointing: false``, ``callbacks``: added beside the CLI's own and the run journal),
    ``extra["journal"]`` the run journal's arguments, ``extra["optimizer"]`` further arguments of the optimizer
    (see :func:`optimizer_config`)."""
    extra = extra or {}
    t = resolve_task(task)
    trainer = {
        "devices": settings["devices"],
        "precision": settings.get("precision"),
        "max_steps": settings["max_steps"],
        "check_val_every_n_epoch": None,  # validate every val_check_interval steps, across epochs
        **extra.get("trainer", {}),
    }
    if isinstance(trainer.get("val_check_interval"), int) and trainer["val_check_interval"] > settings["max_steps"] > 0:
        trainer["val_check_interval"] = max(1, settings["max_steps"] // 2)  # short runs still validate (twice)
    return {
        "seed_everything": settings["seed"],
        "cpu_threads": settings.get("cpu_threads"),  # None: all usable cores
        "run_dir": str(run_dir),
        "trainer": trainer,
        "model": {**model_cli_args(task, config), **extra.get("model", {})},
        "data": data_section(t, settings, extra),
        "optimizer": optimizer_config(settings["optimizer"], settings["lr"], extra.get("optimizer")),
        **{k: v for k, v in extra.items() if k not in ("trainer", "data", "model", "optimizer")},
    }


#: where each setting goes in the CLI configuration (``cli_config``), as a dotted CLI key (``--optimizer.lr``): an
#: override of that key (a sweep's ``optimizer.lr=3e-3``) sets the setting
SETTING_KEYS = {
    "source": "data.source",
    "max_seq_len": "data.max_seq_len",
    "batch_size": "data.batch_size",
    "devices": "trainer.devices",
    "precision": "trainer.precision",
    "max_steps": "trainer.max_steps",
    "optimizer": "optimizer",
    "lr": "optimizer.lr",
    "seed": "seed_everything",
}


def config_value(cfg: dict, key: str) -> Any:
    """The value at dotted CLI ``key`` of a CLI configuration (``optimizer.lr`` is ``optimizer.init_args.lr``);
    ``KeyError`` if it is not there."""
    node: Any = cfg
    for part in key.split("."):
        if isinstance(node, dict) and "class_path" in node and part != "class_path":
            node = node.get("init_args") or {}
        node = node[part]
    return node


def data_section(task: str | Task, settings: dict, extra: Optional[dict] = None) -> dict:
    """The ``data:`` section of the CLI configuration: the task's data arguments, the settings' ``source``,
    ``max_seq_len`` and ``batch_size``, then the preset's ``extra["data"]``."""
    t = resolve_task(task)
    args = {**t.data_args, **{k: settings[k] for k in ("source", "max_seq_len", "batch_size") if k in settings},
            **(extra or {}).get("data", {})}
    return {"class_path": t.data.replace(":", "."), "init_args": args}


def set_config_value(cfg: dict, key: str, value: Any) -> None:
    """Set dotted CLI ``key`` of a CLI configuration as ``--key=value`` would: below a ``class_path`` the value goes
    into its ``init_args``; missing sections are created."""
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        if "class_path" in node:
            node = node.setdefault("init_args", {})
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if "class_path" in node and last != "class_path":
        node = node.setdefault("init_args", {})
    node[last] = value


def optimizer_config(name: str, lr: float, preset: Optional[dict] = None) -> dict:
    """The ``optimizer:`` section: the optimizer ``name`` with learning rate ``lr``, plus the preset's further
    arguments (``extra["optimizer"]``, e.g. AdamW's ``betas`` and ``weight_decay``) if the preset names the same
    optimizer; another optimizer chosen in the form gets its own defaults."""
    class_path = OPTIMIZERS[name]
    args = dict((preset or {}).get("init_args") or {}) if (preset or {}).get("class_path") == class_path else {}
    return {"class_path": class_path, "init_args": {**args, "lr": lr}}


def settings_from_cli_config(cfg: dict) -> dict:
    """The workbench settings of a CLI configuration (a run's ``config.yaml``), for the form of an attached run."""
    trainer, data = cfg.get("trainer") or {}, (cfg.get("data") or {}).get("init_args") or {}
    optimizer = cfg.get("optimizer") or {}
    names = {path: name for name, path in OPTIMIZERS.items()}
    out = {k: data[k] for k in ("source", "max_seq_len", "batch_size") if k in data}
    out.update({k: trainer[k] for k in ("devices", "precision", "max_steps") if trainer.get(k) is not None})
    if optimizer.get("class_path") in names:
        out["optimizer"] = names[optimizer["class_path"]]
    if (optimizer.get("init_args") or {}).get("lr") is not None:
        out["lr"] = optimizer["init_args"]["lr"]
    if cfg.get("seed_everything") is not None:
        out["seed"] = cfg["seed_everything"]
    if "cpu_threads" in cfg:  # None (all usable cores) is a value of its own
        out["cpu_threads"] = cfg["cpu_threads"]
    return out


def to_yaml(cfg: dict) -> str:
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False)
