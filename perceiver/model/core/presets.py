"""Named configurations beside their config dataclasses (as litgpt's ``Config.from_name``), and building a config,
nested sub-configs included, from plain dicts.

A preset lists only the fields that differ from the dataclass defaults, so each documented model size is written
once, in the task's config module; the CLI defaults, the workbench, the notebooks, the benchmarks, the Hugging Face
default configs and the tests all ask for it by name::

    config = CausalLanguageModelConfig.from_preset("tiny", num_channels=96)
    CausalLanguageModelConfig.presets            # {"clm-30.6m": Preset(...), "tiny": Preset(...)}

Errors are :class:`ConfigError` with the dotted name of the offending field (``encoder.num_latents``), also for
unknown keys and for values that are not of the field's type.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar, Union

from perceiver.model.core.config import ConfigError

C = TypeVar("C")


@dataclass(frozen=True)
class Preset:
    description: str
    """One line for menus and help: what the preset is for and how big it is."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Config fields that differ from the dataclass defaults (nested dicts for sub-configs)."""


def merge(a: Mapping, b: Mapping) -> dict:
    """Recursive merge of nested dicts (``b`` wins)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def field_types(cls: type) -> dict[str, Any]:
    """Type hints of a dataclass's fields, with generic parameters (``PerceiverIOConfig[E, D]``) resolved."""
    hints = typing.get_type_hints(cls)
    bindings: dict[Any, Any] = {}
    for klass in reversed(cls.__mro__):
        for base in getattr(klass, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            bindings.update(zip(getattr(origin, "__parameters__", ()), typing.get_args(base)))
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: bindings.get(v, v) for k, v in hints.items() if k in names}


def _dataclass_type(tp) -> type | None:
    if typing.get_origin(tp) is Union:
        tps = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = tps[0] if len(tps) == 1 else None
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def config_from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
    """``cls(**values)`` with nested dicts built into their sub-config dataclasses. Raises :class:`ConfigError`
    naming the dotted field for unknown keys and invalid values (those of sub-configs included)."""
    types = field_types(cls)
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ConfigError(cls.__name__, unknown[0], f"is not a field; valid fields: {', '.join(sorted(types))}")
    kwargs = {}
    for name, value in values.items():
        sub = _dataclass_type(types[name])
        if sub is not None and isinstance(value, Mapping):
            try:
                value = config_from_dict(sub, value)
            except ConfigError as e:
                raise e.nested(cls.__name__, name) from None
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as e:  # a required field is missing
        raise ConfigError(cls.__name__, _missing_field(e, types), str(e)) from None


def _missing_field(error: TypeError, types: Mapping[str, Any]) -> str:
    return next((name for name in types if f"'{name}'" in str(error)), next(iter(types)))


def config_to_dict(config: Any) -> dict:
    """The nested plain dict of a config dataclass (inverse of :func:`config_from_dict`)."""
    return dataclasses.asdict(config)


def preset_fields(cls: type, name: str) -> dict:
    """The fields that preset ``name`` of ``cls`` sets (a copy)."""
    presets: Mapping[str, Preset] = getattr(cls, "presets", {})
    if name not in presets:
        raise KeyError(f"{cls.__name__} has no preset {name!r}; presets: {', '.join(presets) or 'none'}")
    return merge({}, presets[name].fields)


def from_preset(cls: type[C], name: str, **overrides: Any) -> C:
    """The config of preset ``name`` of ``cls`` with ``overrides`` (nested dicts for sub-configs)."""
    return config_from_dict(cls, merge(preset_fields(cls, name), overrides))
