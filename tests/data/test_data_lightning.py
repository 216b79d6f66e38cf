"""The data modules inside Lightning: a Trainer run and LightningCLI argument linking."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LightningCLI

from perceiver.data.text import WikiTextDataModule


class TinyLM(pl.LightningModule):
    """Embedding + linear head: just enough to consume batches."""

    def __init__(self, vocab_size: int = 8, max_seq_len: int = 8):
        super().__init__()
        self.save_hyperparameters()
        self.emb = torch.nn.Embedding(vocab_size, 8)
        self.head = torch.nn.Linear(8, vocab_size)
        self.seen: list[dict[str, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        assert batch["input_ids"].shape == (2, self.hparams.max_seq_len)
        self.seen.append(batch)
        logits = self.head(self.emb(batch["input_ids"]))
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.training_step(batch, batch_idx), batch_size=2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_fit_runs_on_sample(tmp_path):
    dm = WikiTextDataModule(
        source="sample", dataset_dir=str(tmp_path), max_seq_len=64, task="clm", batch_size=2, max_documents=3
    )
    model = TinyLM(dm.vocab_size, dm.max_seq_len)
    trainer = pl.Trainer(fast_dev_run=2, accelerator="cpu", logger=False, enable_progress_bar=False)
    trainer.fit(model, datamodule=dm)
    assert len(model.seen) >= 2 and dm.cache_was_built


class LinkedCLI(LightningCLI):
    def add_arguments_to_parser(self, parser):
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="instantiate")
        parser.link_arguments("data.max_seq_len", "model.max_seq_len", apply_on="instantiate")


def test_cli_links_vocab_size_and_max_seq_len_without_setup(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["cli"])
    args = [f"--data.dataset_dir={tmp_path}", "--data.source=sample", "--data.max_seq_len=32", "--data.task=clm"]
    cli = LinkedCLI(TinyLM, WikiTextDataModule, run=False, args=args, save_config_callback=None)
    assert cli.model.hparams.vocab_size == 262 and cli.model.hparams.max_seq_len == 32
    assert cli.datamodule.padding_side == "left"
    assert not (tmp_path / "preproc").exists()  # nothing loaded before fitting
