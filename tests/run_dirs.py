"""Run directories written by hand, as the journal writes them, for tests of what reads runs (the registry, the
comparison plots, the run picker) without training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import yaml


def write_run(run_dir: Path, lr: float = 1e-3, channels: int = 64, status: str = "completed", steps: int = 4,
              val_losses: tuple = (5.0, 4.0), reason: Optional[str] = None, error: Optional[str] = None,
              task: str = "clm", metrics: Optional[dict] = None) -> Path:
    """A run of ``steps`` training records (loss falling with ``lr``) and one validation per value of ``val_losses``
    (at evenly spaced steps); ``metrics`` adds values to every validation record."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"seed_everything": 0, "run_dir": str(run_dir), "trainer": {"max_steps": steps, "devices": 1},
              "model": {"num_channels": channels, "num_heads": 4},
              "data": {"class_path": "perceiver.data.text.WikiTextDataModule", "init_args": {"max_seq_len": 64}},
              "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": lr, "betas": [0.9, 0.999]}}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    records = [{"step": s, "train_loss": 6.0 - 100 * lr * s, "tokens": 256 * s, "flops": 1e6 * channels * s,
                "wall_s": 0.5 * s, "lr": lr} for s in range(1, steps + 1)]
    every = max(1, steps // max(1, len(val_losses)))
    for i, loss in enumerate(val_losses):
        records.append({"step": every * (i + 1), "val_loss": loss, **(metrics or {})})
    records.sort(key=lambda r: (r["step"], "val_loss" in r))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / "env.json").write_text(json.dumps({"task": task, "num_params": 1000 * channels,
                                                  "git": {"commit": "abc123", "dirty": False}}))
    (run_dir / "metrics.json").write_text(json.dumps({"status": status, "tokens_per_s": 100.0, "mfu": 0.1}))
    (run_dir / "status.json").write_text(json.dumps({"status": status, "reason": reason, "error": error,
                                                     "started_at": 1.7e9, "task": task}))
    return run_dir
