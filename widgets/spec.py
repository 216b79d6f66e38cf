"""What the workbench trains: tasks, presets, the data/trainer settings, and the CLI configuration they become.

Nothing here restates a model default. Model fields come from the config dataclasses, the settings' types, defaults
and help from the signatures of the data module, ``lightning.pytorch.Trainer``, the optimizer and
``seed_everything``, and the documented models from the CLI scripts' defaults. A preset only lists what it changes.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig
from perceiver.model.text.mlm import MaskedLanguageModel, MaskedLanguageModelConfig, TextDecoderConfig, TextEncoderConfig

#: model fields that the CLI links from the data module (``data.vocab_size``, ``data.max_seq_len``): never in a form
LINKED_FIELDS = ("vocab_size", "max_seq_len")


@dataclass(frozen=True)
class Task:
    name: str
    config_class: type
    model_class: type
    script: str  # module of the Lightning CLI

    @property
    def cli_defaults(self) -> dict:
        return importlib.import_module(self.script).DEFAULTS

    @property
    def data_class_path(self) -> str:
        return self.cli_defaults["data"]["class_path"]

    @property
    def data_init_args(self) -> dict:
        return dict(self.cli_defaults["data"].get("init_args", {}))


TASKS = {
    "clm": Task("clm", CausalLanguageModelConfig, CausalLanguageModel, "perceiver.scripts.text.clm"),
    "mlm": Task("mlm", MaskedLanguageModelConfig, MaskedLanguageModel, "perceiver.scripts.text.mlm"),
}


# --- settings: derived from signatures ----------------------------------------------------------------------------


def _trainer():
    import lightning.pytorch as pl

    return pl.Trainer


def _seed_everything():
    import lightning.pytorch as pl

    return pl.seed_everything


def _data_module():
    from perceiver.data.text import TextDataModule

    return TextDataModule


#: setting name -> (owner whose signature gives type, default and help; parameter name)
SETTINGS: dict[str, tuple[Callable[[], Callable], str]] = {
    "source": (_data_module, "source"),
    "max_seq_len": (_data_module, "max_seq_len"),
    "batch_size": (_data_module, "batch_size"),
    "devices": (_trainer, "devices"),
    "precision": (_trainer, "precision"),
    "max_steps": (_trainer, "max_steps"),
    "optimizer": (lambda: optimizer_class, "name"),
    "lr": (lambda: torch.optim.AdamW, "lr"),
    "seed": (_seed_everything, "seed"),
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


def setting_parameter(name: str) -> inspect.Parameter:
    owner_fn, param = SETTINGS[name]
    owner = owner_fn()
    return inspect.signature(owner).parameters[param]


# --- presets ------------------------------------------------------------------------------------------------------


def _mlm_documented() -> dict:
    d = TASKS["mlm"].cli_defaults
    return {"encoder": dict(d["model.encoder"]), "decoder": dict(d["model.decoder"]),
            "num_latents": d["model.num_latents"], "num_latent_channels": d["model.num_latent_channels"]}


WARMUP_COSINE = {"class_path": "perceiver.training.schedulers.CosineWithWarmupLR", "init_args": {"warmup_steps": 10}}

#: preset name -> model overrides (nested dicts for MLM encoder/decoder), settings and extra CLI overrides
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "clm": {
        "Perceiver AR (30.6M)": {
            "model": {},  # the CausalLanguageModelConfig defaults are the documented model
            "settings": {"max_seq_len": 4096, "batch_size": 16, "precision": "bf16-mixed", "lr": 2e-4},
            "extra": {"trainer": {"val_check_interval": 500, "limit_val_batches": 20}},
        },
        "tiny CPU": {
            "model": {"num_heads": 4, "num_self_attention_layers": 3, "max_latents": 64, "num_channels": 128,
                      "cross_attention_dropout": 0.0},
            "settings": {"max_seq_len": 256, "batch_size": 16, "max_steps": 200, "lr": 2e-3,
                         "precision": "32-true"},
            "extra": {"trainer": {"val_check_interval": 50, "limit_val_batches": 4},
                      "model": {"validation_sample_length": 48}, "journal": {"attention_every": 25},
                      "lr_scheduler": WARMUP_COSINE},
        },
    },
    "mlm": {
        "DeepMind MLM (201M)": {
            "model": _mlm_documented,  # resolved lazily: the CLI's defaults are the documented model
            "settings": {"max_seq_len": 2048, "batch_size": 8, "precision": "bf16-mixed", "lr": 2e-4},
            "extra": {"trainer": {"val_check_interval": 500, "limit_val_batches": 20}},
        },
        "tiny CPU": {
            "model": {"num_latents": 32, "num_latent_channels": 128,
                      "encoder": {"num_input_channels": 64, "num_cross_attention_heads": 4,
                                  "num_self_attention_heads": 4, "num_self_attention_layers_per_block": 3},
                      "decoder": {"num_cross_attention_heads": 4}},
            "settings": {"max_seq_len": 256, "batch_size": 16, "max_steps": 200, "lr": 2e-3,
                         "precision": "32-true"},
            "extra": {"trainer": {"val_check_interval": 50, "limit_val_batches": 4}, "journal": {"attention_every": 25},
                      "lr_scheduler": WARMUP_COSINE},
        },
    },
}

#: settings every workbench run starts from (before a preset): offline data, CPU-friendly loading
BASE_SETTINGS = {"source": "sample", "devices": -1, "max_steps": 1000, "optimizer": "AdamW", "seed": 0}
BASE_EXTRA = {"data": {"num_workers": 0}, "trainer": {"log_every_n_steps": 1, "enable_model_summary": False}}


def preset(task: str, name: str) -> dict[str, dict[str, Any]]:
    p = PRESETS[task][name]
    model = p["model"]() if callable(p["model"]) else p["model"]
    return {"model": model, "settings": {**BASE_SETTINGS, **p["settings"]}, "extra": merge(BASE_EXTRA, p["extra"])}


def merge(a: dict, b: dict) -> dict:
    """Recursive dict merge (b wins)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# --- model configs ------------------------------------------------------------------------------------------------


def build_model_config(task: str, values: dict, vocab_size: int, max_seq_len: int):
    """The task's config dataclass from form values plus the data-linked fields (raises ValueError if invalid)."""
    linked = {"vocab_size": vocab_size, "max_seq_len": max_seq_len}
    if task == "clm":
        return CausalLanguageModelConfig(**values, **linked)
    rest = {k: v for k, v in values.items() if k not in ("encoder", "decoder")}
    encoder = TextEncoderConfig(**values.get("encoder", {}), **linked)
    decoder = TextDecoderConfig(**values.get("decoder", {}), **linked)
    return MaskedLanguageModelConfig(encoder, decoder, **rest)


def parameter_count(task: str, config) -> int:
    """Number of parameters of the backend model for ``config``; built on the meta device (no memory, fast)."""
    with torch.device("meta"):
        model = TASKS[task].model_class(config)
    return sum(p.numel() for p in model.parameters())


def format_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def model_cli_args(task: str, config) -> dict:
    """The ``model:`` section of the CLI config: config fields without the data-linked ones."""
    d = dataclasses.asdict(config)
    if task == "clm":
        return {k: v for k, v in d.items() if k not in LINKED_FIELDS}
    for part in ("encoder", "decoder"):
        d[part] = {k: v for k, v in d[part].items() if k not in LINKED_FIELDS}
    return d


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
    """The complete configuration for ``python -m perceiver.scripts.text.<task> fit --config <yaml>``."""
    extra = extra or {}
    run_dir = str(Path(run_dir).resolve())
    t = TASKS[task]
    trainer = {
        **resolve_devices(settings["devices"], settings.get("precision"), log),
        "precision": settings.get("precision"),
        "max_steps": settings["max_steps"],
        "check_val_every_n_epoch": None,  # validate every val_check_interval steps, across epochs
        "enable_progress_bar": False,  # the journal prints compact progress lines instead
        "default_root_dir": run_dir,
        "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                   "init_args": {"save_dir": run_dir, "name": "", "version": "logs"}},
        "callbacks": [{"class_path": "perceiver.training.journal.RunJournal",
                       "init_args": {"run_dir": run_dir, **extra.get("journal", {})}}],
        **extra.get("trainer", {}),
    }
    if isinstance(trainer.get("val_check_interval"), int) and trainer["val_check_interval"] > settings["max_steps"] > 0:
        trainer["val_check_interval"] = max(1, settings["max_steps"] // 2)  # short runs still validate (twice)
    data_args = {**t.data_init_args, "source": settings["source"], "max_seq_len": settings["max_seq_len"],
                 "batch_size": settings["batch_size"], **extra.get("data", {})}
    return {
        "seed_everything": settings["seed"],
        "trainer": trainer,
        "model": {**model_cli_args(task, config), **extra.get("model", {})},
        "data": {"class_path": t.data_class_path, "init_args": data_args},
        "optimizer": {"class_path": OPTIMIZERS[settings["optimizer"]], "init_args": {"lr": settings["lr"]}},
        "checkpoint": {"dirpath": str(Path(run_dir, "checkpoints"))},
        **{k: v for k, v in extra.items() if k not in ("trainer", "data", "model", "journal")},
    }


def to_yaml(cfg: dict) -> str:
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False)
