"""The run registry: every run directory under a root, as one pandas DataFrame row.

    import perceiver.runs
    runs = perceiver.runs.load("runs")            # one row per run directory found below runs/
    runs[["run", "status", "model.num_channels", "optimizer.lr", "best.val_loss"]]

A run directory is any directory with the files a ``RunJournal`` writes (``env.json``, ``metrics.json`` or
``metrics.jsonl``) beside a resolved ``config.yaml``; it may sit at any depth (a sweep's points, the workbench's
numbered runs, a CLI logger's version folders). Columns:

- ``run`` (path relative to the root), ``path``, ``task``, ``status`` (completed, stopped, interrupted, failed or
  running), ``error`` (the last line of the error of a failed run), ``git_commit``, ``started`` (a timestamp);
- the resolved configuration, flattened: ``model.*``, ``data.*``, ``optimizer.*``, ``lr_scheduler.*``,
  ``trainer.*`` (``data.class`` etc. for the chosen class), ``seed_everything``;
- ``steps``, ``tokens``, ``flops``, ``wall_s``, ``params``, ``tokens_per_s``;
- ``final.<metric>`` (the last logged value) and ``best.<metric>`` (the best validation value, by the metric's
  goal: lower for losses, higher for accuracies) of every logged metric.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from perceiver.runs.figures import read_jsonl

CONFIG_FILES = ("config.resolved.yaml", "config.yaml")
SKIP_CONFIG = ("trainer.callbacks", "trainer.logger", "trainer.plugins", "trainer.profiler")
MAXIMIZED = ("accuracy", "acc")  # metric names containing these are better when higher


def is_run_dir(path: Path) -> bool:
    return any((path / f).is_file() for f in CONFIG_FILES) and any(
        (path / f).is_file() for f in ("env.json", "metrics.json", "metrics.jsonl"))


def find_runs(root: str | Path) -> list[Path]:
    """Run directories under ``root`` (``root`` itself included), sorted by path."""
    root = Path(root)
    if not root.exists():
        return []
    candidates = [root, *(p for p in root.rglob("*") if p.is_dir() and p.name not in ("checkpoints", "attention"))]
    return sorted(p for p in candidates if is_run_dir(p))


# --- one run --------------------------------------------------------------------------------------------------------


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"a.b": value}``; a ``class_path``/``init_args`` pair becomes ``a.class`` plus ``a.<arg>``;
    lists become JSON strings (so the value fits a DataFrame cell and compares by value)."""
    if isinstance(obj, dict):
        if "class_path" in obj:
            out = {f"{prefix}class": str(obj["class_path"]).rsplit(".", 1)[-1]}
            out.update(flatten(obj.get("init_args") or {}, prefix))
            return out
        out = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    key = prefix[:-1]
    if isinstance(obj, (list, tuple)):
        return {key: json.dumps(obj)}
    return {key: obj}


def read_config(run_dir: Path) -> dict[str, Any]:
    for name in CONFIG_FILES:
        path = run_dir / name
        if path.is_file():
            config = yaml.safe_load(path.read_text()) or {}
            flat = flatten({k: v for k, v in config.items() if k not in ("checkpoint", "ckpt_path")})
            return {k: v for k, v in flat.items() if not k.startswith(SKIP_CONFIG)}
    return {}


def goal(metric: str) -> str:
    return "max" if any(m in metric for m in MAXIMIZED) else "min"


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:  # being rewritten
        return {}


def run_status(run_dir: Path, summary: dict) -> tuple[str, Optional[str]]:
    """(status, error) from the run's status record, its summary, or its log."""
    status = read_json(run_dir / "status.json")
    if status.get("status"):
        return status["status"], status.get("error")
    if summary.get("status"):
        state = str(summary["status"])
        return ("interrupted" if state.startswith("interrupted") else state), None
    log = run_dir / "train.log"
    if log.is_file():
        if time.time() - log.stat().st_mtime < 120:
            return "running", None
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        error = next((line for line in reversed(lines) if "Error" in line or "Exception" in line), None)
        return "failed", error or (lines[-1] if lines else None)
    return "failed", None


def read_run(run_dir: Path, root: Path) -> dict[str, Any]:
    """One registry row (see the module docstring)."""
    summary, env = read_json(run_dir / "metrics.json"), read_json(run_dir / "env.json")
    records = read_jsonl(run_dir / "metrics.jsonl")
    status, error = run_status(run_dir, summary)
    row: dict[str, Any] = {
        "run": str(run_dir.relative_to(root)) if run_dir != root else ".",
        "path": str(run_dir),
        "task": env.get("task"),
        "status": status,
        "error": error,
        "git_commit": (env.get("git") or {}).get("commit"),
        "started": env.get("started") or (run_dir / "env.json").stat().st_mtime if env else None,
        "params": env.get("num_params"),
    }
    row.update(read_config(run_dir))
    train = [r for r in records if "train_loss" in r]
    row["steps"] = train[-1]["step"] if train else summary.get("steps", 0)
    row["wall_s"] = train[-1].get("wall_s") if train else summary.get("wall_s")
    row["tokens_per_s"] = summary.get("tokens_per_s")
    for key in ("tokens", "flops"):
        values = [r[key] for r in records if r.get(key) is not None]
        row[key] = values[-1] if values else None
    final: dict[str, Any] = {}
    best: dict[str, Any] = {}
    for r in records:
        for k, v in r.items():
            if not isinstance(v, (int, float)) or k in ("step", "wall_s", "tokens", "flops"):
                continue
            final[k] = v
            if k.startswith("val_"):
                better = best.get(k) is None or (v > best[k] if goal(k) == "max" else v < best[k])
                best[k] = v if better else best[k]
    row.update({f"final.{k}": v for k, v in final.items()})
    row.update({f"best.{k}": v for k, v in best.items()})
    return row


# --- the registry ---------------------------------------------------------------------------------------------------


def load(root: str | Path = "runs", status: Optional[Iterable[str]] = None):
    """A DataFrame with one row per run directory under ``root`` (see the module docstring); ``status`` keeps only
    runs with one of those statuses. Columns that are equal in every run are kept (``swept`` tells the others)."""
    import pandas as pd

    root = Path(root)
    rows = [read_run(p, root) for p in find_runs(root)]
    df = pd.DataFrame(rows)
    if status is not None and len(df):
        df = df[df["status"].isin(list(status))].reset_index(drop=True)
    return df


def swept(df, prefixes: tuple[str, ...] = ("model.", "data.", "optimizer.", "lr_scheduler.", "trainer.")) -> list[str]:
    """The configuration columns whose values differ between the runs of ``df`` (the hyperparameters compared)."""
    cols = [c for c in df.columns if c.startswith(prefixes) or c == "seed_everything"]
    paths = ("default_root_dir", "run_dir", "dirpath", "save_dir", "dataset_dir")
    return [c for c in cols if df[c].astype(str).nunique(dropna=False) > 1 and not c.endswith(paths)]
