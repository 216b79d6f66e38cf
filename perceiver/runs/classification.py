"""Figures of a classifier's run directory, from the validation predictions the run journal saves
(``records/predictions/step-<k>.npz``: ``labels``, ``predictions`` and ``class_names``; see the Lightning modules'
``validation_records``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from matplotlib.figure import Figure


def latest_validation(run_dir: Path) -> Optional[Path]:
    found = sorted(Path(run_dir, "records", "predictions").glob("step-*.npz"))
    return found[-1] if found else None


def confusion_counts(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return counts


def confusion_plot(counts: np.ndarray, class_names: list[str], title: str) -> Figure:
    """Heatmap of ``counts`` (K, K), each row normalized to the share of its true class, with the counts written in
    the cells where they fit."""
    k = len(counts)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(3.0 + 0.35 * k, 10.0)
    fig = Figure(figsize=(size + 1.0, size), dpi=80, layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(shares, vmin=0.0, vmax=1.0, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if shares[i, j] > 0.5 else "black")
    every = max(1, -(-k // 30))
    ticks = list(range(0, k, every))
    rotate = dict(rotation=45, ha="right") if k > 4 else {}
    ax.set_xticks(ticks, [class_names[t] for t in ticks], fontsize=8, **rotate)
    ax.set_yticks(ticks, [class_names[t] for t in ticks], fontsize=8)
    ax.set_xlabel("predicted class", fontsize=8)
    ax.set_ylabel("true class", fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def confusion_matrix(run_dir: Path, task=None) -> Optional[Figure]:
    """The confusion matrix of the latest validation of the run (None before the first one)."""
    path = latest_validation(run_dir)
    if path is None:
        return None
    data = np.load(path, allow_pickle=False)
    names = [str(n) for n in data["class_names"]]
    labels, predictions = data["labels"], data["predictions"]
    counts = confusion_counts(labels, predictions, len(names))
    accuracy = float(np.trace(counts)) / max(int(counts.sum()), 1)
    step = int(path.stem.split("-")[1])
    return confusion_plot(counts, names, f"validation at step {step}\n"
                                         f"{len(labels)} examples, accuracy {accuracy:.1%}")
