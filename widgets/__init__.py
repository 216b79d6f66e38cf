"""The Perceiver workbench: ipywidgets forms generated from the config dataclasses, presets, training runs through
the Lightning CLI with Start/Stop, and a live dashboard of loss curves, attention maps and samples.

Modules: ``forms`` (dataclass/signature -> widgets), ``spec`` (tasks, presets, settings, CLI config), ``runner``
(training subprocess), ``dashboard`` (plots of a run directory), ``workbench`` (all of it together).
"""

from widgets.dashboard import Dashboard
from widgets.forms import DataclassForm, SignatureForm
from widgets.runner import TrainingRun
from widgets.spec import build_model_config, cli_config, parameter_count
from widgets.workbench import Workbench, in_jupyter_server

__all__ = [
    "Dashboard",
    "DataclassForm",
    "SignatureForm",
    "TrainingRun",
    "Workbench",
    "build_model_config",
    "cli_config",
    "in_jupyter_server",
    "parameter_count",
]
