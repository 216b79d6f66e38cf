"""Notebook regression tests: each notebook runs headless through papermill with tiny parameters.

Checks: the loss fell by at least ``LOSS_DROP`` nats; first/final losses match the committed reference figures
(``reference/<task>.json``) within ``REL_TOL``; the executed notebook holds PNG outputs; the run directory is
complete; the report cells print held-out bits per byte (CLM) and masked-byte accuracy (MLM). The runs are
pinned to one CPU device and one torch thread (``devices="cpu"``, ``cpu_threads=1``), whatever the machine has,
so the losses are reproducible exactly on one machine; the tolerance absorbs other CPUs and torch builds. Refresh
the references with ``PERCEIVER_UPDATE_REFERENCE=1`` (they record these parameters, and the test refuses
references recorded with others).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from perceiver import tasks

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).parent / "reference"
LOSS_DROP = 1.0  # nats between the first and the final training loss
REL_TOL = 0.02
TINY = {"max_steps": 20, "max_seq_len": 128, "batch_size": 8, "seed": 0, "devices": "cpu", "cpu_threads": 1}
RUN_FILES = ["config.yaml", "status.json", "metrics.json", "metrics.jsonl", "env.json", "train.log",
             "plots/curves.png", "checkpoints/final.ckpt", "samples.jsonl"]


def figure_files(task: str) -> list[str]:
    """``plots/<figure function>.png`` of each of the task's figures (``Task.figures``)."""
    return [f"plots/{path.rpartition(':')[2]}.png" for path in tasks.get(task).figures]


def papermill(notebook: str, out: Path, params: dict, cwd: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "papermill", str(ROOT / "notebooks" / notebook), str(out), "--cwd", str(cwd),
           "--log-level", "WARNING"]
    for k, v in params.items():
        cmd += ["-p", k, str(v)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs():
    """Both training notebooks concurrently (each trains with one CPU thread), then generate.ipynb."""
    # a private directory: concurrent pytest sessions prune each other's basetemp directories
    tmp = Path(tempfile.mkdtemp(prefix="perceiver-notebooks-"))
    procs = {task: papermill(f"train_{task}.ipynb", tmp / f"train_{task}.ipynb",
                             {**TINY, "run_dir": str(tmp / task)}, tmp) for task in ("clm", "mlm")}
    for task, p in procs.items():
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, f"train_{task}.ipynb failed:\n{out[-3000:]}"
    p = papermill("generate.ipynb", tmp / "generate.ipynb",
                  {"clm_run_dir": str(tmp / "clm"), "mlm_run_dir": str(tmp / "mlm"), "max_new_tokens": 16}, tmp)
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, f"generate.ipynb failed:\n{out[-3000:]}"
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def png_outputs(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def text_outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("task", ["clm", "mlm"])
def test_training_notebook(runs, task):
    run = runs / task
    missing = [f for f in [*RUN_FILES, *figure_files(task)] if not (run / f).is_file()]
    assert not missing, f"run directory incomplete: {missing}"
    assert list((run / "attention").glob("step-*.npz"))
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["steps"] == TINY["max_steps"]
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
    first, final = m["first_train_loss"], m["final"]["train_loss"]
    assert first - final >= LOSS_DROP, f"loss fell only from {first:.3f} to {final:.3f}"
    assert m["tokens_per_s"] > 0 and m["wall_s"] > 0 and "val_loss" in m["final"]
    if task == "clm":
        assert "val_bpb" in m["final"] and "train_bpb" in m["train"]
    env = json.loads((run / "env.json").read_text())
    assert env["packages"]["torch"] and "commit" in env["git"] and env["seed"] == "0"
    assert env["device"].startswith("1 x cpu") and env["torch_threads"] == TINY["cpu_threads"]  # the pinned settings

    figures = {"first_train_loss": first, "final_train_loss": final, "final_val_loss": m["final"]["val_loss"]}
    ref_path = REFERENCE / f"{task}.json"
    if os.environ.get("PERCEIVER_UPDATE_REFERENCE"):
        ref_path.parent.mkdir(exist_ok=True)
        ref_path.write_text(json.dumps({"params": TINY, **figures}, indent=1) + "\n")
    ref = json.loads(ref_path.read_text())
    assert ref["params"] == TINY, "the reference was recorded with other parameters: re-record it"
    for key, value in figures.items():
        assert value == pytest.approx(ref[key], rel=REL_TOL), f"{key}: {value} vs reference {ref[key]}"

    out = runs / f"train_{task}.ipynb"
    assert png_outputs(out) == 2  # loss curves and attention map stay in the executed notebook, once each
    text = text_outputs(out)
    assert "[journal] step" in text and "sample at step" in text
    if task == "clm":
        assert re.search(r"validation split: \d\.\d+ bits per byte", text)
        assert re.search(r"held-out news: \d\.\d+ bits per byte", text) and "sample: The history of" in text
    else:
        assert re.search(r"validation split: masked-byte accuracy \d+\.\d%", text) and "\n-> " in text


def test_wrong_parameter_type_stops_the_notebook(tmp_path):
    """A parameter of the wrong type stops the notebook at once, naming it; nothing is trained."""
    p = papermill("train_clm.ipynb", tmp_path / "out.ipynb", {"max_steps": "abc", "run_dir": str(tmp_path / "run")},
                  tmp_path)
    out, _ = p.communicate(timeout=600)
    assert p.returncode != 0
    assert "ParameterError: notebook parameter max_steps must be int or None, got 'abc' (str)" in out
    assert not (tmp_path / "run").exists()


def test_generate_notebook(runs):
    out = runs / "generate.ipynb"
    assert png_outputs(out) == 2  # attention for the user's input, CLM and MLM
    text = text_outputs(out)
    assert "The history of" in text and "->" in text
    # the streamed text (printed piece by piece) is the text generate() returns
    from widgets.inference import generate, load_run

    assert generate(load_run(runs / "clm"), "The history of", 16, seed=0) in text


# --- image classifier -----------------------------------------------------------------------------------------------

IMAGE_TINY = {"max_steps": 150, "batch_size": 32, "seed": 0, "devices": "cpu", "cpu_threads": 1}


def test_image_classifier_notebook(tmp_path):
    run = tmp_path / "image_classifier"
    out = tmp_path / "train_image_classifier.ipynb"
    p = papermill("train_image_classifier.ipynb", out, {**IMAGE_TINY, "run_dir": str(run)}, tmp_path)
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, f"train_image_classifier.ipynb failed:\n{log[-3000:]}"
    missing = [f for f in [*RUN_FILES, *figure_files("image_classifier")] if not (run / f).is_file()]
    assert not missing, f"run directory incomplete: {missing}"
    assert list((run / "attention").glob("step-*.npz")) and list((run / "records" / "misclassified").glob("*.npz"))
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["steps"] == IMAGE_TINY["max_steps"]
    first, final = m["first_train_loss"], m["final"]["train_loss"]
    assert first - final >= LOSS_DROP, f"loss fell only from {first:.3f} to {final:.3f}"
    assert m["final"]["val_accuracy"] > 0.2  # 10 classes: chance is 0.1 (validated at step 100 of the warmup-cosine)
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
    env = json.loads((run / "env.json").read_text())
    assert env["device"].startswith("1 x cpu") and env["torch_threads"] == IMAGE_TINY["cpu_threads"]

    figures = {"first_train_loss": first, "final_train_loss": final, "final_val_loss": m["final"]["val_loss"]}
    ref_path = REFERENCE / "image_classifier.json"
    if os.environ.get("PERCEIVER_UPDATE_REFERENCE"):
        ref_path.write_text(json.dumps({"params": IMAGE_TINY, **figures}, indent=1) + "\n")
    ref = json.loads(ref_path.read_text())
    assert ref["params"] == IMAGE_TINY, "the reference was recorded with other parameters: re-record it"
    for key, value in figures.items():
        assert value == pytest.approx(ref[key], rel=REL_TOL), f"{key}: {value} vs reference {ref[key]}"

    assert png_outputs(out) >= 3  # curves, attention heatmaps and misclassified images stay in the notebook
    text = text_outputs(out)
    assert "[journal] step" in text and "validation images misclassified" in text
