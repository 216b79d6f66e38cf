"""The task registry: what the CLI, the workbench, the run journal, the notebooks and the sweeps need to know about a
model task, as one small description per task.

A task is data, not branches: shared code iterates over :func:`tasks` and reads these fields; it never tests a task
name or a class name. A task is one module in this package that defines ``TASK = Task(...)`` (found by scanning the
package), or, from another distribution, an entry point in the group ``perceiver.tasks`` that names a ``Task``.
Classes are named by import path (``"package.module:Name"``) and imported on first use, so reading the registry is
cheap (the CLI's ``--help`` and the workbench's menus do not import torch models).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, Literal, Mapping, Optional


def load_object(path: str) -> Any:
    """The object named ``"package.module:attribute"`` (or ``"package.module.attribute"``)."""
    module, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class NotFound(KeyError):
    """An unknown task or preset name; the message lists the known ones (printed without KeyError's quotes)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Metric:
    """A metric the Lightning module logs as ``train_<key>`` / ``val_<key>`` and the dashboard plots."""

    key: str
    title: str
    goal: Literal["min", "max"] = "min"


@dataclass(frozen=True)
class RunPreset:
    """A workbench/notebook preset: a model preset plus the training settings that go with it."""

    model: str
    """A preset name of the task's config class (``config_class.presets``)."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Workbench settings (source, max_seq_len, batch_size, devices, precision, max_steps, optimizer, lr, seed)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Further CLI configuration: ``trainer``, ``model``, ``data``, ``lr_scheduler`` and ``journal`` sections, and
    ``optimizer`` (further arguments of the settings' optimizer, e.g. AdamW's ``betas``, if it names that class)."""


@dataclass(frozen=True)
class Task:
    name: str
    """Short name: the CLI's and the workbench's key (``"clm"``)."""
    title: str
    """What it is, for help texts and menus."""
    config: str
    """Import path of the backend config dataclass."""
    model: str
    """Import path of the backend model class (built from the config)."""
    lit: str
    """Import path of the Lightning module class (``Lit*.create(config)``)."""
    cli: str
    """Module of the Lightning CLI script (``python -m <cli> fit ...``)."""
    data: str
    """Import path of the default data module class."""
    model_preset: str
    """The config preset the CLI defaults to: the documented model."""
    data_args: Mapping[str, Any] = field(default_factory=dict)
    """Default data module arguments of the CLI and the workbench."""
    links: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Data module attribute -> model fields (dotted) it sets at instantiation (``vocab_size``, ``max_seq_len``)."""
    parse_links: Mapping[str, str] = field(default_factory=dict)
    """Data module argument -> Lightning module argument, linked when the command line is parsed (``tokenizer``)."""
    presets: Mapping[str, RunPreset] = field(default_factory=dict)
    """Workbench and notebook presets, by display name; the first is the documented model."""
    metrics: tuple[Metric, ...] = ()
    """Metrics besides the loss that the dashboard plots and the registry summarises."""
    figures: tuple[str, ...] = ()
    """Import paths of functions ``(run_dir) -> Figure | None`` drawing a run directory (after the loss curves)."""
    notebook: Optional[str] = None
    """The training notebook (``notebooks/<name>``) that papermill and the sweeps run."""
    examples: tuple[str, ...] = ()
    """Example command lines for the CLI's help."""

    # --- resolved on first use ------------------------------------------------------------------------------------

    @property
    def config_class(self) -> type:
        return load_object(self.config)

    @property
    def model_class(self) -> type:
        return load_object(self.model)

    @property
    def lit_class(self) -> type:
        return load_object(self.lit)

    @property
    def data_class(self) -> type:
        return load_object(self.data)

    @property
    def linked_fields(self) -> tuple[str, ...]:
        """Model fields (dotted) that come from the data module and so are never set by hand."""
        return tuple(f for fields in self.links.values() for f in fields)

    def model_defaults(self) -> dict:
        """Fields of the documented model preset without the data-linked ones: the CLI's ``model`` defaults."""
        from perceiver.model.core.presets import preset_fields

        return drop_fields(preset_fields(self.config_class, self.model_preset), self.linked_fields)

    def build_config(self, values: Mapping[str, Any], data: Mapping[str, Any]):
        """The config dataclass from (nested) field values plus the linked values of the data module (``data``:
        attribute -> value, e.g. ``{"vocab_size": 262, "max_seq_len": 256}``). Raises ``ConfigError``."""
        from perceiver.model.core.presets import config_from_dict, merge

        linked: dict = {}
        for attr, fields in self.links.items():
            for dotted in fields:
                linked = merge(linked, nest(dotted, data[attr]))
        return config_from_dict(self.config_class, merge(values, linked))

    def goal(self, metric: str) -> Literal["min", "max"]:
        """Whether lower ("min") or higher ("max") values of a logged metric are better: ``val_bpb`` and
        ``train_bpb`` follow the task's :class:`Metric` ``bpb``; others follow :func:`metric_goal`."""
        key = metric.split("_", 1)[1] if metric.startswith(("train_", "val_", "test_")) else metric
        return next((m.goal for m in self.metrics if m.key == key), metric_goal(metric))

    def run_preset(self, name: str) -> RunPreset:
        if name not in self.presets:
            raise NotFound(f"task {self.name!r} has no preset {name!r}; presets: {', '.join(self.presets)}")
        return self.presets[name]


MAXIMIZED = ("acc", "f1", "auc", "precision", "recall", "mfu")
"""Parts of metric names that are better when higher (for metrics no task declares)."""


def metric_goal(metric: str, task: Optional[Task] = None) -> Literal["min", "max"]:
    """Whether lower ("min") or higher ("max") values of ``metric`` are better: the task's declared goal if it has
    one, else "max" for accuracies, F1, AUC, precision, recall and MFU, "min" for everything else (losses, bpb,
    perplexity)."""
    if task is not None:
        return task.goal(metric)
    return "max" if any(part in metric.lower() for part in MAXIMIZED) else "min"


def nest(dotted: str, value: Any) -> dict:
    """``"a.b"``, 1 -> ``{"a": {"b": 1}}``."""
    head, _, rest = dotted.partition(".")
    return {head: nest(rest, value) if rest else value}


def drop_fields(values: Mapping[str, Any], dotted: tuple[str, ...]) -> dict:
    """A copy of nested ``values`` without the ``dotted`` fields."""
    out = {}
    for k, v in values.items():
        inner = tuple(d.partition(".")[2] for d in dotted if d.startswith(k + "."))
        if k in dotted:
            continue
        out[k] = drop_fields(v, inner) if isinstance(v, Mapping) else v
    return out


# --- the registry ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def tasks() -> dict[str, Task]:
    """All tasks by name: modules of this package that define ``TASK``, then entry points ``perceiver.tasks``."""
    found: dict[str, Task] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        task = getattr(importlib.import_module(f"{__name__}.{info.name}"), "TASK", None)
        if isinstance(task, Task):
            found[task.name] = task
    for ep in entry_points(group="perceiver.tasks"):
        task = ep.load()
        if isinstance(task, Task):
            found.setdefault(task.name, task)
    return found


def get(name: str) -> Task:
    """The task called ``name`` (``KeyError`` listing the known tasks otherwise)."""
    known = tasks()
    if name not in known:
        raise NotFound(f"unknown task {name!r}; tasks: {', '.join(known)}")
    return known[name]


def task_of(obj: object) -> Optional[Task]:
    """The task whose Lightning module (or backend model) class ``obj`` is an instance of; the most derived match
    wins. Classes are compared, so a subclass of a task's module is that task too."""
    best, depth = None, None
    mro = type(obj).__mro__
    for task in tasks().values():
        for path in (task.lit, task.model):
            try:
                cls = load_object(path)
            except (ImportError, AttributeError):
                continue
            if cls in mro and (depth is None or mro.index(cls) < depth):
                best, depth = task, mro.index(cls)
    return best


__all__ = ["Metric", "NotFound", "RunPreset", "Task", "get", "load_object", "metric_goal", "task_of", "tasks"]
