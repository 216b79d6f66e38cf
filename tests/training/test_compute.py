"""Compute accounting (perceiver.training.compute): the FLOPs logged per step are the analytic formula times the
tokens and equal what FlopCounterMode counts in the real training step, MFU is in (0, 1] on a CPU, the values reach
CSV, TensorBoard and the run directory, totals survive a resume, and the CLI adds the monitor to every run."""

from __future__ import annotations

import csv
import json
import sys
import time

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import CSVLogger
from torch.utils.flop_counter import FlopCounterMode

from perceiver.model.text.clm import LitCausalLanguageModel
from perceiver.model.text.mlm import LitMaskedLanguageModel
from perceiver.scripts.text import clm
from perceiver.training.compute import ComputeMonitor, datasheet_peak, device_peak, format_flops, measure_peak
from perceiver.training.journal import RunJournal
from training_helpers import clm_data, mlm_data, tiny_clm_config, tiny_mlm_config


class CountFlops(Callback):
    """FlopCounterMode around each whole training step (forward, loss, backward, optimizer)."""

    def __init__(self):
        self.per_step: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.counter = FlopCounterMode(display=False)
        self.counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.counter.__exit__(None, None, None)
        self.per_step.append(self.counter.get_total_flops())


def fit(model, data, run_dir, max_steps, callbacks=(), ckpt_path=None):
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=max_steps, val_check_interval=2, check_val_every_n_epoch=None,
        limit_val_batches=1, logger=CSVLogger(str(run_dir), name="", version="csv"), enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=list(callbacks), log_every_n_steps=1,
        default_root_dir=str(run_dir),
    )
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return trainer


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("task", ["clm", "mlm"])
def test_logged_flops_are_the_formula_times_tokens_and_reach_the_run_directory(task, dataset_dir, tmp_path):
    torch.manual_seed(0)
    if task == "clm":  # prefix dropout on (0.5): the kept fraction is what is counted; no attention dropout, so
        config = tiny_clm_config(post_attention_dropout=0.0)  # CPU attention takes its fused kernel (see below)
        model, data = LitCausalLanguageModel.create(config, validation_sample_length=4), clm_data(dataset_dir)
    else:
        config = tiny_mlm_config()
        model, data = LitMaskedLanguageModel.create(config, masked_samples=[]), mlm_data(dataset_dir)
    run_dir, counter = tmp_path / "run", CountFlops()
    fit(model, data, run_dir, 4, [ComputeMonitor(), RunJournal(str(run_dir), attention_every=0), counter])

    b, n = 4, 64  # the helpers' data modules
    per_example = config.flops(n, train=True)
    steps = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "train_loss" in r]
    assert len(steps) == 4
    for i, r in enumerate(steps, start=1):
        assert r["tokens"] == i * b * n
        assert r["flops"] == i * per_example.step(b) == per_example.per_token * r["tokens"]
        assert r["flops_per_s"] > 0 and 0 < r["mfu"] <= 1
    # the real training step: FlopCounterMode counts the same products, less the attention products that the CPU's
    # fused attention kernel computes uncounted (MLM: its attention dropout takes the counted, unfused path)
    fused = 3 * (per_example.scores + per_example.values) if task == "clm" else 0
    assert counter.per_step == [b * (per_example.forward_backward - fused)] * 4

    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["flops"] == steps[-1]["flops"] and summary["tokens"] == steps[-1]["tokens"]
    assert summary["train"]["flops"] == [r["flops"] for r in steps] and 0 < summary["mfu"] <= 1
    rows = [r for r in csv.DictReader(open(run_dir / "csv" / "metrics.csv")) if r.get("flops")]
    assert [float(r["flops"]) for r in rows] == [r["flops"] for r in steps]
    assert all(r["mfu"] and r["flops_per_s"] and r["tokens"] for r in rows)


def test_totals_continue_after_resume(dataset_dir, tmp_path):
    config = tiny_clm_config()
    per_step = config.flops(64).step(4)
    first = ComputeMonitor()
    trainer = fit(LitCausalLanguageModel.create(config, validation_sample_prompt=None), clm_data(dataset_dir),
                  tmp_path / "a", 2, [first])
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    assert first.flops == 2 * per_step
    second = ComputeMonitor()
    fit(LitCausalLanguageModel.create(config, validation_sample_prompt=None), clm_data(dataset_dir), tmp_path / "b",
        3, [second], ckpt_path=str(tmp_path / "a.ckpt"))
    assert (second.flops, second.tokens) == (3 * per_step, 3 * 4 * 64)


def test_cli_adds_compute_accounting_before_the_journal(dataset_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["cli"])
    monkeypatch.chdir(tmp_path)
    cli = clm.main([
        "fit", "--data=WikiTextDataModule", "--data.source=sample", f"--data.dataset_dir={dataset_dir}",
        "--data.max_seq_len=64", "--data.batch_size=4", "--data.max_documents=6", "--data.num_workers=0",
        "--model.max_latents=16", "--model.num_channels=32", "--model.num_heads=2",
        "--model.num_self_attention_layers=1", "--model.validation_sample_prompt=null",
        "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.max_steps=2", "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false", "--trainer.callbacks+=perceiver.training.journal.RunJournal",
        f"--trainer.callbacks.run_dir={tmp_path / 'run'}",
        "--trainer.logger=TensorBoardLogger", "--trainer.logger.save_dir=logs", "--trainer.logger.name=clm",
    ])
    kinds = [type(cb) for cb in cli.trainer.callbacks]
    assert kinds.count(ComputeMonitor) == 1 and kinds.index(ComputeMonitor) < kinds.index(RunJournal)
    steps = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["tokens"] for r in steps] == [256, 512]
    assert steps[-1]["flops"] == 2 * cli.model.config.flops(64).step(4)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "logs" / "clm" / "version_0")).Reload()
    assert {"tokens", "flops", "flops_per_s", "mfu"} <= set(events.Tags()["scalars"])


def test_measuring_the_peak_leaves_the_global_rng_alone():
    """How many matrix sizes the measurement tries depends on timing; drawing them from the global RNG made the
    first batches and weights of a seeded run depend on the machine's load."""
    measure_peak.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    measure_peak("cpu", torch.float32, min_time_s=0.001)
    assert torch.equal(torch.rand(4), expected)
    measure_peak.cache_clear()


def test_cpu_peak_is_measured_once_and_gpu_peaks_come_from_the_datasheet():
    measure_peak.cache_clear()
    t = time.perf_counter()
    peak = device_peak("cpu", torch.float32)
    first_s = time.perf_counter() - t
    assert peak.source == "measured" and peak.flops_per_s > 1e8 and first_s < 5
    t = time.perf_counter()
    assert device_peak("cpu", torch.float32) == peak and time.perf_counter() - t < 0.01  # cached
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4e12
    assert datasheet_peak("NVIDIA H100 PCIe", "bfloat16") == 756e12
    assert datasheet_peak("NVIDIA H200", "tf32") == 494.7e12
    assert datasheet_peak("NVIDIA A100-SXM4-80GB", "bfloat16") == 312e12
    assert datasheet_peak("NVIDIA A10", "bfloat16") == 125e12  # not the A100
    assert datasheet_peak("NVIDIA L4", "float32") == 30.3e12 and datasheet_peak("NVIDIA L40S", "bfloat16") == 362e12
    assert datasheet_peak("Tesla V100-SXM2-16GB", "bfloat16") is None  # no bf16: measured instead
    assert datasheet_peak("Some Future GPU", "bfloat16") is None
    assert format_flops(1.234e12) == "1.23 TFLOP" and format_flops(5e8) == "500 MFLOP"
