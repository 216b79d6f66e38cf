"""Perceiver IO masked language model."""

from perceiver.model.text.mlm.backend import (
    MaskedLanguageModel,
    MaskedLanguageModelConfig,
    TextDecoderConfig,
    TextEncoderConfig,
)

__all__ = ["MaskedLanguageModel", "MaskedLanguageModelConfig", "TextDecoderConfig", "TextEncoderConfig"]
