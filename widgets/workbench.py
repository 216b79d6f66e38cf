"""The workbench: preset, model and training forms, parameter count and compute estimate, YAML export,
Start/Stop/Resume, the live dashboard and a Sweep panel (``widgets.sweep``).

    from widgets import Workbench
    wb = Workbench("clm", preset="tiny CPU")
    wb                      # in JupyterLab: the form and the dashboard; Start trains in a subprocess
    wb.config()             # the CausalLanguageModelConfig of the form (ValueError if invalid)
    wb.export("x.yaml")     # python -m perceiver.scripts.text.clm fit --config x.yaml trains the same model
    wb.run()                # headless: train, print progress lines, then show the final figures (papermill, scripts)
    Workbench.attach("runs/clm")   # the latest run there (live or finished): its form, status, curves and error

Runs go to ``run_dir`` (default ``runs/{task}/{time}`` below the repository root, ``perceiver.runs.paths``): every
Start makes a new directory; a path without ``{time}`` that holds a run is refused unless Overwrite is ticked.
Resume continues the shown run from its checkpoint, with its own configuration. The form is a
:class:`widgets.taskform.TaskForm`; its parts are also attributes of the workbench (``wb.model_form``, ...).
"""

from __future__ import annotations

import html
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

import ipywidgets as w
import yaml

from perceiver.runs import paths
from perceiver.runs import status as run_status
from widgets import spec
from widgets.dashboard import Dashboard, png
from widgets.runner import TrainingRun
from widgets.sweep import SweepPanel
from widgets.taskform import RED, TaskForm

#: parts of the form that are also the workbench's attributes
FORM_PARTS = ("model_form", "settings_form", "preset_select", "preset_note", "run_dir_text", "overwrite_box",
              "params_label", "errors")


def in_jupyter_server() -> bool:
    """Whether this kernel was started by a Jupyter server (JupyterLab) rather than headless (papermill)."""
    return "JPY_SESSION_NAME" in os.environ


class Workbench:
    """Forms, runner and dashboard for one task of the registry (``perceiver.tasks``).

    Args:
        task: a task name, e.g. ``"clm"`` (Perceiver AR) or ``"mlm"`` (Perceiver IO).
        preset: a name of the task's presets (``perceiver.tasks.get(task).presets``).
        run_dir: where runs go, relative to the repository root (``perceiver.runs.paths``); ``{time}`` makes a new
            directory per run. Default: ``runs/<task>/{time}``.
        overwrite: let Start replace the run in ``run_dir`` (a path without ``{time}`` that holds a run).
        trainer: further ``pytorch_lightning.Trainer`` arguments of the runs, over the preset's, e.g.
            ``{"logger": False}``, ``{"enable_checkpointing": False}`` or ``{"callbacks": [{"class_path": ...}]}``
            (callbacks are added beside the CLI's own and the run journal).
        overrides: dotted CLI keys over the preset and the settings, e.g. ``["optimizer.lr=3e-3",
            "model.num_channels=128", "trainer.val_check_interval=20"]`` or a dict (a sweep's values): fields of the
            form are set (and checked), other keys go into the run's configuration (``TaskForm.apply_overrides``).
        settings: data/trainer settings overriding the preset (``None`` values are ignored), e.g. ``max_steps=30``
            or ``cpu_threads=1`` (torch threads of the training process: default all usable cores; a fixed number
            makes CPU results reproducible whatever the machine's core count).
    """

    def __init__(self, task: str, preset: str = "tiny CPU", run_dir: Optional[str] = None, overwrite: bool = False,
                 trainer: Optional[dict] = None, overrides: Any = None, **settings: Any):
        self.task = spec.resolve_task(task)
        self.start_button = w.Button(description="Start", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.resume_button = w.Button(description="Resume", icon="repeat", disabled=True,
                                      tooltip="continue the run shown below from its checkpoint")
        self.export_button = w.Button(description="Export YAML", icon="download")
        self.export_path = w.Text(value="", description="to")
        self.message = w.HTML()
        self.run_: Optional[TrainingRun] = None
        self.dashboard = Dashboard(None, self.task)
        self.form = TaskForm(self.task, preset, run_dir, overwrite, settings, trainer=trainer)
        if overrides:
            self.form.apply_overrides(overrides)
        self.sweep_panel = SweepPanel(self.form)
        for name in FORM_PARTS:
            setattr(self, name, getattr(self.form, name))
        self.form.observe(self._buttons)
        self._buttons()
        latest = paths.latest_run(self.run_dir_text.value, self.task.name)
        if latest is not None:  # e.g. after a kernel restart: show the last run, live if it still runs (the form
            self.show_run(latest, load_settings=False)  # keeps the settings given here: they are what Start uses)
        self.start_button.on_click(lambda _: self._click(self.start))
        self.stop_button.on_click(lambda _: self._click(lambda: self.stop(wait=False)))
        self.resume_button.on_click(lambda _: self._click(self.resume))
        self.export_button.on_click(lambda _: self._click(self.export))

    @classmethod
    def attach(cls, run_dir: str | Path, **kwargs: Any) -> "Workbench":
        """A workbench showing the run in ``run_dir`` (or the latest run below it): the form holds its settings, the
        dashboard its status, curves and error, live while it runs; Stop and Resume act on it."""
        from widgets.inference import run_task

        run = paths.latest_run(run_dir)
        if run is None:
            raise FileNotFoundError(f"no run in {paths.resolve(run_dir)}")
        task = run_task(run)
        template = str(Path(paths.relative(run)).parent / "{time}")
        wb = cls(task.name, run_dir=template, **kwargs)
        wb.show_run(run)
        return wb

    # --- the form ---------------------------------------------------------------------------------------------------

    @property
    def error_list(self) -> list[str]:
        """What makes the form invalid (Start and Export are disabled, saying why)."""
        return self.form.error_list

    @property
    def start_errors(self) -> list[str]:
        """What else keeps Start disabled (a run directory that holds a run)."""
        return self.form.start_errors

    def validate(self) -> list[str]:
        return self.form.validate()

    def apply_preset(self, name: str, **settings: Any) -> None:
        self.form.apply_preset(name, **settings)

    def settings(self) -> dict[str, Any]:
        return self.form.settings()

    def config(self):
        """The model config dataclass of the form (raises ``ValueError`` naming the field if invalid)."""
        return self.form.config()

    def data_module(self, settings: Optional[dict[str, Any]] = None):
        """The task's data module of ``settings`` (default: the form's), as the training run builds it; no data is
        read until its ``setup()``."""
        return self.form.data_module(self.settings() if settings is None else settings)

    def cli_config(self) -> dict:
        return self.form.cli_config()

    def to_yaml(self) -> str:
        return self.form.to_yaml()

    def export(self, path: Optional[str | Path] = None) -> Path:
        """Write the CLI YAML (``python -m <task.cli> fit --config <path>``; relative paths: from the root)."""
        if self.validate():
            raise ValueError("invalid configuration, nothing exported: " + "; ".join(self.error_list))
        path = paths.resolve(path or self.export_path.value or self.form.default_export_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        self.message.value = (f"exported <code>{html.escape(str(path))}</code>; train with <code>python -m "
                              f"{self.task.cli} fit --config {html.escape(paths.relative(path))}</code>")
        return path

    # --- state ----------------------------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Optional[Path]:
        """The directory of the run the dashboard shows (the last one started here, or attached)."""
        return self.dashboard.run_dir

    @property
    def running(self) -> bool:
        return self.run_ is not None and self.run_.running

    def _click(self, action) -> None:
        """Run a button's action; an error shows next to the buttons instead of in the kernel's log."""
        try:
            action()
        except Exception as e:  # noqa: BLE001  (whatever goes wrong is the user's to read)
            self.message.value = f"<span style='{RED}'>⚠ {html.escape(f'{type(e).__name__}: {e}')}</span>"

    def _buttons(self) -> None:
        """Buttons and the reason next to them, from the form's checks and the state of the shown run."""
        errors, live = self.error_list, self.running or self.dashboard.running
        self.start_button.disabled = bool(errors or self.start_errors) or self.running
        self.export_button.disabled = bool(errors)
        self.export_button.tooltip = "fix the errors above to export" if errors else "write the CLI configuration"
        self.export_path.placeholder = self.form.default_export_path()
        self.stop_button.disabled = not live
        self.resume_button.disabled = live or self.dashboard.status.get("status") not in ("stopped", "failed") or (
            self.run_dir is None or paths.resume_checkpoint(self.run_dir) is None)
        invalid = f"<span style='{RED}'>Start and Export need a valid form: "
        if errors:
            self.message.value = invalid + f"{html.escape(errors[0])}</span>"
        elif self.message.value.startswith(invalid):
            self.message.value = ""

    # --- running --------------------------------------------------------------------------------------------------

    def start(self, follow: bool = True) -> TrainingRun:
        """Start training in a new run directory, in a subprocess; with ``follow`` a background thread keeps the
        dashboard live."""
        if self.validate() or self.start_errors:
            raise ValueError("cannot start: " + "; ".join(self.error_list + self.start_errors))
        if self.running:
            raise RuntimeError("a run is already running")
        config = self.cli_config()
        run_dir = paths.prepare_run_dir(self.run_dir_text.value, self.task.name, overwrite=self.overwrite_box.value)
        return self._launch(TrainingRun(self.task, config, run_dir), follow)

    def resume(self, follow: bool = True) -> TrainingRun:
        """Continue the run the dashboard shows from its latest checkpoint, with its own ``config.yaml``: a stopped
        run goes on exactly as if it had not stopped."""
        if self.running or self.dashboard.running:
            raise RuntimeError("the run is still running")
        if self.run_dir is None:
            raise RuntimeError("no run to resume")
        return self._launch(TrainingRun.resume(self.task, self.run_dir), follow)

    def _launch(self, run: TrainingRun, follow: bool) -> TrainingRun:
        self.run_ = run.start()
        self.dashboard.attach(run.run_dir)
        self._buttons()
        verb = "resuming" if run.ckpt_path else "training"
        self.message.value = f"{verb} in <code>{html.escape(str(run.run_dir))}</code>"
        if follow:
            self.dashboard.follow(self.run_, on_end=self._ended)
        return self.run_

    def show_run(self, run_dir: str | Path, load_settings: bool = True) -> None:
        """Show the run in ``run_dir``: its status and figures in the dashboard, followed while it runs, and with
        ``load_settings`` its model and settings in the form."""
        run_dir = Path(run_dir)
        if load_settings and (run_dir / "config.yaml").is_file():
            self.form.set_from_config(yaml.safe_load((run_dir / "config.yaml").read_text()) or {})
        self.dashboard.attach(run_dir)
        if self.dashboard.running:
            self.dashboard.follow(None, on_end=self._ended, save=False)
        self._buttons()

    def _ended(self) -> None:
        self.validate()  # the run directory may now hold a run
        self._buttons()
        self.message.value = (f"run {html.escape(run_status.describe(self.dashboard.status))}; files in "
                              f"<code>{html.escape(str(self.run_dir))}</code>")

    def stop(self, wait: bool = True) -> None:
        """End the run after its current step; it keeps ``checkpoints/final.ckpt`` (and can be resumed)."""
        if not self.running:
            if self.dashboard.running and self.run_dir is not None:  # a run started elsewhere: its journal stops it
                (self.run_dir / "STOP").touch()
                self.stop_button.disabled = True
                self.message.value = "stopping after the current step…"
            return
        self.stop_button.disabled = True
        self.message.value = "stopping after the current step…"
        if wait:
            self.run_.stop()
        else:
            threading.Thread(target=self.run_.stop, daemon=True).start()

    def run(self, refresh_s: float = 30.0) -> dict:
        """Train headless (papermill, a script): print progress lines and, every ``refresh_s`` seconds, the status;
        then show the final figures once, the last sample and the metrics. Returns ``metrics.json``."""
        import json

        t0 = time.time()
        run = self.start(follow=False)
        print(f"run directory: {run.run_dir}", flush=True)
        last = time.time()
        while run.running:
            for line in run.new_lines():
                print(line, flush=True)
            if time.time() - last > refresh_s:
                print(f"[workbench] {self.dashboard.status_text()}", flush=True)
                last = time.time()
            time.sleep(0.5)
        run.wait()
        for line in run.new_lines():
            print(line, flush=True)
        self.dashboard.refresh()
        self._ended()
        metrics_path = run.run_dir / "metrics.json"
        status = self.dashboard.status
        if run.returncode != 0 or not metrics_path.is_file() or status.get("status") == "failed":
            raise RuntimeError(f"training failed: {self.dashboard.status_text()}\n(see {run.run_dir / 'train.log'})")
        print(f"{self.dashboard.status_text()}; wall time {time.time() - t0:.0f}s (including startup)")
        self.show_results()
        return json.loads(metrics_path.read_text())

    def show_results(self) -> None:
        """The final figures (saved as ``plots/*.png``, display objects such as audio as ``plots/*.html``: shown in
        a notebook, their paths printed in a script), the last sample and the final metrics."""
        from IPython import get_ipython
        from IPython.display import Image, display
        from matplotlib.figure import Figure

        from widgets.dashboard import read_jsonl

        saved = self.dashboard.save()
        figures = self.dashboard.figures()
        for name, path in saved.items():
            if get_ipython() is not None:
                fig = figures[name]
                display(Image(data=png(fig)) if isinstance(fig, Figure) else fig)
            else:
                print(f"figure {name}: {path}")
        samples = read_jsonl(self.run_dir / "samples.jsonl")
        if samples:
            print(f"sample at step {samples[-1]['step']}:\n{samples[-1]['text']}")

    # --- display ----------------------------------------------------------------------------------------------------

    @property
    def widget(self) -> w.Widget:
        buttons = w.HBox([self.start_button, self.stop_button, self.resume_button, self.export_button,
                          self.export_path])
        sweep = w.Accordion([self.sweep_panel.widget], selected_index=None)
        sweep.set_title(0, "sweep: vary fields of this form")
        return w.VBox([self.form.widget, buttons, self.message, self.dashboard.widget, sweep])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
