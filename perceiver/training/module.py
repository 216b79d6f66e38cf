"""LitModel: the Lightning base of the task modules. It holds the backend model, loads pretrained ``params``,
stops on a non-finite loss, logs metrics and text samples. Task modules implement ``loss_and_metrics`` and
``sample``."""

from __future__ import annotations

from typing import Optional

import pytorch_lightning as pl
import torch
import torch.nn as nn

from perceiver.model.core.attention import record_attention
from perceiver.model.core.params import FieldHint, compare_state_dicts, mismatch_error
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
        params_strict: refuse ``params`` that do not match the model exactly (parameters missing on either side or
            of another shape), naming them and the config field to change. ``False``: load the parameters that
            match and log a warning for every one skipped (partial loading, e.g. a new output vocabulary).
        tokenizer: tokenizer for validation samples (the CLI links it from ``--data.tokenizer``).
        compile: wrap the backend model's forward in ``torch.compile``.
    """

    default_lr = 1e-4
    """Learning rate of the default optimizer (see ``configure_optimizers``)."""

    field_hint: Optional[FieldHint] = None
    """The config field behind a backend parameter name (for errors about weights that do not fit)."""

    def __init__(self, params: Optional[str] = None, params_strict: bool = True, tokenizer: str = BYTE_TOKENIZER,
                 compile: bool = False):
        super().__init__()
        self.params = params
        self.params_strict = params_strict
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

    def step_cost(self, batch: dict) -> Optional[tuple[int, int]]:
        """(input tokens, FLOPs) of a training step on ``batch`` on this device, from the backend config's analytic
        ``flops(seq_len, train)`` (``perceiver.model.core.flops``); None if the config has none. Tasks whose batches
        hold no ``input_ids`` (B, N) override this."""
        flops = getattr(getattr(self, "config", None), "flops", None)
        if flops is None or "input_ids" not in batch:
            return None
        b, n = batch["input_ids"].shape[:2]
        return b * n, flops(seq_len=n, train=self.training).step(b)

    def token_labels(self, ids: list[int]) -> list[str]:
        """One printable label per input id, for plot axes (the tokenizer's decoding of each id by default)."""
        return token_labels(self.tokenizer, ids)

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
        title = getattr(self.model, "plotted_attention_title", name)
        return {"weights": rec.weights[name][0], "title": title, **self.attention_keys(batch)}

    def attention_keys(self, batch: dict) -> dict:
        """What the attention plot shows for the key positions of a one-example ``batch``: ``labels``, one per key
        position (here the input bytes); tasks may add arrays (e.g. the ``image``), which the journal saves too."""
        return {"labels": self.token_labels(batch["input_ids"][0].tolist())}

    def batch_size(self, batch: dict) -> int:
        """Number of examples in ``batch``."""
        return batch["input_ids"].shape[0]

    def batch_tokens(self, batch: dict) -> int:
        """Input positions in ``batch`` (tokens; pixels for images), for the throughput the journal records."""
        return batch["input_ids"].numel()

    def validation_records(self) -> dict[str, dict]:
        """Arrays of the last validation for the run journal, which saves each entry ``name -> {key: array}`` as
        ``<run_dir>/records/<name>/step-<k>.npz`` for the task's figures (e.g. misclassified examples); none here."""
        return {}

    # --- Lightning hooks ----------------------------------------------------------------------------------------

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming training (``ckpt_path``) from a checkpoint of another model fails here, naming the parameters and
        the config fields to change, instead of in ``load_state_dict``."""
        if self._trainer is None or not self.strict_loading:  # load_from_checkpoint builds the model from the file
            return
        target = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        state = {k: v for k, v in checkpoint.get("state_dict", {}).items()}
        report = compare_state_dicts(state, target)
        if report.missing or report.unexpected or report.mismatched:
            hint = type(self).field_hint

            def field(key: str, problem: str) -> str:
                return hint(key.removeprefix("model."), problem) if hint else "the model config"

            raise mismatch_error("the checkpoint to resume from (ckpt_path)", type(self.model).__name__, report,
                                 state, target, field)

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
        b = self.batch_size(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=b)
        for name, value in metrics.items():
            self.log(f"train_{name}", value, batch_size=b)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, metrics = self.loss_and_metrics(batch)
        b = self.batch_size(batch)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=b)
        for name, value in metrics.items():
            self.log(f"val_{name}", value, sync_dist=True, batch_size=b)
        return loss

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, metrics = self.loss_and_metrics(batch)
        b = self.batch_size(batch)
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
