"""Standard Trainer options through our CLI and through the workbench's CLI configuration: no logger, CSV and
TensorBoard loggers, several loggers, extra callbacks, no checkpointing, no progress bar. Our own callbacks (learning
rate monitor, ModelCheckpoint, interrupt checkpoint, run journal) adapt instead of refusing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from configs import cli_args, clm_config, sample_data_args
from perceiver.scripts.text import clm
from perceiver.training.callbacks import InterruptCheckpoint, RNGState
from perceiver.training.journal import RunJournal
from training_helpers import clm_data, tiny_trainer


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["cli"])  # pytest's own arguments are not the CLI's


def fit(tmp_path: Path, dataset_dir: str, *args: str):
    data = sample_data_args()
    base = [
        "fit", "--data=WikiTextDataModule", f"--data.dataset_dir={dataset_dir}",
        *[f"--data.{k}={v}" for k, v in data.items() if k != "max_seq_len"], "--data.max_seq_len=64",
        *cli_args("clm"), "--model.validation_sample_length=4", "--optimizer=Adam",
        "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.max_steps=2", "--trainer.val_check_interval=2",
        "--trainer.limit_val_batches=1", "--trainer.enable_model_summary=false",
        f"--run_dir={tmp_path}",
    ]
    return clm.main([*base, *args])


def checkpoints(root: Path) -> list[Path]:
    return sorted(root.rglob("*.ckpt"))


def test_no_logger_and_no_progress_bar(tmp_path, dataset_dir, capsys):
    cli = fit(tmp_path, dataset_dir, "--trainer.logger=false", "--trainer.enable_progress_bar=false")
    trainer = cli.trainer
    assert trainer.loggers == [] and trainer.global_step == 2
    assert not any(isinstance(cb, LearningRateMonitor) for cb in trainer.callbacks)  # it would refuse to run
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()  # without a logger, in the run directory
    assert any(isinstance(cb, InterruptCheckpoint) for cb in trainer.callbacks)
    assert trainer.progress_bar_callback is None and "it/s" not in capsys.readouterr().err


def test_csv_logger_gets_learning_rates(tmp_path, dataset_dir):
    cli = fit(tmp_path, dataset_dir, "--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path}/logs")
    assert [type(lg) for lg in cli.trainer.loggers] == [CSVLogger]  # no second CSV logger added
    header = (Path(cli.trainer.loggers[0].log_dir) / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "lr-Adam" in header and "train_loss" in header and "val_loss" in header


def test_several_loggers_and_extra_callbacks(tmp_path, dataset_dir):
    config = tmp_path / "trainer.yaml"
    config.write_text(f"""
trainer:
  logger:
    - class_path: pytorch_lightning.loggers.TensorBoardLogger
      init_args: {{save_dir: {tmp_path}/tb}}
    - class_path: pytorch_lightning.loggers.CSVLogger
      init_args: {{save_dir: {tmp_path}/csv}}
  callbacks:
    - class_path: pytorch_lightning.callbacks.EarlyStopping
      init_args: {{monitor: val_loss, patience: 100}}
    - class_path: pytorch_lightning.callbacks.LearningRateMonitor
      init_args: {{logging_interval: epoch}}
""")
    cli = fit(tmp_path, dataset_dir, f"--config={config}")
    trainer = cli.trainer
    assert [type(lg) for lg in trainer.loggers] == [TensorBoardLogger, CSVLogger]
    monitors = [cb for cb in trainer.callbacks if isinstance(cb, LearningRateMonitor)]
    assert len(monitors) == 1 and monitors[0].logging_interval == "epoch"  # the user's, not a second one of ours
    kinds = {type(cb) for cb in trainer.callbacks}
    assert {EarlyStopping, InterruptCheckpoint, RNGState, ModelCheckpoint} <= kinds
    stopping = next(cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping))
    assert torch.isfinite(stopping.best_score)  # it ran: it saw the validation loss
    assert list(Path(trainer.loggers[0].log_dir).glob("events.out.tfevents.*"))
    assert (Path(trainer.loggers[1].log_dir) / "metrics.csv").is_file()


def test_no_checkpointing(tmp_path, dataset_dir):
    cli = fit(tmp_path, dataset_dir, "--trainer.enable_checkpointing=false")
    assert cli.trainer.global_step == 2 and cli.trainer.checkpoint_callbacks == []
    assert checkpoints(tmp_path) == []


# --- through the workbench's CLI configuration ------------------------------------------------------------------


def workbench_fit(tmp_path: Path, dataset_dir: str, trainer: dict):
    """What the workbench runs (``widgets.spec.cli_config`` -> YAML -> ``fit --config``), in this process."""
    from widgets import spec

    settings = {**spec.BASE_SETTINGS, "max_seq_len": 64, "batch_size": 4, "max_steps": 2, "devices": 1,
                "lr": 1e-3}
    extra = {"trainer": {"limit_val_batches": 1, "val_check_interval": 2, **trainer},
             "data": {"dataset_dir": dataset_dir, "max_documents": 6, "num_workers": 0},
             "model": {"validation_sample_length": 4}}
    config = spec.cli_config("clm", clm_config(), settings, tmp_path / "run", extra)
    path = tmp_path / "config.yaml"
    path.write_text(spec.to_yaml(config))
    return clm.main(["fit", f"--config={path}"])


def test_workbench_without_logger_and_checkpoints_with_a_callback(tmp_path, dataset_dir):
    stopping = {"class_path": "pytorch_lightning.callbacks.EarlyStopping",
                "init_args": {"monitor": "val_loss", "patience": 100}}
    cli = workbench_fit(tmp_path, dataset_dir,
                        {"logger": False, "enable_checkpointing": False, "callbacks": [stopping]})
    kinds = [type(cb) for cb in cli.trainer.callbacks]
    assert RunJournal in kinds and EarlyStopping in kinds  # the user's callback joins the journal
    assert cli.trainer.loggers == [] and checkpoints(tmp_path) == []
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["steps"] == 2
    assert metrics["train"]["lr"] == [1e-3, 1e-3]  # the journal records the learning rate without a logger


def test_workbench_with_two_loggers(tmp_path, dataset_dir):
    loggers = [{"class_path": "pytorch_lightning.loggers.TensorBoardLogger", "init_args": {"save_dir": str(tmp_path)}},
               {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path)}}]
    cli = workbench_fit(tmp_path, dataset_dir, {"logger": loggers})
    assert [type(lg) for lg in cli.trainer.loggers] == [TensorBoardLogger, CSVLogger]
    assert (tmp_path / "run" / "checkpoints" / "final.ckpt").is_file()


def test_workbench_takes_trainer_options(tmp_path):
    from widgets import Workbench

    stopping = {"class_path": "pytorch_lightning.callbacks.EarlyStopping", "init_args": {"monitor": "val_loss"}}
    wb = Workbench("clm", run_dir=str(tmp_path), trainer={"logger": False, "enable_checkpointing": False,
                                                          "callbacks": [stopping]})
    trainer = wb.cli_config()["trainer"]
    assert trainer["logger"] is False and trainer["enable_checkpointing"] is False
    # the user's callback; the CLI adds its own and the run journal beside it when the run starts
    assert [c["class_path"] for c in trainer["callbacks"]] == ["pytorch_lightning.callbacks.EarlyStopping"]
    wb.preset_select.value = "Perceiver AR (30.6M)"  # a preset change keeps them
    assert wb.cli_config()["trainer"]["logger"] is False


# --- our callbacks without checkpointing, from Python -----------------------------------------------------------


class FailAt(pl.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 2:
            raise RuntimeError("boom")


@pytest.mark.parametrize("enable_checkpointing", [True, False])
def test_interrupt_checkpoint_follows_enable_checkpointing(tmp_path, dataset_dir, enable_checkpointing, capsys):
    from perceiver.model.text.clm import LitCausalLanguageModel

    journal = RunJournal(str(tmp_path / "run"), attention_every=0, progress_every=0)
    trainer = tiny_trainer(tmp_path, [InterruptCheckpoint(), journal, FailAt()], max_steps=5,
                           enable_checkpointing=enable_checkpointing, num_sanity_val_steps=0, limit_val_batches=0)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(LitCausalLanguageModel.create(clm_config()), clm_data(dataset_dir))
    saved = checkpoints(tmp_path)
    if enable_checkpointing:
        assert [p.name for p in saved] == ["interrupted.ckpt"]
        assert torch.load(saved[0], weights_only=True)["global_step"] == 2
    else:
        assert saved == [] and "no checkpoint saved (checkpointing is disabled)" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"
