"""Reading the files of a run directory: JSON and JSON-lines records, and the resolved ``config.yaml`` flattened
into dotted keys (``model.num_channels``, ``optimizer.lr``, ``data.class``). No torch, no pandas, no Matplotlib: the
journal, the figures, the TensorBoard hyperparameters and the run registry all read runs through here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

CONFIG_FILE = "config.yaml"
SECTIONS = ("model.", "data.", "optimizer.", "lr_scheduler.", "trainer.", "seed_everything")
"""The parts of a run's configuration that describe the experiment (what a registry column or an HParams entry is)."""
NOT_HYPERPARAMETERS = ("trainer.callbacks", "trainer.logger", "trainer.plugins", "trainer.profiler",
                       "trainer.default_root_dir", "data.dataset_dir", "model.params")
"""Configuration entries that say where things are or how they are watched, not what is trained."""


def read_json(path: str | Path) -> dict:
    """A JSON file's object; ``{}`` if it is missing or being rewritten."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a JSON-lines file; a line being written (not yet valid JSON) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"a.b": value}``. A ``class_path``/``init_args`` pair becomes ``a.class`` (the class name)
    plus ``a.<arg>``, as the CLI spells its options (``--optimizer.lr``); lists become JSON strings, so that a value
    fits a table cell and compares by value."""
    if isinstance(obj, dict):
        if "class_path" in obj:
            out = {f"{prefix}class": str(obj["class_path"]).rsplit(".", 1)[-1]}
            out.update(flatten(obj.get("init_args") or {}, prefix))
            return out
        out = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    key = prefix[:-1]
    if isinstance(obj, (list, tuple)):
        return {key: json.dumps(obj)}
    return {key: obj}


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The hyperparameters of a run: its ``config.yaml`` flattened (:func:`flatten`), only the :data:`SECTIONS`, without
    :data:`NOT_HYPERPARAMETERS`; ``{}`` without a config."""
    path = Path(run_dir, CONFIG_FILE)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    flat = flatten({k: v for k, v in config.items() if f"{k}.".startswith(SECTIONS)})
    return {k: v for k, v in flat.items() if not k.startswith(NOT_HYPERPARAMETERS)}
