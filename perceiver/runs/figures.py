"""Figures of one run directory, drawn with Matplotlib's Agg canvas (no pyplot, no GUI backend), so they work in a
kernel thread, headless under papermill and in plain scripts.

Every figure function takes the run directory (and the task where it needs it) and returns a ``Figure`` (or another
IPython display object, such as the ``Audio`` of ``perceiver.runs.music``) or None when there is nothing to draw yet.
Tasks list theirs in ``Task.figures``; :func:`curves` is drawn for every task. :func:`save` writes them all as
``plots/<name>.png`` (``.html`` for display objects), which every run does at its end.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; a line being written (not yet valid JSON) is skipped."""
    if not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def _style(ax, title: str, xlabel: str = "step") -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)


def curves(run_dir: Path, task) -> Optional[Figure]:
    """Loss, the task's metrics (train and validation), learning rate and throughput per step."""
    records = read_jsonl(Path(run_dir) / "metrics.jsonl")
    train = [r for r in records if "train_loss" in r]
    val = [r for r in records if "val_loss" in r]
    if not train:
        return None
    panels = [("loss", "loss")] + [(m.key, m.title) for m in task.metrics] + [("lr", "learning rate")]
    panels.append(("tokens_per_s", "throughput (tokens/s)"))
    fig = Figure(figsize=(3 * len(panels), 3.2), dpi=80, layout="constrained")
    for ax, (key, title) in zip(fig.subplots(1, len(panels)), panels):
        train_key = key if key in ("lr", "tokens_per_s") else f"train_{key}"
        points = [(r["step"], r[train_key]) for r in train if r.get(train_key) is not None]
        if points:  # a single point is a marker (a line through one point would be invisible, its legend entry not)
            ax.plot(*zip(*points), lw=1, marker="o" if len(points) == 1 else None, ms=3, label="train")
        vals = [(r["step"], r[f"val_{key}"]) for r in val if r.get(f"val_{key}") is not None]
        if vals:
            ax.plot(*zip(*vals), "o-", label="validation")
        if points and vals:
            ax.legend(fontsize=8)
        elif not points and not vals:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="#888")
        _style(ax, title)
    return fig


def latest_attention(run_dir: Path) -> Optional[Path]:
    maps = sorted(Path(run_dir, "attention").glob("step-*.npz"))
    return maps[-1] if maps else None


def attention_plot(weights: np.ndarray, labels: list[str], title: str, note: str = "", max_labels: int = 64) -> Figure:
    """Mean over heads of attention weights (H, I, J), with the key labels (input bytes) on the x axis where
    they fit (every k-th of them otherwise)."""
    weights = np.asarray(weights, dtype=np.float32).mean(axis=0)  # (I, J)
    i, j = weights.shape
    fig = Figure(figsize=(12, 3.6), dpi=80, layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(weights, aspect="auto", interpolation="nearest", cmap="viridis")
    fig.colorbar(im, ax=ax, fraction=0.02)
    ax.set_title(f"{title} (mean of heads{', ' + note if note else ''})", fontsize=10)
    ax.set_ylabel("query position", fontsize=8)
    if labels and len(labels) == j:
        every = max(1, -(-j // max_labels))
        ticks = list(range(0, j, every))
        ax.set_xticks(ticks, [labels[t] for t in ticks], fontsize=8, fontfamily="monospace")
        ax.set_xlabel("key" + ("" if every == 1 else f" (every {ordinal(every)} of {j} labelled)"), fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    return fig


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st, ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def figures(run_dir: Path, task) -> dict[str, Figure | Any]:
    """:func:`curves` and the task's figures (``Task.figures``) of a run directory, by name; those with nothing to
    draw yet are left out. A task's figure function returns a Matplotlib ``Figure`` or any IPython display object
    with an HTML form (e.g. ``IPython.display.Audio``)."""
    from perceiver.tasks import load_object

    out = {"curves": curves(run_dir, task)}
    for path in task.figures:
        fn = load_object(path)
        out[fn.__name__] = fn(run_dir, task)
    return {name: fig for name, fig in out.items() if fig is not None}


def save(run_dir: Path, task) -> dict[str, Path]:
    """Write :func:`figures` as ``plots/<name>.png`` in the run directory (every run does at its end); other display
    objects as ``plots/<name>.html`` (their ``_repr_html_``), objects without an HTML form not at all."""
    out = {}
    for name, fig in figures(run_dir, task).items():
        if isinstance(fig, Figure):
            path, data = Path(run_dir, "plots", f"{name}.png"), png(fig)
        elif hasattr(fig, "_repr_html_"):
            path, data = Path(run_dir, "plots", f"{name}.html"), fig._repr_html_().encode()
        else:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[name] = path
    return out


def byte_attention(run_dir: Path, task=None) -> Optional[Figure]:
    """The latest attention map the journal saved (``attention/step-<k>.npz``), over the input bytes."""
    path = latest_attention(run_dir)
    if path is None:
        return None
    data = np.load(path, allow_pickle=True)
    return attention_plot(data["weights"], [str(x) for x in data["labels"]], str(data["title"]),
                          f"step {int(data['step'])}")
