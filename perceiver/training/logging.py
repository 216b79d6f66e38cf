"""Logging text (validation samples) to whatever Lightning loggers are attached."""

from __future__ import annotations

import csv
import os

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger


def log_text(loggers: list[Logger], tag: str, text: str, step: int) -> None:
    """TensorBoard gets ``add_text``; CSV loggers get a ``samples.csv`` beside their metrics; loggers with a
    ``log_text`` method (e.g. W&B) get that."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(tag, f"```\n{text}\n```", global_step=step)
        elif isinstance(logger, CSVLogger):
            os.makedirs(logger.log_dir, exist_ok=True)
            path = os.path.join(logger.log_dir, "samples.csv")
            new = not os.path.exists(path)
            with open(path, "a", newline="") as f:
                writer = csv.writer(f)
                if new:
                    writer.writerow(["step", "tag", "text"])
                writer.writerow([step, tag, text])
        elif hasattr(logger, "log_text"):
            try:
                logger.log_text(key=tag, columns=["step", "text"], data=[[step, text]])
            except TypeError:
                logger.log_text(tag, text, step)
