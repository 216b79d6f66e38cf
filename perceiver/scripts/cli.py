"""The Lightning CLI of every task, built from its registered description (``perceiver.tasks``): config
dataclasses become arguments (with their field docstrings as help), the documented model preset gives the
defaults, values known only from the data flow into the model through the task's links, and every run gets
checkpoints, an interrupt checkpoint, compute accounting (tokens, FLOPs, MFU), CSV metrics beside any other
logger, and step-wise LR schedules. Standard Trainer options keep their meaning: ``--trainer.logger=false`` (no
learning-rate monitor then), ``--trainer.enable_checkpointing=false`` (no ModelCheckpoint, no interrupt
checkpoint), several loggers, extra callbacks.

A task's script is two lines::

    from perceiver.scripts.cli import task_main
    main = task_main("clm")
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Optional, Sequence

import jsonargparse
import torch
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.cli import LightningCLI, instantiate_class
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

import perceiver.training.optim  # noqa: F401  (makes --optimizer=Lamb resolvable)
from perceiver.model.core.config import ConfigError
from perceiver.model.core.params import ParamsError, check_zip, source_kind
from perceiver.model.core.presets import field_types
from perceiver.training.callbacks import InterruptCheckpoint, RNGState
from perceiver.training.compute import ComputeMonitor
from perceiver.tasks import Task, get, load_object
from perceiver.training.schedulers import CosineWithWarmupLR


class ArgumentError(ValueError):
    """Command-line arguments that cannot work together or be instantiated; ``argument`` names the option (e.g.
    ``--model.num_channels`` or ``--optimizer``), the message says what is wrong and what to do."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument} {message}")
        self.argument, self.message = argument, message

    def __reduce__(self):
        return ArgumentError, (self.argument, self.message)


class TaskCLI(LightningCLI):
    """``LightningCLI`` for ``task`` (a name or a :class:`perceiver.tasks.Task`); ``defaults`` override the task's."""

    def __init__(self, task: str | Task, defaults: Optional[dict] = None, **kwargs):
        jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)
        # LitModel.configure_optimizers is the default for Python use; --optimizer replacing it is intended
        warnings.filterwarnings("ignore", message=r".*configure_optimizers` will be overridden")
        self.task = get(task) if isinstance(task, str) else task
        self.defaults = {**task_defaults(self.task), **(defaults or {})}
        super().__init__(
            self.task.lit_class,
            None,  # any LightningDataModule; --data=<Name> resolves the data modules the task's package defines
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"default_env": False},
            **kwargs,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.filename": "{step}"})
        # every step's loss reaches the loggers (Lightning's default of 50 hides short runs entirely)
        parser.set_defaults({"trainer.log_every_n_steps": 1})
        for data_arg, model_arg in self.task.parse_links.items():
            parser.link_arguments(f"data.init_args.{data_arg}", f"model.{model_arg}", apply_on="parse")
        for attr, fields in self.task.links.items():
            for field in fields:
                parser.link_arguments(f"data.{attr}", f"model.{field}", apply_on="instantiate")
        parser.set_defaults(self.defaults)

    def _prepare_subcommand_parser(self, klass, subcommand: str, **kwargs):
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if "weights_only" in self._subcommand_method_arguments[subcommand]:
            # --ckpt_path never unpickles code; our checkpoints hold only tensors and plain data
            parser.set_defaults(weights_only=True)
        return parser

    def instantiate_trainer(self, **kwargs):
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        # kwargs replace the trainer config's entries, so the callbacks given in the config must be carried over
        configured = self._get(self.config_init, "trainer", default={}).get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        # compute accounting first, so that the run journal records each step's values
        compute = [] if any(isinstance(cb, ComputeMonitor) for cb in configured) else [ComputeMonitor()]
        callbacks = [*compute, *configured, *(kwargs.get("callbacks") or []), InterruptCheckpoint(), RNGState()]
        trainer = self._instantiate_trainer({**config, "callbacks": callbacks}, self._checkpoint_callbacks(config))
        add_csv_logger(trainer)
        if trainer.loggers and not any(isinstance(cb, LearningRateMonitor) for cb in trainer.callbacks):
            trainer.callbacks.append(LearningRateMonitor(logging_interval="step"))  # needs a logger to write to
        return trainer

    def _checkpoint_callbacks(self, trainer_config: dict) -> list:
        """The ``--checkpoint.*`` ModelCheckpoint, unless ``--trainer.enable_checkpointing=false``."""
        keys = self._parser(self.subcommand).callback_keys
        if trainer_config.get("enable_checkpointing") is False:
            return [cb for cb in (self._get(self.config_init, k) for k in keys) if not isinstance(cb, ModelCheckpoint)]
        return [self._get(self.config_init, k) for k in keys]

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        # checked before Lightning reads the checkpoint's hyperparameters, which would fail without naming the file
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
            try:
                check_checkpoint_file(ckpt_path)
            except ParamsError as e:
                raise ArgumentError("--ckpt_path", str(e)) from None

    def before_instantiate_classes(self) -> None:
        """Check the optimizer and LR schedule arguments before anything is built or loaded."""
        check_optimization(self._get(self.config, "optimizer"), self._get(self.config, "lr_scheduler"),
                           (self._get(self.config, "trainer") or {}).get("max_steps", -1))

    def instantiate_classes(self) -> None:
        """Instantiate the data module, model and trainer; a config error names the command-line option."""
        try:
            super().instantiate_classes()
        except ValueError as e:
            error = config_error_in(e)
            if error is None or isinstance(e, ArgumentError):
                raise
            data_class = load_object(str((self._get(self.config, "data") or {}).get("class_path") or self.task.data))
            if error.config in {c.__name__ for c in data_class.__mro__}:
                option = f"--data.{error.field}"
            else:
                option = f"--model.{sub_config_path(self.task.config_class, error.config)}{error.field}"
            raise ArgumentError(option, error.message) from error

    @staticmethod
    def configure_optimizers(lightning_module, optimizer, lr_scheduler=None):
        if lr_scheduler is None:
            return optimizer
        if isinstance(lr_scheduler, CosineWithWarmupLR) and lr_scheduler.training_steps is None:
            # the cosine's total steps are linked to --trainer.max_steps
            lr_scheduler.training_steps = lightning_module.trainer.max_steps
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lr_scheduler, "interval": "step"}}


def config_error_in(error: BaseException) -> Optional[ConfigError]:
    """The :class:`ConfigError` that ``error`` is or was raised from (jsonargparse wraps those of subclasses)."""
    while error is not None and not isinstance(error, ConfigError):
        error = error.__cause__ or error.__context__
    return error


def sub_config_path(config_class: type, name: str, prefix: str = "") -> str:
    """The dotted path (``"encoder."``) of the sub-config of ``config_class`` whose class is called ``name``; ``""``
    for the config itself (and for the Lightning module, which takes the config's fields)."""
    for field, tp in field_types(config_class).items():
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if name in {c.__name__ for c in tp.__mro__}:
                return f"{prefix}{field}."
            found = sub_config_path(tp, name, f"{prefix}{field}.")
            if found:
                return found
    return ""


def check_checkpoint_file(path: str) -> None:
    """Raise :class:`ParamsError` naming ``path`` unless it is an intact torch checkpoint."""
    if os.path.isdir(path):
        raise ParamsError(f"{path!r} is a directory: pass a checkpoint file in it (e.g. checkpoints/last.ckpt)", path)
    if not os.path.isfile(path):
        raise ParamsError(f"{path!r} does not exist: pass an existing checkpoint (e.g. <run>/checkpoints/last.ckpt)",
                          path)
    if source_kind(path) != "checkpoint":
        raise ParamsError(f"{path!r} is a safetensors file, not a Lightning checkpoint: resuming needs a .ckpt "
                          f"(use --model.params to load weights)", path)
    check_zip(path)


def _describe(init) -> str:
    init_args = init.get("init_args") or {}
    init_args = init_args.as_dict() if hasattr(init_args, "as_dict") else dict(init_args)
    args = ", ".join(f"{k}={v!r}" for k, v in init_args.items())
    return f"{init['class_path'].rpartition('.')[2]}({args})"


def check_optimization(optimizer, lr_scheduler, max_steps: int) -> None:
    """Instantiate the ``--optimizer`` and ``--lr_scheduler`` configs (class_path + init_args) on a dummy parameter:
    invalid values fail now, as an :class:`ArgumentError` naming the option, instead of after model and data load."""
    if not optimizer:
        return
    try:
        opt = instantiate_class([torch.nn.Parameter(torch.zeros(1))], optimizer)
    except (ValueError, TypeError) as e:
        field = f"--optimizer.{e.field}" if isinstance(e, ConfigError) else "--optimizer"
        raise ArgumentError(field, f"{_describe(optimizer)} is invalid: {e}. Fix the --optimizer.* arguments") from None
    if not lr_scheduler:
        return
    try:
        scheduler = instantiate_class(opt, lr_scheduler)
    except ConfigError as e:
        raise ArgumentError(f"--lr_scheduler.{e.field}", f"{e.message}") from None
    except (ValueError, TypeError) as e:
        raise ArgumentError("--lr_scheduler", f"{_describe(lr_scheduler)} is invalid: {e}. Fix the "
                                              f"--lr_scheduler.* arguments") from None
    if isinstance(scheduler, CosineWithWarmupLR) and scheduler.training_steps is None and (max_steps or -1) <= 0:
        raise ArgumentError("--lr_scheduler.training_steps", "CosineWithWarmupLR decays over a known number of steps: "
                            "pass --trainer.max_steps=N (or --lr_scheduler.training_steps=N)")


def add_csv_logger(trainer) -> None:
    """Write CSV metrics beside any other logger, in the same directory layout."""
    loggers = trainer.loggers
    if not loggers or any(isinstance(lg, CSVLogger) for lg in loggers):
        return
    first = loggers[0]
    log_dir = first.log_dir if isinstance(first, TensorBoardLogger) else trainer.default_root_dir
    csv = CSVLogger(log_dir, name="", version="csv")
    trainer.loggers = [*loggers, csv]


def task_defaults(task: Task) -> dict:
    """The CLI defaults of ``task``: the documented model preset and the default data module."""
    defaults = {f"model.{k}": v for k, v in task.model_defaults().items()}
    defaults["data"] = {"class_path": task.data.replace(":", "."), "init_args": dict(task.data_args)}
    return defaults


def task_main(task: str):
    """The ``main(args=None)`` of a task's CLI script."""

    def main(args: Optional[Sequence[str]] = None, **kwargs):
        return TaskCLI(task, args=args, **kwargs)

    return main
