"""The sweep's bookkeeping on Optuna, with a stand-in CLI (``fake_cli``: no torch, seconds): one point per device at a
time, pinned with CUDA_VISIBLE_DEVICES; resuming skips completed points and runs failed or killed ones again;
failures are recorded and the sweep goes on; random search adds new points."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

import perceiver.runs
from perceiver.sweep import CliTarget, Sweep, SweepError, parse_param, visible_devices

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def fake_cli_importable(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PERCEIVER_ROOT", str(tmp_path))
    monkeypatch.setenv("FAKE_CLI_SLEEP", "0")


def sweep(out, *params, sleep=0.0, **kwargs):
    os.environ["FAKE_CLI_SLEEP"] = str(sleep)  # restored by monkeypatch (fake_cli_importable)
    kwargs.setdefault("devices", "cpu")
    return Sweep(CliTarget("fake_cli"), [parse_param(p) for p in params], out, summary=False, log=lambda line: None,
                 **kwargs)


def attempts(out) -> list[str]:
    path = Path(out) / "attempts.jsonl"
    return [json.loads(line)["point"] for line in path.read_text().splitlines()] if path.exists() else []


def states(out) -> dict:
    study = optuna.load_study(study_name=Path(out).name, storage=f"sqlite:///{out}/sweep.db")
    return {t.number: (t.state.name, t.params, t.user_attrs.get("error")) for t in study.trials}


def test_points_run_in_parallel_one_per_device_each_pinned_to_it(tmp_path):
    out = tmp_path / "gpus"
    t0 = time.time()
    table = sweep(out, "optimizer.lr=0.1,0.2,0.3,0.4", sleep=1.5, devices="0,1").run()
    wall = time.time() - t0
    assert len(table) == 4 and set(table["status"]) == {"completed"}
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*/device.json"))]
    assert sorted(r["CUDA_VISIBLE_DEVICES"] for r in runs) == ["0", "0", "1", "1"]  # one device each, both used
    for device in ("0", "1"):  # never two points on one device at once
        spans = sorted((r["start"], r["end"]) for r in runs if r["CUDA_VISIBLE_DEVICES"] == device)
        assert spans[0][1] <= spans[1][0]
    overlapping = sum(a["start"] < b["end"] and b["start"] < a["end"] for i, a in enumerate(runs) for b in runs[i + 1:])
    assert overlapping >= 2  # the two devices worked at the same time
    assert wall < 4 * 1.5 + 15  # sequential would take at least 6 s of sleeping alone; mostly a sanity bound


def test_cpu_points_run_one_after_another_with_no_gpu_visible(tmp_path):
    out = tmp_path / "cpu"
    sweep(out, "optimizer.lr=0.1,0.2", sleep=0.3).run()
    runs = sorted((json.loads(p.read_text()) for p in out.glob("*/device.json")), key=lambda r: r["start"])
    assert [r["CUDA_VISIBLE_DEVICES"] for r in runs] == ["", ""]
    assert runs[0]["end"] <= runs[1]["start"]


def test_a_failed_point_is_recorded_the_others_run_and_a_rerun_retries_only_it(tmp_path):
    out = tmp_path / "fail"
    table = sweep(out, "optimizer.lr=0.1,-1,0.3").run()
    by_lr = {row["optimizer.lr"]: row for _, row in table.iterrows()}
    assert by_lr[-1]["status"] == "failed" and "optimizer.lr must be positive" in by_lr[-1]["error"]
    assert by_lr[0.1]["status"] == by_lr[0.3]["status"] == "completed"
    assert sorted(s for s, _, _ in states(out).values()) == ["COMPLETE", "COMPLETE", "FAIL"]
    assert "optimizer.lr must be positive" in next(e for s, _, e in states(out).values() if s == "FAIL")
    assert len(attempts(out)) == 3
    sweep(out, "optimizer.lr=0.1,-1,0.3").run()
    assert attempts(out)[3:] == ["001-lr=-1"]  # only the failed point ran again
    df = perceiver.runs.load(out)
    assert len(df) == 3 and df["sweep.point"].is_unique


def test_rerun_skips_completed_points_and_a_different_sweep_is_refused(tmp_path):
    out = tmp_path / "again"
    sweep(out, "optimizer.lr=0.1,0.2", "model.num_channels=8,16").run()
    assert len(attempts(out)) == 4
    table = sweep(out, "optimizer.lr=0.1,0.2", "model.num_channels=8,16").run()
    assert len(attempts(out)) == 4 and len(table) == 4
    with pytest.raises(SweepError, match="another sweep"):
        sweep(out, "optimizer.lr=0.1,0.5").run()


def test_a_killed_sweep_resumes_with_the_point_it_was_running(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "perceiver.scripts.sweep", "fake_cli", "--param", "optimizer.lr=0.1,0.2",
           "--out", str(out), "--devices", "cpu", "--no-summary"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "FAKE_CLI_SLEEP": "30"})
    deadline = time.time() + 60
    while not attempts(out) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its point, without a chance to record anything
    proc.wait()
    assert [s for s, _, _ in states(out).values()] == ["RUNNING"]
    table = sweep(out, "optimizer.lr=0.1,0.2", sleep=0.0).run()
    assert list(table["status"]) == ["completed", "completed"]
    assert sorted(attempts(out)) == sorted(["000-lr=0.1", "001-lr=0.2", attempts(out)[0]])
    assert sorted(s for s, _, _ in states(out).values()) == ["COMPLETE", "COMPLETE", "FAIL"]


def test_random_search_runs_the_number_of_trials_and_adds_new_points_when_asked_for_more(tmp_path):
    out = tmp_path / "random"
    table = sweep(out, "optimizer.lr=1e-3..1e-1:log", "model.num_channels=8..64", sampler="random", trials=3).run()
    assert len(table) == 3 and set(table["status"]) == {"completed"}
    assert table["optimizer.lr"].between(1e-3, 1e-1).all() and table["model.num_channels"].between(8, 64).all()
    sweep(out, "optimizer.lr=1e-3..1e-1:log", "model.num_channels=8..64", sampler="random", trials=3).run()
    assert len(attempts(out)) == 3
    table = sweep(out, "optimizer.lr=1e-3..1e-1:log", "model.num_channels=8..64", sampler="random", trials=5).run()
    assert len(table) == 5 and table["optimizer.lr"].is_unique


def test_tpe_minimises_the_metric_it_is_given(tmp_path):
    out = tmp_path / "tpe"
    table = sweep(out, "optimizer.lr=0.1,0.5,0.9", sampler="tpe", trials=3, metric="best.val_loss").run()
    assert list(table["best.val_loss"]) == sorted(table["best.val_loss"])  # best first
    assert table.iloc[0]["optimizer.lr"] == max(table["optimizer.lr"])  # the fake's loss falls with lr


def test_devices():
    assert visible_devices("cpu") == ["cpu"] and visible_devices("0, 2") == ["0", "2"]
    assert visible_devices(["1", "3"]) == ["1", "3"]
    with pytest.raises(SweepError, match="GPU indices"):
        visible_devices("cpu,0")
