"""Pretrained weights of the text classifier: perceiver-io 0.11 text classifiers (its ``PerceiverTextClassifier``
Hugging Face directories, e.g. ``krasserm/perceiver-io-txt-clf-imdb``, and its ``LitTextClassifier`` checkpoints),
and what ``params`` and ``encoder.params`` accept (:func:`load_params`).

0.11's classifier is its Perceiver IO with the encoder of its masked language model, so its parameter names map by the
MLM's rename table (:func:`perceiver.model.text.predecessor.map_state_dict`). Its ``ClassificationDecoderConfig`` has a
field ``num_output_queries``, always 1 (0.11 squeezed the query dimension), which our one-query decoder does without.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional

import torch.nn as nn

from perceiver.model.core import params
from perceiver.model.core.classifier import ClassificationDecoderConfig
from perceiver.model.text import predecessor
from perceiver.model.text.classifier.backend import TextClassifier, TextClassifierConfig
from perceiver.model.text.classifier.convert import map_hf_state_dict
from perceiver.model.text.mlm.backend import TextEncoderConfig

MODEL_TYPE = "perceiver-io-text-classifier"
CKPT_ALLOWLIST = [
    *predecessor.CKPT_ALLOWLIST,
    (predecessor.PickledConfig, "perceiver.model.core.config.ClassificationDecoderConfig"),
]
RUN_CHECKPOINTS = ("final.ckpt", "last.ckpt")  # written by the run journal and by ModelCheckpoint(save_last=True)


def _fields(cls, value) -> dict:
    values = dict(value) if isinstance(value, dict) else dict(vars(value))  # a pickled 0.11 config
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def clf_config(values: dict, id2label: Optional[dict] = None) -> TextClassifierConfig:
    """Our config of a 0.11 text classifier's ``model_config`` (HF directory, with its ``id2label`` as the class
    names) or Lightning ``hyper_parameters``."""
    decoder = dict(values["decoder"]) if isinstance(values["decoder"], dict) else dict(vars(values["decoder"]))
    if decoder.get("num_output_queries", 1) != 1:
        raise params.ParamsError(f"a perceiver-io 0.11 classifier with num_output_queries="
                                 f"{decoder['num_output_queries']} is not supported (0.11 itself needs 1)")
    encoder = TextEncoderConfig(**{**_fields(TextEncoderConfig, values["encoder"]), "params": None})
    rest = {k: v for k, v in _fields(TextClassifierConfig, values).items() if k not in ("encoder", "decoder")}
    num_classes = decoder.get("num_classes")
    if id2label and len(id2label) == num_classes:
        rest["class_names"] = [str(id2label[k]) for k in sorted(id2label, key=int)]
    return TextClassifierConfig(encoder, ClassificationDecoderConfig(**_fields(ClassificationDecoderConfig, decoder)),
                                **rest)


def read_predecessor(path: str) -> tuple[TextClassifierConfig, dict]:
    """Our config and backend state dict of a 0.11 text classifier: a HF directory (local, or a Hub id when online)
    or a Lightning checkpoint."""
    kind = params.source_kind(path)
    if kind == "hub":
        path, kind = params.download(path), "directory"
    if kind == "directory":
        state, config = params.read_directory(path)
        if config.get("model_type") != MODEL_TYPE:
            raise params.ParamsError(f"{path!r} is not a perceiver-io 0.11 text classifier directory: config.json has "
                                     f"model_type {config.get('model_type')!r}, expected {MODEL_TYPE!r}")
        values, id2label = config["model_config"], config.get("id2label")
    elif kind == "checkpoint":
        state, ckpt = params.read_checkpoint(path, CKPT_ALLOWLIST)
        values, id2label = ckpt.get("hyper_parameters") or {}, None
        decoder = values.get("decoder")
        if decoder is None or "num_classes" not in (decoder if isinstance(decoder, dict) else vars(decoder)):
            raise params.ParamsError(f"{path!r} has no perceiver-io 0.11 text classifier hyper_parameters")
    else:
        raise params.ParamsError(f"{path!r} is neither a perceiver-io 0.11 model directory nor a Lightning checkpoint")
    if not predecessor.is_predecessor_state_dict(state):
        raise params.ParamsError(f"{path!r}: the parameter names do not have the perceiver-io 0.11 layout")
    return clf_config(values, id2label), predecessor.map_state_dict(state)


def is_predecessor_classifier(path: str) -> bool:
    """Whether ``path`` (a directory, a checkpoint, or a Hub id when online) holds a perceiver-io 0.11 text classifier,
    by its content: ``config.json``'s ``model_type``, or a checkpoint's hyperparameters."""
    kind = params.source_kind(path)
    if kind == "hub":
        path, kind = params.download(path), "directory"
    if kind == "directory":
        config = os.path.join(path, "config.json")
        return os.path.isfile(config) and json.load(open(config)).get("model_type") == MODEL_TYPE
    if kind == "checkpoint":
        try:
            _, ckpt = params.read_checkpoint(path, CKPT_ALLOWLIST)
        except params.ParamsError:
            return False
        decoder = (ckpt.get("hyper_parameters") or {}).get("decoder")
        return decoder is not None and "num_classes" in (decoder if isinstance(decoder, dict) else vars(decoder))
    return False


def load_predecessor(path: str) -> TextClassifier:
    """Our :class:`TextClassifier` (in eval mode) with the weights of a perceiver-io 0.11 text classifier; it gives
    the same logits as the 0.11 model."""
    config, state = read_predecessor(path)
    model = TextClassifier(config)
    model.load_state_dict(state)
    return model.eval()


def run_checkpoint(source: str) -> str:
    """The checkpoint of a run directory (``checkpoints/final.ckpt``, else ``checkpoints/last.ckpt``) if ``source``
    is one (a directory without model weights of its own), else ``source``."""
    if not os.path.isdir(source) or any(os.path.isfile(os.path.join(source, f)) for f in params.WEIGHT_FILES):
        return source
    found = [os.path.join(source, "checkpoints", n) for n in RUN_CHECKPOINTS]
    return next((f for f in found if os.path.isfile(f)), source)


def load_params(model: nn.Module, source: str, field_hint: Optional[Callable] = None, prefix: str = "") -> None:
    """:func:`perceiver.model.core.params.load_params` for what ``params`` (the classifier) and ``encoder.params``
    (``prefix="encoder."``, a masked language model's encoder) accept: our checkpoints, saved directories and run
    directories, perceiver-io 0.11 directories and checkpoints, and Hugging Face ``Perceiver*`` text models (DeepMind's
    ``deepmind/language-perceiver``; a Hub id when online)."""

    def key_map(state: dict) -> dict:
        return map_hf_state_dict(predecessor.map_state_dict(state))

    params.load_params(model, run_checkpoint(source), field_hint, key_map=key_map, prefix=prefix, allow=CKPT_ALLOWLIST)
