"""The benchmark harness runs end to end on tiny models (timings are printed, never asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # trains a step in a subprocess
def test_harness_smoke(tmp_path):
    out = tmp_path / "smoke.json"
    # ours only (the perceiver-io venv is absent in CI; with it, the full smoke adds a minute)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--libs", "ours", "--precisions", "fp32",
           "--cases", "smoke_clm", "--rounds", "2", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "smoke: CLM train step" in proc.stdout
    data = json.loads(out.read_text())
    assert {r["case"] for r in data["results"]} == {"smoke_clm"}
    assert all(r["status"] == "ok" for r in data["results"]), data["results"]
    assert all(r["max_rss_mb"] > 0 for r in data["results"])
    (r,) = data["results"]
    assert r["rounds"] == 2 and len(r["times"]) == 2  # one timed step per round, pooled
    assert r["median_s"] == pytest.approx(sum(r["times"]) / 2)
