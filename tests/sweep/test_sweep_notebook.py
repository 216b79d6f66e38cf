"""The issue's command: ``python -m perceiver.scripts.sweep notebooks/train_clm.ipynb --param ...``. Each point is
the notebook executed by papermill with the point's values in its ``overrides`` parameter, which the Workbench
applies to its form: a normal run directory with the executed notebook in it. (One point: each costs a kernel and
a training process. A value the form rejects: tests/workbench/test_overrides.py; failed points: test_study.py.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

import perceiver.runs

pytestmark = [pytest.mark.slow, pytest.mark.notebook]

ROOT = Path(__file__).resolve().parents[2]
TINY = ["data.max_seq_len=64", "data.batch_size=4", "trainer.limit_val_batches=1", "model.max_latents=16",
        "model.num_self_attention_layers=1", "model.validation_sample_length=4", "optimizer.lr=3e-3"]


def test_a_notebook_sweep_leaves_run_directories_with_the_executed_notebooks(tmp_path):
    cmd = [sys.executable, "-m", "perceiver.scripts.sweep", str(ROOT / "notebooks" / "train_clm.ipynb"),
           "--param", "model.num_channels=16", "--out", "runs/nb", "--no-summary", "--devices", "cpu",
           "-p", "max_steps", "2", *[arg for o in TINY for arg in ("--set", o)]]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "PERCEIVER_ROOT": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [run] = perceiver.runs.load(tmp_path / "runs" / "nb").to_dict("records")
    assert run["status"] == "completed" and run["steps"] == 2 and run["model.num_channels"] == 16
    point = Path(run["path"])
    config = yaml.safe_load((point / "config.yaml").read_text())  # the overrides reached the run
    assert config["model"]["num_channels"] == 16 and config["model"]["num_self_attention_layers"] == 1
    assert config["optimizer"]["init_args"]["lr"] == 0.003 and config["trainer"]["limit_val_batches"] == 1
    assert config["data"]["init_args"]["max_seq_len"] == 64 and config["trainer"]["max_steps"] == 2
    executed = nbformat.read(point / "train_clm.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "'status': 'completed'" in text
    assert yaml.safe_load((point / "parameters.yaml").read_text())["overrides"][-1] == "model.num_channels=16"
    assert json.loads((point / "sweep.json").read_text())["params"] == {"model.num_channels": 16}
