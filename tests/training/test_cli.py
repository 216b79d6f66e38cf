"""The Lightning CLI: documented defaults (201M MLM, 30.6M CLM), data -> model links, optimizer and schedule
resolution, a short fit that writes its run directory (journal, TensorBoard and CSV logs, a text sample,
checkpoints), run directories that are never reused by accident, devices=-1 on a CPU, and a help that answers
without importing torch."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from perceiver import tasks
from perceiver.runs.paths import RunDirError
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


TINY_FIT = [
    "--data=WikiTextDataModule", "--data.source=sample", "--data.max_seq_len=64", "--data.batch_size=4",
    "--data.max_documents=6", "--data.num_workers=0", "--model.max_latents=16", "--model.num_channels=32",
    "--model.num_heads=2", "--model.num_self_attention_layers=1", "--model.validation_sample_length=8",
    "--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
    "--journal.progress_every=0", "--journal.attention_every=0",
]


def test_fit_writes_logs_samples_checkpoints_and_links_cosine_steps(dataset_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PERCEIVER_ROOT", str(tmp_path))
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
    logs = tmp_path / "logs" / "clm" / "version_0"  # the configured logger keeps its place
    assert list(logs.glob("events.out.tfevents.*"))
    metrics = (logs / "csv" / "metrics.csv").read_text()
    for name in ("train_loss", "train_bpb", "train_ppl", "val_loss", "val_bpb", "val_ppl", "lr-Adam"):
        assert name in metrics
    assert "A man" in (logs / "csv" / "samples.csv").read_text()
    # everything else in a new run directory below the root: runs/clm/<time>
    [run] = (tmp_path / "runs" / "clm").iterdir()
    assert cli.run_dir == run
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "step=3.ckpt").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())  # the resolved configuration
    assert config["run_dir"] == str(run) and config["model"]["num_channels"] == 32
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "completed" and status["step"] == 3 and status["task"] == "clm"
    assert json.loads((run / "env.json").read_text())["task"] == "clm"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train_loss" in r] == [1, 2, 3] and "train_bpb" in records[0]
    assert (run / "samples.jsonl").is_file() and (run / "checkpoints" / "final.ckpt").is_file()
    assert (run / "plots" / "curves.png").is_file() and (run / "plots" / "byte_attention.png").is_file()


def test_a_run_directory_is_never_reused_by_accident(dataset_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEIVER_ROOT", str(tmp_path))
    args = ["fit", *TINY_FIT, f"--data.dataset_dir={dataset_dir}", "--run_dir=runs/exact"]
    clm.main(args)
    run = tmp_path / "runs" / "exact"
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    with pytest.raises(RunDirError, match="holds an earlier run"):
        clm.main(args)  # a second plain fit: refused before anything is written
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["final.ckpt", "last.ckpt", "step=2.ckpt"]

    cli = clm.main([*args, "--overwrite=true"])  # explicitly replaced: no last-v1.ckpt beside the old last.ckpt
    assert cli.run_dir == run
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["final.ckpt", "last.ckpt", "step=2.ckpt"]

    cli = clm.main(["fit", *TINY_FIT, f"--data.dataset_dir={dataset_dir}"])  # the default: a new directory
    assert cli.run_dir.parent == tmp_path / "runs" / "clm" and cli.run_dir != run


def test_devices_minus_one_runs_on_a_cpu_only_machine(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    cli = clm.main(["--data.source=sample", "--trainer.devices=-1", "--model.num_channels=32",
                    "--model.max_latents=16", "--model.num_self_attention_layers=1", "--data.max_seq_len=64"],
                   run=False)
    assert cli.trainer.num_devices == 1 and type(cli.trainer.accelerator).__name__ == "CPUAccelerator"
    assert "No GPU found; training on 1 CPU device." in capsys.readouterr().out
    with pytest.raises(ValueError, match="devices.*got 'abc'"):
        clm.main(["--data.source=sample", "--trainer.devices=abc"], run=False)


def test_help_names_perceiver_and_answers_without_torch():
    """The top-level help comes from the task registry: no torch, no Lightning (their import alone takes seconds;
    benchmarks/cli_help.py measures the time)."""
    code = ("import sys, runpy\nsys.argv = ['clm', '--help']\ntry:\n    runpy.run_module("
            "'perceiver.scripts.text.clm', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'pytorch_lightning', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "Perceiver causal language model (Perceiver AR)" in out.stdout
    examples = out.stdout.split("examples:")[1].split("More:")[0]
    assert examples.count("python -m perceiver.scripts.text.clm fit") == 2


def test_fit_help_lists_the_data_options(capsys):
    with pytest.raises(SystemExit):
        mlm.main(["fit", "--help"])
    out = capsys.readouterr().out
    data = out.split("data options of perceiver.data.text.wikipedia.WikipediaDataModule")[1]
    for option in ("--data.source", "--data.max_seq_len (default: 2048)", "--data.batch_size", "--data.mask_prob"):
        assert option in data
    assert "--run_dir" in out and "--journal.attention_every" in out
    assert "Perceiver masked language model (Perceiver IO)" in out.split("options:")[0]


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
