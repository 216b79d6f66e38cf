"""The workbench: preset, model and training forms, parameter count and compute estimate, YAML export, Start/Stop and
the live dashboard.

    from widgets import Workbench
    wb = Workbench("clm", preset="tiny CPU")
    wb                      # in JupyterLab: the form and the dashboard; Start trains in a subprocess
    wb.config()             # the CausalLanguageModelConfig of the form (ValueError if invalid)
    wb.export("x.yaml")     # python -m perceiver.scripts.text.clm fit --config x.yaml trains the same model
    wb.run()                # headless: train, print progress lines, show the final figures (papermill)
"""

from __future__ import annotations

import html
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

import ipywidgets as w
import torch
from matplotlib.figure import Figure

from widgets import spec
from widgets.dashboard import Dashboard, png
from perceiver.model.core.config import ConfigError
from perceiver.model.core.presets import merge
from widgets.forms import DataclassForm, FieldError, SignatureForm
from widgets.runner import TrainingRun


def in_jupyter_server() -> bool:
    """Whether this kernel was started by a Jupyter server (JupyterLab) rather than headless (papermill)."""
    return "JPY_SESSION_NAME" in os.environ


class Workbench:
    """Forms, runner and dashboard for one task of the registry (``perceiver.tasks``).

    Args:
        task: a task name, e.g. ``"clm"`` (Perceiver AR) or ``"mlm"`` (Perceiver IO).
        preset: a name of the task's presets (``perceiver.tasks.get(task).presets``).
        run_dir: the run directory.
        trainer: further ``pytorch_lightning.Trainer`` arguments of the runs, over the preset's, e.g.
            ``{"logger": False}``, ``{"enable_checkpointing": False}`` or ``{"callbacks": [{"class_path": ...}]}``
            (callbacks are added to the run journal).
        cpu_threads: torch threads of a CPU run (fixed, so CPU results do not depend on the machine's core count).
        settings: data/trainer settings overriding the preset (``None`` values are ignored), e.g. ``max_steps=30``.
    """

    def __init__(self, task: str, preset: str = "tiny CPU", run_dir: Optional[str] = None,
                 trainer: Optional[dict] = None, cpu_threads: Optional[int] = 1, **settings: Any):
        self.task = spec.resolve_task(task)
        self.task.run_preset(preset)  # an unknown preset fails here, listing the known ones
        self.model_form = DataclassForm(self.task.config_class, exclude=self.task.linked_fields, title="model")
        owners = spec.setting_owners(self.task)
        self.settings_form = SignatureForm(owners, choices={"optimizer": list(spec.OPTIMIZERS)}, title="training")
        self.preset_select = w.Dropdown(options=list(self.task.presets), value=preset, description="preset")
        self.run_dir_text = w.Text(value=run_dir or f"runs/{self.task.name}", description="run dir")
        self.params_label = w.HTML()
        self.errors = w.HTML()
        self.start_button = w.Button(description="Start", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.export_button = w.Button(description="Export YAML", icon="download")
        self.export_path = w.Text(value="", placeholder="<run dir>/config.yaml", description="to")
        self.message = w.HTML()
        self.dashboard = Dashboard(self.run_dir, self.task)
        self.run_: Optional[TrainingRun] = None
        self.extra: dict = {}
        self.trainer_options = dict(trainer or {})
        self.cpu_threads = cpu_threads
        self.error_list: list[str] = []
        self._quiet = False

        self.apply_preset(preset, **settings)
        self.preset_select.observe(lambda c: self.apply_preset(c["new"]), names="value")
        self.model_form.observe(self.validate)
        self.settings_form.observe(self.validate)
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop(wait=False))
        self.export_button.on_click(lambda _: self.export())

    # --- state ----------------------------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return Path(self.run_dir_text.value)

    @property
    def running(self) -> bool:
        return self.run_ is not None and self.run_.running

    def apply_preset(self, name: str, **settings: Any) -> None:
        p = spec.preset(self.task, name)
        self._quiet = True
        try:
            self.model_form.reset()
            self.model_form.set_values(p["model"])
            self.settings_form.reset()
            self.settings_form.set_values({**p["settings"], **{k: v for k, v in settings.items() if v is not None}})
            self.extra = merge(p["extra"], {"trainer": self.trainer_options})
        finally:
            self._quiet = False
        self.validate()

    def settings(self) -> dict[str, Any]:
        return self.settings_form.values()

    def config(self):
        """The model config dataclass of the form (raises ``ValueError`` naming the field if invalid)."""
        values, settings = self.model_form.values(), self.settings()
        return spec.build_model_config(self.task, values, self.data_module(settings))

    def data_module(self, settings: dict):
        """The data module of these settings (cheap: no data is read); its checks are the data settings' rules."""
        data_settings = {k: settings[k] for k in ("source", "max_seq_len", "batch_size") if k in settings}
        return self.task.data_class(**{**self.task.data_args, **data_settings})

    def cli_config(self, log=print) -> dict:
        return spec.cli_config(self.task, self.config(), self.settings(), self.run_dir, self.extra, log=log)

    def to_yaml(self) -> str:
        return spec.to_yaml(self.cli_config(log=lambda _: None))

    def export(self, path: Optional[str | Path] = None) -> Path:
        """Write the CLI YAML (``python -m <task.cli> fit --config <path>``)."""
        path = Path(path or self.export_path.value or self.run_dir / "config.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        self.message.value = f"exported <code>{html.escape(str(path))}</code>"
        return path

    # --- validation -------------------------------------------------------------------------------------------------

    def validate(self) -> list[str]:
        """Check the forms; show errors inline, disable Start if there are any, update the parameter count."""
        if self._quiet:
            return self.error_list
        forms = (self.model_form, self.settings_form)
        for f in forms:
            f.clear_errors()
        errors = []
        try:
            settings = self.settings()
            try:
                spec.optimizer_class(settings["optimizer"])([torch.zeros(1, requires_grad=True)], lr=settings["lr"])
            except ValueError as e:
                self.settings_form.field("lr").show_error(str(e))
                errors.append(f"lr: {e}")
            try:
                data_module = self.data_module(settings)
            except ConfigError as e:  # the data module names its argument, which is the setting of that name
                raise FieldError(e.field, e.message) from None
            try:
                config = spec.build_model_config(self.task, self.model_form.values(), data_module)
            except (ConfigError, FieldError) as e:
                name, message = (e.field, e.message) if isinstance(e, ConfigError) else (e.name, e.message)
                raise FieldError(name, message, form="model") from None
            self.params_label.value = (f"<b>parameters: {spec.format_count(spec.parameter_count(self.task, config))}"
                                       f"</b> ({type(config).__name__})"
                                       + html.escape(spec.format_compute(spec.compute_estimate(config, settings))))
        except FieldError as e:
            forms_ = (self.model_form,) if e.form == "model" else (self.settings_form, self.model_form)
            field = next((f.field(e.name) for f in forms_ if f.field(e.name) is not None), None)
            if field is not None:
                field.show_error(f"{e.name} {e.message}")
            errors.append(str(e))
        except (ValueError, TypeError) as e:  # not a structured error: show it above the buttons
            errors.append(str(e))
        if errors:
            self.params_label.value = "<b>parameters: –</b> (invalid configuration)"
        self.error_list = errors
        self.errors.value = "".join(f"<div style='color:#c62828'>⚠ {html.escape(e)}</div>" for e in errors)
        self.start_button.disabled = bool(errors) or self.running
        return errors

    # --- running --------------------------------------------------------------------------------------------------

    def start(self, follow: bool = True) -> TrainingRun:
        """Start training in a subprocess; with ``follow`` a background thread keeps the dashboard live."""
        if self.validate():
            raise ValueError("invalid configuration: " + "; ".join(self.error_list))
        if self.running:
            raise RuntimeError("a run is already running")
        config = self.cli_config(log=self._log)
        self.run_ = TrainingRun(self.task, config, self.run_dir, cpu_threads=self.cpu_threads).start()
        self.dashboard.set_run_dir(self.run_dir)
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.message.value = f"training in <code>{html.escape(str(self.run_dir.resolve()))}</code>"
        if follow:
            self.dashboard.follow(self.run_, on_end=self._ended)
        return self.run_

    def _log(self, text: str) -> None:
        print(text, flush=True)
        self.message.value = html.escape(text)

    def _ended(self) -> None:
        self.stop_button.disabled = True
        self.start_button.disabled = bool(self.error_list)
        code = self.run_.returncode if self.run_ else None
        self.message.value = f"run ended (exit code {code}); files in <code>{html.escape(str(self.run_dir))}</code>"

    def stop(self, wait: bool = True) -> None:
        """End the run after its current step; it keeps ``checkpoints/final.ckpt``."""
        if not self.running:
            return
        self.stop_button.disabled = True
        self.message.value = "stopping after the current step…"
        if wait:
            self.run_.stop()
        else:
            threading.Thread(target=self.run_.stop, daemon=True).start()

    def run(self, refresh_s: float = 5.0) -> dict:
        """Train headless: print progress lines, refresh the dashboard in this thread, then show the final figures,
        the last sample and the metrics. Returns ``metrics.json``."""
        import json

        if not self.dashboard.handles:
            self.dashboard.show()
        t0 = time.time()
        run = self.start(follow=False)
        last = 0.0
        while run.running:
            for line in run.new_lines():
                print(line, flush=True)
            if time.time() - last > refresh_s:
                self.dashboard.status(self.dashboard.status_text(run))
                self.dashboard.refresh()
                last = time.time()
            time.sleep(0.5)
        run.wait()
        for line in run.new_lines():
            print(line, flush=True)
        self.dashboard.refresh()
        self.dashboard.status(self.dashboard.status_text(run))
        self._ended()
        metrics_path = self.run_dir / "metrics.json"
        if run.returncode != 0 or not metrics_path.is_file():
            raise RuntimeError(f"training failed (exit code {run.returncode}); see {self.run_dir / 'train.log'}")
        print(f"wall time {time.time() - t0:.0f}s (including startup)")
        self.show_results()
        return json.loads(metrics_path.read_text())

    def show_results(self) -> None:
        """Display the final figures (also saved as ``plots/*.png``), the last sample and the final metrics."""
        from IPython.display import Image, display

        from widgets.dashboard import read_jsonl

        self.dashboard.save()
        for name, fig in self.dashboard.figures().items():
            display(Image(data=png(fig)) if isinstance(fig, Figure) else fig)
        samples = read_jsonl(self.run_dir / "samples.jsonl")
        if samples:
            print(f"sample at step {samples[-1]['step']}:\n{samples[-1]['text']}")

    # --- display ----------------------------------------------------------------------------------------------------

    @property
    def widget(self) -> w.Widget:
        buttons = w.HBox([self.start_button, self.stop_button, self.export_button, self.export_path])
        forms = w.Accordion([self.model_form.widget, self.settings_form.widget])
        forms.set_title(0, f"model: {self.task.config_class.__name__}")
        forms.set_title(1, "data and training")
        forms.selected_index = 1
        return w.VBox([w.HBox([self.preset_select, self.run_dir_text]), forms, self.params_label, self.errors,
                       buttons, self.message])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
        self.dashboard.show()
