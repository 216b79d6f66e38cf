"""Text classifier: the Perceiver IO text encoder of the masked language model and the generic classification decoder
(``perceiver.model.core.classifier``), whose learned output query cross-attends to the latents and is projected to
class logits.

Dimensions:
    B: batch size
    M: input positions (tokens)
    N: latents,  D: latent channels
    C: input channels
    O: output queries (1),  F: output query channels
    K: classes
    H: attention heads
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Optional

import torch
import torch.nn as nn

from perceiver.model.core.attention import record_attention
from perceiver.model.core.classifier import ClassificationDecoder, ClassificationDecoderConfig
from perceiver.model.core.config import ConfigError, PerceiverIOConfig
from perceiver.model.core.flops import Flops, perceiver_io
from perceiver.model.core.perceiver_io import PerceiverEncoder, PerceiverIO
from perceiver.model.core.presets import Preset
from perceiver.model.text.common import TokenInputAdapter
from perceiver.model.text.mlm.backend import MaskedLanguageModelConfig, TextEncoderConfig


def _encoder_fields(mlm_preset: str, **changes) -> dict:
    """The encoder fields of a masked language model preset: a classifier fine-tuned from that model has the same
    encoder, so its size is written once."""
    return {**MaskedLanguageModelConfig.presets[mlm_preset].fields["encoder"], **changes}


def _latent_fields(mlm_preset: str) -> dict:
    fields = MaskedLanguageModelConfig.presets[mlm_preset].fields
    return {k: fields[k] for k in ("num_latents", "num_latent_channels")}


@dataclass
class TextClassifierConfig(PerceiverIOConfig[TextEncoderConfig, ClassificationDecoderConfig]):
    presets: ClassVar[Mapping[str, Preset]] = {
        "deepmind-encoder": Preset(
            "DeepMind's 201M language Perceiver encoder (deepmind/language-perceiver) with perceiver-io 0.11's IMDb "
            "classification decoder (one 768-channel query, one head): 200.6M",
            dict(
                encoder=_encoder_fields("deepmind-201m"),
                decoder=dict(num_output_query_channels=768, num_cross_attention_heads=1, dropout=0.1, num_classes=2),
                **_latent_fields("deepmind-201m"),
            ),
        ),
        "tiny": Preset(
            "0.5M parameters, the encoder of the tiny masked language model: minutes of CPU training",
            dict(
                encoder=_encoder_fields("tiny"),
                decoder=dict(num_output_query_channels=128, num_cross_attention_heads=1, num_classes=2),
                **_latent_fields("tiny"),
            ),
        ),
    }

    class_names: Optional[list[str]] = None
    """Names of the classes in index order, for plots and Hugging Face's ``id2label`` (None: the class indices); the
    CLI and the workbench take them from the data."""

    def __post_init__(self):
        super().__post_init__()
        dec = self.decoder
        query_channels, heads = dec.num_output_query_channels, dec.num_cross_attention_heads
        if dec.num_cross_attention_qk_channels is None and query_channels % heads:
            raise ConfigError(self, "decoder.num_output_query_channels",
                              f"({query_channels}) must be divisible by decoder.num_cross_attention_heads ({heads}) "
                              f"when decoder.num_cross_attention_qk_channels is None")
        if self.class_names is not None:
            names = [str(n) for n in self.class_names]
            if len(names) != dec.num_classes:
                raise ConfigError(self, "class_names", f"has {len(names)} names but decoder.num_classes is "
                                                       f"{dec.num_classes}")
            if len(set(names)) != len(names):
                raise ConfigError(self, "class_names", f"must be distinct, got {names}")
            self.class_names = names

    @property
    def vocab_size(self) -> int:
        return self.encoder.vocab_size

    @property
    def max_seq_len(self) -> int:
        return self.encoder.max_seq_len

    @property
    def num_classes(self) -> int:
        return self.decoder.num_classes

    def flops(self, seq_len: Optional[int] = None, train: bool = True) -> Flops:
        """Analytic FLOPs of one example of ``seq_len`` tokens (default ``max_seq_len``) and its one classification
        query (``train`` changes nothing here). See ``perceiver.model.core.flops``."""
        m = seq_len or self.max_seq_len
        return perceiver_io(self, m, self.encoder.num_input_channels, num_queries=1,
                            query_channels=self.decoder.num_output_query_channels, output_channels=self.num_classes)


class TextClassifier(PerceiverIO):
    """Perceiver IO text classifier. ``forward(x, pad_mask)`` returns class logits (B, K); inputs may be shorter
    than ``max_seq_len``. The encoder has the parameter names of :class:`MaskedLanguageModel`'s encoder, so a
    pretrained masked language model initializes it (``encoder.params``)."""

    plotted_attention = "decoder.cross_attn.attention"
    """The attention module the workbench plots, composed with the encoder's (see :func:`query_attention`)."""
    plotted_attention_title = "classification query over input positions (decoder × encoder cross-attention)"

    def __init__(self, config: TextClassifierConfig):
        enc, dec = config.encoder, config.decoder
        input_adapter = TokenInputAdapter(enc.vocab_size, enc.max_seq_len, enc.num_input_channels)
        encoder = PerceiverEncoder(
            enc, input_adapter, config.num_latents, config.num_latent_channels,
            activation_checkpointing=config.activation_checkpointing,
            activation_offloading=config.activation_offloading,
        )
        decoder = ClassificationDecoder(
            dec, config.num_latent_channels,
            activation_checkpointing=config.activation_checkpointing,
            activation_offloading=config.activation_offloading,
        )
        super().__init__(encoder, decoder)
        self.config = config

    def forward(self, x: torch.Tensor, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits (B, K) for token ids x (B, M); ``pad_mask`` (B, M) is True at padding."""
        return super().forward(x, pad_mask)


def rollout(query_weights: torch.Tensor, latent_weights: torch.Tensor) -> torch.Tensor:
    """Attention of the output queries over the input positions, through the latents: the decoder's weights
    (B, Hd, O, N), averaged over its heads, times the encoder cross-attention's (B, He, N, M). Returns
    (B, He, O, M); each row sums to 1 (over the non-padded positions)."""
    return torch.einsum("bon,bhnm->bhom", query_weights.mean(dim=1), latent_weights)


@torch.no_grad()
def query_attention(model: nn.Module, x: torch.Tensor, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Attention (B, He, O, M) of the classification queries over the input tokens x (B, M) (see :func:`rollout`):
    which input positions the prediction draws on. Needs a single cross-attention layer in the encoder."""
    if model.encoder.config.num_cross_attention_layers != 1:
        raise ValueError("query_attention needs an encoder with one cross-attention layer")
    names = ["encoder.cross_attn_1.attention", "decoder.cross_attn.attention"]
    with record_attention(model, names) as rec:
        model(x, pad_mask)
    return rollout(rec.weights[names[1]], rec.weights[names[0]])


def classify(model: TextClassifier, tokenizer, texts: list[str], add_special_tokens: bool = False) -> torch.Tensor:
    """Class probabilities (len(texts), K) of ``texts``, truncated to ``max_seq_len`` tokens and right-padded."""
    enc = tokenizer(texts, padding=True, truncation=True, max_length=model.config.max_seq_len,
                    add_special_tokens=add_special_tokens, return_tensors="pt")
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(enc["input_ids"].to(device), pad_mask=(enc["attention_mask"] == 0).to(device))
    return logits.float().softmax(dim=-1)
