"""Reading perceiver-io 0.11 image classifiers unchanged: its Hugging Face directories (``model_type``
``perceiver-io-image-classifier``) and its Lightning ``.ckpt`` files.

Parameter names are renamed with the table shared with the text models (``perceiver.model.text.predecessor``); 0.11
also saved its Fourier position encoding as a buffer, which we compute instead and drop. 0.11's encoder config has
no ``max_resolution``: its Fourier frequencies follow the image shape, which is our default (None).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from perceiver.model.core import params
from perceiver.model.core.classifier import ClassificationDecoderConfig
from perceiver.model.text.predecessor import CKPT_ALLOWLIST as TEXT_ALLOWLIST
from perceiver.model.text.predecessor import PickledConfig, is_predecessor_state_dict, map_state_dict
from perceiver.model.vision.image_classifier.backend import ImageClassifier, ImageClassifierConfig, ImageEncoderConfig

MODEL_TYPE = "perceiver-io-image-classifier"
DROPPED_KEYS = ("encoder.input_adapter.position_encoding.position_encoding",)  # 0.11's Fourier buffer

CKPT_ALLOWLIST = [
    *TEXT_ALLOWLIST,
    (PickledConfig, "perceiver.model.vision.image_classifier.backend.ImageEncoderConfig"),
    (PickledConfig, "perceiver.model.core.config.ClassificationDecoderConfig"),
]


def _known(cls, values: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def _as_dict(value) -> dict:
    return dict(value) if isinstance(value, dict) else dict(vars(value))  # a PickledConfig


def image_classifier_config(values: dict) -> ImageClassifierConfig:
    """Our config of a 0.11 image classifier ``model_config`` (HF) or Lightning ``hyper_parameters``."""
    encoder = ImageEncoderConfig(**_known(ImageEncoderConfig, {**_as_dict(values["encoder"]), "params": None}))
    decoder = ClassificationDecoderConfig(**_known(ClassificationDecoderConfig, _as_dict(values["decoder"])))
    rest = {k: v for k, v in _known(ImageClassifierConfig, values).items() if k not in ("encoder", "decoder")}
    return ImageClassifierConfig(encoder, decoder, **rest)


def map_image_state_dict(state: dict) -> dict:
    """Our backend state dict of a 0.11 image classifier state dict (any wrapper prefix)."""
    return {k: v for k, v in map_state_dict(state).items() if k not in DROPPED_KEYS}


def load_params(model, source: str, field_hint: Optional[params.FieldHint] = None, prefix: str = "",
                strict: bool = True) -> params.LoadReport:
    """:func:`perceiver.model.core.params.load_params` that also reads perceiver-io 0.11 image classifier directories
    and Lightning checkpoints (what ``--model.params`` and ``--model.encoder.params`` accept): their parameter names
    are mapped and their Fourier buffer dropped."""
    return params.load_params(model, source, field_hint, key_map=map_image_state_dict, prefix=prefix,
                              allow=CKPT_ALLOWLIST, strict=strict)


def read_predecessor(path: str) -> tuple[ImageClassifierConfig, dict]:
    """Our config and backend state dict of a 0.11 image classifier directory (local or Hub id) or checkpoint."""
    kind = params.source_kind(path)
    if kind == "hub":
        path, kind = params.download(path), "directory"
    if kind == "directory":
        state, config = params.read_directory(path)
        if config.get("model_type") != MODEL_TYPE:
            raise params.ParamsError(f"{path!r} is not a perceiver-io 0.11 image classifier directory: config.json "
                                     f"has model_type {config.get('model_type')!r}, expected {MODEL_TYPE!r}")
        values = config["model_config"]
    elif kind == "checkpoint":
        state, ckpt = params.read_checkpoint(path, CKPT_ALLOWLIST)
        values = ckpt.get("hyper_parameters") or {}
        if not {"encoder", "decoder"} <= set(values) or "image_shape" not in _as_dict(values["encoder"]):
            raise params.ParamsError(f"{path!r} has no perceiver-io 0.11 image classifier hyper_parameters")
    else:
        raise params.ParamsError(f"{path!r} is neither a perceiver-io 0.11 model directory nor a Lightning checkpoint")
    if not is_predecessor_state_dict(state):
        raise params.ParamsError(f"{path!r}: the parameter names do not have the perceiver-io 0.11 layout")
    return image_classifier_config(values), map_image_state_dict(state)


def load_predecessor(path: str) -> ImageClassifier:
    """Our :class:`ImageClassifier` (in eval mode) with the weights of a perceiver-io 0.11 image classifier directory
    or Lightning checkpoint; it gives the same logits as the 0.11 model."""
    config, state = read_predecessor(path)
    model = ImageClassifier(config)
    model.load_state_dict(state)
    return model.eval()
