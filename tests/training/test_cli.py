"""The Lightning CLI: documented defaults (201M MLM, 30.6M CLM), data -> model links, optimizer and schedule
resolution, and a short fit that writes TensorBoard and CSV logs, a text sample and checkpoints."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from perceiver import tasks
from perceiver.scripts.text import clm, mlm
from perceiver.training.schedulers import CosineWithWarmupLR

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["cli"])  # pytest's own arguments are not the CLI's


def num_params(model) -> int:
    return sum(p.numel() for p in model.backend_model.parameters())


def print_config(main, capsys, *args) -> dict:
    with pytest.raises(SystemExit) as e:
        main(["fit", "--print_config", *args])
    assert e.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def flatten(values: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in values.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("task", ["mlm", "clm"])
def test_print_config_shows_the_documented_preset(task, capsys):
    """The CLI's model defaults are the task's documented preset (deepmind-201m, clm-30.6m), field for field; the
    fields the data links (vocab_size, max_seq_len) come from the data module's defaults."""
    t = tasks.get(task)
    main = mlm.main if task == "mlm" else clm.main
    config = print_config(main, capsys, "--data.source=sample")
    preset = dataclasses.asdict(t.config_class.from_preset(t.model_preset))
    printed = flatten(config["model"])
    expected = {k: v for k, v in flatten(preset).items() if k not in t.linked_fields}
    assert {k: printed[k] for k in expected} == expected
    data = config["data"]
    assert data["class_path"] == t.data.replace(":", ".")
    assert {k: data["init_args"][k] for k in t.data_args} == dict(t.data_args)


@pytest.mark.slow
def test_defaults_build_the_documented_model_sizes():
    for task, main in (("mlm", mlm.main), ("clm", clm.main)):
        t = tasks.get(task)
        cli = main(["--data.source=sample"], run=False)
        with torch.device("meta"):
            preset = t.model_class(t.config_class.from_preset(t.model_preset))
        assert cli.model.backend_model.config == preset.config
        assert num_params(cli.model) == sum(p.numel() for p in preset.parameters())


def test_data_links_and_optimizer_resolution():
    args = [
        "--data=WikiTextDataModule", "--data.source=sample", "--data.max_seq_len=96", "--model.max_latents=32",
        "--model.num_channels=32", "--model.num_self_attention_layers=1", "--optimizer=Lamb", "--optimizer.lr=1e-3",
    ]
    cli = clm.main(args, run=False)
    assert cli.model.backend_model.config.max_seq_len == 96
    assert cli.model.backend_model.config.vocab_size == cli.datamodule.vocab_size == 262
    optimizer = cli.model.configure_optimizers()
    assert type(optimizer).__module__.startswith("pytorch_optimizer") and type(optimizer).__name__ == "Lamb"

    args = [
        "--data=WikipediaDataModule", "--data.source=sample", "--data.max_seq_len=64", "--model.num_latents=8",
        "--model.num_latent_channels=32", "--model.encoder.num_input_channels=32",
        "--model.encoder.num_self_attention_layers_per_block=1", "--optimizer=AdamW",
    ]
    cli = mlm.main(args, run=False)
    config = cli.model.backend_model.config
    assert config.encoder.max_seq_len == config.decoder.max_seq_len == 64
    assert config.encoder.vocab_size == config.decoder.vocab_size == 262
    assert type(cli.model.configure_optimizers()).__name__ == "AdamW"


def test_fit_writes_logs_samples_checkpoints_and_links_cosine_steps(dataset_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = clm.main([
        "fit", "--data=WikiTextDataModule", "--data.source=sample", f"--data.dataset_dir={dataset_dir}",
        "--data.max_seq_len=64", "--data.batch_size=4", "--data.max_documents=6", "--data.num_workers=0",
        "--model.max_latents=16", "--model.num_channels=32", "--model.num_heads=2",
        "--model.num_self_attention_layers=1", "--model.validation_sample_length=8",
        "--optimizer=Adam", "--optimizer.lr=1e-3",
        "--lr_scheduler=CosineWithWarmupLR", "--lr_scheduler.warmup_steps=1",
        "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.max_steps=3", "--trainer.val_check_interval=3",
        "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
        "--trainer.logger=TensorBoardLogger", "--trainer.logger.save_dir=logs", "--trainer.logger.name=clm",
    ])
    scheduler = cli.trainer.lr_scheduler_configs[0].scheduler
    assert isinstance(scheduler, CosineWithWarmupLR) and scheduler.training_steps == 3
    run = tmp_path / "logs" / "clm" / "version_0"
    assert list(run.glob("events.out.tfevents.*"))
    metrics = (run / "csv" / "metrics.csv").read_text()
    for name in ("train_loss", "train_bpb", "train_ppl", "val_loss", "val_bpb", "val_ppl", "lr-Adam"):
        assert name in metrics
    assert "A man" in (run / "csv" / "samples.csv").read_text()
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "step=3.ckpt").is_file()
    assert (run / "config.yaml").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("cwd", [REPO, "/"])
def test_script_runs_by_path_from_anywhere(cwd):
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run(
        [sys.executable, str(REPO / "perceiver" / "scripts" / "text" / "mlm.py"), "fit", "--help"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "--model.encoder.num_input_channels" in out.stdout
