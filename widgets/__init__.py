"""The Perceiver workbench: ipywidgets forms generated from the config dataclasses, presets, training runs through
the Lightning CLI with Start/Stop, and a live dashboard of loss curves, attention maps and samples.

Modules: ``forms`` (dataclass/signature -> widgets), ``spec`` (tasks, presets, settings, CLI config), ``taskform``
(a task's form, validated as it changes), ``runner`` (training subprocess), ``dashboard`` (a run directory, live),
``workbench`` (all of it together). Where runs go and what they leave: ``docs/workbench.md``.
"""

from widgets.dashboard import Dashboard
from widgets.forms import DataclassForm, SignatureForm
from widgets.runner import TrainingRun
from widgets.spec import build_model_config, cli_config, parameter_count
from widgets.taskform import TaskForm
from widgets.workbench import Workbench, in_jupyter_server

__all__ = [
    "Dashboard",
    "DataclassForm",
    "SignatureForm",
    "TaskForm",
    "TrainingRun",
    "Workbench",
    "build_model_config",
    "cli_config",
    "in_jupyter_server",
    "parameter_count",
]
