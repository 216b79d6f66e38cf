"""Generic Perceiver IO and Perceiver AR building blocks."""

from perceiver.model.core.adapter import (
    ClassificationOutputAdapter,
    InputAdapter,
    OutputAdapter,
    QueryProvider,
    TrainableQueryProvider,
)
from perceiver.model.core.classifier import ClassificationDecoder, ClassificationDecoderConfig
from perceiver.model.core.attention import LayerKV, MultiHeadAttention, attention_mask, causal_mask, record_attention
from perceiver.model.core.config import ConfigError, DecoderConfig, EncoderConfig, PerceiverARConfig, PerceiverIOConfig
from perceiver.model.core.layers import MLP, CrossAttentionLayer, SelfAttentionBlock, SelfAttentionLayer
from perceiver.model.core.perceiver_ar import KVCache, PerceiverAR
from perceiver.model.core.perceiver_io import PerceiverDecoder, PerceiverEncoder, PerceiverIO
from perceiver.model.core.presets import Preset, config_from_dict, config_to_dict
from perceiver.model.core.position import (
    FourierPositionEncoding,
    RotaryEmbedding,
    TrainablePositionEncoding,
    fourier_position_encodings,
    positions,
)

__all__ = [
    "ClassificationDecoder", "ClassificationDecoderConfig", "ClassificationOutputAdapter", "ConfigError", "CrossAttentionLayer", "DecoderConfig", "EncoderConfig", "FourierPositionEncoding",
    "InputAdapter", "KVCache", "LayerKV", "MLP", "MultiHeadAttention", "OutputAdapter", "PerceiverAR",
    "PerceiverARConfig", "PerceiverDecoder", "PerceiverEncoder", "PerceiverIO", "PerceiverIOConfig", "Preset",
    "QueryProvider",
    "RotaryEmbedding", "SelfAttentionBlock", "SelfAttentionLayer", "TrainablePositionEncoding",
    "TrainableQueryProvider", "attention_mask", "causal_mask", "config_from_dict", "config_to_dict", "fourier_position_encodings", "positions",
    "record_attention",
]
