"""The run registry: every run directory under a root, as one row of a pandas DataFrame.

    import perceiver.runs
    runs = perceiver.runs.load("runs/sweep-lr")        # one row per run directory below runs/sweep-lr
    runs[["run", "status", *perceiver.runs.swept(runs), "best.val_loss", "flops"]]

A run directory is one that holds a run (``perceiver.runs.paths.has_run``: ``status.json``, ``env.json``,
``metrics.jsonl`` or ``checkpoints/``), at any depth: the CLI's and the workbench's runs, a sweep's points. A run that
failed before training (a configuration error) has a row too, with its error. Relative roots are taken from the
repository root, like every run path (``perceiver.runs.paths``). Columns:

- ``run`` (the path relative to the root given), ``path`` (absolute), ``task``;
- ``status``: completed, stopped (the Stop button), interrupted (Ctrl-C, SIGTERM), failed or running; ``reason``,
  ``error`` (the exception line of a failed run); ``git_commit``, ``git_dirty``, ``started`` (a timestamp);
- the resolved configuration (``config.yaml``), flattened: ``model.*``, ``data.*``, ``optimizer.*``,
  ``lr_scheduler.*``, ``trainer.*`` (``data.class``, ``optimizer.class``: the class chosen), ``seed_everything``;
  a sweep point that failed before writing its configuration has at least its swept values;
- ``sweep.point`` (the point's name in its sweep, ``perceiver.sweep``), ``sweep.trial`` (its Optuna trial);
- ``steps``, ``tokens`` (seen), ``flops`` (forward + backward, done), ``wall_s``, ``params``, ``tokens_per_s``,
  ``mfu`` (mean);
- ``final.<metric>`` (the last logged value) and ``best.<metric>`` (the best validation value, lower or higher by
  the metric's goal, ``perceiver.tasks.metric_goal``) of every ``train_*``/``val_*`` metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

from perceiver import tasks
from perceiver.runs import paths
from perceiver.runs import status as run_status
from perceiver.runs.records import SECTIONS, read_config, read_json, read_jsonl

POINT_FILE = "sweep.json"
"""Written by a sweep into each point's run directory: the sweep, the point's name, trial and swept values."""
LOCATION = ("run_dir", "default_root_dir", "dirpath", "save_dir", "dataset_dir", "overwrite", "ckpt_path")
"""Configuration entries that differ between runs without being a hyperparameter (where the run went)."""
INTERRUPTS = ("KeyboardInterrupt", "SIGTERM")


def find_runs(root: str | Path) -> list[Path]:
    """The run directories at or below ``root``, by start time."""
    return paths.runs_under(root)


def status_of(run_dir: Path) -> tuple[str, Optional[str], Optional[str]]:
    """(status, reason, error) of a run (``perceiver.runs.status``); a run stopped by a signal is "interrupted"."""
    status = run_status.read(run_dir)
    state = status.get("status")
    if state is None:  # a run of an older layout: metrics.json knew the end
        state = read_json(run_dir / "metrics.json").get("status") or "running"
    reason = status.get("reason")
    if state == "stopped" and reason in INTERRUPTS:
        state = "interrupted"
    return state, reason, status.get("error") if state == "failed" else None


def read_run(run_dir: str | Path, root: Optional[str | Path] = None) -> dict[str, Any]:
    """One registry row (see the module docstring)."""
    run_dir = Path(run_dir)
    root = Path(root) if root is not None else run_dir.parent
    env, summary, point = (read_json(run_dir / name) for name in ("env.json", "metrics.json", POINT_FILE))
    status = read_json(run_dir / run_status.FILE)
    state, reason, error = status_of(run_dir)
    task_name = env.get("task") or status.get("task")
    try:
        task = tasks.get(task_name) if task_name else None
    except KeyError:  # a task of a package no longer installed
        task = None
    git = env.get("git") or {}
    row: dict[str, Any] = {
        "run": "." if run_dir == root else str(run_dir.relative_to(root)) if run_dir.is_relative_to(root) else
        str(run_dir),
        "path": str(run_dir),
        "task": task_name,
        "status": state,
        "reason": reason,
        "error": error,
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "started": status.get("started_at"),
    }
    config = read_config(run_dir)
    row.update({k: v for k, v in (point.get("params") or {}).items() if k not in config})
    row.update(config)
    if point:
        row.update({"sweep.point": point.get("point"), "sweep.trial": point.get("trial")})
    records = read_jsonl(run_dir / "metrics.jsonl")
    train = [r for r in records if "train_loss" in r]
    last = train[-1] if train else {}
    row.update({
        "steps": last.get("step", 0),
        "tokens": last.get("tokens"),
        "flops": last.get("flops"),
        "wall_s": last.get("wall_s"),
        "params": env.get("num_params"),
        "tokens_per_s": summary.get("tokens_per_s"),
        "mfu": summary.get("mfu"),
    })
    row.update(metric_columns(records, task))
    return row


def metric_columns(records: list[dict], task=None) -> dict[str, Any]:
    """``final.<metric>`` of every logged ``train_*``/``val_*`` metric and ``best.<metric>`` of the validation ones."""
    final: dict[str, Any] = {}
    best: dict[str, Any] = {}
    for record in records:
        for key, value in record.items():
            if not key.startswith(("train_", "val_")) or not isinstance(value, (int, float)):
                continue
            final[key] = value
            if key.startswith("val_") and value == value:  # NaN is never the best
                higher = tasks.metric_goal(key, task) == "max"
                if key not in best or (value > best[key] if higher else value < best[key]):
                    best[key] = value
    return {**{f"final.{k}": v for k, v in final.items()}, **{f"best.{k}": v for k, v in best.items()}}


def load(root: str | Path = "runs", status: Optional[Iterable[str]] = None):
    """A DataFrame with one row per run directory at or below ``root`` (see the module docstring), oldest first;
    ``status`` keeps only the runs with one of those statuses (e.g. ``["completed"]``)."""
    import pandas as pd

    base = paths.resolve(root)
    df = pd.DataFrame([read_run(run, base) for run in find_runs(base)])
    if len(df):
        df["started"] = pd.to_datetime(df["started"], unit="s", errors="coerce")
    if status is not None and len(df):
        df = df[df["status"].isin(list(status))].reset_index(drop=True)
    return df


def swept(df) -> list[str]:
    """The configuration columns of ``df`` whose values differ between its runs (what the runs compare), in the order
    of the columns; missing values (a run that failed before writing its configuration) do not count."""
    cols = [c for c in df.columns if c.startswith(SECTIONS) and not c.endswith(LOCATION)]
    return [c for c in cols if df[c].dropna().astype(str).nunique() > 1]
