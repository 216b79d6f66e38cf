"""Causal language model: Perceiver AR over token embeddings, with tied output embedding and kv-cached generation.

Dimensions:
    B: batch size
    N: input positions,  L: latent positions
    V: vocabulary size
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Mapping, Optional, Union

import torch
import torch.nn as nn

from perceiver.model.core.config import ConfigError, PerceiverARConfig, check_init_scale, check_positive
from perceiver.model.core.flops import Flops, perceiver_ar
from perceiver.model.core.layers import init_parameters
from perceiver.model.core.perceiver_ar import KVCache, PerceiverAR
from perceiver.model.core.presets import Preset
from perceiver.model.text.common import TiedTokenOutputAdapter, TokenInputAdapter


@dataclass
class CausalLanguageModelConfig(PerceiverARConfig):
    presets: ClassVar[Mapping[str, Preset]] = {
        "clm-30.6m": Preset("Perceiver AR, the documented 30.6M language model: 4096 context, 512 latents"),
        "tiny": Preset(
            "0.9M parameters, 256 context, 64 latents: minutes of CPU training",
            dict(num_heads=4, num_self_attention_layers=3, max_seq_len=256, max_latents=64, num_channels=128,
                 cross_attention_dropout=0.0),
        ),
        "demo": Preset(
            "0.56M parameters, 128 context, 64 latents, MLPs 2x wide: tuned for 150 s of training on 2 CPU cores "
            "(the workbench's 'tiny CPU', docs/demo-tuning.md)",
            dict(num_heads=4, num_self_attention_layers=3, max_seq_len=128, max_latents=64, num_channels=128,
                 self_attention_widening_factor=2, cross_attention_widening_factor=2, cross_attention_dropout=0.0,
                 num_self_attention_rotary_layers=-1, abs_pos_emb=False),
        ),
    }

    vocab_size: int = 262
    """Vocabulary size (262 for the UTF-8 byte tokenizer ``deepmind/language-perceiver``)."""
    max_seq_len: int = 4096
    """Maximum input length: prefix plus latents."""
    max_latents: int = 512
    """Maximum number of latent positions."""
    num_channels: int = 512
    """Channels of embeddings and of all layers."""
    output_norm: bool = False
    """Apply a LayerNorm to the latents before the output projection."""
    output_bias: bool = True
    """Add a learned bias to the output logits."""
    abs_pos_emb: bool = True
    """Add learned absolute position embeddings to the token embeddings (rotary embeddings are always used)."""
    init_scale: float = 0.02
    """Standard deviation of the normal weight initialization."""

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "vocab_size", "max_seq_len", "max_latents", "num_channels")
        if self.max_latents > self.max_seq_len:
            raise ConfigError(self, "max_latents", f"({self.max_latents}) must not exceed max_seq_len ({self.max_seq_len})")
        if self.num_channels % self.num_heads:
            raise ConfigError(self, "num_channels", f"({self.num_channels}) must be divisible by num_heads ({self.num_heads})")
        if (self.num_channels // self.num_heads) % 2:
            raise ConfigError(
                self, "num_channels",
                f"/ num_heads = {self.num_channels // self.num_heads} channels per head must be even for rotary "
                f"embeddings",
            )
        check_init_scale(self)

    @property
    def max_prefix_len(self) -> int:
        return self.max_seq_len - self.max_latents

    def flops(self, seq_len: Optional[int] = None, train: bool = True, prefix_len: Optional[int] = None) -> Flops:
        """Analytic FLOPs of one example of ``seq_len`` tokens (default ``max_seq_len``) whose last
        ``min(seq_len, max_latents)`` positions are latents (``prefix_len`` overrides), as in training; ``train``:
        with prefix dropout. See ``perceiver.model.core.flops``."""
        n = seq_len or self.max_seq_len
        p = max(0, n - self.max_latents) if prefix_len is None else prefix_len
        return perceiver_ar(self, n, p, self.num_channels, self.vocab_size, train)


class CausalLanguageModel(PerceiverAR):
    """Perceiver AR causal language model. ``forward`` returns logits (B, L, V) for the latent positions, plus the
    kv-cache when one is passed (``kv_cache=model.init_cache()`` for the first call). ``generate`` (of
    :class:`PerceiverAR`) decodes with the exact kv-cache and the ``"restart"`` window rule, which its docstring
    states."""

    plotted_attention = "cross_attn.attention"
    """The attention module the workbench plots: the prefix cross-attention."""
    plotted_attention_title = "prefix cross-attention: latent positions over prefix + latent positions"

    def __init__(self, config: CausalLanguageModelConfig):
        input_adapter = TokenInputAdapter(
            vocab_size=config.vocab_size,
            max_seq_len=config.max_seq_len,
            num_input_channels=config.num_channels,
            abs_pos_emb=config.abs_pos_emb,
        )
        head_channels = config.num_channels // config.num_heads
        super().__init__(
            config, input_adapter, max_seq_len=config.max_seq_len, max_latents=config.max_latents,
            # rotary on half of each head's channels with absolute position embeddings, else on all (as 0.11)
            num_rotated_channels=head_channels // 2 if config.abs_pos_emb else head_channels,
        )
        self.out_norm = nn.LayerNorm(config.num_channels) if config.output_norm else None
        self.output_adapter = TiedTokenOutputAdapter(input_adapter.txt_embedding, bias=config.output_bias)
        init_parameters(self, config.init_scale)

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding (V, C); the output projection is tied to it."""
        return self.input_adapter.txt_embedding

    def set_input_embeddings(self, embedding: nn.Embedding) -> None:
        """Use ``embedding`` (V', C) as the token embedding, the tied output projection included (a resized
        vocabulary: ``config.vocab_size`` becomes V')."""
        self.input_adapter.set_embedding(embedding)
        self.output_adapter.tie(embedding)
        self.config = dataclasses.replace(self.config, vocab_size=embedding.num_embeddings)

    def forward(
        self,
        x: torch.Tensor,
        prefix_len: int,
        pad_mask: Optional[torch.Tensor] = None,
        kv_cache: Optional[Union[KVCache, list]] = None,
    ) -> Union[torch.Tensor, tuple[torch.Tensor, KVCache]]:
        if isinstance(kv_cache, list):  # perceiver-io 0.11 style: [] starts a cache
            kv_cache = self.init_cache() if not kv_cache else KVCache(layers=kv_cache)
        x_latent, kv_cache = super().forward(x, prefix_len, pad_mask, kv_cache)
        logits = self.logits(x_latent)  # (B, L, V)
        return logits if kv_cache is None else (logits, kv_cache)

    def logits(self, x_latent: torch.Tensor) -> torch.Tensor:
        """Token logits (B, L, V) of latent hidden states (B, L, C): the output norm, then the tied embedding."""
        if self.out_norm is not None:
            x_latent = self.out_norm(x_latent)
        return self.output_adapter(x_latent)
