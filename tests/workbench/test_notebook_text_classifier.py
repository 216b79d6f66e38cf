"""Notebook regression test of ``notebooks/train_text_classifier.ipynb``, as those of ``test_notebooks.py``: the
notebook runs headless through papermill with tiny parameters, pinned to one CPU device (no GPU visible) and one torch
thread (``widgets.runner``), so its losses are reproducible exactly on one machine; they are compared with the
committed reference (``reference/text_classifier.json``; refresh it with ``PERCEIVER_UPDATE_REFERENCE=1``), and the
run directory, the confusion matrix's predictions and the executed notebook's figures are checked.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).parent / "reference" / "text_classifier.json"
TINY = {"max_steps": 20, "max_seq_len": 128, "batch_size": 8, "seed": 0, "devices": "cpu", "cpu_threads": 1}
RUN_FILES = ["config.yaml", "status.json", "metrics.json", "metrics.jsonl", "env.json", "train.log",
             "plots/curves.png", "plots/byte_attention.png", "plots/confusion_matrix.png", "checkpoints/final.ckpt",
             "samples.jsonl"]


@pytest.fixture(scope="module")
def run():
    # a private directory: concurrent pytest sessions prune each other's basetemp directories
    tmp = Path(tempfile.mkdtemp(prefix="perceiver-notebooks-"))
    out = tmp / "train_text_classifier.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "train_text_classifier.ipynb"), str(out),
           "--cwd", str(tmp), "--log-level", "WARNING"]
    for k, v in {**TINY, "run_dir": str(tmp / "run")}.items():
        cmd += ["-p", k, str(v)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # one CPU device whatever the machine has
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, f"train_text_classifier.ipynb failed:\n{(p.stdout + p.stderr)[-3000:]}"
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def cell_outputs(path: Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def test_text_classifier_notebook(run):
    run_dir = run / "run"
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    assert not missing, f"run directory incomplete: {missing}"
    assert list((run_dir / "attention").glob("step-*.npz"))
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "completed" and m["steps"] == TINY["max_steps"]
    env = json.loads((run_dir / "env.json").read_text())
    assert env["task"] == "text_classifier" and env["device"].startswith("1 x cpu") and env["torch_threads"] == 1
    # the confusion matrix is drawn from the predictions of the last validation (all 40 validation sentences)
    outputs = np.load(sorted((run_dir / "records" / "predictions").glob("step-*.npz"))[-1])
    assert len(outputs["labels"]) == 40 and list(outputs["class_names"]) == ["neg", "pos"]
    accuracy = float(np.mean(outputs["labels"] == outputs["predictions"]))
    assert accuracy == pytest.approx(m["final"]["val_accuracy"], abs=1e-6)

    figures = {"first_train_loss": m["first_train_loss"], "final_train_loss": m["final"]["train_loss"],
               "final_val_loss": m["final"]["val_loss"], "final_val_accuracy": m["final"]["val_accuracy"]}
    if os.environ.get("PERCEIVER_UPDATE_REFERENCE"):
        REFERENCE.write_text(json.dumps({"params": TINY, **figures}, indent=1) + "\n")
    ref = json.loads(REFERENCE.read_text())
    assert ref["params"] == TINY, "the reference was recorded with other parameters: re-record it"
    # a binary classifier's losses sit near ln 2 = 0.693 this early: a relative tolerance of a few percent would accept
    # a dead model whose logits are constant, so losses are compared to 1e-3 (accuracy to one of the 40 sentences)
    for key, value in figures.items():
        tol = 1 / 40 if key.endswith("accuracy") else 1e-3
        assert value == pytest.approx(ref[key], abs=tol), f"{key}: {value} vs reference {ref[key]}"

    outputs = cell_outputs(run / "train_text_classifier.ipynb")
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # curves, attention, confusion matrix
    text = "".join(o.get("text", "") for o in outputs)
    assert "[journal] step" in text and "sample at step" in text and ("pos (" in text or "neg (" in text)
