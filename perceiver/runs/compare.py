"""Comparison plots over the runs of the registry (``perceiver.runs.load``), as Matplotlib figures on the Agg canvas
(no pyplot: they render in a kernel thread, headless under papermill and in scripts; ``save`` writes PNGs).

    runs = perceiver.runs.load("runs/sweep-lr")
    table(runs)                                   # the swept values, status, metric, compute: best first
    overlay(runs, "val_loss", x="flops")          # curves of every run against step, tokens or FLOPs
    metric_vs_param(runs, "optimizer.lr")         # the best validation loss against one hyperparameter
    parallel_coordinates(runs)                    # the swept fields and the metric, one line per run
    frontier(runs)                                # loss against compute: which setting won per FLOP
    summary(runs)                                 # curves, frontier and metric against a field in one figure
    save(figures(runs), "runs/sweep-lr/plots")    # all of them (the sweep summary's figures) as PNG files
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from perceiver.runs.figures import png
from perceiver.runs.records import read_jsonl
from perceiver.runs.registry import swept
from perceiver.tasks import metric_goal

X_LABELS = {"step": "step", "tokens": "tokens seen", "flops": "FLOPs (forward + backward)"}


def higher_is_better(metric: str) -> bool:
    return metric_goal(metric.rsplit(".", 1)[-1]) == "max"


def table(runs, metric: str = "best.val_loss"):
    """The runs' swept values, status, ``metric``, steps, tokens, FLOPs, wall time and error, best first."""
    cols = ["run", "status", *swept(runs), metric, "steps", "tokens", "flops", "wall_s", "error"]
    out = runs[[c for c in dict.fromkeys(cols) if c in runs]]
    if metric in out:
        out = out.sort_values(metric, ascending=not higher_is_better(metric), na_position="last")
    return out.reset_index(drop=True)


def label(row, params: Sequence[str]) -> str:
    """A run's legend entry: its swept values, else its path."""
    parts = [f"{p.rsplit('.', 1)[-1]}={row[p]:g}" if isinstance(row[p], float) else f"{p.rsplit('.', 1)[-1]}={row[p]}"
             for p in params if p in row]
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
        where = r.get("step") if x == "step" else r.get(x, last.get(x))
        if value is not None and where is not None:
            xs.append(where)
            ys.append(value)
    return xs, ys


def _axes(width: float = 8, height: float = 4.5):
    fig = Figure(figsize=(width, height), dpi=80, layout="constrained")
    return fig, fig.subplots()


def overlay(runs, metric: str = "val_loss", x: str = "step", log_x: Optional[bool] = None, ax=None) -> Figure:
    """The curves of ``metric`` of every run against ``x`` (step, tokens or flops), one line per run (on ``ax`` if
    given, else on a new figure)."""
    params = swept(runs)
    fig, ax = _axes() if ax is None else (ax.figure, ax)
    for _, row in runs.iterrows():
        xs, ys = series(row["path"], metric, x)
        if xs:
            ax.plot(xs, ys, "o-" if metric.startswith("val_") else "-", ms=3, lw=1, label=label(row, params))
    if log_x if log_x is not None else x == "flops":
        ax.set_xscale("log")
    ax.set(xlabel=X_LABELS.get(x, x), ylabel=metric)
    ax.set_title(f"{metric} against {X_LABELS.get(x, x)}", fontsize=11)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no run logged {metric}", ha="center", va="center", transform=ax.transAxes, color="#888")
    return fig


def _numeric(values) -> bool:
    return np.issubdtype(values.dtype, np.number) or all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def metric_vs_param(runs, param: str, metric: str = "best.val_loss", by: Optional[str] = None, ax=None) -> Figure:
    """``metric`` of every run against the hyperparameter ``param``, one line per value of ``by`` (default: the
    other swept field, if there is exactly one); a log axis for positive numbers spanning more than 10x."""
    others = [p for p in swept(runs) if p != param]
    by = by if by is not None else (others[0] if len(others) == 1 else None)
    cols = [param, metric] + ([by] if by else [])
    data = runs[cols].dropna(subset=[param, metric])
    numeric = len(data) > 0 and _numeric(data[param])
    fig, ax = _axes(6.5, 4) if ax is None else (ax.figure, ax)
    groups = data.groupby(data[by].astype(str), sort=True) if by else [(None, data)]
    for value, group in groups:
        group = group.sort_values(param) if numeric else group
        xs = group[param].astype(float) if numeric else group[param].astype(str)
        ax.plot(xs, group[metric], "o-", ms=6, lw=1, label=f"{by.rsplit('.', 1)[-1]}={value}" if by else None)
    if numeric and len(data) and (data[param].astype(float) > 0).all() and \
            data[param].astype(float).max() > 10 * data[param].astype(float).min():
        ax.set_xscale("log")
    ax.set(xlabel=param, ylabel=metric)
    ax.set_title(f"{metric} against {param}", fontsize=11)
    ax.grid(alpha=0.3)
    if by and len(data):
        ax.legend(fontsize=8)
    return fig


def parallel_coordinates(runs, params: Optional[Sequence[str]] = None, metric: str = "best.val_loss") -> Figure:
    """One line per run across the swept fields (each axis scaled to [0, 1]; categories evenly spaced) and
    ``metric``, coloured by ``metric`` (the best runs brightest)."""
    params = list(params or swept(runs))
    cols = params + [metric]
    data = runs[cols].dropna()
    fig, ax = _axes(max(6, 2 * len(cols)), 4.5)
    scaled, ticks = [], []
    for c in cols:
        v = data[c]
        if _numeric(v):
            v = v.astype(float)
            ticks.append([f"{x:.3g}" for x in sorted(v.unique())][:6])
        else:
            cats = sorted(v.astype(str).unique())
            v = v.astype(str).map({k: i for i, k in enumerate(cats)}).astype(float)
            ticks.append(cats[:6])
        lo, hi = float(v.min()) if len(v) else 0.0, float(v.max()) if len(v) else 0.0
        scaled.append((v - lo) / (hi - lo) if hi > lo else v * 0 + 0.5)
    m = data[metric].to_numpy(dtype=float)
    rank = (-m if higher_is_better(metric) else m).argsort().argsort() / max(1, len(m) - 1)
    cmap = matplotlib.colormaps["viridis"]  # the best run darkest
    for i, r in enumerate(rank):
        ax.plot(range(len(cols)), [float(s.iloc[i]) for s in scaled], color=cmap(r), lw=2, alpha=0.8)
    ax.set_xticks(range(len(cols)), [c.replace(".", ".\n", 1) for c in cols], fontsize=8)
    for i, t in enumerate(ticks):
        ax.annotate(" / ".join(t), (i, -0.1), ha="center", fontsize=7, annotation_clip=False)
    ax.set_yticks([])
    ax.set_ylim(-0.14, 1.05)
    ax.set_title(f"swept fields and {metric} (dark = better)", fontsize=11)
    return fig


def frontier(runs, metric: str = "val_loss", ax=None) -> Figure:
    """``metric`` against FLOPs for every run, with the compute-efficiency frontier: the lower (or, for accuracies,
    upper) envelope over all runs, i.e. the best value reached for each amount of compute."""
    params = swept(runs)
    fig, ax = _axes() if ax is None else (ax.figure, ax)
    points = []
    for _, row in runs.iterrows():
        xs, ys = series(row["path"], metric, "flops")
        if xs:
            ax.plot(xs, ys, "o-", ms=3, lw=1, alpha=0.7, label=label(row, params))
            points += list(zip(xs, ys))
    if points:
        higher = higher_is_better(metric)
        best, envelope = None, []
        for x, y in sorted(points):
            if best is None or (y > best if higher else y < best):
                best = y
                envelope.append((x, y))
        ax.step(*zip(*envelope), where="post", color="black", lw=2, label="frontier")
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set(xlabel=X_LABELS["flops"], ylabel=metric)
    ax.set_title(f"{metric} against compute", fontsize=11)
    ax.grid(alpha=0.3)
    return fig


def summary(runs, metric: str = "best.val_loss", curve: str = "val_loss") -> Figure:
    """One figure of a sweep: the ``curve`` metric against step, against FLOPs with the compute frontier, and
    ``metric`` against the first swept field."""
    params = swept(runs)
    fig = Figure(figsize=(18 if params else 12, 4.5), dpi=80, layout="constrained")
    axes = fig.subplots(1, 3 if params else 2)
    overlay(runs, curve, "step", ax=axes[0])
    frontier(runs, curve, ax=axes[1])
    if params:
        metric_vs_param(runs, params[-1] if len(params) > 1 else params[0], metric, ax=axes[2])
    return fig


def figures(runs, metric: str = "best.val_loss", curve: str = "val_loss") -> dict[str, Figure]:
    """The comparison figures of a set of runs (a sweep's summary): :func:`summary`, ``metric`` against each swept
    field and the parallel coordinates."""
    out = {"summary": summary(runs, metric, curve)}
    for param in swept(runs):
        out[f"{metric}-vs-{param}"] = metric_vs_param(runs, param, metric)
    if swept(runs) and metric in runs:
        out["parallel-coordinates"] = parallel_coordinates(runs, metric=metric)
    return out


def save(figs: dict[str, Figure], directory: str | Path) -> dict[str, Path]:
    """Write each figure as ``<directory>/<name>.png``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, fig in figs.items():
        out[name] = directory / f"{name}.png"
        out[name].write_bytes(png(fig))
    return out
