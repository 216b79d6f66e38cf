"""The Lightning CLI of every task, built from its registered description (``perceiver.tasks``): config
dataclasses become arguments (with their field docstrings as help), the documented model preset gives the
defaults, values known only from the data flow into the model through the task's links, and every run gets
checkpoints, an interrupt checkpoint, CSV metrics beside any other logger, and step-wise LR schedules. Standard
Trainer options keep their meaning: ``--trainer.logger=false`` (no learning-rate monitor then),
``--trainer.enable_checkpointing=false`` (no ModelCheckpoint, no interrupt checkpoint), several loggers, extra
callbacks.

A task's script is two lines::

    from perceiver.scripts.cli import task_main
    main = task_main("clm")
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import jsonargparse
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

import perceiver.training.optim  # noqa: F401  (makes --optimizer=Lamb resolvable)
from perceiver.training.callbacks import InterruptCheckpoint, RNGState
from perceiver.tasks import Task, get
from perceiver.training.schedulers import CosineWithWarmupLR


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
        callbacks = [*configured, *(kwargs.get("callbacks") or []), InterruptCheckpoint(), RNGState()]
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


def task_main(task: str):
    """The ``main(args=None)`` of a task's CLI script."""

    def main(args: Optional[Sequence[str]] = None, **kwargs):
        return TaskCLI(task, args=args, **kwargs)

    return main
