"""One multi-head attention for self-, cross-, causal and Perceiver AR prefix attention.

Built on ``torch.nn.functional.scaled_dot_product_attention``. Masks, rotary embeddings, the kv-cache and the
optional recording of attention weights (for the workbench plots) all live here. Mask convention: a boolean
``mask`` is True where a query may attend to a key; a ``pad_mask`` is True at padding positions.

Dimensions:
    B: batch size
    H: heads
    I: queries
    J: keys and values
    D: channels per head (Dqk for queries/keys, Dv for values)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from perceiver.model.core.ops import Linear
from perceiver.model.core.position import RotaryEmbedding


# --- mask functions -----------------------------------------------------------------------------------------------


def causal_mask(i: int, j: int, device=None) -> torch.Tensor:
    """Right-aligned causal mask (I, J): query q may attend to keys up to J - I + q."""
    return torch.ones(i, j, dtype=torch.bool, device=device).tril(j - i)


def attention_mask(
    pad_mask: Optional[torch.Tensor], i: int, j: int, causal: bool, device=None
) -> Optional[torch.Tensor]:
    """Combine a key padding mask (B, J) and right-aligned causality into a mask (B, 1, I, J), or None if nothing is
    masked. Rows that would mask every key (pad queries of left-padded inputs) attend to all keys instead, so no
    NaN can arise; their outputs are never attended to by real tokens."""
    if pad_mask is None and (not causal or i == 1):
        return None
    mask = causal_mask(i, j, device) if causal else torch.ones(i, j, dtype=torch.bool, device=device)
    if pad_mask is not None:
        mask = mask & ~pad_mask[:, None, None, :]  # (B, 1, I, J)
        mask = mask | ~mask.any(dim=-1, keepdim=True)
    return mask


# --- attention math -----------------------------------------------------------------------------------------------


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Softmax attention weights (B, H, I, J) of q (B, H, I, D) over k (B, H, J, D)."""
    scores = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    return_weights: bool = False,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Attention output (B, H, I, Dv) and, on request, the weights (B, H, I, J). ``is_causal`` requires I == J."""
    if not return_weights:
        if is_causal and mask is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p), None
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p), None
    if is_causal:
        mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
    weights = attention_weights(q, k, mask)
    return F.dropout(weights, dropout_p) @ v, weights


# --- kv-cache -----------------------------------------------------------------------------------------------------


class LayerKV:
    """The keys (rotated) and values of one attention layer, in buffers preallocated for ``capacity`` positions, so
    appending a token writes in place instead of copying the cache."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.length = 0
        self.k: Optional[torch.Tensor] = None  # (B, H, capacity, Dqk)
        self.v: Optional[torch.Tensor] = None  # (B, H, capacity, Dv)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = k.shape[2]
        if self.k is None:
            self.k = k.new_empty(*k.shape[:2], self.capacity, k.shape[-1])
            self.v = v.new_empty(*v.shape[:2], self.capacity, v.shape[-1])
        if self.length + n > self.capacity:
            raise ValueError(f"kv-cache overflow: {self.length} + {n} positions exceed its capacity {self.capacity}")
        self.k[:, :, self.length : self.length + n] = k
        self.v[:, :, self.length : self.length + n] = v
        self.length += n
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` positions (the buffers stay allocated)."""
        self.length = min(self.length, length)


# --- recording attention weights for plots ------------------------------------------------------------------------


class AttentionRecorder:
    """Collects the attention weights (B, H, I, J) of each attention module it is attached to, by module name."""

    def __init__(self):
        self.weights: dict[str, torch.Tensor] = {}


@contextmanager
def record_attention(model: nn.Module, names: Optional[list[str]] = None) -> Iterator[AttentionRecorder]:
    """Within the block, the attention modules of ``model`` (all, or those whose name starts with one of ``names``)
    compute explicit weights and store them in the yielded recorder. Outside it, the fused path is untouched."""
    recorder = AttentionRecorder()
    modules = [
        (name, m) for name, m in model.named_modules()
        if isinstance(m, MultiHeadAttention) and (names is None or any(name.startswith(p) for p in names))
    ]
    for name, m in modules:
        m.recorder, m.record_name = recorder, name
    try:
        yield recorder
    finally:
        for _, m in modules:
            m.recorder = None


# --- module -------------------------------------------------------------------------------------------------------


class MultiHeadAttention(nn.Module):
    """Multi-head attention of queries x_q (B, I, Cq) over keys/values x_kv (B, J, Ckv).

    Args:
        num_heads: number of heads H.
        num_q_input_channels: Cq.
        num_kv_input_channels: Ckv.
        num_qk_channels: query/key channels over all heads (default Cq).
        num_v_channels: value channels over all heads (default num_qk_channels).
        num_output_channels: output channels (default Cq).
        max_heads_parallel: compute at most this many heads at once (default all).
        causal_attention: right-aligned causal masking.
        dropout: dropout of the attention probabilities.
        qkv_bias, out_bias: biases of the input and output projections.
    """

    def __init__(
        self,
        num_heads: int,
        num_q_input_channels: int,
        num_kv_input_channels: int,
        num_qk_channels: Optional[int] = None,
        num_v_channels: Optional[int] = None,
        num_output_channels: Optional[int] = None,
        max_heads_parallel: Optional[int] = None,
        causal_attention: bool = False,
        dropout: float = 0.0,
        qkv_bias: bool = True,
        out_bias: bool = True,
    ):
        super().__init__()
        num_qk_channels = num_qk_channels or num_q_input_channels
        num_v_channels = num_v_channels or num_qk_channels
        num_output_channels = num_output_channels or num_q_input_channels
        if num_qk_channels % num_heads or num_v_channels % num_heads:
            raise ValueError(
                f"query/key channels ({num_qk_channels}) and value channels ({num_v_channels}) must be divisible "
                f"by the number of heads ({num_heads})"
            )
        self.num_heads = num_heads
        self.max_heads_parallel = max_heads_parallel or num_heads
        self.causal_attention = causal_attention
        self.dropout = dropout
        self.q_proj = Linear(num_q_input_channels, num_qk_channels, bias=qkv_bias)
        self.k_proj = Linear(num_kv_input_channels, num_qk_channels, bias=qkv_bias)
        self.v_proj = Linear(num_kv_input_channels, num_v_channels, bias=qkv_bias)
        self.o_proj = Linear(num_v_channels, num_output_channels, bias=out_bias)
        self.recorder: Optional[AttentionRecorder] = None
        self.record_name = ""

    def forward(
        self,
        x_q: torch.Tensor,
        x_kv: torch.Tensor,
        pad_mask: Optional[torch.Tensor] = None,
        rot_q: Optional[RotaryEmbedding] = None,
        rot_k: Optional[RotaryEmbedding] = None,
        kv_cache: Optional[LayerKV] = None,
    ) -> torch.Tensor:
        """Output (B, I, C_out). ``pad_mask`` (B, J) covers all keys, cached ones included. With a ``kv_cache``, x_kv
        holds only the new positions; their rotated keys and values are appended to the cache."""
        q = self.q_proj(x_q).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, H, I, Dqk)
        k = self.k_proj(x_kv).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, H, J, Dqk)
        v = self.v_proj(x_kv).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, H, J, Dv)
        if rot_q is not None:
            q = rot_q.rotate(q)
        if rot_k is not None:
            k = rot_k.rotate(k)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)

        i, j = q.shape[2], k.shape[2]
        is_causal = self.causal_attention and i == j and i > 1 and pad_mask is None
        mask = None if is_causal else attention_mask(pad_mask, i, j, self.causal_attention, q.device)
        dropout_p = self.dropout if self.training else 0.0
        record = self.recorder is not None

        if self.max_heads_parallel >= self.num_heads:
            o, w = attend(q, k, v, mask, is_causal, dropout_p, record)
        else:
            chunks = [
                attend(q[:, h : h + self.max_heads_parallel], k[:, h : h + self.max_heads_parallel],
                       v[:, h : h + self.max_heads_parallel], mask, is_causal, dropout_p, record)
                for h in range(0, self.num_heads, self.max_heads_parallel)
            ]
            o = torch.cat([c[0] for c in chunks], dim=1)
            w = torch.cat([c[1] for c in chunks], dim=1) if record else None
        if record:
            self.recorder.weights[self.record_name] = w.detach()
        return self.o_proj(o.transpose(1, 2).flatten(2))  # (B, I, C_out)
