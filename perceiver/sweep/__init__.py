"""Parameter sweeps: grid, random and TPE search over dotted configuration keys, each point a normal run directory,
the state in an Optuna study (SQLite in the sweep directory, or a database several machines share).

    python -m perceiver.scripts.sweep notebooks/train_clm.ipynb --param optimizer.lr=1e-3,3e-3 \\
        --param model.num_channels=64,128 --out runs/sweep-lr
    python -m perceiver.scripts.sweep clm --param optimizer.lr=1e-4..1e-2:log --sampler tpe --trials 20 \\
        --out runs/tpe-lr -- --data.source=sample --trainer.max_steps=200

From Python::

    from perceiver.sweep import CliTarget, Sweep, parse_param
    Sweep(CliTarget("perceiver.scripts.text.clm"), [parse_param("optimizer.lr=1e-3,3e-3")], "runs/sweep-lr").run()

``space`` reads parameters and overrides, ``targets`` builds a point's command (a task's CLI or a notebook),
``study`` runs the sweep on Optuna. The points are read back by the run registry (``perceiver.runs.load``).
"""

from perceiver.sweep.space import Param, SpaceError, format_value, parse_overrides, parse_param, parse_value
from perceiver.sweep.study import PointFailed, Sweep, SweepError, visible_devices
from perceiver.sweep.targets import CliTarget, NotebookTarget

__all__ = ["CliTarget", "NotebookTarget", "Param", "PointFailed", "SpaceError", "Sweep", "SweepError", "format_value",
           "parse_overrides", "parse_param", "parse_value", "visible_devices"]
