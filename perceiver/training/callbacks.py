"""Callbacks the CLI adds to every run: a checkpoint when a run is interrupted, RNG state in checkpoints so a
resumed run continues exactly like an uninterrupted one, a progress bar that counts steps, and a model summary
without uncounted FLOPs."""

from __future__ import annotations

import os
import random
from typing import Any

import pytorch_lightning as pl
import numpy as np
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, ModelSummary
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


class StepsInProgressBar:
    """Progress bar mix-in: shows ``step k/max_steps`` beside the metrics, since runs bounded by ``max_steps`` have
    no meaningful epoch total (Lightning's rich bar says ``Epoch 0/-2`` for ``max_epochs=-1``)."""

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the logger's version: one run directory per run makes it meaningless
        if trainer.max_steps and trainer.max_steps > 0:
            metrics = {"step": f"{trainer.global_step}/{trainer.max_steps}", **metrics}
        return metrics

    def _get_train_description(self, current_epoch: int) -> str:  # the rich bar's "Epoch e/max_epochs - 1"
        epochs = self.trainer.max_epochs
        text = f"Epoch {current_epoch}" + (f"/{epochs - 1}" if epochs is not None and epochs > 0 else "")
        return f"{text:{len(self.validation_description)}}"


def progress_bar() -> Callback:
    """The progress bar the CLI adds: Lightning's (rich where ``rich`` is installed) with the step count."""
    from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar
    from pytorch_lightning.callbacks.progress.rich_progress import _RICH_AVAILABLE

    base = RichProgressBar if _RICH_AVAILABLE else TQDMProgressBar
    return type(f"Step{base.__name__}", (StepsInProgressBar, base), {})()


class ModelSummaryCounted(ModelSummary):
    """Lightning's model summary, with FLOPs only where they are known, never as a column of zeros and "0 Total
    Flops": Lightning's per-layer count where it made one (the module defines an ``example_input_array``), else the
    analytic training FLOPs of one example from the module's config (``config.flops()``, the count that
    ``perceiver.training.compute.ComputeMonitor`` logs), else none."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        flops = getattr(getattr(pl_module, "config", None), "flops", None)
        self._summarize_kwargs["analytic_flops"] = flops() if flops is not None else None
        super().on_fit_start(trainer, pl_module)

    @staticmethod
    def summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                  total_flops, analytic_flops=None, **summarize_kwargs) -> None:
        from pytorch_lightning.utilities import rank_zero_info
        from pytorch_lightning.utilities.model_summary.model_summary import _format_summary_table

        if not total_flops:
            summary_data = [column for column in summary_data if column[0] != "FLOPs"]
        table = _format_summary_table(total_parameters, trainable_parameters, model_size, total_training_modes,
                                      total_flops, *summary_data)
        if not total_flops:
            table = table.rsplit("\n", 1)[0]  # the "Total Flops" line
            if analytic_flops is not None:
                from perceiver.training.compute import format_flops

                table += (f"\n{format_flops(analytic_flops.forward_backward):<10} Training FLOPs per example "
                          f"({analytic_flops.tokens} tokens; forward + backward, analytic)")
        rank_zero_info("\n" + table)
