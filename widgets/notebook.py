"""Checking a notebook's parameters: the ``parameters`` cell annotates each one with its type
(``max_steps: int = 300``), papermill injects new values after that cell (``-p max_steps 30``), and
:func:`check_parameters` compares every annotated value with its type before anything runs.

    from widgets.notebook import check_parameters
    check_parameters(globals())   # ParameterError: notebook parameter max_steps must be int, got 'abc' (str) ...
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Mapping, Union


class ParameterError(TypeError):
    """A notebook parameter of the wrong type; ``name`` is the parameter."""

    def __init__(self, name: str, value: Any, expected: Any):
        super().__init__(
            f"notebook parameter {name} must be {type_name(expected)}, got {value!r} ({type(value).__name__}): "
            f"pass e.g. -p {name} <{type_name(expected)}> to papermill, or edit the parameters cell"
        )
        self.name, self.value, self.expected = name, value, expected

    def __reduce__(self):
        return ParameterError, (self.name, self.value, self.expected)


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if tp is type(None) or tp is None:
        return "None"
    return getattr(tp, "__name__", str(tp))


def matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` is of type ``tp`` (classes, ``X | Y``, ``Optional``, ``Literal``, ``list[X]``); a bool is
    not an int here, an int is a float."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in typing.get_args(tp))
    if origin is Literal:
        return value in typing.get_args(tp)
    if tp is None or tp is type(None):
        return value is None
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, origin) and (not args or all(matches(v, args[0]) for v in value))
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def check_parameters(namespace: Mapping[str, Any]) -> None:
    """Raise :class:`ParameterError` for the first annotated parameter of ``namespace`` (a notebook's
    ``globals()``) whose value does not match its annotation."""
    for name, tp in dict(namespace.get("__annotations__", {})).items():
        if isinstance(tp, str):  # the notebook has ``from __future__ import annotations``
            tp = eval(tp, {"__builtins__": __builtins__, "typing": typing}, dict(namespace))
        if name in namespace and not matches(namespace[name], tp):
            raise ParameterError(name, namespace[name], tp)
