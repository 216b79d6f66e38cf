"""Reading perceiver-io 0.11 (the predecessor) checkpoints unchanged: its Hugging Face directories and its Lightning
``.ckpt`` files, for the masked (Perceiver IO) and the causal (Perceiver AR) language model.

Only parameter names differ from ours (see ``docs/predecessor-format.md``); the mapping is the rename table
:data:`KEY_RENAMES`, applied to every key. What a source is, is decided by its content: a ``config.json`` with a
0.11 ``model_type``, or a state dict whose keys have the 0.11 layout. Config keys that 0.11 does not have
are refused by name (``strict=False``: a warning names them). ``.ckpt`` files are read with
``torch.load(weights_only=True)``; the few non-tensor types they pickle (an enum and two config dataclasses) are
allow-listed as inert stand-ins (:data:`CKPT_ALLOWLIST`), so a pickle that would run code is refused.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import warnings
from typing import Iterable, Optional, Union

import torch.nn as nn

from perceiver.model.core import params
from perceiver.model.text.clm.backend import CausalLanguageModel, CausalLanguageModelConfig
from perceiver.model.text.mlm.backend import (
    MaskedLanguageModel,
    MaskedLanguageModelConfig,
    TextDecoderConfig,
    TextEncoderConfig,
)

MLM_MODEL_TYPE = "perceiver-io-masked-language-model"
CLM_MODEL_TYPE = "perceiver-ar-causal-language-model"
WRAPPER_PREFIXES = ("backend_model.", "model.")  # 0.11 HF wrapper / Lightning module

# 0.11 backend key -> ours, applied in order (each pattern at most once per key). None drops the key.
KEY_RENAMES: list[tuple[str, Optional[str]]] = [
    # MLM: PerceiverIO was an nn.Sequential(encoder, decoder)
    (r"^0\.latent_provider\._query$", "encoder.latents"),
    (r"^0\.input_adapter\.", "encoder.input_adapter."),
    (r"^0\.(cross_attn_[1n])\.", r"encoder.\1."),
    (r"^0\.(self_attn_[1n])\.(\d+)\.", r"encoder.\1.layers.\2."),
    (r"^1\.output_query_provider\._query$", "decoder.output_query_provider.query"),
    (r"^1\.output_adapter\.", "decoder.output_adapter."),
    (r"^1\.cross_attn\.", "decoder.cross_attn."),
    # CLM
    (r"^cross_attention\.", "cross_attn."),
    (r"^self_attention\.(\d+)\.", r"self_attn.layers.\1."),
    (r"^input_adapter\.frq_pos_encoding\.inv_freq$", None),  # a buffer we compute instead
    # inside a layer: nn.Sequential(Residual(attention), Residual(MLP)); no Residual without attention residual
    (r"\.0\.(?:module\.)?(q_norm|kv_norm|norm|attention)\.", r".\1."),
    # MLP = nn.Sequential(LayerNorm, Linear, GELU, Linear)
    (r"\.1\.module\.0\.(weight|bias)$", r".mlp.norm.\1"),
    (r"\.1\.module\.1\.(weight|bias)$", r".mlp.fc1.\1"),
    (r"\.1\.module\.3\.(weight|bias)$", r".mlp.fc2.\1"),
]
_RENAMES = [(re.compile(p), r) for p, r in KEY_RENAMES]
_LAYOUT = re.compile(r"^(0\.latent_provider\._query|cross_attention\.0\.|self_attention\.\d+\.0\.module\.)")


# --- .ckpt allowlist ------------------------------------------------------------------------------------------------


class Task(enum.Enum):
    """Stand-in for 0.11's ``perceiver.data.text.common.Task`` (pickled in the data module's hyperparameters)."""

    mlm = 0
    clm = 1
    clf = 2


class PickledConfig:
    """Stand-in for 0.11's pickled config dataclasses: unpickling stores their fields in ``__dict__`` and runs
    nothing."""


CKPT_ALLOWLIST = [
    (Task, "perceiver.data.text.common.Task"),
    (PickledConfig, "perceiver.model.text.common.backend.TextEncoderConfig"),
    (PickledConfig, "perceiver.model.text.mlm.backend.TextDecoderConfig"),
]


# --- keys -----------------------------------------------------------------------------------------------------------


def strip_wrapper_prefix(state: dict) -> dict:
    for p in WRAPPER_PREFIXES:
        if state and all(k.startswith(p) for k in state):
            return {k[len(p):]: v for k, v in state.items()}
    return state


def is_predecessor_state_dict(state: dict) -> bool:
    """True if the keys (with or without the 0.11 wrapper prefix) have the 0.11 backend layout."""
    return any(_LAYOUT.match(k) for k in strip_wrapper_prefix(state))


def rename_key(key: str) -> Optional[str]:
    """Our name of a 0.11 backend parameter (None: not a parameter of ours)."""
    for pattern, repl in _RENAMES:
        if pattern.search(key):
            if repl is None:
                return None
            key = pattern.sub(repl, key, count=1)
    return key


def map_state_dict(state: dict) -> dict:
    """Our backend state dict from a 0.11 HF (``backend_model.``), Lightning (``model.``) or backend state dict.
    Any other state dict is returned unchanged, so this can be used as ``key_map`` on every source."""
    if not is_predecessor_state_dict(state):
        return state
    mapped = {}
    for key, value in strip_wrapper_prefix(state).items():
        new = rename_key(key)
        if new is not None:
            mapped[new] = value
    return mapped


# --- configs --------------------------------------------------------------------------------------------------------


LIT_ARGUMENTS = {"params", "num_predictions", "masked_samples", "validation_sample_prompt", "validation_sample_record"}
"""0.11 Lightning-module arguments saved beside the model config in ``hyper_parameters``: not model fields, skipped."""


def _known(cls, values: dict, where: str, strict: bool) -> dict:
    """The ``values`` that are fields of ``cls``. Keys that are neither fields nor :data:`LIT_ARGUMENTS` raise a
    :class:`ParamsError` naming them (``strict``) or a warning naming them (``strict=False``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names - LIT_ARGUMENTS - {"encoder", "decoder"})
    if unknown:
        message = (f"perceiver-io 0.11 config {where} has key(s) {unknown} that {cls.__name__} does not have (a "
                   f"newer or modified perceiver-io?)")
        if strict:
            raise params.ParamsError(
                f"{message}: they would be dropped, and the model might differ from the one trained. Remove them "
                f"from the config if they do not change the model, or pass strict=False to load without them.",
                keys=unknown, field=where)
        warnings.warn(f"{message}: ignored", stacklevel=3)
    return {k: v for k, v in values.items() if k in names}


def _as_dict(value) -> dict:
    return dict(value) if isinstance(value, dict) else dict(vars(value))  # a PickledConfig


def mlm_config(values: dict, strict: bool = True) -> MaskedLanguageModelConfig:
    """Our config of a 0.11 MLM ``model_config`` (HF) or Lightning ``hyper_parameters`` (see :func:`_known` for
    keys we do not know)."""
    encoder = TextEncoderConfig(**_known(TextEncoderConfig, {**_as_dict(values["encoder"]), "params": None},
                                         "encoder", strict))
    decoder = TextDecoderConfig(**_known(TextDecoderConfig, _as_dict(values["decoder"]), "decoder", strict))
    rest = {k: v for k, v in _known(MaskedLanguageModelConfig, values, "model_config", strict).items()
            if k not in ("encoder", "decoder")}
    return MaskedLanguageModelConfig(encoder, decoder, **rest)


def clm_config(values: dict, strict: bool = True) -> CausalLanguageModelConfig:
    """Our config of a 0.11 CLM ``model_config`` (HF) or Lightning ``hyper_parameters`` (see :func:`_known` for
    keys we do not know)."""
    return CausalLanguageModelConfig(**_known(CausalLanguageModelConfig, values, "model_config", strict))


BackendConfig = Union[MaskedLanguageModelConfig, CausalLanguageModelConfig]


def read_predecessor(path: str, strict: bool = True) -> tuple[BackendConfig, dict]:
    """Our config and our backend state dict of a 0.11 HF directory (local or a Hub id) or Lightning checkpoint.
    ``strict=False`` warns about config keys we do not know instead of refusing them."""
    kind = params.source_kind(path)
    if kind == "hub":
        path, kind = params.download(path), "directory"
    if kind == "directory":
        state, config = params.read_directory(path)
        model_type = config.get("model_type")
        if model_type not in (MLM_MODEL_TYPE, CLM_MODEL_TYPE):
            raise params.ParamsError(
                f"{path!r} is not a perceiver-io 0.11 model directory: config.json has model_type {model_type!r}, "
                f"expected {MLM_MODEL_TYPE!r} or {CLM_MODEL_TYPE!r}"
            )
        values, is_mlm = config["model_config"], model_type == MLM_MODEL_TYPE
    elif kind == "checkpoint":
        state, ckpt = params.read_checkpoint(path, CKPT_ALLOWLIST)
        values = ckpt.get("hyper_parameters") or {}
        is_mlm = "encoder" in values and "decoder" in values
        if not is_mlm and "num_channels" not in values:
            raise params.ParamsError(f"{path!r} has no perceiver-io 0.11 MLM or CLM hyper_parameters")
    else:
        raise params.ParamsError(f"{path!r} is neither a perceiver-io 0.11 model directory nor a Lightning checkpoint")
    if not is_predecessor_state_dict(state):
        raise params.ParamsError(f"{path!r}: the parameter names do not have the perceiver-io 0.11 layout")
    try:
        config = mlm_config(values, strict) if is_mlm else clm_config(values, strict)
    except params.ParamsError as e:
        raise params.ParamsError(f"{path!r}: {e}", path, e.keys, e.field) from None
    return config, map_state_dict(state)


def load_predecessor(path: str, strict: bool = True) -> Union[MaskedLanguageModel, CausalLanguageModel]:
    """Our backend model (in eval mode) with the weights of a perceiver-io 0.11 HF directory or Lightning checkpoint;
    it gives the same logits as the 0.11 model. ``strict=False``: see :func:`read_predecessor`."""
    config, state = read_predecessor(path, strict)
    model = MaskedLanguageModel(config) if isinstance(config, MaskedLanguageModelConfig) else CausalLanguageModel(config)
    model.load_state_dict(state)
    return model.eval()


def load_params(
    model: nn.Module,
    source: str,
    field_hint: Optional[params.FieldHint] = None,
    prefix: str = "",
    allow: Iterable[type] = (),
    strict: bool = True,
) -> params.LoadReport:
    """:func:`perceiver.model.core.params.load_params` that also reads perceiver-io 0.11 directories, Hub ids and
    Lightning checkpoints (what ``--model.params`` accepts)."""
    return params.load_params(model, source, field_hint, key_map=map_state_dict, prefix=prefix,
                              allow=[*CKPT_ALLOWLIST, *allow], strict=strict)
