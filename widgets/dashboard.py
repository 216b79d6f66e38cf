"""Live dashboard of a run directory: status, loss curves, learning rate, throughput, attention maps, samples and
the end of the log.

Everything shown is read from the run directory (``status.json``, ``metrics.jsonl``, ``attention/``,
``samples.jsonl``, ``train.log``), so the dashboard works the same for a subprocess, DDP ranks, a run started by
another kernel or a finished run, and it survives a browser reload: its parts are widgets, whose state lives in the
kernel, and a background thread keeps them current. Figures are drawn with Matplotlib's Agg canvas (no pyplot, no
GUI backend) into PNG bytes.
"""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import ipywidgets as w
from matplotlib.figure import Figure

from perceiver.runs import status as run_status
from perceiver.runs.figures import curves, figures, png, read_jsonl
from perceiver.runs.figures import save as save_figures
from perceiver.tasks import Task, load_object

__all__ = ["Dashboard", "png", "read_jsonl"]

_STATE_COLORS = {"running": "#1565c0", "completed": "#2e7d32", "stopped": "#ef6c00", "failed": "#c62828"}
_PRE = "white-space:pre-wrap;font-family:monospace;font-size:85%;margin:0"


def run_state(run_dir: Path) -> tuple:
    """Names and modification times of the run directory's files: figures are redrawn when this changes."""
    root = Path(run_dir)
    if not root.is_dir():
        return ()
    return tuple(sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*")
                        if p.is_file() and not p.name.startswith(".") and p.parent.name != "checkpoints"))


class _Figure:
    """An image (a Matplotlib figure) or HTML (another display object, e.g. an audio player), with a placeholder text
    until there is something to show."""

    def __init__(self, placeholder: str):
        self.placeholder = placeholder
        self.text = w.HTML(f"<i style='color:#888'>{html.escape(placeholder)}</i>")
        self.image = w.Image(format="png", layout=w.Layout(display="none", max_width="100%"))
        self.html = w.HTML(layout=w.Layout(display="none"))
        self.widget = w.VBox([self.text, self.image, self.html])

    def show(self, bundle: Optional[dict]) -> None:
        """Show display data (``{"image/png": bytes}`` or ``{"text/html": ..., "text/plain": ...}``); None: the
        placeholder."""
        shown = self.text
        if bundle is not None and "image/png" in bundle:
            self.image.value, shown = bundle["image/png"], self.image
        elif bundle is not None:
            markup = bundle.get("text/html") or f"<pre style='{_PRE}'>{html.escape(bundle.get('text/plain', ''))}</pre>"
            self.html.value, shown = markup, self.html
        for part in (self.text, self.image, self.html):
            part.layout.display = None if part is shown else "none"


class Dashboard:
    """Widgets showing the run in ``run_dir`` (``attach`` switches runs and clears); ``refresh()`` redraws what
    changed, ``follow()`` keeps refreshing in a background thread while the run runs."""

    def __init__(self, run_dir: Optional[str | Path], task: Task, log_lines: int = 8):
        self.task, self.log_lines = task, log_lines
        self.run_dir: Optional[Path] = None
        self.status_html = w.HTML()
        self.areas = {"curves": _Figure("loss curves appear here")}
        self.areas.update({name: _Figure(f"{name.replace('_', ' ')} appears here") for name in self.figure_functions()})
        self.sample = w.HTML()
        self.log = w.HTML()
        self.widget = w.VBox([self.status_html, *(a.widget for a in self.areas.values()), self.sample, self.log])
        self._drawn: dict[str, object] = {}
        self._lock = threading.Lock()
        self.thread: Optional[threading.Thread] = None
        self._follow_id = 0
        self.attach(run_dir)

    # --- which run ------------------------------------------------------------------------------------------------

    def attach(self, run_dir: Optional[str | Path]) -> "Dashboard":
        """Show the run in ``run_dir`` (None: no run): everything of the previous run is cleared first."""
        with self._lock:
            self.run_dir = Path(run_dir) if run_dir is not None else None
            self._drawn = {}
            for area in self.areas.values():
                area.show(None)
            self.sample.value = self.log.value = ""
        self.refresh()
        return self

    set_run_dir = attach

    @property
    def status(self) -> dict:
        """The run's ``status.json`` (``perceiver.runs.status.read``; ``{}`` before the run writes one)."""
        return run_status.read(self.run_dir) if self.run_dir is not None else {}

    @property
    def running(self) -> bool:
        return self.status.get("status") == "running"

    # --- drawing --------------------------------------------------------------------------------------------------

    def figure_functions(self) -> dict[str, Callable]:
        """The task's figures (``Task.figures``) by function name."""
        fns = [load_object(path) for path in self.task.figures]
        return {fn.__name__: fn for fn in fns}

    def figures(self) -> dict[str, object]:
        """The loss curves and the task's figures (``perceiver.runs.figures.figures``): Matplotlib figures, or any
        IPython display object a task's figure function returns (e.g. ``IPython.display.Audio``)."""
        return figures(self.run_dir, self.task) if self.run_dir is not None else {}

    def refresh(self) -> None:
        """Redraw what changed in the run directory."""
        with self._lock:
            run_dir = self.run_dir
            self.status_html.value = self.status_markup()
            if run_dir is None:
                return
            records = read_jsonl(run_dir / "metrics.jsonl")
            self._update("curves", len(records), lambda: curves(run_dir, self.task))
            state = run_state(run_dir)
            for name, fn in self.figure_functions().items():
                self._update(name, state, lambda fn=fn: fn(run_dir, self.task))
            samples = read_jsonl(run_dir / "samples.jsonl")
            if samples:
                s = samples[-1]
                self.sample.value = (f"<b>sample at step {s['step']}</b><pre style='{_PRE}'>"
                                     f"{html.escape(str(s['text']))}</pre>")
            tail = self.log_tail()
            self.log.value = f"<pre style='{_PRE};color:#555'>{html.escape(tail)}</pre>" if tail else ""

    def _update(self, name: str, key: object, make: Callable[[], object]) -> None:
        if self._drawn.get(name) == key:
            return
        bundle = _bundle(make())
        if bundle is not None:
            self.areas[name].show(bundle)
            self._drawn[name] = key

    def log_tail(self) -> str:
        path = self.run_dir / "train.log" if self.run_dir is not None else None
        if path is None or not path.is_file():
            return ""
        from widgets.runner import NOISE

        lines = [line for line in path.read_text(errors="replace").splitlines()
                 if line.strip() and not any(n in line for n in NOISE)]
        return "\n".join(lines[-self.log_lines:])

    def describe(self, status: dict) -> str:
        if not status and self.run_dir is not None and (self.run_dir / "train.log").exists():
            return "starting (loading data and model)…"
        return run_status.describe(status)

    def status_text(self, run=None) -> str:
        """The status in one line (and the error's last lines for a failed run), for headless output."""
        if self.run_dir is None:
            return "no run yet"
        status = self.status
        text = f"run {self.run_dir}: {self.describe(status)}"
        if status.get("status") == "failed" and status.get("error_tail"):
            text += "\n" + status["error_tail"]
        return text

    def status_markup(self) -> str:
        if self.run_dir is None:
            return "<i>no run yet: press Start</i>"
        status = self.status
        state = status.get("status")
        color = _STATE_COLORS.get(state, "#555")
        out = (f"<b style='color:{color}'>{html.escape(self.describe(status))}</b> "
               f"<span style='color:#555'>— run <code>{html.escape(str(self.run_dir))}</code></span>")
        if state == "failed" and status.get("error_tail"):
            out += f"<pre style='{_PRE};color:#c62828'>{html.escape(status['error_tail'])}</pre>"
        return out

    def save(self) -> dict[str, Path]:
        """Write the final figures as ``plots/<name>.png`` in the run directory (other display objects, such as
        audio, as ``plots/<name>.html``; ``perceiver.runs.figures.save``)."""
        return save_figures(self.run_dir, self.task) if self.run_dir is not None else {}

    # --- following a run ------------------------------------------------------------------------------------------

    def follow(self, run=None, interval_s: float = 2.0, on_end: Optional[Callable[[], None]] = None,
               save: bool = True) -> threading.Thread:
        """Refresh in a background thread while the run runs (``run``: its ``TrainingRun``, if this kernel started
        it; otherwise its ``status.json`` says), then refresh once more, save the plots and call ``on_end``. Attaching
        another run ends the thread."""
        self._follow_id += 1
        me, run_dir = self._follow_id, self.run_dir

        def active() -> bool:
            return self._follow_id == me and self.run_dir == run_dir

        def loop():
            while active() and (self.running if run is None else (run.running or run.process is None)):
                self.refresh()
                time.sleep(interval_s)
            if run is not None:
                run.wait()
            if not active():
                return
            self.refresh()
            if save:
                self.save()
            if on_end is not None:
                on_end()

        self.thread = threading.Thread(target=loop, name="perceiver-dashboard", daemon=True)
        self.thread.start()
        return self.thread


def _bundle(obj) -> Optional[dict]:
    """The display data of a figure function's result: PNG of a Figure, else the object's HTML (e.g. the player of
    an ``IPython.display.Audio``); None for nothing to show."""
    if obj is None:
        return None
    if isinstance(obj, Figure):
        return {"image/png": png(obj)}
    markup = obj._repr_html_() if hasattr(obj, "_repr_html_") else None
    return {"text/plain": repr(obj), **({"text/html": markup} if markup else {})}
