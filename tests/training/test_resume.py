"""Exact resume: a run interrupted (SIGTERM) or stopped (the workbench's STOP file) after k steps and resumed from its
checkpoint has, at every later step, the loss of an uninterrupted run with the same seed. Dropout, prefix dropout
(clm) and dynamic masking (mlm) stay on, and the interruption lies in the second epoch, so the per-epoch shuffle and
the mid-epoch skip both count."""

from __future__ import annotations

import json
import os
import signal

import pytorch_lightning as pl
import pytest
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from perceiver.model.text.clm import LitCausalLanguageModel
from perceiver.model.text.mlm import LitMaskedLanguageModel
from perceiver.runs import paths
from perceiver.runs import status as run_status
from perceiver.training.callbacks import InterruptCheckpoint, RNGState
from perceiver.training.journal import RunJournal
from training_helpers import LossRecorder, clm_data, mlm_data, tiny_clm_config, tiny_mlm_config, tiny_trainer


STEPS_PER_EPOCH = 4
MAX_STEPS = 10


class SigtermAt(Callback):
    """Sends SIGTERM to this process at the end of training step ``step`` (as a cluster scheduler would)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def run(task, dataset_dir, root, max_steps, ckpt_path=None, interrupt_at=None):
    pl.seed_everything(1)
    task, _, workers = task.partition("-")  # "mlm-workers": masking in a DataLoader worker process
    if task == "clm":
        data, model = clm_data(dataset_dir), LitCausalLanguageModel.create(tiny_clm_config(), validation_sample_length=4)
    else:
        data, model = mlm_data(dataset_dir, num_workers=1 if workers else 0), LitMaskedLanguageModel.create(tiny_mlm_config())
    losses = LossRecorder()
    callbacks = [losses, RNGState(), InterruptCheckpoint(), ModelCheckpoint(dirpath=str(root / "checkpoints"))]
    if interrupt_at is not None:
        callbacks.append(SigtermAt(interrupt_at))
    trainer = tiny_trainer(root, callbacks, max_steps=max_steps, limit_train_batches=STEPS_PER_EPOCH,
        # clm: SIGTERM at a training step boundary; mlm: validation follows step k, so SIGTERM lands mid-validation
        val_check_interval=3 if task == "clm" else 2,
    )
    if interrupt_at is not None:
        with pytest.raises(SystemExit):  # Lightning's SIGTERMException
            trainer.fit(model, data, ckpt_path=ckpt_path)
    else:
        trainer.fit(model, data, ckpt_path=ckpt_path)
    return losses.losses, trainer, data


@pytest.mark.parametrize("task", ["clm", "mlm", pytest.param("mlm-workers", marks=pytest.mark.slow)])
def test_resume_after_sigterm_equals_uninterrupted_run(task, dataset_dir, tmp_path):
    full, _, _ = run(task, dataset_dir, tmp_path / "full", max_steps=MAX_STEPS)
    k = STEPS_PER_EPOCH + 2  # in the second epoch, mid-epoch

    first, _, _ = run(task, dataset_dir, tmp_path / "run", max_steps=MAX_STEPS, interrupt_at=k)
    ckpt = tmp_path / "run" / "checkpoints" / "interrupted.ckpt"
    assert ckpt.is_file()
    assert max(first) == k
    resumed, trainer, _ = run(task, dataset_dir, tmp_path / "run", max_steps=MAX_STEPS, ckpt_path=str(ckpt))

    assert trainer.global_step == MAX_STEPS
    assert sorted(resumed) == list(range(k + 1, MAX_STEPS + 1))
    for step in range(1, k + 1):
        assert first[step] == full[step], f"step {step}: {first[step]} != {full[step]} (same seed, before interrupt)"
    for step in range(k + 1, MAX_STEPS + 1):
        assert resumed[step] == full[step], f"step {step}: resumed {resumed[step]} != uninterrupted {full[step]}"


class StopFileAt(Callback):
    """Creates the run's STOP file at the end of step ``step``, as the workbench's Stop button does."""

    def __init__(self, run_dir, step: int):
        self.run_dir, self.step = run_dir, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            (self.run_dir / "STOP").touch()


def journal_run(dataset_dir, run_dir, ckpt_path=None, stop_at=None):
    pl.seed_everything(1)
    data = clm_data(dataset_dir)
    model = LitCausalLanguageModel.create(tiny_clm_config(), validation_sample_length=4)
    losses = LossRecorder()
    stop = [StopFileAt(run_dir, stop_at)] if stop_at is not None else []
    callbacks = [losses, *stop, RunJournal(str(run_dir), attention_every=0, progress_every=0), RNGState(),
                 InterruptCheckpoint(), ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), save_last=True)]
    trainer = tiny_trainer(run_dir, callbacks, max_steps=MAX_STEPS, limit_train_batches=STEPS_PER_EPOCH,
                           val_check_interval=3)
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return losses.losses


def test_resume_after_stop_equals_uninterrupted_run(dataset_dir, tmp_path):
    """Stop (the STOP file) mid-epoch, then Resume from the checkpoint the run's status names: every later loss,
    and the run's own metrics.jsonl, equal those of an uninterrupted run."""
    full = journal_run(dataset_dir, tmp_path / "full")
    run = tmp_path / "run"
    first = journal_run(dataset_dir, run, stop_at=STEPS_PER_EPOCH + 1)
    k = max(first)  # the journal sees the file after the step that made it
    assert k < MAX_STEPS and run_status.read(run)["status"] == "stopped"
    ckpt = paths.resume_checkpoint(run)
    assert ckpt == run / "checkpoints" / "final.ckpt"
    # the loop's own last.ckpt, written after the stop, counts the epoch as done: newer, but not the one to resume
    assert paths.latest_checkpoint(run) == run / "checkpoints" / "last.ckpt"
    (run / "STOP").unlink()
    resumed = journal_run(dataset_dir, run, ckpt_path=str(ckpt))
    assert sorted(resumed) == list(range(k + 1, MAX_STEPS + 1))
    for step in range(k + 1, MAX_STEPS + 1):
        assert resumed[step] == full[step], f"step {step}: resumed {resumed[step]} != uninterrupted {full[step]}"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [(r["step"], r["train_loss"]) for r in records if "train_loss" in r]
    assert train == sorted(full.items())  # one record per step, no duplicates across the stop
    assert run_status.read(run)["status"] == "completed"
