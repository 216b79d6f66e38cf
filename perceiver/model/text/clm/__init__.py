"""Perceiver AR causal language model."""

from perceiver.model.text.clm.backend import CausalLanguageModel, CausalLanguageModelConfig
from perceiver.model.text.clm.text import decode_ids, generate_text

__all__ = ["CausalLanguageModel", "CausalLanguageModelConfig", "decode_ids", "generate_text"]
