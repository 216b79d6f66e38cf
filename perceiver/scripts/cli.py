"""The Lightning CLI of every task, built from its registered description (``perceiver.tasks``): config
dataclasses become arguments (with their field docstrings as help), the documented model preset gives the
defaults, values known only from the data flow into the model through the task's links, and every run gets
checkpoints, an interrupt checkpoint, CSV metrics beside any other logger, and step-wise LR schedules.

A task's script is two lines::

    from perceiver.scripts.cli import task_main
    main = task_main("clm")
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable, Mapping, Optional, Sequence

import jsonargparse
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

import perceiver.training.optim  # noqa: F401  (makes --optimizer=Lamb resolvable)
from perceiver.training.callbacks import InterruptCheckpoint, RNGState
from perceiver.tasks import Task, get
from perceiver.training.schedulers import CosineWithWarmupLR
from perceiver.training.threads import set_cpu_threads


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
        parser.add_function_arguments(set_cpu_threads, as_group=False)
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.filename": "{step}"})
        # every step's loss reaches the loggers (Lightning's default of 50 hides short runs entirely)
        parser.set_defaults({"trainer.log_every_n_steps": 1})
        for data_arg, model_arg in self.task.parse_links.items():
            parser.link_arguments(f"data.init_args.{data_arg}", f"model.{model_arg}", apply_on="parse")
        for attr, fields in self.task.links.items():
            for field in fields:
                parser.link_arguments(f"data.{attr}", f"model.{field}", apply_on="instantiate")
        parser.set_defaults(self.defaults)

    def before_instantiate_classes(self) -> None:
        set_cpu_threads(self._get(self.config, "cpu_threads"))

    def _prepare_subcommand_parser(self, klass, subcommand: str, **kwargs):
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if "weights_only" in self._subcommand_method_arguments[subcommand]:
            # --ckpt_path never unpickles code; our checkpoints hold only tensors and plain data
            parser.set_defaults(weights_only=True)
        return parser

    def instantiate_trainer(self, **kwargs):
        extra = [InterruptCheckpoint(), RNGState(), LearningRateMonitor(logging_interval="step")]
        # kwargs replace the trainer config's entries, so the callbacks given in the config must be carried over
        configured = self._get(self.config_init, "trainer", default={}).get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        kwargs["callbacks"] = [*configured, *(kwargs.get("callbacks") or []), *extra]
        trainer = super().instantiate_trainer(**kwargs)
        add_csv_logger(trainer)
        return trainer

    @staticmethod
    def configure_optimizers(lightning_module, optimizer, lr_scheduler=None):
        if lr_scheduler is None:
            return optimizer
        if isinstance(lr_scheduler, CosineWithWarmupLR) and lr_scheduler.training_steps is None:
            # the cosine's total steps are linked to --trainer.max_steps
            lr_scheduler.training_steps = lightning_module.trainer.max_steps
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lr_scheduler, "interval": "step"}}


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


def task_main(task: str, commands: Optional[Mapping[str, Callable[[Sequence[str]], Any]]] = None):
    """The ``main(args=None)`` of a task's CLI script. ``commands``: further subcommands besides Lightning's
    (``fit``, ``validate``, ...), name -> function of the remaining arguments (e.g. the CLM's ``evaluate``)."""

    def main(args: Optional[Sequence[str]] = None, **kwargs):
        argv = sys.argv[1:] if args is None else list(args)
        if commands and argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return TaskCLI(task, args=args, **kwargs)

    return main
