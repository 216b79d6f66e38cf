"""Pre-LayerNorm attention layers, MLPs and self-attention blocks.

Dimensions:
    B: batch size
    I: query positions (latents or output queries)
    J: key/value positions (inputs, or the same as I for self-attention)
    C: channels
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from perceiver.model.core.attention import LayerKV, MultiHeadAttention
from perceiver.model.core.ops import Linear, gelu_linear
from perceiver.model.core.position import RotaryEmbedding


def run_layer(layer: Callable, *args, checkpointing: bool = False, offloading: bool = False, **kwargs):
    """Call ``layer``, recomputing its activations in the backward pass when ``checkpointing`` (torch's own
    non-reentrant checkpoint), and keeping the saved inputs in CPU memory when ``offloading``."""
    if not checkpointing or not torch.is_grad_enabled():
        return layer(*args, **kwargs)
    if offloading:
        with torch.autograd.graph.save_on_cpu(pin_memory=torch.cuda.is_available()):
            return checkpoint(layer, *args, use_reentrant=False, **kwargs)
    return checkpoint(layer, *args, use_reentrant=False, **kwargs)


class MLP(nn.Module):
    """LayerNorm, then Linear (C -> widening_factor * C), GELU, Linear (-> C).

    The GELU output is recomputed in the backward pass (see :func:`~perceiver.model.core.ops.gelu_linear`)."""

    def __init__(self, num_channels: int, widening_factor: int, bias: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(num_channels)
        self.fc1 = Linear(num_channels, widening_factor * num_channels, bias=bias)
        self.fc2 = Linear(widening_factor * num_channels, num_channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_linear(self.fc1(self.norm(x)), self.fc2)


class CrossAttentionLayer(nn.Module):
    """Queries x_q (B, I, Cq) attend to x_kv (B, J, Ckv), then an MLP; both are pre-norm with residuals.

    ``attention_residual=False`` drops the query residual around the attention (the Perceiver IO text decoder).
    Further keyword arguments go to :class:`MultiHeadAttention`.
    """

    def __init__(
        self,
        num_heads: int,
        num_q_input_channels: int,
        num_kv_input_channels: int,
        widening_factor: int,
        attention_residual: bool = True,
        residual_dropout: float = 0.0,
        mlp_bias: bool = True,
        **attention_kwargs,
    ):
        super().__init__()
        self.q_norm = nn.LayerNorm(num_q_input_channels)
        self.kv_norm = nn.LayerNorm(num_kv_input_channels)
        self.attention = MultiHeadAttention(num_heads, num_q_input_channels, num_kv_input_channels, **attention_kwargs)
        self.mlp = MLP(num_q_input_channels, widening_factor, bias=mlp_bias)
        self.attention_residual = attention_residual
        self.residual_dropout = nn.Dropout(residual_dropout)

    def forward(
        self,
        x_q: torch.Tensor,
        x_kv: Optional[torch.Tensor] = None,
        pad_mask: Optional[torch.Tensor] = None,
        rot_q: Optional[RotaryEmbedding] = None,
        rot_k: Optional[RotaryEmbedding] = None,
        kv_cache: Optional[LayerKV] = None,
        x_kv_prefix: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """With ``x_kv`` (B, J, Ckv), queries attend to it. Without it (Perceiver AR prefix attention), keys and
        values are ``x_kv_prefix`` (B, P, Ckv) (normed with ``kv_norm``, may be None) followed by the queries
        themselves (normed with ``q_norm``), as in perceiver-io 0.11."""
        q = self.q_norm(x_q)
        if x_kv is not None:
            kv = self.kv_norm(x_kv)
        elif x_kv_prefix is None:
            kv = q
        else:
            kv = torch.cat([self.kv_norm(x_kv_prefix), q], dim=1)
        h = self.attention(q, kv, pad_mask, rot_q, rot_k, kv_cache)
        h = self.residual_dropout(h)
        x = x_q + h if self.attention_residual else h
        return x + self.residual_dropout(self.mlp(x))


class SelfAttentionLayer(nn.Module):
    """Pre-norm self-attention over x (B, N, C) and an MLP, both with residuals."""

    def __init__(
        self,
        num_heads: int,
        num_channels: int,
        widening_factor: int,
        residual_dropout: float = 0.0,
        mlp_bias: bool = True,
        **attention_kwargs,
    ):
        super().__init__()
        self.norm = nn.LayerNorm(num_channels)
        self.attention = MultiHeadAttention(num_heads, num_channels, num_channels, **attention_kwargs)
        self.mlp = MLP(num_channels, widening_factor, bias=mlp_bias)
        self.residual_dropout = nn.Dropout(residual_dropout)

    def forward(
        self,
        x: torch.Tensor,
        pad_mask: Optional[torch.Tensor] = None,
        rot: Optional[RotaryEmbedding] = None,
        kv_cache: Optional[LayerKV] = None,
    ) -> torch.Tensor:
        h = self.norm(x)
        x = x + self.residual_dropout(self.attention(h, h, pad_mask, rot, rot, kv_cache))
        return x + self.residual_dropout(self.mlp(x))


class SelfAttentionBlock(nn.Module):
    """A stack of ``num_layers`` self-attention layers; the first ``num_rotary_layers`` use rotary embeddings."""

    def __init__(
        self,
        num_layers: int,
        num_heads: int,
        num_channels: int,
        widening_factor: int,
        num_rotary_layers: int = 0,
        activation_checkpointing: bool = False,
        activation_offloading: bool = False,
        **layer_kwargs,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            SelfAttentionLayer(num_heads, num_channels, widening_factor, **layer_kwargs) for _ in range(num_layers)
        )
        self.num_rotary_layers = num_rotary_layers
        self.checkpointing = activation_checkpointing
        self.offloading = activation_offloading

    def forward(
        self,
        x: torch.Tensor,
        pad_mask: Optional[torch.Tensor] = None,
        rot: Optional[RotaryEmbedding] = None,
        kv_cache: Optional[Sequence[LayerKV]] = None,
    ) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            layer_rot = rot if i < self.num_rotary_layers else None
            layer_cache = None if kv_cache is None else kv_cache[i]
            x = run_layer(
                layer, x, pad_mask, layer_rot, layer_cache,
                checkpointing=self.checkpointing and self.training, offloading=self.offloading,
            )
        return x


def set_activation_checkpointing(model: nn.Module, enable: bool) -> None:
    """Switch activation checkpointing of every block of ``model`` (the modules with a ``checkpointing`` flag) on or
    off, whatever its config says (what Hugging Face's ``gradient_checkpointing_enable`` does)."""
    for m in model.modules():
        if hasattr(m, "checkpointing"):
            m.checkpointing = enable


def init_parameters(module: nn.Module, init_scale: float) -> None:
    """Normal(0, init_scale) weights for linear and embedding layers, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=init_scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=init_scale)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
