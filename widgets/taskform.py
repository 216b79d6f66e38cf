"""The form of a task: preset, model and training settings, run directory; validated as it changes.

Everything the workbench's buttons act on comes from here: the model config (``config()``), the settings, the CLI
configuration (``cli_config()``, what Export writes and Start runs) and the reasons not to start or export
(``error_list``: an invalid field; ``start_errors``: a run directory that holds a run). Listeners registered with
``observe`` are called after every check.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable, Optional

import ipywidgets as w
import torch

from perceiver.model.core.config import ConfigError
from perceiver.model.core.presets import merge
from perceiver.runs import paths
from perceiver.tasks import Task
from perceiver.training.devices import check_devices
from widgets import spec
from widgets.forms import DataclassForm, FieldError, SignatureForm

RED = "color:#c62828"


class TaskForm:
    """Preset menu, run directory, model form and settings form of ``task`` (see the module docstring)."""

    def __init__(self, task: Task, preset: str, run_dir: Optional[str] = None, overwrite: bool = False,
                 settings: Optional[dict] = None, trainer: Optional[dict] = None):
        self.task = task
        task.run_preset(preset)  # an unknown preset fails here, listing the known ones
        self.trainer_options = dict(trainer or {})  # Trainer arguments over every preset's
        self.model_form = DataclassForm(task.config_class, exclude=task.linked_fields, title="model")
        self.settings_form = SignatureForm(spec.setting_owners(task), choices={"optimizer": list(spec.OPTIMIZERS),
                                                                               "precision": spec.PRECISIONS},
                                           help=spec.HELP, title="training")
        self.preset_select = w.Dropdown(options=list(task.presets), value=preset, description="preset")
        template = run_dir or paths.DEFAULT_RUN_DIR.replace("{task}", task.name)
        self.run_dir_text = w.Text(value=str(template), description="run dir",
                                   tooltip="relative to the repository root; {time}: a new directory per run",
                                   layout=w.Layout(width="420px"))
        self.overwrite_box = w.Checkbox(value=overwrite, description="overwrite", indent=False,
                                        tooltip="let Start replace the run in this directory")
        self.params_label, self.preset_note, self.errors = w.HTML(), w.HTML(), w.HTML()
        self.extra: dict = {}
        self.config_overrides: dict[str, Any] = {}  # dotted CLI keys that no field shows (apply_overrides)
        self.error_list: list[str] = []
        self.start_errors: list[str] = []
        self._listeners: list[Callable[[], None]] = []
        self._quiet = False

        self.settings_form.set_values(spec.BASE_SETTINGS)
        self.apply_preset(preset, **(settings or {}))
        self.preset_note.value = ""  # nothing changed yet: the user asked for this preset
        self.preset_select.observe(lambda c: self.apply_preset(c["new"]), names="value")
        self.model_form.observe(self.validate)
        self.settings_form.observe(self.validate)
        self.run_dir_text.observe(lambda _: self.validate(), names="value")
        self.overwrite_box.observe(lambda _: self.validate(), names="value")

    def observe(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` after every check of the form."""
        self._listeners.append(fn)

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
            self.extra = merge(p["extra"], {"trainer": self.trainer_options})
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
        """The data module of these settings, with the preset's data arguments and ``data.*`` overrides, as the
        training run builds it (cheap: no data is read); its checks are the data settings' rules.
        A relative ``source`` path is taken from the repository root, as the training process will."""
        cfg = {"data": spec.data_section(self.task, settings, self.extra)}
        for key, value in self.config_overrides.items():
            if key.startswith("data."):
                spec.set_config_value(cfg, key, value)
        args = cfg["data"]["init_args"]
        source = args.get("source")
        if isinstance(source, str) and source not in ("hub", "sample") and not Path(source).is_absolute():
            args["source"] = str(paths.resolve(source))
        return self.task.data_class(**args)

    def cli_config(self) -> dict:
        """The CLI configuration of the form (``fit --config``): choices as typed, paths relative; then the overrides
        that no field shows (:meth:`apply_overrides`)."""
        cfg = spec.cli_config(self.task, self.config(), self.settings(), self.run_dir_text.value, self.extra)
        for key, value in self.config_overrides.items():
            spec.set_config_value(cfg, key, value)
        return cfg

    def apply_overrides(self, overrides: Any) -> None:
        """Set dotted CLI keys, e.g. ``["optimizer.lr=3e-3", "model.num_channels=128"]`` or ``{"optimizer.lr": 3e-3}``
        (``perceiver.sweep.parse_overrides``): a key that is a field of the form sets it (``model.*``, and the
        settings' keys ``spec.SETTING_KEYS``: ``optimizer.lr``, ``data.batch_size``, ``trainer.max_steps``, ...); any
        other key (``trainer.val_check_interval``, ``data.num_workers``, ``lr_scheduler.warmup_steps``) goes into the
        CLI configuration as ``--key=value`` would. A value the field cannot take raises ``FieldError`` naming the key."""
        from perceiver.sweep.space import parse_overrides

        values = parse_overrides(overrides)
        settings = {key: name for name, key in spec.SETTING_KEYS.items() if name in self.settings_form.fields}
        self._quiet = True
        try:
            for key, value in values.items():
                field = self.model_form.field(key.removeprefix("model.")) if key.startswith("model.") else (
                    self.settings_form.field(settings[key]) if key in settings else None)
                if field is None:
                    self.config_overrides[key] = value
                else:
                    set_field(field, key, value)
        finally:
            self._quiet = False
        self.validate()

    def to_yaml(self) -> str:
        return spec.to_yaml(self.cli_config())

    def default_export_path(self) -> str:
        """``<the folder of the runs>/config.yaml``, e.g. ``runs/clm/config.yaml``."""
        template = self.run_dir_text.value
        base = template[: template.index("{time}")] if paths.is_template(template) else template
        return str(Path(base.replace("{task}", self.task.name)) / "config.yaml")

    def set_from_config(self, cfg: dict) -> None:
        """The model and the settings of a CLI configuration (a run's ``config.yaml``)."""
        self._quiet = True
        try:
            self.model_form.set_values(cfg.get("model") or {})
            values = spec.settings_from_cli_config(cfg)
            self.settings_form.set_values({k: v for k, v in values.items() if self._settable(k, v)})
        finally:
            self._quiet = False
        self.validate()

    def _settable(self, name: str, value: Any) -> bool:
        field = self.settings_form.fields.get(name)
        options = getattr(field.input, "options", None) if field is not None else None
        return field is not None and (options is None or value in [v for _, v in options])

    # --- validation -------------------------------------------------------------------------------------------------

    def validate(self) -> list[str]:
        """Check the forms; show errors inline, update the parameter count, tell the listeners. Returns the errors
        of the fields (``error_list``)."""
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
        self.start_errors = self._run_dir_errors()
        shown = errors + self.start_errors
        self.errors.value = "".join(f"<div style='{RED}'>⚠ {html.escape(e)}</div>" for e in shown)
        for fn in self._listeners:
            fn()
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

    def override_fields(self) -> dict[str, Any]:
        """Every field of the form by the dotted CLI key that overrides it (``model.num_channels``, ``optimizer.lr``)
        -> its current input value: what a sweep can vary."""
        out = {f"model.{k}": f.input.value for k, f in self.model_form.all_fields().items()}
        out.update({spec.SETTING_KEYS[k]: f.input.value for k, f in self.settings_form.fields.items()
                    if k in spec.SETTING_KEYS})
        return out

    @property
    def widget(self) -> w.Widget:
        forms = w.Accordion([self.model_form.widget, self.settings_form.widget])
        forms.set_title(0, f"model: {self.task.config_class.__name__}")
        forms.set_title(1, "data and training")
        forms.selected_index = 1
        return w.VBox([w.HBox([self.preset_select, self.run_dir_text, self.overwrite_box]), self.preset_note, forms,
                       self.params_label, self.errors])


def set_field(field, key: str, value: Any) -> None:
    """Put ``value`` (of an override ``key``) into a form field: a menu takes one of its options, a number box a
    number of its type, a text box the value as text (parsed and checked like typed input)."""
    options = getattr(field.input, "options", None)
    if options is not None:
        allowed = [v for _, v in options]
        match = [v for v in allowed if v == value or str(v) == str(value)]
        if not match:
            raise FieldError(key, f"{value!r} is not one of {allowed}")
        field.set(match[0])
    elif field.text_input:
        field.set(value)
    elif field.type is bool:
        if not isinstance(value, bool):
            raise FieldError(key, f"{value!r} is not true or false")
        field.set(value)
    else:
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or (field.type is int and number != int(number)):
            raise FieldError(key, f"{value!r} is not {'an integer' if field.type is int else 'a number'}")
        field.set(field.type(number))
