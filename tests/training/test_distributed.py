"""Multi-process training on the CPU (gloo), through the CLI in a subprocess: 2-process DDP for a few steps. Both
ranks must see different batches and end with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_cli(strategy: str, dataset_dir: str, tmp_path: Path, steps: int = 3) -> subprocess.CompletedProcess:
    args = [
        sys.executable, "-m", "perceiver.scripts.text.clm", "fit",
        "--data=WikiTextDataModule", "--data.source=sample", f"--data.dataset_dir={dataset_dir}",
        "--data.max_seq_len=64", "--data.batch_size=2", "--data.max_documents=6", "--data.num_workers=0",
        "--model.max_latents=16", "--model.num_channels=32", "--model.num_heads=2",
        "--model.num_self_attention_layers=1", "--optimizer=AdamW", "--optimizer.lr=1e-3",
        "--trainer.accelerator=cpu", "--trainer.devices=2", f"--trainer.strategy={strategy}",
        f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
        "--trainer.callbacks+=tests.training.ddp_probe.Probe", f"--trainer.callbacks.out_dir={tmp_path / 'probe'}",
        f"--run_dir={tmp_path / 'runs' / '{time}'}",  # chosen by rank 0, handed to rank 1
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.distributed
@pytest.mark.slow
def test_ddp_two_processes_on_cpu(dataset_dir, tmp_path):
    out = run_cli("ddp", dataset_dir, tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    ranks = [json.loads((tmp_path / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["global_step"] for r in ranks] == [3, 3]
    assert len(ranks[0]["batches"]) == len(ranks[1]["batches"]) == 3
    assert not set(ranks[0]["batches"]) & set(ranks[1]["batches"]), "both ranks trained on the same batches"
    assert ranks[0]["weights"] == ranks[1]["weights"], "ranks ended with different weights"
    [run] = (tmp_path / "runs").iterdir()  # one run directory for both ranks
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
