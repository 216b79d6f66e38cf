"""Perceiver AR causal language model."""

from perceiver.model.text.clm.backend import CausalLanguageModel, CausalLanguageModelConfig

__all__ = ["CausalLanguageModel", "CausalLanguageModelConfig"]
