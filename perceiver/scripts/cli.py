"""The Lightning CLI of every task, built from its registered description (``perceiver.tasks``): config
dataclasses become arguments (with their field docstrings as help), the documented model preset gives the
defaults, values known only from the data flow into the model through the task's links, and every run gets
checkpoints, an interrupt checkpoint, compute accounting (tokens, FLOPs, MFU), CSV metrics beside any other
logger, TensorBoard HParams (hyperparameters with the final and best metrics, ``perceiver.training.hparams``),
step-wise LR schedules, a progress bar that counts steps and a model summary that shows FLOPs only where they are
known (Lightning's count, else the analytic one). Standard Trainer options keep their meaning:
``--trainer.logger=false`` (no learning-rate monitor then), ``--trainer.enable_checkpointing=false`` (no
ModelCheckpoint, no interrupt or final checkpoint), several loggers, extra callbacks (beside ours and the journal).

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
import dataclasses
import inspect
import os
import warnings
from pathlib import Path
from typing import Optional

import docstring_parser
import jsonargparse
import torch
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback, instantiate_class
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

import perceiver.training.optim  # noqa: F401  (makes --optimizer=Lamb resolvable)
from perceiver.model.core.config import ConfigError
from perceiver.model.core.params import ParamsError, check_zip, source_kind
from perceiver.model.core.presets import field_types
from perceiver.runs import paths
from perceiver.runs import status as run_status
from perceiver.scripts import entry
from perceiver.scripts.entry import task_main  # noqa: F401  (the scripts' entry point, kept importable from here)
from perceiver.tasks import Task, get, load_object
from perceiver.training.callbacks import InterruptCheckpoint, ModelSummaryCounted, RNGState, progress_bar
from perceiver.training.compute import ComputeMonitor
from perceiver.training.devices import resolve_devices
from perceiver.training.hparams import HParamsSummary
from perceiver.training.journal import RunJournal
from perceiver.training.schedulers import CosineWithWarmupLR
from perceiver.training.threads import set_cpu_threads


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
        parser.add_function_arguments(set_cpu_threads, as_group=False)
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
        # the optimizer a run uses is written in its config.yaml (and --optimizer.lr works without --optimizer=...):
        # AdamW at the Lightning module's default_lr, which LitModel.configure_optimizers would use
        if "optimizer" not in self.defaults:
            parser.set_defaults({"optimizer": {"class_path": "torch.optim.AdamW",
                                               "init_args": {"lr": self.task.lit_class.default_lr}}})
        if "weights_only" in self._subcommand_method_arguments[subcommand]:
            # --ckpt_path never unpickles code; our checkpoints hold only tensors and plain data
            parser.set_defaults(weights_only=True)
        # the run directory's options; the other subcommands accept (and ignore) them, so that a run's config.yaml
        # or an exported one also works with validate/test/predict --config
        note = "" if subcommand == "fit" else " (fit only)"
        parser.add_argument("--run_dir", type=str, default=paths.DEFAULT_RUN_DIR,
                            help="Run directory, relative to the repository root ($PERCEIVER_ROOT); {task} and {time} "
                                 f"are filled in, and a path with {{time}} is a new directory for every run{note}.")
        parser.add_argument("--overwrite", type=bool, default=False,
                            help="Replace the run in --run_dir if it holds one (otherwise fit refuses, unless "
                                 f"--ckpt_path resumes a checkpoint of that run){note}.")
        parser.add_class_arguments(RunJournal, "journal", skip={"run_dir"}, instantiate=False)
        return parser

    def before_instantiate_classes(self) -> None:
        """Set the torch threads (``--cpu_threads``), check the optimizer, LR schedule and devices before anything is
        built or loaded, resolve the devices on this machine, then (``fit``) choose and check the run directory."""
        config = self.config[self.subcommand] if self.subcommand else self.config  # run=False: no subcommand
        try:
            set_cpu_threads(config.get("cpu_threads"))
        except ValueError as e:
            raise ArgumentError("--cpu_threads", str(e)) from None
        trainer = config.trainer
        check_optimization(config.get("optimizer"), config.get("lr_scheduler"), trainer.get("max_steps", -1))
        try:
            resolved = resolve_devices(trainer.devices, trainer.accelerator, log=_rank_zero_print)
        except ConfigError as e:
            raise ArgumentError(f"--trainer.{e.field}", e.message) from None
        for key, value in resolved.items():
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
        """Instantiate the data module, model and trainer; a config error names the command-line option, and the run
        directory says why the run never started."""
        try:
            try:
                super().instantiate_classes()
            except ValueError as e:
                error = self._argument_error(e)
                if error is e:
                    raise
                raise error from e
        except Exception as e:
            if self.run_dir is not None and paths.process_rank() == 0:
                run_status.write(self.run_dir, status="failed", **run_status.error_fields(f"{type(e).__name__}: {e}"))
            raise

    def _argument_error(self, e: ValueError) -> ValueError:
        """``e`` as an :class:`ArgumentError` naming the ``--data.*`` or ``--model.*`` option of its config field."""
        error = config_error_in(e)
        if error is None or isinstance(e, ArgumentError):
            return e
        data_class = load_object(str((self._get(self.config, "data") or {}).get("class_path") or self.task.data))
        if error.config in {c.__name__ for c in data_class.__mro__}:
            option = f"--data.{error.field}"
        else:
            option = f"--model.{sub_config_path(self.task.config_class, error.config)}{error.field}"
        return ArgumentError(option, error.message)

    def instantiate_trainer(self, **kwargs):
        # kwargs replace the trainer config's entries, so the callbacks given in the config must be carried over
        trainer_config = self._get(self.config_init, "trainer", default={})
        configured = trainer_config.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        configured = [cb for cb in configured if cb is not None]
        fit_run = self.subcommand == "fit" and self.run_dir is not None
        if fit_run and trainer_config.get("logger") in (None, True):  # Lightning's default logger, in the run dir
            # no placeholder hp_metric: HParamsSummary writes the hyperparameters with the run's metrics at the end
            kwargs.setdefault("logger", TensorBoardLogger(str(self.run_dir), name="", version="logs",
                                                          default_hp_metric=False))
        config = {**trainer_config, **kwargs}
        # ours around the user's: compute accounting first, so that the run journal records each step's values
        first = [] if any(isinstance(cb, ComputeMonitor) for cb in configured) else [ComputeMonitor()]
        last = [InterruptCheckpoint(), RNGState()]
        if fit_run and not any(isinstance(cb, RunJournal) for cb in configured):
            last.append(RunJournal(str(self.run_dir), **dict(self._get(self.config_init, "journal", default={}))))
            last.append(HParamsSummary(self.run_dir))  # after the journal, which writes metrics.json
        if config.get("enable_progress_bar") is not False and not any(isinstance(cb, ProgressBar) for cb in configured):
            last.append(progress_bar())
        if config.get("enable_model_summary") is not False and not any(
                isinstance(cb, ModelSummary) for cb in configured):
            last.append(ModelSummaryCounted())
            config["enable_model_summary"] = False  # Lightning would add its own (and say it skips that)
        callbacks = [*first, *configured, *(kwargs.get("callbacks") or []), *last]
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
