"""TensorBoard's HParams tab for our runs: at the end of training every TensorBoard logger of the run gets the run's
hyperparameters (its ``config.yaml`` flattened, as the run registry reads it: ``model.*``, ``data.*``,
``optimizer.*``, ``lr_scheduler.*``, ``trainer.*``) and its final and best metrics (``final/<metric>``,
``best/<metric>`` from ``metrics.json``), so that ``tensorboard --logdir runs/sweep-lr`` compares the runs of a sweep
in a table, parallel coordinates and scatter plots, beside their curves.

The CLI's TensorBoard logger is created with ``default_hp_metric=False``: Lightning's placeholder ``hp_metric`` at the
start would be a second HParams record without any of these values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger

from perceiver.runs.records import read_config, read_json


def hparam_values(config: dict[str, Any]) -> dict[str, Any]:
    """Flattened configuration values as TensorBoard takes them: numbers, strings and booleans as they are, anything
    else (None, lists) as text."""
    return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in config.items()}


def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """``final/<metric>`` and ``best/<metric>`` of a run's ``metrics.json``."""
    out = {}
    for group in ("final", "best"):
        for key, value in (summary.get(group) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{group}/{key}"] = float(value)
    return out


class HParamsSummary(Callback):
    """At the end of training (completed or stopped), write the run's hyperparameters and metrics to its TensorBoard
    loggers. Put it after the :class:`~perceiver.training.journal.RunJournal`, which writes ``metrics.json`` first.

    Args:
        run_dir: the run directory (its ``config.yaml`` and ``metrics.json``).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        metrics = final_metrics(read_json(self.run_dir / "metrics.json"))
        if not loggers or not metrics:
            return
        hparams = hparam_values(read_config(self.run_dir))
        for logger in loggers:
            # one event file beside the training curves (run_name "."): TensorBoard shows one run per training run
            logger.experiment.add_hparams(hparams, metrics, run_name=".", global_step=trainer.global_step)
            logger.experiment.flush()
