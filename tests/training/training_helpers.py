"""Helpers of the training tests: tiny models and data modules on the offline Wikipedia sample, a loss recorder."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from perceiver.data.text import WikipediaDataModule, WikiTextDataModule
from configs import clm_config, mlm_config
from perceiver.model.core.presets import merge
from perceiver.model.text.clm import CausalLanguageModelConfig
from perceiver.model.text.mlm import MaskedLanguageModelConfig


def clm_data(dataset_dir: str, **kwargs) -> WikiTextDataModule:
    args = dict(source="sample", task="clm", max_seq_len=64, batch_size=4, max_documents=6, num_workers=0)
    return WikiTextDataModule(dataset_dir=dataset_dir, **{**args, **kwargs})


def mlm_data(dataset_dir: str, **kwargs) -> WikipediaDataModule:
    args = dict(source="sample", task="mlm", max_seq_len=64, batch_size=4, max_documents=6, num_workers=0)
    return WikipediaDataModule(dataset_dir=dataset_dir, **{**args, **kwargs})


def tiny_clm_config(**kwargs) -> CausalLanguageModelConfig:
    """The small CLM of ``tests/configs.py`` with dropout, which exact resume must reproduce."""
    return clm_config(**{"cross_attention_dropout": 0.5, "post_attention_dropout": 0.1, **kwargs})


def tiny_mlm_config(**kwargs) -> MaskedLanguageModelConfig:
    """The small MLM of ``tests/configs.py`` with dropout."""
    return mlm_config(**merge({"encoder": {"dropout": 0.1}, "decoder": {"dropout": 0.1}}, kwargs))


class LossRecorder(Callback):
    """Records the training loss of every step: ``losses[global_step] = loss``."""

    def __init__(self):
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"] if isinstance(outputs, dict) else outputs)


def tiny_trainer(root, callbacks=(), **kwargs) -> pl.Trainer:
    args = dict(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=str(root), limit_val_batches=2, num_sanity_val_steps=1,
    )
    return pl.Trainer(callbacks=list(callbacks), **{**args, **kwargs})


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
