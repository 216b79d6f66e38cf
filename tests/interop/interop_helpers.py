"""Helpers of the interop tests: the predecessor's reference files and tiny configs."""

from __future__ import annotations

import json
import os

from safetensors.torch import load_file

from perceiver.model.text.clm.backend import CausalLanguageModelConfig
from perceiver.model.text.mlm.backend import MaskedLanguageModelConfig, TextDecoderConfig, TextEncoderConfig

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "predecessor")


def fixture_path(name: str, *parts: str) -> str:
    return os.path.join(FIXTURES, name, *parts)


def reference(name: str) -> tuple[dict, dict]:
    """(tensors, reference.json) of a predecessor fixture."""
    return load_file(fixture_path(name, "reference.safetensors")), read_json(fixture_path(name, "reference.json"))


def read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)


def tiny_mlm_config(max_seq_len: int = 48, num_output_query_channels=None) -> MaskedLanguageModelConfig:
    return MaskedLanguageModelConfig(
        TextEncoderConfig(vocab_size=262, max_seq_len=max_seq_len, num_input_channels=32, num_cross_attention_heads=4,
                          num_self_attention_heads=4, num_self_attention_layers_per_block=2, init_scale=0.2),
        TextDecoderConfig(vocab_size=262, max_seq_len=max_seq_len, num_cross_attention_heads=4, init_scale=0.2,
                          num_output_query_channels=num_output_query_channels),
        num_latents=8, num_latent_channels=32,
    )


def tiny_clm_config() -> CausalLanguageModelConfig:
    return CausalLanguageModelConfig(vocab_size=262, max_seq_len=24, max_latents=8, num_channels=32, num_heads=4,
                                     num_self_attention_layers=2, init_scale=0.5)
