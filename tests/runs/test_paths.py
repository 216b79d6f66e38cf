"""Run paths: one root whoever asks (repository root from any subdirectory, $PERCEIVER_ROOT, else the working
directory), a new directory per {time} run, no reuse of a directory that holds a run, the latest run of a folder;
and the status file that the dashboard and the registry read."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perceiver.runs import paths
from perceiver.runs import status as run_status

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_root_env(monkeypatch):
    monkeypatch.delenv(paths.ROOT_VAR, raising=False)


def test_root_is_the_repository_root_from_any_subdirectory(no_root_env, monkeypatch):
    for cwd in (REPO, REPO / "notebooks", REPO / "perceiver" / "runs"):  # CLI, JupyterLab's kernel, anywhere below
        monkeypatch.chdir(cwd)
        assert paths.root() == REPO
        assert paths.resolve("runs/clm") == REPO / "runs" / "clm"
    # a kernel started in notebooks/ and a process started at the root agree (separate processes, no shared state)
    code = "from perceiver.runs.paths import root; print(root())"
    env = {k: v for k, v in os.environ.items() if k != paths.ROOT_VAR}
    out = {subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60).stdout.strip() for cwd in (REPO, REPO / "notebooks")}
    assert out == {str(REPO)}


def test_root_from_environment_and_outside_a_project(no_root_env, monkeypatch, tmp_path):
    outside = tmp_path / "plain" / "dir"
    outside.mkdir(parents=True)
    monkeypatch.chdir(outside)
    assert paths.root() == outside  # no pyproject.toml or .git above: the working directory
    (tmp_path / "plain" / "pyproject.toml").write_text("")
    assert paths.root() == tmp_path / "plain"
    monkeypatch.setenv(paths.ROOT_VAR, str(tmp_path / "elsewhere"))
    assert paths.root() == tmp_path / "elsewhere"
    assert paths.resolve("runs/x") == tmp_path / "elsewhere" / "runs" / "x"
    assert paths.resolve(tmp_path / "abs") == tmp_path / "abs"  # absolute paths stay
    assert paths.relative(tmp_path / "elsewhere" / "runs" / "x") == "runs/x"
    assert paths.relative(tmp_path / "abs") == str(tmp_path / "abs")


def test_a_time_template_makes_a_new_directory_each_time(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ROOT_VAR, str(tmp_path))
    made = [paths.prepare_run_dir("runs/{task}/{time}", "clm") for _ in range(3)]  # within one second
    assert len(set(made)) == 3 and all(p.is_dir() and p.parent == tmp_path / "runs" / "clm" for p in made)
    assert made[1].name == made[0].name + "-2"
    with pytest.raises(ValueError, match="task"):
        paths.expand("runs/{task}/{time}")


def test_a_directory_with_a_run_is_refused_unless_overwritten_or_resumed(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ROOT_VAR, str(tmp_path))
    run = paths.prepare_run_dir("runs/exact")
    assert run == tmp_path / "runs" / "exact" and not paths.has_run(run)
    (run / "config.yaml").write_text("x")  # written before a start: not yet a run
    assert paths.prepare_run_dir("runs/exact") == run
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_text("weights")
    (run / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(paths.RunDirError, match="holds an earlier run.*--overwrite=true") as e:
        paths.prepare_run_dir("runs/exact")
    assert e.value.path == run and (run / "metrics.jsonl").is_file()  # nothing lost
    assert paths.prepare_run_dir("runs/exact", resume_from=run / "checkpoints" / "last.ckpt") == run
    assert (run / "metrics.jsonl").is_file()
    with pytest.raises(paths.RunDirError):  # a checkpoint of another run does not unlock it
        paths.prepare_run_dir("runs/exact", resume_from=tmp_path / "other.ckpt")
    assert paths.prepare_run_dir("runs/exact", overwrite=True) == run
    assert list(run.iterdir()) == []


def test_latest_run_and_checkpoints(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ROOT_VAR, str(tmp_path))
    assert paths.latest_run("runs/clm") is None
    runs = []
    for started in (300.0, 100.0, 200.0):  # the start time decides, not the name
        run = paths.prepare_run_dir("runs/clm/{time}")
        run_status.write(run, status="completed", started_at=started)
        runs.append(run)
    assert paths.runs_under("runs/clm") == [runs[1], runs[2], runs[0]]
    assert paths.latest_run("runs/clm") == runs[0]
    assert paths.latest_run("runs/{task}/{time}", task="clm") == runs[0]  # a template: the folder of its runs
    assert paths.latest_run(runs[1]) == runs[1]  # a run directory is itself

    ckpts = runs[0] / "checkpoints"
    ckpts.mkdir()
    for i, name in enumerate(("final.ckpt", "last.ckpt")):
        (ckpts / name).write_text(name)
        os.utime(ckpts / name, (1000 + i, 1000 + i))
    assert paths.latest_checkpoint(runs[0]) == ckpts / "last.ckpt"
    assert paths.resume_checkpoint(runs[0]) == ckpts / "last.ckpt"
    run_status.write(runs[0], checkpoint="checkpoints/final.ckpt")  # where a stopped run resumes exactly
    assert paths.resume_checkpoint(runs[0]) == ckpts / "final.ckpt"


def test_status_file(tmp_path):
    assert run_status.read(tmp_path) == {} and run_status.describe({}) == "not started"
    run_status.write(tmp_path, status="running", step=3, max_steps=10, task="clm")
    s = run_status.read(tmp_path)
    assert s["status"] == "running" and s["pid"] == os.getpid() and s["started_at"] <= s["updated_at"]
    assert run_status.describe(s) == "running, step 3/10"
    run_status.write(tmp_path, status="stopped", reason="STOP file")
    assert run_status.describe(run_status.read(tmp_path)) == "stopped at step 3/10 (STOP file)"

    output = "step 1\nTraceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad source\n"
    fields = run_status.error_fields(output)
    assert fields["error"] == "ValueError: bad source" and fields["error_tail"].endswith("ValueError: bad source")
    run_status.write(tmp_path, status="failed", **fields)
    assert run_status.describe(run_status.read(tmp_path)) == "failed at step 3/10: ValueError: bad source"

    # a "running" status whose process is gone reads as failed (the dashboard does not wait for it forever)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "status.json").write_text(json.dumps({"status": "running", "pid": dead.pid,
                                                       "host": __import__("socket").gethostname()}))
    s = run_status.read(tmp_path)
    assert s["status"] == "failed" and str(dead.pid) in s["error"]
    assert run_status.read(tmp_path, check_process=False)["status"] == "running"
