"""Perceiver IO (arXiv:2107.14795): an encoder cross-attends from latents to the input, self-attention blocks
process the latents, and a decoder cross-attends from output queries to the latents.

Dimensions:
    B: batch size
    M: input positions,     C: input channels
    N: latents,             D: latent channels
    O: output queries,      F: output query channels
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from perceiver.model.core.adapter import InputAdapter, OutputAdapter, QueryProvider
from perceiver.model.core.config import DecoderConfig, EncoderConfig
from perceiver.model.core.layers import CrossAttentionLayer, SelfAttentionBlock, init_parameters, run_layer


class PerceiverEncoder(nn.Module):
    """Trainable latents (N, D) cross-attend to the adapted input, then self-attention blocks process them.

    Cross-attention layer i (i < ``num_cross_attention_layers``) runs before self-attention block i. As in the
    paper, layers after the first share one set of weights (``cross_attn_n``, ``self_attn_n``), and with
    ``first_*_shared`` they also share the first layer's weights.
    """

    def __init__(
        self,
        config: EncoderConfig,
        input_adapter: InputAdapter,
        num_latents: int,
        num_latent_channels: int,
        activation_checkpointing: bool = False,
        activation_offloading: bool = False,
    ):
        super().__init__()
        self.config = config
        self.input_adapter = input_adapter
        self.latents = nn.Parameter(torch.empty(num_latents, num_latent_channels))
        self.checkpointing = activation_checkpointing
        self.offloading = activation_offloading

        def cross_attn():
            return CrossAttentionLayer(
                num_heads=config.num_cross_attention_heads,
                num_q_input_channels=num_latent_channels,
                num_kv_input_channels=input_adapter.num_input_channels,
                num_qk_channels=config.num_cross_attention_qk_channels,
                num_v_channels=config.num_cross_attention_v_channels,
                widening_factor=config.cross_attention_widening_factor,
                dropout=config.dropout,
            )

        def self_attn():
            return SelfAttentionBlock(
                num_layers=config.num_self_attention_layers_per_block,
                num_heads=config.num_self_attention_heads,
                num_channels=num_latent_channels,
                widening_factor=config.self_attention_widening_factor,
                num_qk_channels=config.num_self_attention_qk_channels,
                num_v_channels=config.num_self_attention_v_channels,
                dropout=config.dropout,
                activation_checkpointing=activation_checkpointing,
                activation_offloading=activation_offloading,
            )

        self.cross_attn_1 = cross_attn()
        self.self_attn_1 = self_attn()
        if config.num_cross_attention_layers > 1 and not config.first_cross_attention_layer_shared:
            self.cross_attn_n = cross_attn()
        if config.num_self_attention_blocks > 1 and not config.first_self_attention_block_shared:
            self.self_attn_n = self_attn()

        init_parameters(self, config.init_scale)
        nn.init.normal_(self.latents, std=config.init_scale)
        if config.freeze:
            self.requires_grad_(False)

    def encode(self, x_adapted: torch.Tensor, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Latents (B, N, D) from the adapted input (B, M, C); ``pad_mask`` (B, M) is True at padding."""
        cross_attn_n = getattr(self, "cross_attn_n", self.cross_attn_1)
        self_attn_n = getattr(self, "self_attn_n", self.self_attn_1)
        ckpt = dict(checkpointing=self.checkpointing and self.training, offloading=self.offloading)

        x = self.latents.expand(x_adapted.shape[0], -1, -1)  # (B, N, D)
        for i in range(self.config.num_self_attention_blocks):
            if i < self.config.num_cross_attention_layers:
                cross_attn = self.cross_attn_1 if i == 0 else cross_attn_n
                x = run_layer(cross_attn, x, x_adapted, pad_mask, **ckpt)
            x = (self.self_attn_1 if i == 0 else self_attn_n)(x)
        return x

    def forward(self, x: torch.Tensor, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.encode(self.input_adapter(x), pad_mask)


class PerceiverDecoder(nn.Module):
    """Output queries (B, O, F) from a query provider cross-attend to the latents; an output adapter maps the
    result to task output."""

    def __init__(
        self,
        config: DecoderConfig,
        output_adapter: OutputAdapter,
        output_query_provider: QueryProvider,
        num_latent_channels: int,
        activation_checkpointing: bool = False,
        activation_offloading: bool = False,
    ):
        super().__init__()
        self.output_adapter = output_adapter
        self.output_query_provider = output_query_provider
        self.cross_attn = CrossAttentionLayer(
            num_heads=config.num_cross_attention_heads,
            num_q_input_channels=output_query_provider.num_query_channels,
            num_kv_input_channels=num_latent_channels,
            num_qk_channels=config.num_cross_attention_qk_channels,
            num_v_channels=config.num_cross_attention_v_channels,
            widening_factor=config.cross_attention_widening_factor,
            attention_residual=config.cross_attention_residual,
            dropout=config.dropout,
        )
        self.checkpointing = activation_checkpointing
        self.offloading = activation_offloading
        init_parameters(self, config.init_scale)
        if config.freeze:
            self.requires_grad_(False)

    def forward(self, x_latent: torch.Tensor, x_adapted: Optional[torch.Tensor] = None) -> torch.Tensor:
        query = self.output_query_provider(x_adapted, batch_size=x_latent.shape[0])  # (B, O, F)
        ckpt = dict(checkpointing=self.checkpointing and self.training, offloading=self.offloading)
        return self.output_adapter(run_layer(self.cross_attn, query, x_latent, **ckpt))


class PerceiverIO(nn.Module):
    """Encoder and decoder. ``forward(x, pad_mask)`` returns the output adapter's output."""

    def __init__(self, encoder: PerceiverEncoder, decoder: PerceiverDecoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x_adapted = self.encoder.input_adapter(x)  # (B, M, C)
        x_latent = self.encoder.encode(x_adapted, pad_mask)  # (B, N, D)
        return self.decoder(x_latent, x_adapted)
