"""Loading pretrained weights into a backend model from a Lightning checkpoint, a saved model directory, a
safetensors file or a Hugging Face Hub id.

What a path is, is decided by looking at it (a directory's files, a file's leading bytes), never by its extension.
Checkpoints are read with ``torch.load(..., weights_only=True)``: a pickle that would run code is refused.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
from safetensors.torch import load_file

from perceiver.hub import require_hub

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class ParamsError(ValueError):
    """Pretrained weights cannot be loaded; the message says which file or parameter and what to do."""


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
        raise ParamsError(f"{source!r} is neither a torch checkpoint nor a safetensors file")
    if HUB_ID.match(source) and not source.startswith((".", "/")):
        return "hub"
    raise ParamsError(f"{source!r} is not an existing file or directory, nor a Hugging Face Hub id (owner/name)")


def safe_torch_load(path: str, allow: Iterable[type] = ()) -> dict:
    """``torch.load`` restricted to tensors, containers and the ``allow``-listed types."""
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError and friends
        raise ParamsError(
            f"refusing to load {path!r}: it contains objects other than tensors and plain data ({e}). "
            f"Only load checkpoints you trust; convert them with `python -m perceiver.scripts.convert`."
        ) from e


def read_checkpoint(path: str, allow: Iterable[type] = ()) -> tuple[dict, dict]:
    """State dict and the rest of a torch checkpoint (e.g. Lightning's ``hyper_parameters``)."""
    ckpt = safe_torch_load(path, allow)
    if isinstance(ckpt, dict) and "state_dict" in ckpt:
        return ckpt["state_dict"], ckpt
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt, {}
    raise ParamsError(f"{path!r} holds no state dict (expected a Lightning checkpoint or a dict of tensors)")


def read_directory(path: str) -> tuple[dict, dict]:
    """State dict and ``config.json`` of a saved model directory."""
    config_file = os.path.join(path, "config.json")
    config = json.load(open(config_file)) if os.path.isfile(config_file) else {}
    for name in WEIGHT_FILES:
        file = os.path.join(path, name)
        if os.path.isfile(file):
            state = load_file(file) if is_safetensors_file(file) else read_checkpoint(file)[0]
            return state, config
    raise ParamsError(f"directory {path!r} holds none of {', '.join(WEIGHT_FILES)}")


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
        return load_file(source), {}
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
    field_hint: Optional[Callable[[str], str]] = None,
    key_map: Optional[Callable[[dict], dict]] = None,
    prefix: str = "",
    allow: Iterable[type] = (),
) -> None:
    """Copy the weights of ``source`` into ``model`` (all of them, or those under ``prefix`` in the source, e.g.
    ``"encoder."`` to initialize an encoder). A shape mismatch names the parameter and, through ``field_hint``, the
    config field to fix."""
    state, _ = read_state_dict(source, allow)
    if key_map is not None:
        state = key_map(state)
    target = model.state_dict()
    state = strip_prefix(state, {prefix + k for k in target})
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing = sorted(set(target) - set(state))
    if missing:
        raise ParamsError(f"{source!r} lacks parameters of this model, e.g. {missing[:5]}; is it the right model type?")
    for name, value in target.items():
        if state[name].shape != value.shape:
            hint = field_hint(name) if field_hint else "the model config"
            raise ParamsError(
                f"parameter {name!r} has shape {tuple(state[name].shape)} in {source!r} but {tuple(value.shape)} in "
                f"this model: set {hint} to match the pretrained model"
            )
    model.load_state_dict({k: state[k] for k in target})
