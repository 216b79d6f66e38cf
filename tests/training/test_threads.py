"""CPU threads: usable cores (affinity and cgroup quota), the resolution order, and reproducible CLI runs at a fixed
thread count, recorded in env.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from perceiver.training import threads
from perceiver.training.threads import cgroup_cpu_limit, resolve_cpu_threads, set_cpu_threads, usable_cpus

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_smallest_along_the_hierarchy(tmp_path):
    proc = tmp_path / "proc_cgroup"
    write(proc, "0::/job/step\n")
    root = tmp_path / "cg"
    write(root / "cpu.max", "max 100000\n")
    write(root / "job" / "cpu.max", "300000 100000\n")
    write(root / "job" / "step" / "cpu.max", "150000 100000\n")
    assert cgroup_cpu_limit(root, proc) == 1.5
    write(root / "job" / "step" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(root, proc) == 3.0
    write(root / "job" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(root, proc) is None


def test_cgroup_v1_quota(tmp_path):
    proc = tmp_path / "proc_cgroup"
    write(proc, "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n")
    root = tmp_path / "cg"
    write(root / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us", "200000\n")
    write(root / "cpu" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(root, proc) == 2.0


def test_usable_cpus_is_affinity_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 2.5)
    assert usable_cpus() == 3
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert usable_cpus() == 64
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 8.0)
    assert usable_cpus() == 1


def test_resolution_order_explicit_then_environment_then_usable_cores(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda: 7)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_cpu_threads(None) == 7
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_cpu_threads(None) == 3
    assert resolve_cpu_threads(2) == 2
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="cpu_threads"):
            resolve_cpu_threads(bad)


def test_set_cpu_threads_sets_torch_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))  # restored by monkeypatch
    try:
        assert set_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1"  # inherited by child processes (DDP ranks)
    finally:
        torch.set_num_threads(before)


def fit(run_dir: Path, dataset_dir: str, cpu_threads: int) -> dict:
    args = [
        sys.executable, "-m", "perceiver.scripts.text.clm", "fit", f"--cpu_threads={cpu_threads}",
        "--seed_everything=3", "--data=WikiTextDataModule", "--data.source=sample", f"--data.dataset_dir={dataset_dir}",
        "--data.max_seq_len=64", "--data.batch_size=4", "--data.max_documents=6", "--data.num_workers=0",
        "--model.max_latents=32", "--model.num_channels=64", "--model.num_heads=2",
        "--model.num_self_attention_layers=2", "--model.cross_attention_dropout=0.25",
        "--model.validation_sample_length=4", "--optimizer=AdamW", "--optimizer.lr=3e-3",
        "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.max_steps=6",
        "--trainer.val_check_interval=3", "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false",
        f"--run_dir={run_dir}",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_same_seed_and_thread_count_give_identical_metrics(tmp_path, dataset_dir):
    runs = [fit(tmp_path / name, dataset_dir, 2) for name in ("a", "b")]
    assert runs[0]["train"]["train_loss"] == runs[1]["train"]["train_loss"]
    assert runs[0]["validation"] == runs[1]["validation"] and runs[0]["final"] == runs[1]["final"]
    for name in ("a", "b"):  # the thread count of the training process itself
        env = json.loads((tmp_path / name / "env.json").read_text())
        assert env["torch_threads"] == 2 and env["usable_cpus"] >= 1
