"""The run registry reads what run directories hold: the configuration flattened, final and best metrics by each
metric's goal, compute, status with the error, a sweep point's values; ``swept`` names what differs."""

import json

import pandas as pd
import pytest
from run_dirs import write_run

import perceiver.runs
from perceiver.runs.registry import read_run
from perceiver.training.journal import best_values
from perceiver import tasks


def test_one_row_per_run_with_config_metrics_compute_and_status(tmp_path):
    write_run(tmp_path / "a", lr=1e-3, channels=64, val_losses=(5.0, 4.0, 4.5))
    write_run(tmp_path / "group" / "b", lr=3e-3, channels=64, val_losses=(4.8, 4.2))
    df = perceiver.runs.load(tmp_path)
    assert list(df["run"]) == ["a", "group/b"] and len(df) == 2
    a = df.set_index("run").loc["a"]
    assert (a["optimizer.lr"], a["optimizer.class"], a["data.class"], a["data.max_seq_len"]) == (
        1e-3, "AdamW", "WikiTextDataModule", 64)
    assert a["optimizer.betas"] == "[0.9, 0.999]" and a["model.num_channels"] == 64 and a["seed_everything"] == 0
    assert (a["best.val_loss"], a["final.val_loss"]) == (4.0, 4.5)  # best by the loss's goal; final is the last
    assert (a["steps"], a["tokens"], a["flops"], a["wall_s"], a["params"]) == (4, 1024, 4 * 64e6, 2.0, 64000)
    assert (a["status"], a["task"], a["git_commit"], a["mfu"]) == ("completed", "clm", "abc123", 0.1)
    assert isinstance(a["started"], pd.Timestamp)
    assert "run_dir" not in df and "trainer.default_root_dir" not in df  # where a run went is no hyperparameter
    assert perceiver.runs.swept(df) == ["optimizer.lr"]


def test_best_follows_the_metrics_goal(tmp_path):
    run = write_run(tmp_path / "clf", task="image_classifier", val_losses=(1.0, 0.9, 1.1),
                    metrics={"val_accuracy": 0.5})
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    accuracies = iter([0.6, 0.8, 0.7])
    for r in lines:
        if "val_accuracy" in r:
            r["val_accuracy"] = next(accuracies)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    row = read_run(run)
    assert (row["best.val_accuracy"], row["best.val_loss"], row["final.val_accuracy"]) == (0.8, 0.9, 0.7)
    # the journal's metrics.json says the same, with the step of each best value
    validations = [r for r in lines if "val_loss" in r]
    summary = best_values(validations, tasks.get("image_classifier"))
    assert summary["best"] == {"val_loss": 0.9, "val_accuracy": 0.8}
    assert summary["best_step"]["val_accuracy"] == validations[1]["step"]
    assert tasks.metric_goal("val_masked_accuracy") == "max" and tasks.metric_goal("val_bpb") == "min"


def test_failed_interrupted_stopped_and_vanished_runs(tmp_path):
    write_run(tmp_path / "stopped", status="stopped", reason="STOP file")
    write_run(tmp_path / "interrupted", status="stopped", reason="SIGTERM")
    write_run(tmp_path / "running-gone", status="running")
    status = json.loads((tmp_path / "running-gone" / "status.json").read_text())
    (tmp_path / "running-gone" / "status.json").write_text(json.dumps({**status, "pid": 2 ** 22 + 7,
                                                                        "host": __import__("socket").gethostname()}))
    # a configuration error: the CLI writes status.json before any training (no metrics, no env.json)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.yaml").write_text("model:\n  num_channels: -8\n")
    (bad / "status.json").write_text(json.dumps({"status": "failed", "task": "clm", "error":
                                                 "ArgumentError: --model.num_channels must be a positive integer"}))
    df = perceiver.runs.load(tmp_path).set_index("run")
    assert df.loc["stopped", "status"] == "stopped" and df.loc["interrupted", "status"] == "interrupted"
    assert df.loc["running-gone", "status"] == "failed"
    assert df.loc["bad", "status"] == "failed" and df.loc["bad", "error"].startswith("ArgumentError: --model")
    assert df.loc["bad", "model.num_channels"] == -8 and df.loc["bad", "steps"] == 0
    assert sorted(perceiver.runs.load(tmp_path, status=["failed"]).run) == ["bad", "running-gone"]


def test_a_sweep_point_that_never_wrote_a_config_still_has_its_values(tmp_path):
    point = tmp_path / "000-lr=0.1"
    point.mkdir()
    (point / "sweep.json").write_text(json.dumps({"point": point.name, "trial": 3, "params": {"optimizer.lr": 0.1}}))
    (point / "status.json").write_text(json.dumps({"status": "failed", "error": "ValueError: cannot start"}))
    write_run(tmp_path / "001-lr=0.2", lr=0.2)
    df = perceiver.runs.load(tmp_path)
    assert sorted(df["optimizer.lr"]) == [0.1, 0.2]
    row = df.set_index("run").loc["000-lr=0.1"]
    assert (row["sweep.point"], row["sweep.trial"], row["status"]) == ("000-lr=0.1", 3, "failed")
    assert perceiver.runs.swept(df) == ["optimizer.lr"]  # the failed point's missing config is no difference


def test_relative_roots_are_taken_from_the_repository_root(tmp_path, monkeypatch):
    write_run(tmp_path / "runs" / "x")
    monkeypatch.setenv("PERCEIVER_ROOT", str(tmp_path))
    monkeypatch.chdir("/")
    assert list(perceiver.runs.load("runs")["run"]) == ["x"]
    assert len(perceiver.runs.load("runs/nothing-here")) == 0
