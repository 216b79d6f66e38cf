"""Callbacks the CLI adds to every run: a checkpoint when a run is interrupted, and RNG state in checkpoints so a
resumed run continues exactly like an uninterrupted one."""

from __future__ import annotations

import os
import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint


class InterruptCheckpoint(Callback):
    """On Ctrl-C, SIGTERM or an error, save ``interrupted.ckpt`` beside the regular checkpoints, so the run can be
    resumed with ``--ckpt_path``."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if getattr(exception, "skip_interrupt_checkpoint", False) or trainer.state.stage != "train":
            return
        dirpath = next((cb.dirpath for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)), None)
        dirpath = dirpath or os.path.join(trainer.default_root_dir, "checkpoints")
        path = os.path.join(dirpath, "interrupted.ckpt")
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            print(f"run interrupted at step {trainer.global_step} ({type(exception).__name__}); checkpoint: {path}")


class RNGState(Callback):
    """Saves the Python, NumPy and torch RNG states in checkpoints and restores them on resume."""

    def state_dict(self) -> dict[str, Any]:
        state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
