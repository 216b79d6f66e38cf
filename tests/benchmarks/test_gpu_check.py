"""benchmarks/gpu_check.sh --dry-run: every stage of the GPU readiness check runs end to end on tiny models on the
CPU and lands in one table (the GPU numbers themselves are for people; nothing here asserts a timing)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_dry_run_runs_every_stage_and_prints_one_table(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, PIO_PYTHON=str(tmp_path / "no-perceiver-io"))  # ours only
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    results = report["results"]
    expected = {"flops", "train_clm ours", "train_mlm ours", "gen ours", "cli", "papermill", "fsdp"}
    assert set(results) == expected  # no perceiver-io interpreter: its stages are left out, not failed
    failed = {name: r.get("error") for name, r in results.items() if r["status"] != "ok"}
    assert not failed, failed
    for name in ("train_clm ours", "train_mlm ours", "gen ours"):
        assert results[name]["tokens_per_s"] > 0
    assert results["train_clm ours"]["compiled"]  # torch.compile's path (the eager backend on the CPU)
    for name in ("cli", "papermill", "fsdp"):  # runs of the CLI / workbench with compute accounting
        assert results[name]["flops"] > 0 and 0 < results[name]["mfu"] and "cpu" in results[name]["device"]
    flops = results["flops"]
    for kind in ("train_clm", "train_mlm"):
        assert 0 < flops[kind]["counted"] <= flops[kind]["analytic"]
    table = proc.stdout
    assert table.count("\n| ") >= 12 and "DRY RUN" in table
    for label in ("CLM 30.6M train", "MLM 201M train", "generation", "papermill", "FSDP", "MFU"):
        assert label in table
