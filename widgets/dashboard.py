"""Live dashboard of a run directory: loss curves, learning rate, throughput, attention maps and samples.

Figures are drawn with Matplotlib's Agg canvas (no pyplot, no GUI backend) into PNG bytes and shown through IPython
display handles. ``handle.update`` works from any thread while JupyterLab is open, and the last PNG stays in a
notebook executed headless by papermill. Everything is read from files the run's ``RunJournal`` writes, so the
dashboard works the same for a subprocess, DDP ranks or a finished run.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from matplotlib.figure import Figure

from perceiver.runs.figures import curves, png, read_jsonl
from perceiver.tasks import Task, load_object

__all__ = ["Dashboard", "png", "read_jsonl"]


def read_live_sample(run_dir: Path) -> Optional[dict]:
    """The sample being generated (``sample.live.json``: step and text so far), or None."""
    try:
        return json.loads(Path(run_dir, "sample.live.json").read_text())
    except (OSError, ValueError):
        return None


def run_state(run_dir: Path) -> tuple:
    """Names and modification times of the run directory's files: figures are redrawn when this changes."""
    root = Path(run_dir)
    if not root.is_dir():
        return ()
    return tuple(sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*")
                        if p.is_file() and not p.name.startswith(".") and p.parent.name != "checkpoints"
                        and p.name != "sample.live.json"))


class Dashboard:
    """Display handles for the plots, the latest sample and the log tail of ``run_dir``; ``refresh()`` redraws."""

    def __init__(self, run_dir: str | Path, task: Task, log_lines: int = 6):
        self.run_dir, self.task, self.log_lines = Path(run_dir), task, log_lines
        self.handles: dict = {}
        self.lines: list[str] = []
        self._drawn: dict[str, object] = {}
        self.thread: Optional[threading.Thread] = None

    def show(self) -> "Dashboard":
        """Create the display areas in the current cell's output (call from the cell, not from a callback)."""
        from IPython.display import display

        areas = [("status", "training has not started"), ("curves", "loss curves appear here")]
        areas += [(name, f"{name.replace('_', ' ')} appears here") for name in self.figure_functions()]
        areas.append(("sample", "samples appear here"))
        for name, text in areas:
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

    def figure_functions(self) -> dict[str, Callable]:
        """The task's figures (``Task.figures``) by function name."""
        fns = [load_object(path) for path in self.task.figures]
        return {fn.__name__: fn for fn in fns}

    def figures(self) -> dict[str, Figure]:
        out = {"curves": curves(self.run_dir, self.task)}
        out.update({name: fn(self.run_dir, self.task) for name, fn in self.figure_functions().items()})
        return {name: fig for name, fig in out.items() if fig is not None}

    def refresh(self) -> None:
        records = read_jsonl(self.run_dir / "metrics.jsonl")
        self._update("curves", len(records), lambda: _png(curves(self.run_dir, self.task)))
        state = run_state(self.run_dir)
        for name, fn in self.figure_functions().items():
            self._update(name, state, lambda fn=fn: _png(fn(self.run_dir, self.task)))
        samples = read_jsonl(self.run_dir / "samples.jsonl")
        live = read_live_sample(self.run_dir)
        if live and (not samples or live["step"] > samples[-1]["step"]):  # a sample being generated
            key = ("live", live["step"], live["text"])
            self._update("sample", key, lambda: {"text/plain": f"sample at step {live['step']} (generating):\n"
                                                               f"{live['text']}"})
        elif samples:
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


def _png(fig: Optional[Figure]) -> Optional[dict]:
    return None if fig is None else {"image/png": png(fig)}
