"""A real sweep: ``python -m perceiver.scripts.sweep clm`` over a 2 x 2 grid of a tiny Perceiver AR on the bundled
Wikipedia sample, a few steps each. Four complete run directories, a registry DataFrame with four rows and the swept
columns, TensorBoard HParams that compare the same runs, a rerun that runs nothing, an invalid value recorded as a
failed point with the CLI's reason, and the summary notebook rendering its plots under papermill."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import perceiver.runs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--data.source=sample", "--data.max_seq_len=64", "--data.batch_size=4", "--data.num_workers=0",
        "--model.num_heads=2", "--model.num_self_attention_layers=1", "--model.max_latents=16",
        "--model.validation_sample_length=4", "--trainer.max_steps=3", "--trainer.val_check_interval=3",
        "--trainer.limit_val_batches=1", "--trainer.enable_model_summary=false", "--journal.attention_every=0",
        "--trainer.enable_checkpointing=false"]
GRID = ["--param", "optimizer.lr=1e-3,3e-3", "--param", "model.num_channels=16,32"]


def sweep(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PERCEIVER_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "perceiver.scripts.sweep", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-root")
    result = sweep(root, "clm", *GRID, "--out", "runs/grid", "--no-summary", "--devices", "cpu", "--", *TINY)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, root / "runs" / "grid", result.stdout


def test_a_2x2_sweep_leaves_4_complete_runs_and_a_registry_with_the_swept_columns(grid_sweep):
    root, out, stdout = grid_sweep
    points = sorted(p for p in out.iterdir() if p.is_dir())
    assert [p.name for p in points] == ["000-lr=0.001_num_channels=16", "001-lr=0.001_num_channels=32",
                                        "002-lr=0.003_num_channels=16", "003-lr=0.003_num_channels=32"]
    for point in points:  # a normal, complete run directory each
        for name in ("config.yaml", "status.json", "env.json", "metrics.json", "metrics.jsonl", "train.log",
                     "plots/curves.png", "sweep.json"):
            assert (point / name).is_file(), f"{point.name}/{name}"
        assert json.loads((point / "status.json").read_text())["status"] == "completed"
    runs = perceiver.runs.load(out)
    assert len(runs) == 4 and set(runs["status"]) == {"completed"}
    assert sorted(perceiver.runs.swept(runs)) == ["model.num_channels", "optimizer.lr"]
    assert sorted(zip(runs["optimizer.lr"], runs["model.num_channels"])) == [
        (0.001, 16), (0.001, 32), (0.003, 16), (0.003, 32)]
    for column in ("best.val_loss", "final.train_loss", "steps", "tokens", "flops", "wall_s", "params",
                   "git_commit", "task", "optimizer.class", "data.class", "trainer.max_steps"):
        assert runs[column].notna().all(), column
    assert (runs["steps"] == 3).all() and (runs["task"] == "clm").all()
    assert (runs["params"] > 0).all() and runs.loc[runs["model.num_channels"] == 32, "params"].min() > \
        runs.loc[runs["model.num_channels"] == 16, "params"].max()
    for _, row in runs.iterrows():  # the registry's values are those of the run's own files
        summary = json.loads(Path(row["path"], "metrics.json").read_text())
        assert row["best.val_loss"] == summary["best"]["val_loss"] and row["flops"] == summary["flops"]
    best = runs.sort_values("best.val_loss").iloc[0]
    assert f"best: optimizer.lr={best['optimizer.lr']:g}, model.num_channels={best['model.num_channels']}" in stdout


def test_tensorboard_hparams_compare_the_same_runs(grid_sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    _, out, _ = grid_sweep
    for _, row in perceiver.runs.load(out).iterrows():
        events = EventAccumulator(str(Path(row["path"], "logs")), size_guidance={"scalars": 0, "tensors": 0})
        events.Reload()
        content = events.PluginTagToContent("hparams")
        hparams = metadata.parse_session_start_info_plugin_data(content["_hparams_/session_start_info"]).hparams
        assert hparams["optimizer.lr"].number_value == pytest.approx(row["optimizer.lr"])
        assert hparams["model.num_channels"].number_value == row["model.num_channels"]
        assert hparams["data.class"].string_value == "WikiTextDataModule"
        experiment = metadata.parse_experiment_plugin_data(content["_hparams_/experiment"])
        assert {"best/val_loss", "final/val_loss", "final/train_loss"} <= {m.name.tag for m in experiment.metric_infos}
        assert events.Scalars("best/val_loss")[-1].value == pytest.approx(row["best.val_loss"])


def test_running_the_same_sweep_again_skips_all_4(grid_sweep):
    root, out, _ = grid_sweep
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/status.json")}
    result = sweep(root, "clm", *GRID, "--out", "runs/grid", "--no-summary", "--devices", "cpu", "--", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all 4 points of" in result.stdout and "nothing to run" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/status.json")} == before


def test_an_invalid_value_is_recorded_as_failed_with_the_clis_reason(tmp_path):
    # (that the other points of a sweep still run: tests/sweep/test_study.py and test_sweep_notebook.py)
    result = sweep(tmp_path, "clm", "--param", "model.num_channels=-8", "--out", "runs/invalid", "--no-summary",
                   "--devices", "cpu", "--", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = perceiver.runs.load(tmp_path / "runs" / "invalid").to_dict("records")
    assert run["status"] == "failed" and run["model.num_channels"] == -8
    assert run["error"].startswith("ArgumentError: --model.num_channels") and "positive" in run["error"]
    assert "failed: ArgumentError: --model.num_channels" in result.stdout


@pytest.mark.notebook
def test_the_summary_notebook_renders_the_comparison_plots_under_papermill(grid_sweep, tmp_path):
    import papermill

    root, out, _ = grid_sweep
    executed = tmp_path / "sweep.ipynb"
    env_root = os.environ.get("PERCEIVER_ROOT")
    papermill.execute_notebook(str(ROOT / "notebooks" / "sweep.ipynb"), str(executed), cwd=str(ROOT / "notebooks"),
                               parameters={"sweep_dir": str(out)}, progress_bar=False)
    assert os.environ.get("PERCEIVER_ROOT") == env_root
    nb = nbformat.read(executed, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "4 runs in" in text and "4 completed" in text and "swept: " in text and "best: " in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # summary, best.val_loss against each of the two swept fields, parallel coordinates
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == sorted([
        "summary.png", "best.val_loss-vs-model.num_channels.png", "best.val_loss-vs-optimizer.lr.png",
        "parallel-coordinates.png"])
