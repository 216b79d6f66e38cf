"""Reading perceiver-io 0.11 symbolic audio models unchanged: its Hugging Face directories (``model_type``
``perceiver-ar-symbolic-audio-model``) and its Lightning ``.ckpt`` files of ``LitSymbolicAudioModel``.

0.11's symbolic audio model is its causal sequence model with another vocabulary, so parameter names map as for the
causal language model (:func:`perceiver.model.text.predecessor.map_state_dict`). Fields missing from a 0.11 config
take 0.11's defaults (those of its causal sequence model, which are our causal language model's), not ours.
"""

from __future__ import annotations

import dataclasses

from perceiver.model.audio.symbolic.backend import SymbolicAudioModel, SymbolicAudioModelConfig
from perceiver.model.core import params
from perceiver.model.text.predecessor import CKPT_ALLOWLIST, clm_config, is_predecessor_state_dict, map_state_dict

SAM_MODEL_TYPE = "perceiver-ar-symbolic-audio-model"


def sam_config(values: dict) -> SymbolicAudioModelConfig:
    """Our config of a 0.11 symbolic audio ``model_config`` (HF) or Lightning ``hyper_parameters``."""
    return SymbolicAudioModelConfig(**dataclasses.asdict(clm_config(values)))


def read_predecessor(path: str) -> tuple[SymbolicAudioModelConfig, dict]:
    """Our config and backend state dict of a 0.11 symbolic audio HF directory (local or a Hub id) or checkpoint."""
    kind = params.source_kind(path)
    if kind == "hub":
        path, kind = params.download(path), "directory"
    if kind == "directory":
        state, config = params.read_directory(path)
        if config.get("model_type") != SAM_MODEL_TYPE:
            raise params.ParamsError(
                f"{path!r} is not a perceiver-io 0.11 symbolic audio model directory: config.json has model_type "
                f"{config.get('model_type')!r}, expected {SAM_MODEL_TYPE!r}"
            )
        values = config["model_config"]
    elif kind == "checkpoint":
        state, ckpt = params.read_checkpoint(path, CKPT_ALLOWLIST)
        values = ckpt.get("hyper_parameters") or {}
        if "num_channels" not in values:
            raise params.ParamsError(f"{path!r} has no perceiver-io 0.11 symbolic audio model hyper_parameters")
    else:
        raise params.ParamsError(f"{path!r} is neither a perceiver-io 0.11 model directory nor a Lightning checkpoint")
    if not is_predecessor_state_dict(state):
        raise params.ParamsError(f"{path!r}: the parameter names do not have the perceiver-io 0.11 layout")
    return sam_config(values), map_state_dict(state)


def load_predecessor(path: str) -> SymbolicAudioModel:
    """Our symbolic audio model (in eval mode) with the weights of a perceiver-io 0.11 HF directory or Lightning
    checkpoint; it gives the same logits as the 0.11 model."""
    config, state = read_predecessor(path)
    model = SymbolicAudioModel(config)
    model.load_state_dict(state)
    return model.eval()
