"""Comparison plots over runs of the registry (``perceiver.runs.load``), as Matplotlib figures (Agg canvas, so they
render in a kernel thread, headless under papermill and in scripts; ``perceiver.runs.figures.png`` makes PNG bytes).

    runs = perceiver.runs.load("runs/sweep-lr")
    overlay(runs, "val_loss", x="flops")          # curves of every run against step, tokens or FLOPs
    metric_vs_param(runs, "optimizer.lr")         # best validation loss against one hyperparameter
    parallel_coordinates(runs)                    # the swept fields and the metric, one line per run
    frontier(runs)                                # loss against compute: which setting won per FLOP
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from perceiver.runs.figures import read_jsonl
from perceiver.runs.registry import goal, swept

X_LABELS = {"step": "step", "tokens": "tokens seen", "flops": "FLOPs (forward + backward)"}


def label(row, params: Sequence[str]) -> str:
    """A run's legend entry: its swept values, else its path."""
    parts = [f"{p.rsplit('.', 1)[-1]}={row[p]}" for p in params if p in row]
    return ", ".join(parts) or str(row["run"])


def series(run_dir: str | Path, metric: str, x: str = "step") -> tuple[list, list]:
    """(x values, metric values) of a run; ``metric`` is a logged key (``val_loss``, ``train_loss``, ...), ``x`` is
    ``step``, ``tokens`` or ``flops`` (training records carry cumulative tokens and FLOPs; a validation record
    takes those of the step it follows)."""
    xs, ys, last = [], [], {}
    for r in read_jsonl(Path(run_dir) / "metrics.jsonl"):
        if "train_loss" in r:
            last = r
        value = r.get(metric)
        where = r.get(x, last.get(x)) if x != "step" else r.get("step")
        if value is not None and where is not None:
            xs.append(where)
            ys.append(value)
    return xs, ys


def overlay(runs, metric: str = "val_loss", x: str = "step", log_x: Optional[bool] = None) -> Figure:
    """The curves of ``metric`` of every run against ``x`` (step, tokens or flops), one line per run."""
    params = swept(runs)
    fig = Figure(figsize=(8, 4.5), dpi=80, layout="constrained")
    ax = fig.subplots()
    for _, row in runs.iterrows():
        xs, ys = series(row["path"], metric, x)
        if xs:
            ax.plot(xs, ys, "o-" if metric.startswith("val_") else "-", ms=3, lw=1, label=label(row, params))
    if log_x if log_x is not None else x == "flops":
        ax.set_xscale("log")
    ax.set_xlabel(X_LABELS.get(x, x))
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against {X_LABELS.get(x, x)}", fontsize=11)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    return fig


def metric_vs_param(runs, param: str, metric: str = "best.val_loss") -> Figure:
    """``metric`` of every run against the hyperparameter ``param`` (log axis for positive numbers spanning > 10×)."""
    fig = Figure(figsize=(6, 4), dpi=80, layout="constrained")
    ax = fig.subplots()
    data = runs[[param, metric]].dropna()
    values = data[param]
    numeric = np.issubdtype(values.dtype, np.number)
    xs = values if numeric else values.astype(str)
    ax.plot(xs, data[metric], "o", ms=7)
    if numeric and (values > 0).all() and values.max() > 10 * values.min():
        ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against {param}", fontsize=11)
    ax.grid(alpha=0.3)
    return fig


def parallel_coordinates(runs, params: Optional[Sequence[str]] = None, metric: str = "best.val_loss") -> Figure:
    """One line per run across the swept fields (each axis scaled to [0, 1]; categories evenly spaced) and
    ``metric``, coloured by ``metric`` (the best runs brightest)."""
    params = list(params or swept(runs))
    cols = params + [metric]
    data = runs[cols].dropna()
    fig = Figure(figsize=(max(6, 2 * len(cols)), 4.5), dpi=80, layout="constrained")
    ax = fig.subplots()
    scaled, ticks = [], []
    for c in cols:
        v = data[c]
        if not np.issubdtype(v.dtype, np.number):
            cats = sorted(v.astype(str).unique())
            v = v.astype(str).map({k: i for i, k in enumerate(cats)}).astype(float)
            ticks.append(cats)
        else:
            ticks.append([f"{x:.3g}" for x in (v.min(), v.max())])
        lo, hi = float(v.min()), float(v.max())
        scaled.append((v - lo) / (hi - lo) if hi > lo else v * 0 + 0.5)
    y = np.stack([s.to_numpy(dtype=float) for s in scaled], axis=1) if scaled else np.zeros((0, 0))
    m = data[metric].to_numpy(dtype=float)
    order = -m if goal(metric.rsplit(".", 1)[-1]) == "max" else m
    rank = (order.argsort().argsort() / max(1, len(m) - 1)) if len(m) else m
    cmap = matplotlib.colormaps["viridis_r"]
    for row, r in zip(y, rank):
        ax.plot(range(len(cols)), row, color=cmap(r), lw=2, alpha=0.8)
    ax.set_xticks(range(len(cols)), [c.replace(".", ".\n", 1) for c in cols], fontsize=8)
    for i, t in enumerate(ticks):
        ax.annotate(" / ".join(t[:6]), (i, -0.08), ha="center", fontsize=7, annotation_clip=False)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.05)
    ax.set_title(f"swept fields and {metric} (bright = better)", fontsize=11)
    return fig


def frontier(runs, metric: str = "val_loss") -> Figure:
    """``metric`` against FLOPs for every run, with the compute-efficiency frontier: the lower (or, for accuracies,
    upper) envelope over all runs, i.e. the best value reached for each amount of compute."""
    params = swept(runs)
    fig = Figure(figsize=(8, 4.5), dpi=80, layout="constrained")
    ax = fig.subplots()
    points = []
    for _, row in runs.iterrows():
        xs, ys = series(row["path"], metric, "flops")
        if xs:
            ax.plot(xs, ys, "o-", ms=3, lw=1, alpha=0.7, label=label(row, params))
            points += list(zip(xs, ys))
    if points:
        points.sort()
        best, env = None, []
        better = (lambda a, b: a > b) if goal(metric) == "max" else (lambda a, b: a < b)
        for x, y in points:
            if best is None or better(y, best):
                best = y
                env.append((x, y))
        ax.step(*zip(*env), where="post", color="black", lw=2, label="frontier")
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel(X_LABELS["flops"])
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against compute", fontsize=11)
    ax.grid(alpha=0.3)
    return fig
