"""Masked language model: Perceiver IO over token embeddings, decoding one output query per input position.

Dimensions:
    B: batch size
    M: input positions (tokens)
    N: latents,  D: latent channels
    C: input channels,  F: output query channels
    V: vocabulary size
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Mapping, Optional

import torch
import torch.nn as nn

from perceiver.model.core.adapter import TrainableQueryProvider
from perceiver.model.core.config import ConfigError, DecoderConfig, EncoderConfig, PerceiverIOConfig, check_positive
from perceiver.model.core.flops import Flops, perceiver_io
from perceiver.model.core.perceiver_io import PerceiverDecoder, PerceiverEncoder, PerceiverIO
from perceiver.model.core.presets import Preset
from perceiver.model.text.common import TiedTokenOutputAdapter, TokenInputAdapter, TokenOutputAdapter


@dataclass
class TextEncoderConfig(EncoderConfig):
    vocab_size: int = 10003
    """Vocabulary size (262 for the UTF-8 byte tokenizer ``deepmind/language-perceiver``)."""
    max_seq_len: int = 256
    """Maximum input length (M)."""
    num_input_channels: int = 64
    """Channels of the token and position embeddings (C)."""
    params: Optional[str] = None
    """Pretrained weights to initialize the encoder from: a Lightning checkpoint, a saved model directory or a
    Hugging Face Hub id."""

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "vocab_size", "max_seq_len", "num_input_channels")


@dataclass
class TextDecoderConfig(DecoderConfig):
    num_output_query_channels: Optional[int] = None
    """Channels of the output queries (F). None: the input channels, and the logits are tied to the input embedding."""
    vocab_size: int = 10003
    """Vocabulary size; must equal the encoder's."""
    max_seq_len: int = 512
    """Number of output queries; must be at least the encoder's max_seq_len."""

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "num_output_query_channels", "vocab_size", "max_seq_len")


@dataclass
class MaskedLanguageModelConfig(PerceiverIOConfig[TextEncoderConfig, TextDecoderConfig]):
    presets: ClassVar[Mapping[str, Preset]] = {
        "deepmind-201m": Preset(
            "DeepMind's language Perceiver (deepmind/language-perceiver, Perceiver IO paper, Table 11): 201M",
            dict(
                encoder=dict(vocab_size=262, max_seq_len=2048, num_input_channels=768,
                             num_cross_attention_qk_channels=256, num_cross_attention_v_channels=1280,
                             num_cross_attention_heads=8, num_self_attention_qk_channels=256,
                             num_self_attention_v_channels=1280, num_self_attention_heads=8,
                             num_self_attention_layers_per_block=26, num_self_attention_blocks=1, dropout=0.1),
                decoder=dict(vocab_size=262, max_seq_len=2048, num_cross_attention_qk_channels=256,
                             num_cross_attention_v_channels=768, num_cross_attention_heads=8,
                             cross_attention_residual=False, dropout=0.1),
                num_latents=256, num_latent_channels=1280,
            ),
        ),
        "demo": Preset(
            "0.45M parameters, 64 context, 64 latents, init_scale 0.1: learns in minutes of CPU with byte masking and "
            "unmasked_loss_weight (docs/demo-tuning.md)",
            dict(
                encoder=dict(vocab_size=262, max_seq_len=64, num_input_channels=64, num_cross_attention_heads=4,
                             num_self_attention_heads=4, num_self_attention_layers_per_block=3, init_scale=0.1),
                decoder=dict(vocab_size=262, max_seq_len=64, num_cross_attention_heads=4, init_scale=0.1),
                num_latents=64, num_latent_channels=128,
            ),
        ),
        "tiny": Preset(
            "0.5M parameters, 256 context, 32 latents: minutes of CPU training",
            dict(
                encoder=dict(vocab_size=262, max_seq_len=256, num_input_channels=64, num_cross_attention_heads=4,
                             num_self_attention_heads=4, num_self_attention_layers_per_block=3),
                decoder=dict(vocab_size=262, max_seq_len=256, num_cross_attention_heads=4),
                num_latents=32, num_latent_channels=128,
            ),
        ),
    }

    num_latents: int = 256
    """Number of latent vectors (N)."""
    num_latent_channels: int = 1280
    """Channels of each latent vector (D)."""

    def __post_init__(self):
        super().__post_init__()
        enc, dec = self.encoder, self.decoder
        if enc.vocab_size != dec.vocab_size:
            raise ConfigError(self, "decoder.vocab_size", f"({dec.vocab_size}) must equal encoder.vocab_size ({enc.vocab_size})")
        if dec.max_seq_len < enc.max_seq_len:
            raise ConfigError(
                self, "decoder.max_seq_len", f"({dec.max_seq_len}) must be at least encoder.max_seq_len ({enc.max_seq_len})"
            )
        query_channels = self.num_output_query_channels
        if dec.num_cross_attention_qk_channels is None and query_channels % dec.num_cross_attention_heads:
            raise ConfigError(
                self, "decoder.num_output_query_channels",
                f"({query_channels}, None means encoder.num_input_channels) must be divisible by "
                f"decoder.num_cross_attention_heads ({dec.num_cross_attention_heads}) when "
                f"decoder.num_cross_attention_qk_channels is None",
            )

    @property
    def num_output_query_channels(self) -> int:
        return self.decoder.num_output_query_channels or self.encoder.num_input_channels

    @property
    def vocab_size(self) -> int:
        return self.encoder.vocab_size

    @property
    def max_seq_len(self) -> int:
        return self.encoder.max_seq_len

    def flops(self, seq_len: Optional[int] = None, train: bool = True) -> Flops:
        """Analytic FLOPs of one example of ``seq_len`` tokens (default ``max_seq_len``), one output query per token
        (``train`` changes nothing here). See ``perceiver.model.core.flops``."""
        m = seq_len or self.max_seq_len
        return perceiver_io(self, m, self.encoder.num_input_channels, num_queries=m,
                            query_channels=self.num_output_query_channels, output_channels=self.vocab_size)


class MaskedLanguageModel(PerceiverIO):
    """Perceiver IO masked language model. ``forward(x_masked, pad_mask)`` returns logits (B, M, V), one row per
    input position; inputs may be shorter than ``max_seq_len``."""

    plotted_attention = "encoder.cross_attn_1.attention"
    """The attention module the workbench plots: the encoder cross-attention of the latents over the input."""
    plotted_attention_title = "encoder cross-attention: latents over input positions"

    def __init__(self, config: MaskedLanguageModelConfig):
        enc, dec = config.encoder, config.decoder
        input_adapter = TokenInputAdapter(enc.vocab_size, enc.max_seq_len, enc.num_input_channels)
        encoder = PerceiverEncoder(
            enc, input_adapter, config.num_latents, config.num_latent_channels,
            activation_checkpointing=config.activation_checkpointing,
            activation_offloading=config.activation_offloading,
        )
        if dec.num_output_query_channels is None:
            output_adapter = TiedTokenOutputAdapter(input_adapter.txt_embedding)
        else:
            output_adapter = TokenOutputAdapter(dec.vocab_size, dec.num_output_query_channels)
        query_provider = TrainableQueryProvider(
            dec.max_seq_len, config.num_output_query_channels, dec.init_scale, crop_to_input=True
        )
        decoder = PerceiverDecoder(
            dec, output_adapter, query_provider, config.num_latent_channels,
            activation_checkpointing=config.activation_checkpointing,
            activation_offloading=config.activation_offloading,
        )
        super().__init__(encoder, decoder)
        self.config = config

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding (V, C) of the encoder's input adapter."""
        return self.encoder.input_adapter.txt_embedding

    def set_input_embeddings(self, embedding: nn.Embedding) -> None:
        """Use ``embedding`` (V', C) as the token embedding, and the tied output projection with it (a resized
        vocabulary: the encoder's and decoder's ``vocab_size`` become V'). An untied output (``decoder.
        num_output_query_channels`` set) is resized separately (:meth:`set_output_embeddings`)."""
        self.encoder.input_adapter.set_embedding(embedding)
        if isinstance(self.decoder.output_adapter, TiedTokenOutputAdapter):
            self.decoder.output_adapter.tie(embedding)
        self._set_vocab_size(embedding.num_embeddings)

    def get_output_embeddings(self) -> Optional[nn.Linear]:
        """The untied output projection (V, F), or None when the output is tied to the input embedding."""
        adapter = self.decoder.output_adapter
        return adapter.linear if isinstance(adapter, TokenOutputAdapter) else None

    def set_output_embeddings(self, linear: nn.Linear) -> None:
        self.decoder.output_adapter.linear = linear

    def _set_vocab_size(self, vocab_size: int) -> None:
        enc = dataclasses.replace(self.config.encoder, vocab_size=vocab_size)
        dec = dataclasses.replace(self.config.decoder, vocab_size=vocab_size)
        self.config = dataclasses.replace(self.config, encoder=enc, decoder=dec)

    def forward(self, x_masked: torch.Tensor, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits (B, M, V) for token ids x_masked (B, M); ``pad_mask`` (B, M) is True at padding."""
        return super().forward(x_masked, pad_mask)
