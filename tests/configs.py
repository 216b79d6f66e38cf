"""The small models and data of the tests, in one place: the ``tiny`` presets with a few fields made smaller still,
so that a test trains in seconds on a CPU. Tests that need another value pass it as an override, e.g.
``clm_config(num_self_attention_layers=3)``; nothing here restates a field the preset already has.

    from configs import clm_config, mlm_config, clm_cli_args, sample_data_args
"""

from __future__ import annotations

import dataclasses
from typing import Any

from perceiver.model.core.presets import merge
from perceiver.model.text.clm import CausalLanguageModelConfig
from perceiver.model.text.mlm import MaskedLanguageModelConfig

SEQ_LEN = 64
"""Tokens per example of the small models and of ``sample_data_args``."""

CLM = dict(max_seq_len=SEQ_LEN, max_latents=16, num_channels=32, num_heads=2, num_self_attention_layers=1)
"""Fields of the small causal model beyond the ``tiny`` preset."""

MLM = dict(
    encoder=dict(max_seq_len=SEQ_LEN, num_input_channels=32, num_cross_attention_heads=2, num_self_attention_heads=2,
                 num_self_attention_layers_per_block=1),
    decoder=dict(max_seq_len=SEQ_LEN, num_cross_attention_heads=2),
    num_latents=8, num_latent_channels=32,
)
"""Fields of the small masked model beyond the ``tiny`` preset."""


def clm_config(**overrides: Any) -> CausalLanguageModelConfig:
    """The small causal language model config (``tiny`` preset + ``CLM``), with ``overrides``."""
    return CausalLanguageModelConfig.from_preset("tiny", **merge(CLM, overrides))


def mlm_config(**overrides: Any) -> MaskedLanguageModelConfig:
    """The small masked language model config (``tiny`` preset + ``MLM``), with ``overrides`` (nested dicts for
    ``encoder``/``decoder``)."""
    return MaskedLanguageModelConfig.from_preset("tiny", **merge(MLM, overrides))


def _flatten(values: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in values.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def cli_args(task: str, **overrides: Any) -> list[str]:
    """``--model.*`` arguments that give the small model of ``task`` (``"clm"``/``"mlm"``, with ``overrides``) on the
    command line, whatever the CLI's defaults: every config field except those the data module links (vocab_size,
    max_seq_len)."""
    from perceiver.tasks import drop_fields, get

    config = (clm_config if task == "clm" else mlm_config)(**overrides)
    fields = _flatten(drop_fields(dataclasses.asdict(config), get(task).linked_fields))
    return [f"--model.{k}={'null' if v is None else v}" for k, v in fields.items()]


def sample_data_args(**overrides: Any) -> dict:
    """Data module arguments for a quick run on the offline Wikipedia sample."""
    return {"source": "sample", "max_seq_len": SEQ_LEN, "batch_size": 4, "max_documents": 6, "num_workers": 0,
            **overrides}
