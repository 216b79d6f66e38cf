"""The workbench's Sweep panel: pick fields of the form, give their values, Start, and watch the points' table fill
in as they finish.

Start writes the form's CLI configuration to ``<sweep dir>/base.yaml`` and starts
``python -m perceiver.scripts.sweep <task> --param <field>=<values> ... --out <sweep dir> -- --config base.yaml`` in a
subprocess (its output in ``<sweep dir>/sweep.log``): every point is the form's run with the swept fields changed,
in its own run directory, and the sweep is the same as one typed in a terminal (resumable, Optuna's study in
``sweep.db``, the summary notebook at the end). Stop interrupts it; Start with the same sweep dir resumes it.
"""

from __future__ import annotations

import html
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import ipywidgets as w

from perceiver.runs import paths
from perceiver.sweep.space import SpaceError, format_value, parse_param
from widgets.runner import wait_for
from widgets.spec import to_yaml
from widgets.taskform import RED, TaskForm

REFRESH_S = 2.0


class SweepPanel:
    """Sweep controls over a :class:`~widgets.taskform.TaskForm` (see the module docstring).

    Args:
        form: the workbench's form: the base configuration and the fields to sweep.
        out: the sweep directory (relative: from the repository root); ``{time}`` makes a new one per Start.
    """

    def __init__(self, form: TaskForm, out: Optional[str] = None):
        self.form = form
        self.rows: list[tuple[w.Dropdown, w.Text, w.HBox]] = []
        self.rows_box = w.VBox()
        self.add_button = w.Button(description="add field", icon="plus")
        self.sampler = w.Dropdown(options=["grid", "random", "tpe"], value="grid", description="sampler")
        self.trials = w.IntText(value=8, description="trials", disabled=True, layout=w.Layout(width="160px"),
                                tooltip="points of a random or TPE search")
        self.out_text = w.Text(value=out or f"runs/{form.task.name}-sweep/{{time}}", description="sweep dir",
                               layout=w.Layout(width="420px"))
        self.start_button = w.Button(description="Start sweep", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop sweep", button_style="danger", icon="stop", disabled=True)
        self.message, self.table = w.HTML(), w.HTML()
        self.process: Optional[subprocess.Popen] = None
        self.out: Optional[Path] = None
        self._thread: Optional[threading.Thread] = None
        self.add_button.on_click(lambda _: self.add_row())
        self.sampler.observe(lambda c: setattr(self.trials, "disabled", c["new"] == "grid"), names="value")
        self.start_button.on_click(lambda _: self._click(self.start))
        self.stop_button.on_click(lambda _: self._click(self.stop))
        self.add_row("optimizer.lr")

    # --- the parameters ---------------------------------------------------------------------------------------------

    def add_row(self, key: Optional[str] = None, values: str = "") -> None:
        """One more swept field: a menu of the form's fields (dotted CLI keys) and its values."""
        fields = self.form.override_fields()
        key = key if key in fields else next(iter(fields))
        menu = w.Dropdown(options=list(fields), value=key, layout=w.Layout(width="300px"))
        text = w.Text(value=values, layout=w.Layout(width="300px"))
        remove = w.Button(icon="trash", tooltip="remove this field", layout=w.Layout(width="40px"))
        row = w.HBox([menu, text, remove])

        def hint(_=None):
            text.placeholder = f"e.g. {format_value(self.form.override_fields().get(menu.value))}, ... or LOW..HIGH"
        hint()
        menu.observe(hint, names="value")
        remove.on_click(lambda _: self.remove_row(row))
        self.rows.append((menu, text, row))
        self.rows_box.children = [r for _, _, r in self.rows]

    def remove_row(self, row: w.HBox) -> None:
        self.rows = [r for r in self.rows if r[2] is not row]
        self.rows_box.children = [r for _, _, r in self.rows]

    def params(self) -> list:
        """The swept parameters of the rows (``SpaceError`` naming the field if its values cannot be read)."""
        out = []
        for menu, text, _ in self.rows:
            if not text.value.strip():
                raise SpaceError(menu.value, "give its values, comma-separated (or LOW..HIGH for random and TPE)")
            out.append(parse_param(f"{menu.value}={text.value}"))
        if not out:
            raise SpaceError("", "add a field to sweep")
        return out

    # --- running --------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self, out: Path) -> list[str]:
        """The sweep's command line (the form's configuration in ``out/base.yaml``, written by :meth:`start`)."""
        args = [sys.executable, "-m", "perceiver.scripts.sweep", self.form.task.name, "--out", str(out),
                "--sampler", self.sampler.value]
        if self.sampler.value != "grid":
            args += ["--trials", str(self.trials.value)]
        for p in self.params():
            args += ["--param", p.describe()]
        return args + ["--", "--config", str(out / "base.yaml")]

    def start(self) -> Path:
        """Start the sweep in a subprocess; a thread refreshes the table until it ends. Returns the sweep dir."""
        if self.running:
            raise RuntimeError("a sweep is already running")
        if self.form.validate():
            raise ValueError("the form is invalid: " + "; ".join(self.form.error_list))
        params = self.params()
        out = paths.new_run_dir(self.out_text.value, self.form.task.name)
        out.mkdir(parents=True, exist_ok=True)
        config = self.form.cli_config()
        config.pop("run_dir", None)  # each point gets its own
        (out / "base.yaml").write_text(to_yaml(config))
        log = open(out / "sweep.log", "a")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(self.command(out), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=paths.root(), env=env, start_new_session=True)
        log.close()
        self.out = out
        shown = ", ".join(p.describe() for p in params)
        self.message.value = f"sweeping {html.escape(shown)} in <code>{html.escape(str(out))}</code>"
        self.start_button.disabled, self.stop_button.disabled = True, False
        self._thread = threading.Thread(target=self._follow, name="perceiver-sweep", daemon=True)
        self._thread.start()
        return out

    def stop(self, grace_s: float = 60.0) -> None:
        """Interrupt the sweep: the running point saves its interrupt checkpoint; Start with the same sweep dir
        runs what did not complete."""
        if not self.running:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        return wait_for(self.process, self._thread, timeout)

    def _follow(self) -> None:
        while self.running:
            self.refresh()
            time.sleep(REFRESH_S)
        self.refresh()
        code = self.process.returncode
        last = self.log_lines()[-1:] or [""]
        state = "sweep finished" if code == 0 else f"sweep ended (exit code {code})"
        color = "" if code == 0 else f" style='{RED}'"
        self.message.value = (f"<span{color}>{state}; summary: <code>{html.escape(str(self.out / 'sweep.ipynb'))}"
                              f"</code></span><br><small>{html.escape(last[0])}</small>")
        self.start_button.disabled, self.stop_button.disabled = False, True

    def log_lines(self) -> list[str]:
        path = self.out / "sweep.log" if self.out else None
        if path is None or not path.is_file():
            return []
        return [line for line in path.read_text(errors="replace").splitlines() if line.startswith("[sweep]")]

    def refresh(self) -> None:
        """The table of the sweep's points (``perceiver.runs.load``), best first."""
        if self.out is None:
            return
        from perceiver.runs import compare, load
        from widgets.compare import table_html

        runs = load(self.out)
        if len(runs):
            self.table.value = table_html(compare.table(runs))
        if self.running:
            last = self.log_lines()[-1:]
            done = int((runs["status"] != "running").sum()) if len(runs) else 0
            self.message.value = (f"running: {done} point(s) finished · <code>{html.escape(str(self.out))}</code>"
                                  + (f"<br><small>{html.escape(last[0])}</small>" if last else ""))

    def _click(self, action) -> None:
        try:
            action()
        except Exception as e:  # noqa: BLE001  (shown to the user next to the buttons)
            self.message.value = f"<span style='{RED}'>⚠ {html.escape(f'{type(e).__name__}: {e}')}</span>"

    @property
    def widget(self) -> w.Widget:
        return w.VBox([
            w.HTML("<b>Sweep</b>: pick fields of the form and their values (comma-separated; LOW..HIGH or "
                   "LOW..HIGH:log for random and TPE); every point trains the form's configuration with them."),
            self.rows_box, self.add_button, w.HBox([self.sampler, self.trials, self.out_text]),
            w.HBox([self.start_button, self.stop_button]), self.message, self.table,
        ])
