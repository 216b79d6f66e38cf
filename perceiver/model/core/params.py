"""Loading pretrained weights into a backend model from a Lightning checkpoint, a saved model directory, a
safetensors file or a Hugging Face Hub id.

What a path is, is decided by looking at it (a directory's files, a file's leading bytes), never by its extension.
Checkpoints are read with ``torch.load(..., weights_only=True)``: a pickle that would run code is refused, and their
zip checksums are verified first. Loading is strict: weights that do not fit the model exactly are refused with a
:class:`ParamsError` naming the parameters and the config field to change, unless ``strict=False`` asks for partial
loading (every skipped parameter is logged).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file

from perceiver.hub import require_hub

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class ParamsError(ValueError):
    """Pretrained weights cannot be loaded. ``source`` is the file, directory or Hub id, ``keys`` the parameter names
    concerned, ``field`` the config field(s) to change if known; the message also says what to do."""

    def __init__(self, message: str, source: Optional[str] = None, keys: Sequence[str] = (),
                 field: Optional[str] = None):
        super().__init__(message)
        self.source, self.keys, self.field = source, tuple(keys), field

    def __reduce__(self):  # picklable across processes
        return ParamsError, (str(self), self.source, self.keys, self.field)


FieldHint = Callable[[str, str], str]
"""``(parameter name, problem) -> config field(s)``; problem is ``"shape"`` (a shape mismatch), ``"missing"`` (the
source lacks the parameter) or ``"unexpected"`` (this model lacks it)."""


@dataclass
class LoadReport:
    """What :func:`load_params` did: parameter names loaded, and those it skipped (``strict=False`` only)."""

    loaded: list[str]
    missing: list[str] = field(default_factory=list)
    """In the model, not in the source: they keep their initial values."""
    unexpected: list[str] = field(default_factory=list)
    """In the source, not in the model: ignored."""
    mismatched: list[str] = field(default_factory=list)
    """In both, with different shapes: they keep their initial values."""


def is_safetensors_file(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and int.from_bytes(head[:8], "little") > 0 and head[8:9] == b"{"


def is_torch_file(path: str) -> bool:
    return zipfile.is_zipfile(path)


def source_kind(source: str) -> str:
    """'directory', 'safetensors', 'checkpoint' (a torch zip file, e.g. a Lightning .ckpt) or 'hub'."""
    if os.path.isdir(source):
        return "directory"
    if os.path.isfile(source):
        if is_safetensors_file(source):
            return "safetensors"
        if is_torch_file(source):
            return "checkpoint"
        if os.path.getsize(source) == 0:
            raise ParamsError(f"{source!r} is empty: pass a Lightning checkpoint, a safetensors file or a model "
                              f"directory (was it written by an interrupted run or copy?)", source)
        raise ParamsError(
            f"{source!r} is neither a torch checkpoint (a zip file) nor a safetensors file: it is truncated or corrupt "
            f"(an interrupted save, copy or download?) or of another format. Use an intact copy, or another checkpoint "
            f"(e.g. last.ckpt or step=N.ckpt beside it).", source)
    if HUB_ID.match(source) and not source.startswith((".", "/")):
        return "hub"
    raise ParamsError(f"{source!r} is not an existing file or directory, nor a Hugging Face Hub id (owner/name): "
                      f"check the path", source)


def check_zip(path: str) -> None:
    """Raise :class:`ParamsError` unless every member of the torch zip file ``path`` has its recorded CRC (torch
    itself does not check them, so flipped bytes would load as different weights)."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        bad = f"unreadable ({e})"
    if bad is not None:
        raise ParamsError(
            f"{path!r} is corrupt: {bad} fails its checksum. Use an intact copy, or another checkpoint (e.g. last.ckpt "
            f"or step=N.ckpt beside it).", path)


def safe_torch_load(path: str, allow: Iterable[type] = ()) -> dict:
    """``torch.load`` restricted to tensors, containers and the ``allow``-listed types, of a checksum-verified file."""
    check_zip(path)
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # what weights_only refuses (torch's explanation is the cause, above)
        raise ParamsError(
            f"refusing to load {path!r}: it holds objects other than tensors and plain data, whose unpickling could "
            f"run code. Only load checkpoints you trust; convert them with `python -m perceiver.scripts.convert`.",
            path) from e
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise ParamsError(f"cannot read {path!r} ({e}): the checkpoint is damaged; use an intact copy", path) from e


def read_checkpoint(path: str, allow: Iterable[type] = ()) -> tuple[dict, dict]:
    """State dict and the rest of a torch checkpoint (e.g. Lightning's ``hyper_parameters``)."""
    ckpt = safe_torch_load(path, allow)
    if isinstance(ckpt, dict) and "state_dict" in ckpt:
        return ckpt["state_dict"], ckpt
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt, {}
    raise ParamsError(f"{path!r} holds no state dict (expected a Lightning checkpoint or a dict of tensors)", path)


def read_directory(path: str) -> tuple[dict, dict]:
    """State dict and ``config.json`` of a saved model directory."""
    config_file = os.path.join(path, "config.json")
    config = read_json(config_file) if os.path.isfile(config_file) else {}
    for name in WEIGHT_FILES:
        file = os.path.join(path, name)
        if os.path.isfile(file):
            kind = source_kind(file)
            state = read_safetensors(file) if kind == "safetensors" else read_checkpoint(file)[0]
            return state, config
    raise ParamsError(f"directory {path!r} holds none of {', '.join(WEIGHT_FILES)}: pass a model directory saved by "
                      f"save_pretrained or by `python -m perceiver.scripts.convert`", path)


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParamsError(f"cannot read {path!r}: {e}; restore the file (it must be a JSON object)", path) from e
    if not isinstance(value, dict):
        raise ParamsError(f"{path!r} holds a JSON {type(value).__name__}, not an object; restore the file", path)
    return value


def read_safetensors(path: str) -> dict:
    try:
        return load_file(path)
    except SafetensorError as e:
        raise ParamsError(
            f"cannot read safetensors file {path!r}: {e}. It is truncated or corrupt (an interrupted save, copy or "
            f"download?): use an intact copy.", path) from e


def download(hub_id: str) -> str:
    require_hub(
        f"weights {hub_id!r}",
        "Pass a local directory or checkpoint instead (e.g. --model.params=/path/to/model_dir).",
    )
    from huggingface_hub import snapshot_download

    return snapshot_download(hub_id, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.txt", "*.model"])


def read_state_dict(source: str, allow: Iterable[type] = ()) -> tuple[dict, dict]:
    """(state dict, metadata) of any supported source."""
    kind = source_kind(source)
    if kind == "hub":
        return read_directory(download(source))
    if kind == "directory":
        return read_directory(source)
    if kind == "safetensors":
        return read_safetensors(source), {}
    return read_checkpoint(source, allow)


def strip_prefix(state: dict, target_keys: set[str], prefixes=("backend_model.", "model.", "module.")) -> dict:
    """Remove the wrapper prefix (e.g. Lightning's ``backend_model.``) that makes keys match ``target_keys``."""
    if set(state) & target_keys:
        return state
    for p in prefixes:
        stripped = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
        if set(stripped) & target_keys:
            return stripped
    return state


def load_params(
    model: nn.Module,
    source: str,
    field_hint: Optional[FieldHint] = None,
    key_map: Optional[Callable[[dict], dict]] = None,
    prefix: str = "",
    allow: Iterable[type] = (),
    strict: bool = True,
) -> LoadReport:
    """Copy the weights of ``source`` into ``model`` (all of them, or those under ``prefix`` in the source, e.g.
    ``"encoder."`` to initialize an encoder).

    Strict by default: parameters the source lacks (missing), parameters the model lacks (unexpected) and shape
    mismatches raise :class:`ParamsError`, naming the parameters and, through ``field_hint``, the config field to
    change. ``strict=False`` loads the parameters that match, logs a warning for every one it skips and returns
    what it did; a source that shares no parameter with the model is refused either way.
    """
    state, _ = read_state_dict(source, allow)
    if key_map is not None:
        state = key_map(state)
    target = model.state_dict()
    state = strip_prefix(state, {prefix + k for k in target})
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    report = compare_state_dicts(state, target)
    name = type(model).__name__

    def hint(key: str, problem: str) -> str:
        return field_hint(prefix + key, problem) if field_hint else "the model config"

    if not report.loaded:
        raise ParamsError(
            f"{source!r} holds none of the parameters of this {name} (e.g. it has {sorted(state)[:3]}, the model "
            f"{sorted(target)[:3]}): is it a checkpoint of another model type?", source, sorted(state)[:20])
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise mismatch_error(source, name, report, state, target, hint)
    for key in report.missing:
        logger.warning("params %s: %s is not in the source; it keeps its initial value (%s)", source, key,
                       hint(key, "missing"))
    for key in report.unexpected:
        logger.warning("params %s: %s is not a parameter of this %s; skipped (%s)", source, key, name,
                       hint(key, "unexpected"))
    for key in report.mismatched:
        logger.warning("params %s: %s has shape %s in the source but %s here; skipped, it keeps its initial value "
                       "(%s)", source, key, tuple(state[key].shape), tuple(target[key].shape), hint(key, "shape"))
    model.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    return report


def compare_state_dicts(state: dict, target: dict) -> LoadReport:
    """Which parameters of ``state`` fit ``target`` (by name and shape), and which do not."""
    both = set(target) & set(state)
    return LoadReport(
        loaded=sorted(k for k in both if state[k].shape == target[k].shape),
        missing=sorted(set(target) - set(state)),
        unexpected=sorted(set(state) - set(target)),
        mismatched=sorted(k for k in both if state[k].shape != target[k].shape),
    )


def mismatch_error(source, name, report: LoadReport, state, target, hint) -> ParamsError:
    lines, fields = [], []
    problems = [
        ("shape", report.mismatched, "differ in shape"),
        ("unexpected", report.unexpected, f"are in the source but not in this {name}"),
        ("missing", report.missing, f"of this {name} are not in the source"),
    ]
    for problem, keys, what in problems:
        by_field: dict[str, list[str]] = {}
        for key in keys:
            by_field.setdefault(hint(key, problem), []).append(key)
        for field_, group in by_field.items():
            if problem == "shape":
                k = group[0]
                example = f"{k}: {tuple(state[k].shape)} in the source, {tuple(target[k].shape)} here"
            else:
                example = ", ".join(group[:3])
            more = f" and {len(group) - 3} more" if len(group) > 3 and problem != "shape" else ""
            more = f" ({len(group)} in all)" if problem == "shape" and len(group) > 1 else more
            lines.append(f"  {len(group)} parameter(s) {what}, e.g. {example}{more}: set {field_} to match")
            fields.append(field_)
    message = (
        f"the weights in {source!r} do not match this {name}: set the config fields below to the values the weights "
        f"were trained with, or pass strict=False (--model.params_strict=false) to load only the parameters that "
        f"match (each skipped one is logged).\n" + "\n".join(lines)
    )
    keys = [*report.mismatched, *report.unexpected, *report.missing]
    return ParamsError(message, source, keys, fields[0] if fields else None)
