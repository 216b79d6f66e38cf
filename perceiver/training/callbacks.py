"""Callbacks the CLI adds to every run: a checkpoint when a run is interrupted, and RNG state in checkpoints so a
resumed run continues exactly like an uninterrupted one."""

from __future__ import annotations

import os
import random
from typing import Any

import pytorch_lightning as pl
import numpy as np
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn


class InterruptCheckpoint(Callback):
    """On Ctrl-C, SIGTERM or an error, save ``interrupted.ckpt`` beside the regular checkpoints, so the run can be
    resumed with ``--ckpt_path``. A trainer without checkpointing (``enable_checkpointing=False``) gets none."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # during fit, also while validating (Lightning handles SIGTERM there too)
        if getattr(exception, "skip_interrupt_checkpoint", False) or trainer.state.fn != TrainerFn.FITTING:
            return
        if trainer.global_step == 0:  # nothing trained yet (e.g. a configuration error)
            return
        if not trainer.checkpoint_callbacks:  # the user turned checkpointing off
            if trainer.is_global_zero:
                print(f"run interrupted at step {trainer.global_step} ({type(exception).__name__}); no checkpoint "
                      f"saved (checkpointing is disabled)")
            return
        dirpath = next((cb.dirpath for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)), None)
        dirpath = dirpath or os.path.join(trainer.default_root_dir, "checkpoints")
        path = os.path.join(dirpath, "interrupted.ckpt")
        try:
            trainer.save_checkpoint(path)
        except Exception as e:  # never hide the original exception
            print(f"could not save an interrupt checkpoint: {e}")
            return
        if trainer.is_global_zero:
            print(f"run interrupted at step {trainer.global_step} ({type(exception).__name__}); checkpoint: {path}")


class RNGState(Callback):
    """Saves the Python, NumPy and torch RNG states in checkpoints and restores them when a resumed run starts
    training (not when the checkpoint is read, so that nothing Lightning does in between, e.g. the sanity check,
    changes them). Together with ``ResumableDataLoader`` this makes a resumed run equal an uninterrupted one."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        # plain types and tensors only: the checkpoint stays loadable with torch.load(weights_only=True)
        numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
        state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._loaded = state

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state, self._loaded = self._loaded, None
        if state is None:
            return
        random.setstate(state["python"])
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
