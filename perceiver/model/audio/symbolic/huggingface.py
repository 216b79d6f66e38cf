"""Hugging Face wrapper of the symbolic audio model (``save_pretrained``/``from_pretrained``, ``labels`` -> loss for
the ``Trainer``, ``generate``).

It is the causal language model's wrapper with the symbolic audio backend: ``forward`` and ``generate`` (the Hugging
Face calling convention on top of the CLM's kv-cached decoding loop, greedy or sampled) are inherited unchanged.
``input_ids`` are MIDI event ids (``MidiTokenizer``); decode the output with ``MidiTokenizer().decode(ids)``.
"""

from __future__ import annotations

from typing import Optional

from perceiver.model.audio.symbolic.backend import SymbolicAudioModel, SymbolicAudioModelConfig
from perceiver.model.core.presets import config_from_dict
from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModel, PerceiverCausalLanguageModelConfig


class PerceiverSymbolicAudioModelConfig(PerceiverCausalLanguageModelConfig):
    """``model_config``: a :class:`SymbolicAudioModelConfig` (or its dict)."""

    model_type = "perceiver-symbolic-audio"
    tokenizer_name: Optional[str] = None  # MIDI events: MidiTokenizer, not a Hugging Face tokenizer

    @classmethod
    def default_backend_config(cls) -> SymbolicAudioModelConfig:
        return SymbolicAudioModelConfig.from_preset("maestro-28.5m")

    @property
    def backend_config(self) -> SymbolicAudioModelConfig:
        return config_from_dict(SymbolicAudioModelConfig, self.model_config)


class PerceiverSymbolicAudioModel(PerceiverCausalLanguageModel):
    """Hugging Face ``PreTrainedModel`` around :class:`SymbolicAudioModel`."""

    config_class = PerceiverSymbolicAudioModelConfig
    backend_class = SymbolicAudioModel


def register_auto_classes() -> None:
    """Register the wrapper with ``AutoConfig`` and ``AutoModelForCausalLM`` (idempotent)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    AutoConfig.register(PerceiverSymbolicAudioModelConfig.model_type, PerceiverSymbolicAudioModelConfig, exist_ok=True)
    AutoModelForCausalLM.register(PerceiverSymbolicAudioModelConfig, PerceiverSymbolicAudioModel, exist_ok=True)
