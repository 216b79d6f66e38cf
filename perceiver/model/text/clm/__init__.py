"""Perceiver AR causal language model."""

from perceiver.model.text.clm.backend import CausalLanguageModel, CausalLanguageModelConfig
from perceiver.model.text.clm.text import decode_ids, generate_text, stream_text


def __getattr__(name):
    # the Lightning wrapper is imported on first use, so the backend model needs no Lightning import
    if name == "LitCausalLanguageModel":
        from perceiver.model.text.clm.lightning import LitCausalLanguageModel

        return LitCausalLanguageModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LitCausalLanguageModel", "CausalLanguageModel", "CausalLanguageModelConfig", "decode_ids", "generate_text",
    "stream_text",
]
