"""LitModel: the Lightning base of the task modules. It holds the backend model, loads pretrained ``params``,
stops on a non-finite loss, logs metrics and text samples. Task modules implement ``loss_and_metrics`` and
``sample``."""

from __future__ import annotations

from typing import Callable, Optional

import pytorch_lightning as pl
import torch
import torch.nn as nn

from perceiver.model.core.attention import record_attention
from perceiver.model.text.tokenizer import BYTE_TOKENIZER, load_tokenizer, token_labels
from perceiver.training.logging import log_text


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""

    skip_interrupt_checkpoint = True  # the weights may already be non-finite; keep the last regular checkpoint


class LitModel(pl.LightningModule):
    """Base of the Lightning task modules.

    Args:
        params: pretrained weights for the backend model: a Lightning checkpoint, a directory saved by this library
            (safetensors), a perceiver-io 0.11 directory or checkpoint, or a Hugging Face Hub id (online only).
        tokenizer: tokenizer for validation samples (the CLI links it from ``--data.tokenizer``).
        compile: wrap the backend model's forward in ``torch.compile``.
    """

    default_lr = 1e-4
    """Learning rate of the default optimizer (see ``configure_optimizers``)."""

    sample_callback: Optional[Callable[[str], None]] = None
    """Called with the sample's text so far while ``sample`` generates it (the run journal writes it for the
    dashboard); task modules whose samples are generated step by step call it."""

    def __init__(self, params: Optional[str] = None, tokenizer: str = BYTE_TOKENIZER, compile: bool = False):
        super().__init__()
        self.params = params
        self.tokenizer_name = tokenizer
        self._tokenizer = None
        self.compile = compile

    @property
    def backend_model(self) -> nn.Module:
        return self.model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_name)
        return self._tokenizer

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def configure_model(self) -> None:
        if self.compile and not getattr(self, "_compiled", False):
            self.model.forward = torch.compile(self.model.forward)
            self._compiled = True

    # --- to implement -------------------------------------------------------------------------------------------

    def forward_batch(self, batch: dict) -> torch.Tensor:
        """The backend model's output (e.g. logits) for a batch of the data module."""
        raise NotImplementedError

    def loss_and_metrics(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def sample(self) -> Optional[str]:
        """A text sample for the loggers after each validation (None: no sample)."""
        return None

    @torch.no_grad()
    def attention_maps(self, batch: dict) -> Optional[dict]:
        """What the workbench plots of the attention for a one-example ``batch``, in eval mode: ``weights``
        (H, I, J) of the module the backend model names in ``plotted_attention``, one ``labels`` entry per key
        position, and a ``title``. None if the backend model names no such module."""
        name = getattr(self.model, "plotted_attention", None)
        if name is None:
            return None
        was_training = self.model.training
        self.model.eval()
        try:
            with record_attention(self.model, [name]) as rec:
                self.forward_batch(batch)
        finally:
            self.model.train(was_training)
        ids = batch["input_ids"][0].tolist()
        return {"weights": rec.weights[name][0], "labels": token_labels(self.tokenizer, ids),
                "title": getattr(self.model, "plotted_attention_title", name)}

    # --- Lightning hooks ----------------------------------------------------------------------------------------

    def configure_optimizers(self):
        """AdamW with ``lr=default_lr``, for training from Python with a plain ``pl.Trainer``. The CLI replaces it
        with ``--optimizer`` and ``--lr_scheduler``; subclass (or assign this method) for anything else."""
        return torch.optim.AdamW(self.parameters(), lr=self.default_lr)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, metrics = self.loss_and_metrics(batch)
        non_finite = not bool(torch.isfinite(loss))
        if self.trainer.world_size > 1:  # every rank stops (a rank alone would leave the others waiting)
            non_finite = self.trainer.strategy.reduce_boolean_decision(non_finite, all=False)
        if non_finite:
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at step {self.global_step + 1} (global_step={self.global_step}, "
                f"batch {batch_idx}); training stopped. Lower the learning rate, add warmup (--lr_scheduler), or use "
                f"--trainer.gradient_clip_val; resume from the last checkpoint with --ckpt_path."
            )
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        for name, value in metrics.items():
            self.log(f"train_{name}", value, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, metrics = self.loss_and_metrics(batch)
        b = batch["input_ids"].shape[0]
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=b)
        for name, value in metrics.items():
            self.log(f"val_{name}", value, sync_dist=True, batch_size=b)
        return loss

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, metrics = self.loss_and_metrics(batch)
        b = batch["input_ids"].shape[0]
        self.log("test_loss", loss, sync_dist=True, batch_size=b)
        for name, value in metrics.items():
            self.log(f"test_{name}", value, sync_dist=True, batch_size=b)
        return loss

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        text = self.sample()
        if text is not None:
            self.last_sample = text
            log_text(self.loggers, "sample", text, self.global_step)
