"""Perceiver AR (arXiv:2202.07765): long-context autoregressive modelling with a causal cross-attention from a few
latents to a long prefix, followed by causal self-attention over the latents.

An input of N positions is split into a prefix (the first ``prefix_len`` positions) and L = N - prefix_len latents.
One hybrid cross-attention layer lets each latent attend to the whole prefix and, causally, to the latents up to
itself; keys and values are prefix + latents (the prefix normed with ``kv_norm``, the latents with ``q_norm``). A stack of causal self-attention layers then processes the latents.
Inputs are left-padded; positions are shifted so that each row's first real token is position 0.

Dimensions:
    B: batch size
    N: input positions (prefix + latents),  P: prefix positions,  L: latent positions
    K: prefix positions kept by prefix dropout
    C: channels
    R: rotated channels per head
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn

from perceiver.model.core.adapter import InputAdapter
from perceiver.model.core.attention import LayerKV
from perceiver.model.core.config import PerceiverARConfig
from perceiver.model.core.layers import CrossAttentionLayer, SelfAttentionBlock, run_layer
from perceiver.model.core.position import RotaryEmbedding, left_pad_shift, positions


@dataclass
class KVCache:
    """Rotated keys and values of every layer for the positions processed so far, plus what is needed to continue:
    the pad masks of all positions and of the latents, and each row's position shift (number of left pads)."""

    layers: list[LayerKV] = field(default_factory=list)  # [cross-attention, self-attention 1..S]
    pad_mask: Optional[torch.Tensor] = None  # (B, N) True = pad, None = no padding
    latent_pad_mask: Optional[torch.Tensor] = None  # (B, L)
    shift: Optional[torch.Tensor] = None  # (B, 1)
    prefix_len: int = 0

    @property
    def length(self) -> int:
        """Number of cached positions (prefix + latents)."""
        return self.layers[0].length if self.layers else 0

    @property
    def num_latents(self) -> int:
        return self.length - self.prefix_len


def kept_prefix_len(prefix_len: int, dropout: float) -> int:
    """Number K of prefix positions that prefix dropout keeps."""
    return prefix_len - int(prefix_len * dropout)


def prefix_dropout_indices(b: int, prefix_len: int, dropout: float, device=None) -> torch.Tensor:
    """Indices (B, K) of the prefix positions kept by prefix dropout, K = ``kept_prefix_len``, a random subset per
    example in the original order."""
    keep = kept_prefix_len(prefix_len, dropout)
    return torch.rand(b, prefix_len, device=device).topk(keep, dim=-1).indices.sort(dim=-1).values


def append_mask(mask: Optional[torch.Tensor], n: int) -> Optional[torch.Tensor]:
    """Extend a pad mask (B, J) by n non-pad positions."""
    return None if mask is None else torch.cat([mask, mask.new_zeros(mask.shape[0], n)], dim=1)


def none_if_unpadded(pad_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return pad_mask if pad_mask is not None and bool(pad_mask.any()) else None


class PerceiverAR(nn.Module):
    """Perceiver AR over an input adapter that maps ids (B, N) at positions (B, N) to embeddings (B, N, C).

    ``forward`` returns the latent hidden states (B, L, C), and with a ``kv_cache`` also the updated cache.
    """

    def __init__(
        self,
        config: PerceiverARConfig,
        input_adapter: InputAdapter,
        max_seq_len: int,
        max_latents: int,
        num_rotated_channels: Optional[int] = None,
    ):
        super().__init__()
        c = input_adapter.num_input_channels
        if c % config.num_heads:
            raise ValueError(f"num_channels ({c}) must be divisible by num_heads ({config.num_heads})")
        if not 0 < max_latents <= max_seq_len:
            raise ValueError(f"max_latents ({max_latents}) must be in [1, max_seq_len={max_seq_len}]")
        self.config = config
        self.input_adapter = input_adapter
        self.checkpointing = config.activation_checkpointing  # of the cross-attention; the self-attention has its own
        self.max_seq_len = max_seq_len
        self.max_latents = max_latents
        # rotary embeddings rotate the first R channels of each head (default: half of them)
        self.num_rotated_channels = num_rotated_channels or c // config.num_heads // 2
        self.cross_attn = CrossAttentionLayer(
            num_heads=config.num_heads,
            num_q_input_channels=c,
            num_kv_input_channels=c,
            widening_factor=config.cross_attention_widening_factor,
            max_heads_parallel=config.max_heads_parallel,
            causal_attention=True,
            dropout=config.post_attention_dropout,
            residual_dropout=config.residual_dropout,
            qkv_bias=False,
            out_bias=True,
            mlp_bias=False,
        )
        self.self_attn = SelfAttentionBlock(
            num_layers=config.num_self_attention_layers,
            num_heads=config.num_heads,
            num_channels=c,
            widening_factor=config.self_attention_widening_factor,
            num_rotary_layers=config.num_rotary_layers,
            activation_checkpointing=config.activation_checkpointing,
            activation_offloading=config.activation_offloading,
            max_heads_parallel=config.max_heads_parallel,
            causal_attention=True,
            dropout=config.post_attention_dropout,
            residual_dropout=config.residual_dropout,
            qkv_bias=False,
            out_bias=False,
            mlp_bias=False,
        )

    @property
    def max_prefix_len(self) -> int:
        return self.max_seq_len - self.max_latents

    def check_prefix_len(self, n: int, prefix_len: int) -> None:
        if n > self.max_seq_len:
            raise ValueError(f"input length {n} exceeds max_seq_len={self.max_seq_len}")
        if not 0 <= prefix_len <= self.max_prefix_len:
            raise ValueError(
                f"prefix_len={prefix_len} is out of range [0, max_prefix_len={self.max_prefix_len}] "
                f"(max_prefix_len = max_seq_len - max_latents)"
            )
        if not 0 < n - prefix_len <= self.max_latents:
            raise ValueError(
                f"input length {n} with prefix_len={prefix_len} gives {n - prefix_len} latents, "
                f"outside [1, max_latents={self.max_latents}]"
            )

    def init_cache(self) -> KVCache:
        capacities = [self.max_seq_len] + [self.max_latents] * len(self.self_attn.layers)
        return KVCache(layers=[LayerKV(c) for c in capacities])

    def forward(
        self,
        x: torch.Tensor,
        prefix_len: int,
        pad_mask: Optional[torch.Tensor] = None,
        kv_cache: Optional[KVCache] = None,
    ) -> tuple[torch.Tensor, Optional[KVCache]]:
        """Latent hidden states (B, L, C) of ids x (B, N); ``pad_mask`` (B, N) is True at (left) padding.

        With an empty ``kv_cache``, the keys and values of this pass are stored in it. With a filled one, x holds
        only new positions, which are appended as latents; ``prefix_len`` and ``pad_mask`` are then taken from the
        cache."""
        if kv_cache is not None and kv_cache.length > 0:
            return self._forward_cached(x, kv_cache), kv_cache

        b, n = x.shape
        self.check_prefix_len(n, prefix_len)
        pad_mask = none_if_unpadded(pad_mask)
        shift = left_pad_shift(pad_mask)
        abs_pos = positions(b, n, shift, device=x.device)  # (B, N)
        x_emb = self.input_adapter(x, abs_pos)  # (B, N, C)
        rot = RotaryEmbedding.at(abs_pos, self.num_rotated_channels)  # (B, 1, N, R)

        # a copy of the latents, so that what the backward pass keeps of them does not pin all of x_emb
        x_prefix, x_latent = x_emb[:, :prefix_len], x_emb[:, prefix_len:].contiguous()  # (B, P, C), (B, L, C)
        rot_latent = rot[:, :, prefix_len:]
        pad_latent = None if pad_mask is None else none_if_unpadded(pad_mask[:, prefix_len:])
        rot_kv, pad_kv = rot, pad_mask

        if self.training and self.config.cross_attention_dropout > 0.0 and prefix_len > 0:
            keep = prefix_dropout_indices(b, prefix_len, self.config.cross_attention_dropout, x.device)  # (B, K)
            # indexing (not gather, whose backward keeps its whole (B, P, C) input)
            x_prefix = x_prefix[torch.arange(b, device=x.device)[:, None], keep]  # (B, K, C)
            rot_kv = rot[:, :, :prefix_len].gather(keep)
            rot_kv.cos = torch.cat([rot_kv.cos, rot_latent.cos], dim=2)
            rot_kv.sin = torch.cat([rot_kv.sin, rot_latent.sin], dim=2)
            if pad_mask is not None:
                pad_kv = torch.cat([pad_mask[:, :prefix_len].gather(1, keep), pad_mask[:, prefix_len:]], dim=1)

        if kv_cache is not None:
            kv_cache.pad_mask, kv_cache.latent_pad_mask = pad_mask, pad_latent
            kv_cache.shift, kv_cache.prefix_len = shift, prefix_len
            caches = kv_cache.layers
        else:
            caches = [None] * (1 + len(self.self_attn.layers))

        ckpt = dict(checkpointing=self.checkpointing and self.training,
                    offloading=self.config.activation_offloading)
        x_latent = run_layer(
            self.cross_attn, x_latent, None, pad_kv, rot_latent, rot_kv, caches[0], x_prefix if prefix_len else None,
            **ckpt,
        )
        x_latent = self.self_attn(x_latent, pad_latent, rot_latent, None if kv_cache is None else caches[1:])
        return x_latent, kv_cache

    def _forward_cached(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Append new latent positions x (B, n) to a filled cache; exact incremental decoding."""
        b, n = x.shape
        if cache.length + n > self.max_seq_len or cache.num_latents + n > self.max_latents:
            raise ValueError(
                f"the kv-cache holds {cache.length} positions ({cache.num_latents} latents); {n} more would exceed "
                f"max_seq_len={self.max_seq_len} or max_latents={self.max_latents}. Start a new pass instead."
            )
        pos = cache.length + torch.arange(n, device=x.device).expand(b, n)  # (B, n)
        if cache.shift is not None:
            pos = (pos - cache.shift).clamp(min=0)
        x_emb = self.input_adapter(x, pos)  # (B, n, C)
        rot = RotaryEmbedding.at(pos, self.num_rotated_channels)  # (B, 1, n, R)
        cache.pad_mask = append_mask(cache.pad_mask, n)
        cache.latent_pad_mask = append_mask(cache.latent_pad_mask, n)
        x_latent = self.cross_attn(x_emb, None, cache.pad_mask, rot, rot, cache.layers[0])
        return self.self_attn(x_latent, cache.latent_pad_mask, rot, cache.layers[1:])
