"""Perceiver IO masked language model."""

from perceiver.model.text.mlm.backend import (
    MaskedLanguageModel,
    MaskedLanguageModelConfig,
    TextDecoderConfig,
    TextEncoderConfig,
)
from perceiver.model.text.mlm.convert import convert_hf_model, load_deepmind_model
from perceiver.model.text.mlm.fill import fill_masks

__all__ = ["convert_hf_model", "fill_masks", "load_deepmind_model", "MaskedLanguageModel", "MaskedLanguageModelConfig", "TextDecoderConfig", "TextEncoderConfig"]
