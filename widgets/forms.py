"""ipywidgets forms generated from config dataclasses and from function signatures.

A field's widget follows its type hint (bool: checkbox, Literal: dropdown, int/float: number box, anything optional
or a union: text box parsed back to the type), its help text is the field's attribute docstring (or the
``Args:`` entry of the owner's docstring), and its default is the dataclass or signature default. A field added to
a config therefore appears in its form without any change here. Forms only parse values; the rules are checked by
constructing the dataclass, whose ``ConfigError`` carries the offending field (``err.field``).
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import re
import typing
from typing import Any, Callable, Iterable, Literal, Optional, Union

import docstring_parser
import ipywidgets as w

from perceiver.model.core.presets import field_types

MISSING = dataclasses.MISSING
_ERROR_STYLE = "color:#c62828;font-size:90%"
_HELP_STYLE = "color:#666;font-size:85%;line-height:1.2"


class FieldError(ValueError):
    """An invalid form value; ``name`` is the dotted field name, ``form`` the form it belongs to if known."""

    def __init__(self, name: str, message: str, form: Optional[str] = None):
        super().__init__(f"{name}: {message}")
        self.name, self.message, self.form = name, message, form


# --- introspection ------------------------------------------------------------------------------------------------


def attribute_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass, its bases included (the most derived class wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            try:
                parsed = docstring_parser.parse_from_object(klass)
            except (OSError, TypeError):  # no source available
                continue
            docs.update({p.arg_name: " ".join((p.description or "").split()) for p in parsed.params})
    return docs


def signature_docs(obj: Callable) -> dict[str, str]:
    """``Args:`` descriptions of a function's or class's docstring."""
    out: dict[str, str] = {}
    for o in (obj.__init__, obj) if inspect.isclass(obj) else (obj,):
        try:
            params = docstring_parser.parse(inspect.getdoc(o) or "").params
        except docstring_parser.ParseError:
            continue
        out.update({p.arg_name: " ".join((p.description or "").split()) for p in params if p.description})
    return out


def _optional(tp) -> tuple[Any, bool]:
    """(inner type, is optional) for ``Optional[X]``."""
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return tp, False


def literal_values(tp) -> Optional[list]:
    """All values of a Literal, or of a union of Literals (None if ``tp`` is something else)."""
    if typing.get_origin(tp) is Literal:
        return list(typing.get_args(tp))
    if typing.get_origin(tp) is Union:
        parts = [literal_values(a) for a in typing.get_args(tp) if a is not type(None)]
        if parts and all(p is not None for p in parts):
            return [v for p in parts for v in p]
    return None


# --- help text: reStructuredText as docstrings write it ----------------------------------------------------------

_ROLE = re.compile(r":[\w:.-]+:`~?([^`]+)`")  # :class:`~a.b.C`, :func:`f`, :paramref:`x`
_LITERAL = re.compile(r"``(.+?)``")
_INTERPRETED = re.compile(r"(?<![\w`])`([^`]+)`(?!`)")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])")
_LINK = re.compile(r"`([^`<]+?)\s*<(https?://[^>]+)>`_")


def rst_to_html(text: str) -> str:
    """The inline markup of a docstring as HTML: literals and roles as ``<code>`` (a role's target by its last
    dotted part, as Sphinx shows ``~`` targets), strong, emphasis and links; everything else escaped."""
    out = html.escape(text, quote=False)
    out = _LINK.sub(lambda m: f"<a href='{m.group(2)}' target='_blank'>{m.group(1)}</a>", out)
    out = _ROLE.sub(lambda m: f"<code>{m.group(1).rsplit('.', 1)[-1] if m.group(0).count('~') else m.group(1)}</code>",
                    out)
    out = _LITERAL.sub(r"<code>\1</code>", out)
    out = _INTERPRETED.sub(r"<code>\1</code>", out)
    out = _STRONG.sub(r"<b>\1</b>", out)
    return _EMPHASIS.sub(r"<i>\1</i>", out)


def rst_to_text(text: str) -> str:
    """The same as plain text (tooltips)."""
    return html.unescape(re.sub(r"<[^>]+>", "", rst_to_html(text)))


# --- one field ----------------------------------------------------------------------------------------------------


def parse_text(text: str, tp, optional: bool):
    """Parse a text box to ``tp``: '' or 'None' is None for optional fields; unions try int, float, list, str."""
    text = text.strip()
    if text in ("", "None", "none", "null"):
        if optional:
            return None
        raise ValueError("a value is required")
    if tp is int:
        return int(text)
    if tp is float:
        return float(text)
    if tp is str:
        return text
    if typing.get_origin(tp) is tuple:  # e.g. max_resolution: "224, 224" or "(224, 224)"
        values = tuple(int(x) for x in text.strip("()[]").split(",") if x.strip())
        args = typing.get_args(tp)
        if len(args) != len(values) and not (len(args) == 2 and args[1] is Ellipsis):
            raise ValueError(f"expected {len(args)} comma-separated integers")
        return values
    for convert in (int, float):  # unions such as Trainer's devices: list[int] | str | int
        try:
            return convert(text)
        except ValueError:
            pass
    args = typing.get_args(tp)
    if "," in text or text.startswith("["):
        if not any(typing.get_origin(a) is list for a in args):
            raise ValueError("a list is not allowed here")
        return [int(x) for x in text.strip("[]").split(",") if x.strip()]
    if args and str not in args:
        raise ValueError("expected a number")
    return text


class Field:
    """A labeled input widget for one value, with its help text and an inline error line."""

    def __init__(self, name: str, tp, default: Any, help: str = "", choices: Optional[Iterable] = None):
        self.name = name
        self.type, self.optional = _optional(tp)
        values = list(choices) if choices is not None else literal_values(tp)
        if values is not None:  # given choices are the complete list; a Literal's optional None is offered
            extra = [("None", None)] if choices is None and self.optional and None not in values else []
            self.input = w.Dropdown(options=[(str(v), v) for v in dict.fromkeys(values)] + extra)
        elif self.type is bool and not self.optional:
            self.input = w.Checkbox(indent=False)
        elif self.type is int and not self.optional:
            self.input = w.IntText()
        elif self.type is float and not self.optional:
            self.input = w.FloatText()
        else:
            self.input = w.Text(placeholder="None" if self.optional else "")
        self.input.layout = w.Layout(width="180px")
        self.help = help
        label = w.Label(name, tooltip=rst_to_text(help), layout=w.Layout(width="260px"))
        self.error = w.HTML()
        self.widget = w.VBox([
            w.HBox([label, self.input, self.error]),
            w.HTML(f"<div style='{_HELP_STYLE};margin-left:264px'>{rst_to_html(help)}</div>") if help else w.HTML(),
        ])
        self.default = default
        self.reset()

    def reset(self) -> None:
        options = getattr(self.input, "options", None)
        if self.default is not MISSING and (options is None or self.default in [v for _, v in options]):
            self.set(self.default)

    @property
    def text_input(self) -> bool:
        return isinstance(self.input, w.Text)

    def get(self) -> Any:
        if not self.text_input:
            return self.input.value
        try:
            return parse_text(self.input.value, self.type, self.optional)
        except ValueError as e:
            raise FieldError(self.name, f"{self.input.value!r} is not valid ({e})") from None

    def set(self, value: Any) -> None:
        if self.text_input:
            listed = isinstance(value, (list, tuple))
            self.input.value = "" if value is None else ",".join(map(str, value)) if listed else str(value)
        else:
            self.input.value = value

    def show_error(self, message: Optional[str]) -> None:
        self.error.value = f"<span style='{_ERROR_STYLE}'>⚠ {html.escape(message)}</span>" if message else ""

    def observe(self, fn: Callable) -> None:
        self.input.observe(lambda change: fn(), names="value")


# --- forms --------------------------------------------------------------------------------------------------------


class Form:
    """Fields (and nested forms) by name; ``values()`` parses them into a (nested) dict."""

    def __init__(self, title: str = ""):
        self.title = title
        self.fields: dict[str, Union[Field, "Form"]] = {}

    def values(self) -> dict[str, Any]:
        errors, out = [], {}
        for name, f in self.fields.items():
            try:
                out[name] = f.values() if isinstance(f, Form) else f.get()
            except FieldError as e:
                errors.append(e)
        if errors:
            raise errors[0]
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            f = self.fields.get(name)
            if isinstance(f, Form):
                f.set_values(value)
            elif f is not None:
                f.set(value)

    def reset(self) -> None:
        """Every field back to its default."""
        for f in self.fields.values():
            f.reset()

    def field(self, dotted: str) -> Optional[Field]:
        head, _, rest = dotted.partition(".")
        f = self.fields.get(head)
        return f.field(rest) if isinstance(f, Form) and rest else f if isinstance(f, Field) else None

    def all_fields(self, prefix: str = "") -> dict[str, Field]:
        out = {}
        for name, f in self.fields.items():
            out.update(f.all_fields(f"{prefix}{name}.") if isinstance(f, Form) else {prefix + name: f})
        return out

    def observe(self, fn: Callable) -> None:
        for f in self.fields.values():
            f.observe(fn)

    def clear_errors(self) -> None:
        for f in self.all_fields().values():
            f.show_error(None)

    @property
    def widget(self) -> w.Widget:
        children = []
        for name, f in self.fields.items():
            if isinstance(f, Form):
                acc = w.Accordion([f.widget])
                acc.set_title(0, f.title or name)
                children.append(acc)
            else:
                children.append(f.widget)
        return w.VBox(children)


class DataclassForm(Form):
    """A form for the fields of a config dataclass; nested dataclass fields become nested forms. ``exclude`` names
    fields to leave out, dotted for those of nested configs (``encoder.vocab_size``)."""

    def __init__(self, cls: type, exclude: Iterable[str] = (), title: str = ""):
        super().__init__(title or cls.__name__)
        self.cls = cls
        exclude = set(exclude)
        docs, types = attribute_docs(cls), field_types(cls)
        for f in dataclasses.fields(cls):
            if f.name in exclude or not f.init:
                continue
            tp = types[f.name]
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                inner = [e.partition(".")[2] for e in exclude if e.startswith(f.name + ".")]
                self.fields[f.name] = DataclassForm(tp, inner, title=f"{f.name}: {docs.get(f.name, tp.__name__)}")
                continue
            default = f.default if f.default is not MISSING else (
                f.default_factory() if f.default_factory is not MISSING else MISSING)
            self.fields[f.name] = Field(f.name, tp, default, docs.get(f.name, ""))


class SignatureForm(Form):
    """A form for chosen parameters of functions or classes: ``{name: (owner, parameter name)}``; ``choices`` and
    ``help`` replace a parameter's values and help text by name."""

    def __init__(self, spec: dict[str, tuple[Callable, str]], choices: Optional[dict[str, list]] = None,
                 title: str = "", help: Optional[dict[str, str]] = None):
        super().__init__(title)
        choices, own_help = choices or {}, help or {}
        for name, (owner, param_name) in spec.items():
            param = inspect.signature(owner).parameters[param_name]
            tp = typing.get_type_hints(owner.__init__ if inspect.isclass(owner) else owner).get(param_name, str)
            default = param.default if param.default is not inspect.Parameter.empty else MISSING
            text = own_help.get(name) or signature_docs(owner).get(param_name, "")
            self.fields[name] = Field(name, tp, default, text, choices.get(name))
