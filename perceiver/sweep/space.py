"""What a sweep varies: parameters named by their dotted configuration keys, as the CLI spells its options
(``optimizer.lr``, ``model.num_channels``, ``trainer.max_steps``, ``data.batch_size``), and the overrides that set
them.

    parse_param("optimizer.lr=1e-3,3e-3")       # choices (grid, random, TPE)
    parse_param("optimizer.lr=1e-4..1e-2:log")  # a log-uniform range (random, TPE)
    parse_param("model.num_channels=32..256")   # integers: both ends are integers
    parse_overrides(["optimizer.lr=3e-3", "model.num_channels=128"])   # {"optimizer.lr": 0.003, ...}

Values are read as YAML scalars would be, except that ``3e-3`` is a number (YAML 1.1 wants ``3.0e-3``): integers,
floats, ``true``/``false``, ``null``/``none``, otherwise text.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

RANGE = re.compile(r"^(?P<low>[^,]+?)\.\.(?P<high>[^,:]+?)(?P<log>:log)?$")


class SpaceError(ValueError):
    """A parameter or override that cannot be read; ``text`` is what was given."""

    def __init__(self, text: str, message: str):
        super().__init__(f"{text!r}: {message}")
        self.text, self.message = text, message


def parse_value(text: str) -> Any:
    """``"3e-3"`` -> 0.003, ``"128"`` -> 128, ``"true"`` -> True, ``"null"`` -> None, ``"AdamW"`` -> ``"AdamW"``."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    lowered = text.lower()
    if lowered in ("null", "none", "~"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def format_value(value: Any) -> str:
    """A value as an override or a point name writes it: ``0.003`` -> ``"0.003"``, ``1e-05``, ``None`` -> ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def split_key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip().removeprefix("--")
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
        raise SpaceError(text, "expected KEY=VALUE with a dotted configuration key, e.g. optimizer.lr=3e-3")
    return key, value


@dataclass(frozen=True)
class Param:
    """One swept parameter: ``values`` (choices), or a range ``low``..``high`` (uniform, log-uniform with ``log``;
    integers when both ends are)."""

    name: str
    values: tuple = ()
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def suggest(self, trial) -> Any:
        """This parameter's value for an Optuna trial."""
        if not self.is_range:
            return trial.suggest_categorical(self.name, list(self.values))
        if self.integer:
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def describe(self) -> str:
        if self.is_range:
            return f"{self.name}={format_value(self.low)}..{format_value(self.high)}{':log' if self.log else ''}"
        return f"{self.name}={','.join(format_value(v) for v in self.values)}"


def parse_param(text: str) -> Param:
    """``KEY=V1,V2,...`` (choices) or ``KEY=LOW..HIGH`` / ``KEY=LOW..HIGH:log`` (a range)."""
    key, rest = split_key_value(text)
    match = RANGE.match(rest.strip())
    if match:
        low, high = parse_value(match["low"]), parse_value(match["high"])
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
            raise SpaceError(text, "a range is LOW..HIGH with numbers LOW < HIGH, e.g. optimizer.lr=1e-4..1e-2:log")
        if match["log"] and low <= 0:
            raise SpaceError(text, "a log range needs LOW > 0")
        return Param(key, low=low, high=high, log=bool(match["log"]))
    values = tuple(parse_value(v) for v in rest.split(","))
    if not rest.strip() or any(v == "" for v in values):
        raise SpaceError(text, "give one or more comma-separated values, e.g. optimizer.lr=1e-3,3e-3")
    if len(set(map(format_value, values))) < len(values):
        raise SpaceError(text, "a value is given twice")
    return Param(key, values=values)


def parse_overrides(overrides: Optional[Mapping[str, Any] | Iterable[str] | str]) -> dict[str, Any]:
    """Overrides as ``{dotted key: value}``: from a dict (values kept as given, text read by :func:`parse_value`), a
    list of ``KEY=VALUE`` strings, or one such string."""
    if not overrides:
        return {}
    if isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(overrides, Mapping):
        out = {}
        for key, value in overrides.items():
            split_key_value(f"{key}=")  # checks the key
            out[str(key).removeprefix("--")] = parse_value(value) if isinstance(value, str) else value
        return out
    return {k: parse_value(v) for k, v in (split_key_value(str(item)) for item in overrides)}


def grid(params: Iterable[Param]) -> list[dict[str, Any]]:
    """Every combination of the parameters' values, the last parameter varying fastest."""
    params = list(params)
    ranges = [p.describe() for p in params if p.is_range]
    if ranges:
        raise SpaceError(ranges[0], "a grid needs listed values; ranges are for --sampler random or tpe")
    return [dict(zip((p.name for p in params), combo)) for combo in itertools.product(*(p.values for p in params))]


def short_names(keys: Iterable[str]) -> dict[str, str]:
    """Each dotted key by its last part (``optimizer.lr`` -> ``lr``), unless two keys share it (then in full)."""
    keys = list(keys)
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last)}


def point_name(index: int, values: Mapping[str, Any]) -> str:
    """A point's directory name: its index and values, e.g. ``002-lr=0.003_num_channels=64``."""
    names = short_names(values)
    parts = [f"{names[k]}={format_value(v)}" for k, v in values.items()]
    text = "_".join(parts)
    return f"{index:03d}-" + re.sub(r"[^\w.=+,-]", "-", text)[:120]
