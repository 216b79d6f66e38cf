"""Perceiver IO masked language model."""

from perceiver.model.text.mlm.backend import (
    MaskedLanguageModel,
    MaskedLanguageModelConfig,
    TextDecoderConfig,
    TextEncoderConfig,
)
from perceiver.model.text.mlm.convert import convert_hf_model, load_deepmind_model
from perceiver.model.text.mlm.fill import fill_masks



def __getattr__(name):
    # the Lightning wrapper is imported on first use, so the backend model needs no Lightning import
    if name == "LitMaskedLanguageModel":
        from perceiver.model.text.mlm.lightning import LitMaskedLanguageModel

        return LitMaskedLanguageModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LitMaskedLanguageModel", "convert_hf_model", "fill_masks", "load_deepmind_model", "MaskedLanguageModel", "MaskedLanguageModelConfig", "TextDecoderConfig", "TextEncoderConfig"]
