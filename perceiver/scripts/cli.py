"""The Lightning CLI of every task, built from its registered description (``perceiver.tasks``): config
dataclasses become arguments (with their field docstrings as help), the documented model preset gives the
defaults, values known only from the data flow into the model through the task's links, and every run gets
checkpoints, an interrupt checkpoint, CSV metrics beside any other logger, and step-wise LR schedules.

``fit`` writes one run directory (``--run_dir``, default ``runs/<task>/<time>`` below the repository root, see
``perceiver.runs.paths``): the journal (``perceiver.training.journal``, whose docstring lists the files), the
checkpoints, the loggers' files and the resolved ``config.yaml``. A directory that holds an earlier run is refused
unless ``--overwrite=true`` or ``--ckpt_path`` resumes a checkpoint of it. ``--trainer.devices=-1`` means all GPUs,
or one CPU device on a machine without one, so a configuration file runs anywhere.

A task's script is two lines (``task_main`` answers ``--help`` without importing this module)::

    from perceiver.scripts.entry import task_main
    main = task_main("clm")
"""

from __future__ import annotations

import argparse
import inspect
import os
import warnings
from pathlib import Path
from typing import Optional

import docstring_parser
import jsonargparse
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

import perceiver.training.optim  # noqa: F401  (makes --optimizer=Lamb resolvable)
from perceiver.runs import paths
from perceiver.runs import status as run_status
from perceiver.scripts import entry
from perceiver.scripts.entry import task_main  # noqa: F401  (the scripts' entry point, kept importable from here)
from perceiver.tasks import Task, get
from perceiver.training.callbacks import InterruptCheckpoint, ModelSummaryCounted, RNGState, progress_bar
from perceiver.training.devices import resolve_devices
from perceiver.training.journal import RunJournal
from perceiver.training.schedulers import CosineWithWarmupLR


class TaskCLI(LightningCLI):
    """``LightningCLI`` for ``task`` (a name or a :class:`perceiver.tasks.Task`); ``defaults`` override the task's."""

    def __init__(self, task: str | Task, defaults: Optional[dict] = None, **kwargs):
        jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)
        # LitModel.configure_optimizers is the default for Python use; --optimizer replacing it is intended
        warnings.filterwarnings("ignore", message=r".*configure_optimizers` will be overridden")
        self.task = get(task) if isinstance(task, str) else task
        self.defaults = {**task_defaults(self.task), **(defaults or {})}
        self.run_dir: Optional[Path] = None
        raw = {"formatter_class": RawHelpFormatter}
        super().__init__(
            self.task.lit_class,
            None,  # any LightningDataModule; --data=<Name> resolves the data modules the task's package defines
            subclass_mode_data=True,
            save_config_callback=RunConfigCallback,
            save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
            parser_kwargs={"default_env": False, "description": entry.description(self.task),
                           "epilog": entry.epilog(self.task), **raw,
                           "fit": {"description": f"{entry.SUBCOMMANDS['fit']}\n\n{entry.description(self.task)}",
                                   "epilog": data_help(self.task), **raw}},
            **kwargs,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # one run per directory: a resumed run overwrites its own last.ckpt instead of writing last-v1.ckpt beside it
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.filename": "{step}",
                             "checkpoint.enable_version_counter": False})
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
        if subcommand == "fit":
            parser.add_argument("--run_dir", type=str, default=paths.DEFAULT_RUN_DIR,
                                help="Run directory, relative to the repository root ($PERCEIVER_ROOT); {task} and "
                                     "{time} are filled in, and a path with {time} is a new directory for every run.")
            parser.add_argument("--overwrite", type=bool, default=False,
                                help="Replace the run in --run_dir if it holds one (otherwise fit refuses, unless "
                                     "--ckpt_path resumes a checkpoint of that run).")
            parser.add_class_arguments(RunJournal, "journal", skip={"run_dir"}, instantiate=False)
        return parser

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config  # run=False: no subcommand
        trainer = config.trainer
        for key, value in resolve_devices(trainer.devices, trainer.accelerator, log=_rank_zero_print).items():
            setattr(trainer, key, value)
        if self.subcommand != "fit":
            return
        self.run_dir = fit_run_dir(self.task, config.run_dir, config.overwrite, config.ckpt_path)
        config.run_dir = str(self.run_dir)
        if trainer.default_root_dir is None:
            trainer.default_root_dir = str(self.run_dir)
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = str(self.run_dir / "checkpoints")

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as e:  # the run directory says why the run never started
            if self.run_dir is not None and paths.process_rank() == 0:
                run_status.write(self.run_dir, status="failed", **run_status.error_fields(f"{type(e).__name__}: {e}"))
            raise

    def instantiate_trainer(self, **kwargs):
        extra = [InterruptCheckpoint(), RNGState(), LearningRateMonitor(logging_interval="step")]
        # kwargs replace the trainer config's entries, so the callbacks given in the config must be carried over
        trainer_config = self._get(self.config_init, "trainer", default={})
        configured = trainer_config.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        if self.subcommand == "fit" and self.run_dir is not None:
            if not any(isinstance(cb, RunJournal) for cb in configured):
                journal = self._get(self.config_init, "journal", default={})
                extra.append(RunJournal(str(self.run_dir), **dict(journal)))
            if trainer_config.get("logger") in (None, True):  # Lightning's default logger, in the run directory
                kwargs.setdefault("logger", TensorBoardLogger(str(self.run_dir), name="", version="logs"))
        if trainer_config.get("enable_progress_bar") is not False and not any(
                isinstance(cb, ProgressBar) for cb in configured):
            extra.append(progress_bar())
        if trainer_config.get("enable_model_summary") is not False and not any(
                isinstance(cb, ModelSummary) for cb in configured):
            extra.append(ModelSummaryCounted())
            kwargs["enable_model_summary"] = False  # Lightning would add its own (and say it skips that)
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


def fit_run_dir(task: Task, template: str, overwrite: bool, ckpt_path: Optional[str]) -> Path:
    """The run directory of a ``fit``: chosen and checked by rank 0 (``perceiver.runs.paths.prepare_run_dir``), then
    handed to the ranks Lightning starts through ``$PERCEIVER_RUN_DIR``."""
    if paths.process_rank() != 0:
        given = os.environ.get(paths.RUN_DIR_VAR)
        if given:
            return Path(given)
        if paths.is_template(template):
            raise ValueError(f"--run_dir={template} makes a new directory per process; processes started by torchrun "
                             f"or SLURM need one path for all of them: pass --run_dir without {{time}}")
        return paths.resolve(paths.expand(template, task.name))
    run_dir = paths.prepare_run_dir(template, task.name, overwrite=overwrite, resume_from=ckpt_path)
    os.environ[paths.RUN_DIR_VAR] = str(run_dir)
    run_status.write(run_dir, status="running", task=task.name, run_dir=str(run_dir), pid=os.getpid(), error=None,
                     error_tail=None, reason=None)
    return run_dir


class RunConfigCallback(SaveConfigCallback):
    """Saves the resolved configuration as ``<run_dir>/config.yaml`` (``fit``), else in the trainer's log directory."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        run_dir = getattr(self.config, "run_dir", None)
        directory = run_dir if stage == "fit" and run_dir else trainer.log_dir
        if trainer.is_global_zero and directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            self.parser.save(self.config, os.path.join(directory, self.config_filename), skip_none=False,
                             overwrite=True, multifile=self.multifile)


class RawHelpFormatter(jsonargparse.DefaultHelpFormatter):
    """Keeps the line breaks of descriptions and epilogs (examples, the data options)."""

    def _fill_text(self, text, width, indent):
        return argparse.RawDescriptionHelpFormatter._fill_text(self, text, width, indent)


def data_help(task: Task, width: int = 100) -> str:
    """The options of the task's default data module, for the end of ``fit --help`` (jsonargparse lists a data
    module chosen by class only under ``--data.help CLASS``)."""
    cls = task.data_class
    docs: dict[str, str] = {}
    params: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):  # subclasses take **kwargs of their bases: collect along the MRO
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params.update({n: p for n, p in inspect.signature(init).parameters.items()
                       if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)})
        parsed = docstring_parser.parse(inspect.getdoc(klass) or "")
        docs.update({p.arg_name: " ".join((p.description or "").split()) for p in parsed.params})
    defaults = dict(task.data_args)
    lines = [f"data options of {cls.__module__}.{cls.__name__} (the default; --data=<class name> picks another, "
             f"--data.help <class name> lists its options):"]
    for name, p in params.items():
        default = defaults.get(name, p.default)
        head = f"  --data.{name}" + ("" if default is inspect.Parameter.empty else f" (default: {default!r})")
        lines.append(head)
        text = docs.get(name, "")
        while text:
            cut = text.rfind(" ", 0, width - 8) if len(text) > width - 8 else len(text)
            cut = cut if cut > 0 else len(text)
            lines.append(" " * 8 + text[:cut])
            text = text[cut:].strip()
    return "\n".join(lines)


def _rank_zero_print(text: str) -> None:
    if paths.process_rank() == 0:
        print(text, flush=True)
