"""Helpers of the interop tests: the predecessor's reference files and tiny configs."""

from __future__ import annotations

import json
import os

from safetensors.torch import load_file

from configs import clm_config, mlm_config
from perceiver.model.text.clm.backend import CausalLanguageModelConfig
from perceiver.model.text.mlm.backend import MaskedLanguageModelConfig

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
    """The small MLM of ``tests/configs.py`` with 4 heads, 2 layers and large initial weights (logits far apart)."""
    return mlm_config(
        encoder=dict(max_seq_len=max_seq_len, num_cross_attention_heads=4, num_self_attention_heads=4,
                     num_self_attention_layers_per_block=2, init_scale=0.2),
        decoder=dict(max_seq_len=max_seq_len, num_cross_attention_heads=4, init_scale=0.2,
                     num_output_query_channels=num_output_query_channels),
    )


def tiny_clm_config() -> CausalLanguageModelConfig:
    """The small CLM of ``tests/configs.py`` with a short context, 4 heads, 2 layers and large initial weights."""
    return clm_config(max_seq_len=24, max_latents=8, num_heads=4, num_self_attention_layers=2, init_scale=0.5,
                      cross_attention_dropout=0.5)
