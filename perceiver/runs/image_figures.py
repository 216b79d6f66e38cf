"""Figures of an image classifier's run directory: the latents' cross-attention as heatmaps over the image, and the
misclassified validation images. Drawn with Matplotlib's Agg canvas, like ``perceiver.runs.figures``.

Dimensions:
    H: attention heads,  N: latents,  M: pixels (height * width)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
from matplotlib.figure import Figure

from perceiver.runs.figures import latest_attention


def displayable(image: np.ndarray) -> tuple[np.ndarray, dict]:
    """An image (h, w, c) as ``imshow`` arguments: grayscale with its own value range, or RGB scaled to [0, 1]."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape[-1] == 1:
        return image[..., 0], {"cmap": "gray", "vmin": float(image.min()), "vmax": float(image.max())}
    lo, hi = float(image.min()), float(image.max())
    return (image - lo) / max(hi - lo, 1e-6), {}


def _grid(n: int, cols: int, size: float = 1.3, title_space: float = 0.6) -> tuple[Figure, list]:
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * size, rows * size + title_space), dpi=80, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes:
        ax.set_axis_off()
    return fig, axes


def pixel_attention(run_dir: Path, task=None, max_latents: int = 32) -> Optional[Figure]:
    """The latest attention map the journal saved for the fixed validation image: each latent's cross-attention
    (mean of heads) over the pixels, as a heatmap over the image, after the image itself."""
    path = latest_attention(run_dir)
    if path is None:
        return None
    data = np.load(path, allow_pickle=True)
    if "image" not in data:
        return None
    image = data["image"]
    weights = np.asarray(data["weights"], dtype=np.float32).mean(axis=0)  # (N, M)
    n = min(weights.shape[0], max_latents)
    heat = weights[:n].reshape(n, *image.shape[:2])  # (n, h, w)
    fig, axes = _grid(n + 1, cols=min(n + 1, 9))
    shown, kwargs = displayable(image)
    axes[0].imshow(shown, interpolation="nearest", **kwargs)
    axes[0].set_title("input", fontsize=8)
    for i, ax in enumerate(axes[1 : n + 1]):
        ax.imshow(shown, interpolation="nearest", **kwargs)
        ax.imshow(heat[i], cmap="inferno", alpha=0.75, interpolation="nearest")
        ax.set_title(f"latent {i}", fontsize=7)
    more = f", first {n} of {weights.shape[0]} latents" if n < weights.shape[0] else ""
    fig.suptitle(f"{data['title']} (mean of heads{more}), step {int(data['step'])}", fontsize=10)
    return fig


def latest_record(run_dir: Path, name: str) -> Optional[Path]:
    found = sorted(Path(run_dir, "records", name).glob("step-*.npz"))
    return found[-1] if found else None


def misclassified(run_dir: Path, task=None, class_names: Optional[list[str]] = None) -> Optional[Figure]:
    """The misclassified images of the latest validation (as many as the Lightning module kept), titled
    ``true -> predicted``."""
    path = latest_record(run_dir, "misclassified")
    if path is None:
        return None
    data = np.load(path)
    images, labels, predictions = data["images"], data["labels"], data["predictions"]
    step = int(path.stem.split("-")[1])
    title = (f"misclassified validation images at step {step}: {int(data['num_errors'])} of {int(data['num_seen'])}"
             + (f", first {len(labels)} shown" if len(labels) < int(data["num_errors"]) else ""))
    if len(labels) == 0:
        fig = Figure(figsize=(6, 1), dpi=80)
        fig.text(0.5, 0.5, title, ha="center", va="center", fontsize=10)
        return fig

    def name(i: int) -> str:
        return class_names[i] if class_names and i < len(class_names) else str(i)

    fig, axes = _grid(len(labels), cols=min(len(labels), 8))
    for ax, image, t, p in zip(axes, images, labels, predictions):
        shown, kwargs = displayable(image)
        ax.imshow(shown, interpolation="nearest", **kwargs)
        ax.set_title(f"{name(int(t))} -> {name(int(p))}", fontsize=8, color="#c62828")
    fig.suptitle(title, fontsize=10)
    return fig
