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
from perceiver.model.core.generation import generate
from perceiver.model.core.layers import CrossAttentionLayer, SelfAttentionBlock, run_layer
from perceiver.model.core.position import RotaryEmbedding, left_pad_shift, positions


@dataclass
class KVCache:
    """Rotated keys and values of every layer for the positions processed so far, plus what is needed to continue:
    the pad masks of all positions and of the latents, and each row's position shift (number of left pads).

    The cross-attention entries of prefix positions are ``k_proj(kv_norm(embedding))`` rotated at their positions:
    they depend only on tokens and positions. Those of latent positions use ``q_norm``, and the self-attention
    entries depend on latent hidden states. :meth:`drop_latents` keeps what stays valid when latents become prefix.
    """

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

    def reset(self) -> None:
        """Empty the cache (its buffers are kept for the next pass)."""
        for layer in self.layers:
            layer.truncate(0)
        self.pad_mask = self.latent_pad_mask = self.shift = None
        self.prefix_len = 0

    def drop_latents(self) -> None:
        """Keep only the prefix's cross-attention keys and values; the next pass continues the window after them."""
        self.layers[0].truncate(self.prefix_len)
        for layer in self.layers[1:]:
            layer.truncate(0)
        self.pad_mask = None if self.pad_mask is None else self.pad_mask[:, : self.prefix_len]
        self.latent_pad_mask = None


def kept_prefix_len(prefix_len: int, dropout: float) -> int:
    """Number K of prefix positions that prefix dropout keeps."""
    return prefix_len - int(prefix_len * dropout)


def prefix_dropout_indices(b: int, prefix_len: int, dropout: float, device=None) -> torch.Tensor:
    """Indices (B, K) of the prefix positions kept by prefix dropout, K = ``kept_prefix_len``, a random subset per
    example in the original order."""
    keep = kept_prefix_len(prefix_len, dropout)
    return torch.rand(b, prefix_len, device=device).topk(keep, dim=-1).indices.sort(dim=-1).values


def append_mask(
    mask: Optional[torch.Tensor], j: int, new: Optional[torch.Tensor], n: int, b: int, device=None
) -> Optional[torch.Tensor]:
    """Pad mask (B, J + n) of J positions with pad mask ``mask`` followed by n with pad mask ``new``; None stands
    for no pads."""
    if mask is None and new is None:
        return None
    mask = torch.zeros(b, j, dtype=torch.bool, device=device) if mask is None else mask
    new = torch.zeros(b, n, dtype=torch.bool, device=device) if new is None else new
    return torch.cat([mask, new], dim=1)


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

        With a ``kv_cache`` (inference: no prefix dropout), what x holds depends on the cache:

        - empty: the whole window; its keys and values are stored in the cache;
        - holding latents: only new positions, appended as latents (``prefix_len`` and the padding are the cache's);
        - holding only a prefix of P positions (after :meth:`KVCache.drop_latents`): the window's positions after
          them. ``prefix_len`` is the whole window's prefix length (>= P): the first ``prefix_len - P`` positions of
          x extend the prefix, the rest are latents. The cached prefix keys and values are reused.
        """
        if kv_cache is None:
            return self._forward_full(x, prefix_len, pad_mask), None
        if kv_cache.num_latents > 0:
            return self._forward_append(x, kv_cache), kv_cache
        return self._forward_window(x, prefix_len, pad_mask, kv_cache), kv_cache

    def _embed(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, RotaryEmbedding]:
        """Embeddings (B, N, C) and rotary embedding (B, 1, N, R) of ids x (B, N) at positions pos (B, N)."""
        return self.input_adapter(x, pos), RotaryEmbedding.at(pos, self.num_rotated_channels)

    def _forward_full(self, x: torch.Tensor, prefix_len: int, pad_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Training and uncached inference: the whole window, with prefix dropout in training."""
        b, n = x.shape
        self.check_prefix_len(n, prefix_len)
        pad_mask = none_if_unpadded(pad_mask)
        x_emb, rot = self._embed(x, positions(b, n, left_pad_shift(pad_mask), device=x.device))  # (B, N, C)

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

        ckpt = dict(checkpointing=self.checkpointing and self.training,
                    offloading=self.config.activation_offloading)
        x_latent = run_layer(
            self.cross_attn, x_latent, None, pad_kv, rot_latent, rot_kv, None, x_prefix if prefix_len else None,
            **ckpt,
        )
        return self.self_attn(x_latent, pad_latent, rot_latent)

    def _forward_window(
        self, x: torch.Tensor, prefix_len: int, pad_mask: Optional[torch.Tensor], cache: KVCache
    ) -> torch.Tensor:
        """The window's positions after the P cached prefix positions (P = 0 for an empty cache), into the cache."""
        b, n = x.shape
        p = cache.prefix_len if cache.length else 0
        self.check_prefix_len(p + n, prefix_len)
        if prefix_len < p:
            raise ValueError(f"prefix_len={prefix_len} is shorter than the {p} cached prefix positions")
        pad_mask = none_if_unpadded(pad_mask)
        if p == 0:
            cache.reset()
            cache.shift = left_pad_shift(pad_mask)
        cache.pad_mask = append_mask(cache.pad_mask, p, pad_mask, n, b, x.device)
        x_emb, rot = self._embed(x, positions(b, n, cache.shift, start=p, device=x.device))  # (B, n, C)

        k = prefix_len - p  # new prefix positions
        x_prefix, x_latent = x_emb[:, :k], x_emb[:, k:]  # (B, k, C), (B, L, C)
        rot_latent = rot[:, :, k:]
        cache.latent_pad_mask = None if pad_mask is None else none_if_unpadded(pad_mask[:, k:])
        cache.prefix_len = prefix_len
        x_latent = self.cross_attn(
            x_latent, None, cache.pad_mask, rot_latent, rot, cache.layers[0], x_prefix if k else None
        )
        return self.self_attn(x_latent, cache.latent_pad_mask, rot_latent, cache.layers[1:])

    def _forward_append(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Append new latent positions x (B, n) to a cache holding latents; exact incremental decoding."""
        b, n = x.shape
        if cache.length + n > self.max_seq_len or cache.num_latents + n > self.max_latents:
            raise ValueError(
                f"the kv-cache holds {cache.length} positions ({cache.num_latents} latents); {n} more would exceed "
                f"max_seq_len={self.max_seq_len} or max_latents={self.max_latents}. Start a new pass instead."
            )
        x_emb, rot = self._embed(x, positions(b, n, cache.shift, start=cache.length, device=x.device))  # (B, n, C)
        cache.pad_mask = append_mask(cache.pad_mask, cache.length, None, n, b, x.device)
        cache.latent_pad_mask = append_mask(cache.latent_pad_mask, cache.num_latents, None, n, b, x.device)
        x_latent = self.cross_attn(x_emb, None, cache.pad_mask, rot, rot, cache.layers[0])
        return self.self_attn(x_latent, cache.latent_pad_mask, rot, cache.layers[1:])

    # --- generation -------------------------------------------------------------------------------------------------

    def logits(self, x_latent: torch.Tensor) -> torch.Tensor:
        """Token logits (B, L, V) of latent hidden states (B, L, C). Task models with a token output define it."""
        raise NotImplementedError(f"{type(self).__name__} has no token output; define logits() to generate")

    def next_token_logits(
        self, x: torch.Tensor, prefix_len: int, pad_mask: Optional[torch.Tensor] = None,
        kv_cache: Optional[KVCache] = None,
    ) -> torch.Tensor:
        """Logits (B, V) of the last position only (the decoding step; see :meth:`forward` for the arguments)."""
        x_latent, _ = PerceiverAR.forward(self, x, prefix_len, pad_mask, kv_cache)
        return self.logits(x_latent[:, -1:])[:, -1]

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        num_latents: int = 1,
        pad_mask: Optional[torch.Tensor] = None,
        window_rule: str = "restart",
        restart_latents: Optional[int] = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        eos_token_id: Optional[int] = None,
        use_cache: bool = True,
        generator: Optional[torch.Generator] = None,
        streamer=None,
    ) -> torch.Tensor:
        """Return the prompt ``input_ids`` (B, n0), left-padded with ``pad_mask`` (True = pad), followed by up to
        ``max_new_tokens`` generated tokens: greedy, or sampled with ``temperature``, ``top_k`` and ``top_p``.

        Window rule ``"restart"`` (default): the prompt's last L0 = max(num_latents, n0 - max_prefix_len) positions
        start as latents, the rest is the prefix. Each new token adds one latent until there are ``max_latents``;
        the next step restarts with R = ``restart_latents`` latents (default ``max_latents // 2``), and the former
        latents join the prefix. Once the prefix has ``max_prefix_len = max_seq_len - max_latents`` positions, each
        restart instead slides the window start forward by max_latents + 1 - R positions, so generation continues
        past ``max_seq_len``. ``window_rule="slide"`` is R = max_latents (after the latents fill up, the prefix grows
        and then the window slides one position per step). The exact rule is in
        :mod:`perceiver.model.core.generation`.

        The kv-cache (``use_cache``) is exact: each growth step processes one position, a restart keeps the prefix's
        cross-attention keys and values (one pass of R latents), and only a restart that slides the window recomputes
        the prefix. Cached and uncached decoding give the same tokens. Sequences that emit ``eos_token_id`` continue
        with it until all are done. ``streamer`` (``put(ids)``/``end()``, e.g. ``transformers.TextStreamer``) gets
        the prompt, then each step's new tokens (B,). Runs in eval mode (no prefix dropout).
        """
        was_training = self.training
        self.eval()
        try:
            return generate(
                self, input_ids, max_new_tokens, streamer=streamer, num_latents=num_latents, pad_mask=pad_mask,
                window_rule=window_rule, restart_latents=restart_latents, do_sample=do_sample,
                temperature=temperature, top_k=top_k, top_p=top_p, eos_token_id=eos_token_id, use_cache=use_cache,
                generator=generator,
            )
        finally:
            self.train(was_training)
