"""The workbench: preset, model and training forms, parameter count, YAML export, Start/Stop/Resume and the live
dashboard.

    from widgets import Workbench
    wb = Workbench("clm", preset="tiny CPU")
    wb                      # in JupyterLab: the form and the dashboard; Start trains in a subprocess
    wb.config()             # the CausalLanguageModelConfig of the form (ValueError if invalid)
    wb.export("x.yaml")     # python -m perceiver.scripts.text.clm fit --config x.yaml trains the same model
    wb.run()                # headless: train, print progress lines, then show the final figures (papermill, scripts)
    Workbench.attach("runs/clm")   # the latest run there (live or finished): its form, status, curves and error

Runs go to ``run_dir`` (default ``runs/{task}/{time}`` below the repository root, ``perceiver.runs.paths``): every
Start makes a new directory; a path without ``{time}`` that holds a run is refused unless Overwrite is ticked.
Resume continues the shown run from its latest checkpoint, with its own configuration.
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
import yaml

from perceiver.model.core.config import ConfigError
from perceiver.runs import paths
from perceiver.runs import status as run_status
from perceiver.training.devices import check_devices
from widgets import spec
from widgets.dashboard import Dashboard, png
from widgets.forms import DataclassForm, FieldError, SignatureForm
from widgets.runner import TrainingRun

_RED = "color:#c62828"


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
        settings: data/trainer settings overriding the preset (``None`` values are ignored), e.g. ``max_steps=30``.
    """

    def __init__(self, task: str, preset: str = "tiny CPU", run_dir: Optional[str] = None, overwrite: bool = False,
                 **settings: Any):
        self.task = spec.resolve_task(task)
        self.model_form = DataclassForm(self.task.config_class, exclude=self.task.linked_fields, title="model")
        owners = spec.setting_owners(self.task)
        self.settings_form = SignatureForm(owners, choices={"optimizer": list(spec.OPTIMIZERS),
                                                            "precision": spec.PRECISIONS},
                                           help=spec.HELP, title="training")
        self.preset_select = w.Dropdown(options=list(self.task.presets), value=preset, description="preset")
        template = run_dir or paths.DEFAULT_RUN_DIR.replace("{task}", self.task.name)
        self.run_dir_text = w.Text(value=str(template), description="run dir",
                                   tooltip="relative to the repository root; {time}: a new directory per run",
                                   layout=w.Layout(width="420px"))
        self.overwrite_box = w.Checkbox(value=overwrite, description="overwrite", indent=False,
                                        tooltip="let Start replace the run in this directory")
        self.params_label = w.HTML()
        self.preset_note = w.HTML()
        self.errors = w.HTML()
        self.start_button = w.Button(description="Start", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.resume_button = w.Button(description="Resume", icon="repeat", disabled=True,
                                      tooltip="continue the run shown below from its latest checkpoint")
        self.export_button = w.Button(description="Export YAML", icon="download")
        self.export_path = w.Text(value="", placeholder=self.default_export_path(), description="to")
        self.message = w.HTML()
        self.run_: Optional[TrainingRun] = None
        self.extra: dict = {}
        self.error_list: list[str] = []
        self.start_errors: list[str] = []
        self._quiet = False

        self.settings_form.set_values(spec.BASE_SETTINGS)
        self.apply_preset(preset, **settings)
        self.preset_note.value = ""
        self.dashboard = Dashboard(None, self.task)
        latest = paths.latest_run(self.run_dir_text.value, self.task.name)
        if latest is not None:  # e.g. after a kernel restart: show the last run, live if it still runs (the form
            self.show_run(latest, load_settings=False)  # keeps the settings given here: they are what Start uses)
        self.preset_select.observe(lambda c: self.apply_preset(c["new"]), names="value")
        self.model_form.observe(self.validate)
        self.settings_form.observe(self.validate)
        self.run_dir_text.observe(lambda _: self.validate(), names="value")
        self.overwrite_box.observe(lambda _: self.validate(), names="value")
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
            self.message.value = f"<span style='{_RED}'>⚠ {html.escape(f'{type(e).__name__}: {e}')}</span>"

    def apply_preset(self, name: str, **settings: Any) -> None:
        """The model of preset ``name`` and the settings the preset defines; every other setting is kept. The form
        says what changed."""
        p = spec.preset(self.task, name)
        before = self._raw_values()
        self._quiet = True
        try:
            self.model_form.reset()
            self.model_form.set_values(p["model"])
            self.settings_form.set_values({**p["settings"], **{k: v for k, v in settings.items() if v is not None}})
            self.extra = p["extra"]
        finally:
            self._quiet = False
        after = self._raw_values()
        changed = [f"{k} {before[k]} → {after[k]}" for k in after if k in before and before[k] != after[k]]
        model = [c for c in changed if not c.startswith("settings.")]
        setting = [c.removeprefix("settings.") for c in changed if c.startswith("settings.")]
        kept = [k for k in self.settings_form.fields if k not in p["settings"] and k not in settings]
        self.preset_note.value = (
            f"<div style='color:#555;font-size:90%'>preset <b>{html.escape(name)}</b>: model "
            f"{html.escape(self.task.config_class.__name__)}.from_preset({p['model_name']!r})"
            + (f" ({len(model)} fields changed: {html.escape(', '.join(c.removeprefix('model.') for c in model[:6]))}"
               f"{', …' if len(model) > 6 else ''})" if model else " (unchanged)")
            + (f"; settings changed: {html.escape(', '.join(setting))}" if setting else "; no setting changed")
            + f"; kept: {html.escape(', '.join(kept))}</div>")
        self.validate()

    def _raw_values(self) -> dict[str, Any]:
        """Every field's current input, by dotted name (``model.*``, ``settings.*``), unparsed."""
        out = {f"model.{k}": f.input.value for k, f in self.model_form.all_fields().items()}
        out.update({f"settings.{k}": f.input.value for k, f in self.settings_form.all_fields().items()})
        return out

    def settings(self) -> dict[str, Any]:
        return self.settings_form.values()

    def config(self):
        """The model config dataclass of the form (raises ``ValueError`` naming the field if invalid)."""
        values, settings = self.model_form.values(), self.settings()
        return spec.build_model_config(self.task, values, self.data_module(settings))

    def data_module(self, settings: dict):
        """The data module of these settings (cheap: no data is read); its checks are the data settings' rules.
        A relative ``source`` path is taken from the repository root, as the training process will."""
        data_settings = {k: settings[k] for k in ("source", "max_seq_len", "batch_size") if k in settings}
        source = data_settings.get("source")
        if isinstance(source, str) and source not in ("hub", "sample") and not Path(source).is_absolute():
            data_settings["source"] = str(paths.resolve(source))
        return self.task.data_class(**{**self.task.data_args, **data_settings})

    def cli_config(self) -> dict:
        """The CLI configuration of the form (``fit --config``): choices as typed, paths relative."""
        return spec.cli_config(self.task, self.config(), self.settings(), self.run_dir_text.value, self.extra)

    def to_yaml(self) -> str:
        return spec.to_yaml(self.cli_config())

    def default_export_path(self) -> str:
        template = self.run_dir_text.value if hasattr(self, "run_dir_text") else paths.DEFAULT_RUN_DIR
        base = template[: template.index("{time}")] if paths.is_template(template) else template
        return str(Path(base.replace("{task}", self.task.name)) / "config.yaml")

    def export(self, path: Optional[str | Path] = None) -> Path:
        """Write the CLI YAML (``python -m <task.cli> fit --config <path>``; relative paths: from the root)."""
        if self.validate():
            raise ValueError("invalid configuration, nothing exported: " + "; ".join(self.error_list))
        path = paths.resolve(path or self.export_path.value or self.default_export_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        self.message.value = (f"exported <code>{html.escape(str(path))}</code>; train with <code>python -m "
                              f"{self.task.cli} fit --config {html.escape(paths.relative(path))}</code>")
        return path

    # --- validation -------------------------------------------------------------------------------------------------

    def validate(self) -> list[str]:
        """Check the forms; show errors inline, disable Start and Export if there are any (saying why), update the
        parameter count."""
        if self._quiet:
            return self.error_list
        forms = (self.model_form, self.settings_form)
        for f in forms:
            f.clear_errors()
        errors = []
        try:
            settings = self.settings()
            try:
                check_devices(settings["devices"])
            except ConfigError as e:
                raise FieldError(e.field, e.message) from None
            try:
                spec.optimizer_class(settings["optimizer"])([torch.zeros(1, requires_grad=True)], lr=settings["lr"])
            except ValueError as e:
                self.settings_form.field("lr").show_error(str(e))
                errors.append(f"lr: {e}")
            try:
                data_module = self.data_module(settings)
                check = getattr(data_module, "check_source", None)  # a data module that can check its source early
                if check is not None:
                    check()
            except ConfigError as e:  # the data module names its argument, which is the setting of that name
                raise FieldError(e.field, e.message) from None
            try:
                config = spec.build_model_config(self.task, self.model_form.values(), data_module)
            except (ConfigError, FieldError) as e:
                name, message = (e.field, e.message) if isinstance(e, ConfigError) else (e.name, e.message)
                raise FieldError(name, message, form="model") from None
            self.params_label.value = (f"<b>parameters: {spec.format_count(spec.parameter_count(self.task, config))}"
                                       f"</b> ({type(config).__name__})")
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
        self.start_errors = self._run_dir_errors()
        shown = errors + self.start_errors
        self.errors.value = "".join(f"<div style='{_RED}'>⚠ {html.escape(e)}</div>" for e in shown)
        self.start_button.disabled = bool(shown) or self.running
        self.export_button.disabled = bool(errors)
        self.export_button.tooltip = ("fix the errors above to export" if errors else
                                      "write the CLI configuration of this form")
        self.export_path.placeholder = self.default_export_path()
        if errors:
            self.message.value = f"<span style='{_RED}'>Start and Export need a valid form: {html.escape(errors[0])}</span>"
        elif self.message.value.startswith(f"<span style='{_RED}'>Start and Export"):
            self.message.value = ""
        return errors

    def _run_dir_errors(self) -> list[str]:
        template = self.run_dir_text.value.strip()
        if not template:
            return ["run dir: give a directory, e.g. " + paths.DEFAULT_RUN_DIR.replace("{task}", self.task.name)]
        if paths.is_template(template) or self.overwrite_box.value:
            return []
        path = paths.resolve(paths.expand(template, self.task.name))
        if paths.has_run(path):
            return [f"run dir: {path} holds an earlier run; tick overwrite to replace it, press Resume to continue it, "
                    f"or add {{time}} to the path for a new directory per run"]
        return []

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
        cfg_path = run_dir / "config.yaml"
        if load_settings and cfg_path.is_file():
            cfg = yaml.safe_load(cfg_path.read_text()) or {}
            self._quiet = True
            try:
                self.model_form.set_values(cfg.get("model") or {})
                values = spec.settings_from_cli_config(cfg)
                self.settings_form.set_values({k: v for k, v in values.items() if self._settable(k, v)})
            finally:
                self._quiet = False
            self.validate()
        self.dashboard.attach(run_dir)
        if self.dashboard.running:
            self.dashboard.follow(None, on_end=self._ended, save=False)
        self._buttons()

    def _settable(self, name: str, value: Any) -> bool:
        field = self.settings_form.fields.get(name)
        options = getattr(field.input, "options", None) if field is not None else None
        return field is not None and (options is None or value in [v for _, v in options])

    def _buttons(self) -> None:
        live = self.running or self.dashboard.running
        state = self.dashboard.status.get("status")
        self.stop_button.disabled = not live
        self.start_button.disabled = bool(self.error_list or self.start_errors) or self.running
        self.resume_button.disabled = live or state not in ("stopped", "failed") or (
            self.run_dir is None or paths.resume_checkpoint(self.run_dir) is None)

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
        """The final figures (saved as ``plots/*.png``: shown in a notebook, their paths printed in a script), the
        last sample and the final metrics."""
        from IPython import get_ipython
        from IPython.display import Image, display

        from widgets.dashboard import read_jsonl

        saved = self.dashboard.save()
        figures = self.dashboard.figures()
        for name, path in saved.items():
            if get_ipython() is not None:
                display(Image(data=png(figures[name])))
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
        forms = w.Accordion([self.model_form.widget, self.settings_form.widget])
        forms.set_title(0, f"model: {self.task.config_class.__name__}")
        forms.set_title(1, "data and training")
        forms.selected_index = 1
        return w.VBox([w.HBox([self.preset_select, self.run_dir_text, self.overwrite_box]), self.preset_note, forms,
                       self.params_label, self.errors, buttons, self.message, self.dashboard.widget])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
