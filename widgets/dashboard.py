"""Live dashboard of a run directory: loss curves, learning rate, throughput, attention maps and samples.

Figures are drawn with Matplotlib's Agg canvas (no pyplot, no GUI backend) into PNG bytes and shown through IPython
display handles. ``handle.update`` works from any thread while JupyterLab is open, and the last PNG stays in a
notebook executed headless by papermill. Everything is read from files the run's ``RunJournal`` writes, so the
dashboard works the same for a subprocess, DDP ranks or a finished run.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PLOTS = ("curves", "attention")


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            pass
    return out


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def curves_figure(records: list[dict], task: str) -> Optional[Figure]:
    """Train/validation loss, bits per byte (CLM) or masked accuracy (MLM), learning rate and tokens/s per step."""
    train = [r for r in records if "train_loss" in r]
    val = [r for r in records if "val_loss" in r]
    if not train:
        return None
    fig = Figure(figsize=(12, 3.2), dpi=80, layout="constrained")
    axes = fig.subplots(1, 4)
    second = "bpb" if task == "clm" else "masked_accuracy"

    def plot(ax, key, title, val_key=None):
        xs = [r["step"] for r in train if r.get(key) is not None]
        ax.plot(xs, [r[key] for r in train if r.get(key) is not None], lw=1, label="train")
        if val_key:
            vals = [r for r in val if val_key in r]
            ax.plot([r["step"] for r in vals], [r[val_key] for r in vals], "o-", label="validation")
            ax.legend(fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)

    plot(axes[0], "train_loss", "loss", "val_loss")
    plot(axes[1], f"train_{second}", "bits per byte" if task == "clm" else "masked accuracy", f"val_{second}")
    plot(axes[2], "lr", "learning rate")
    plot(axes[3], "tokens_per_s", "throughput (tokens/s)")
    return fig


def latest_attention(run_dir: Path) -> Optional[Path]:
    maps = sorted(Path(run_dir, "attention").glob("step-*.npz"))
    return maps[-1] if maps else None


def attention_figure(path: Path, task: str, max_labels: int = 64) -> Figure:
    """The attention map saved by ``RunJournal`` at ``path`` (see ``attention_plot``)."""
    data = np.load(path, allow_pickle=True)
    return attention_plot(data["weights"], [str(x) for x in data["labels"]], task, f"step {int(data['step'])}",
                          max_labels)


def attention_plot(weights: np.ndarray, labels: list[str], task: str, note: str = "", max_labels: int = 64) -> Figure:
    """Mean over heads of attention weights (H, I, J), with the input bytes on the key axis where they fit."""
    weights = np.asarray(weights, dtype=np.float32).mean(axis=0)  # (I, J)
    i, j = weights.shape
    fig = Figure(figsize=(12, 3.6), dpi=80, layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(weights, aspect="auto", interpolation="nearest", cmap="viridis")
    fig.colorbar(im, ax=ax, fraction=0.02)
    what = "encoder cross-attention: latents over input bytes" if task == "mlm" else \
        "prefix cross-attention: latent positions over prefix + latent bytes"
    ax.set_title(f"{what} (mean of heads{', ' + note if note else ''})", fontsize=10)
    ax.set_ylabel("latent" if task == "mlm" else "latent position", fontsize=8)
    if labels and len(labels) == j:
        every = max(1, -(-j // max_labels))
        ticks = list(range(0, j, every))
        ax.set_xticks(ticks, [labels[t] for t in ticks], fontsize=8, fontfamily="monospace")
        ax.set_xlabel("input byte" + ("" if every == 1 else f" (every {every}th of {j})"), fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    return fig


class Dashboard:
    """Display handles for the plots, the latest sample and the log tail of ``run_dir``; ``refresh()`` redraws."""

    def __init__(self, run_dir: str | Path, task: str, log_lines: int = 6):
        self.run_dir, self.task, self.log_lines = Path(run_dir), task, log_lines
        self.handles: dict = {}
        self.lines: list[str] = []
        self._drawn: dict[str, object] = {}
        self.thread: Optional[threading.Thread] = None

    def show(self) -> "Dashboard":
        """Create the display areas in the current cell's output (call from the cell, not from a callback)."""
        from IPython.display import display

        for name, text in [("status", "training has not started"), ("curves", "loss curves appear here"),
                           ("attention", "attention maps appear here"), ("sample", "samples appear here")]:
            self.handles[name] = display({"text/plain": text}, raw=True, display_id=True)
        return self

    def set_run_dir(self, run_dir: str | Path) -> None:
        self.run_dir, self._drawn = Path(run_dir), {}

    def _update(self, name: str, key: object, make: Callable[[], object]) -> None:
        if self._drawn.get(name) == key or name not in self.handles:
            return
        obj = make()
        if obj is not None:
            self.handles[name].update(obj, raw=True)
            self._drawn[name] = key

    def status(self, text: str) -> None:
        if "status" in self.handles:
            self.handles["status"].update({"text/plain": text}, raw=True)

    def figures(self) -> dict[str, Figure]:
        out = {}
        records = read_jsonl(self.run_dir / "metrics.jsonl")
        fig = curves_figure(records, self.task)
        if fig is not None:
            out["curves"] = fig
        att = latest_attention(self.run_dir)
        if att is not None:
            out["attention"] = attention_figure(att, self.task)
        return out

    def refresh(self) -> None:
        records = read_jsonl(self.run_dir / "metrics.jsonl")
        self._update("curves", len(records),
                     lambda: (lambda f: f and {"image/png": png(f)})(curves_figure(records, self.task)))
        att = latest_attention(self.run_dir)
        if att is not None:
            self._update("attention", att.name, lambda: {"image/png": png(attention_figure(att, self.task))})
        samples = read_jsonl(self.run_dir / "samples.jsonl")
        if samples:
            s = samples[-1]
            self._update("sample", s["step"], lambda: {"text/plain": f"sample at step {s['step']}:\n{s['text']}"})

    def save(self) -> dict[str, Path]:
        """Write the final figures as ``plots/<name>.png`` in the run directory."""
        out = {}
        (self.run_dir / "plots").mkdir(parents=True, exist_ok=True)
        for name, fig in self.figures().items():
            path = self.run_dir / "plots" / f"{name}.png"
            path.write_bytes(png(fig))
            out[name] = path
        return out

    def follow(self, run, interval_s: float = 2.0, on_end: Optional[Callable[[], None]] = None) -> threading.Thread:
        """Refresh in a background thread while ``run`` (a ``TrainingRun``) is running, then save the plots."""

        def loop():
            while run.running or run.process is None:
                self.status(self.status_text(run))
                self.refresh()
                time.sleep(interval_s)
            run.wait()
            self.refresh()
            self.save()
            self.status(self.status_text(run))
            if on_end is not None:
                on_end()

        self.thread = threading.Thread(target=loop, name="perceiver-dashboard", daemon=True)
        self.thread.start()
        return self.thread

    def status_text(self, run) -> str:
        state = "running" if run.running else f"finished (exit code {run.returncode})"
        tail = "\n".join(run.lines[-self.log_lines:])
        return f"run {self.run_dir} — {state}\n{tail}"
