"""Conversion of Hugging Face's Perceiver image classifiers into an :class:`ImageClassifier`: map the config, copy
every weight.

- ``PerceiverForImageClassificationFourier`` (``deepmind/vision-perceiver-fourier``): raw pixels with Fourier
  features (64 bands, ``max_resolution`` (224, 224) whatever the image size).
- ``PerceiverForImageClassificationLearned`` (``deepmind/vision-perceiver-learned``): a 1x1 convolution of the
  pixels (our ``num_pixel_channels``) and a learned position embedding. Hugging Face projects that embedding with a
  linear layer; it is the same for every input, so it is folded into our embedding (same logits, fewer parameters).

``PerceiverForImageClassificationConvProcessing`` (a convolution and max-pooling before the encoder) is not
supported. Our model takes images of one size, ``image_shape`` (default: the Hugging Face config's ``image_size``).
"""

from __future__ import annotations

import re
from typing import Optional

import torch

from perceiver.model.core.classifier import ClassificationDecoderConfig
from perceiver.model.text.mlm.convert import _LAYER_RENAMES as LAYER_RENAMES
from perceiver.model.vision.image_classifier.backend import ImageClassifier, ImageClassifierConfig, ImageEncoderConfig

_PREFIXES = [
    (r"perceiver\.embeddings\.latents", "encoder.latents"),
    (r"perceiver\.encoder\.cross_attention\.", "encoder.cross_attn_1."),
    (r"perceiver\.encoder\.self_attends\.(\d+)\.", r"encoder.self_attn_1.layers.\1."),
    (r"perceiver\.decoder\.decoder\.output_position_encodings\.position_embeddings",
     "decoder.output_query_provider.query"),
    (r"perceiver\.decoder\.decoder\.decoding_cross_attention\.", "decoder.cross_attn."),
    (r"perceiver\.decoder\.decoder\.final_layer\.", "decoder.output_adapter.linear."),
    (r"perceiver\.input_preprocessor\.convnet_1x1\.", "encoder.input_adapter.pixel_projection."),
]


def convert_key(key: str) -> str:
    """Our name of a parameter of a Hugging Face Perceiver image classifier (preprocessor position embeddings
    excepted, see :func:`convert_state_dict`)."""
    for pattern, repl in _PREFIXES:
        new, n = re.subn("^" + pattern, repl, key)
        if n:
            break
    else:
        raise KeyError(f"unexpected parameter {key!r} in the Hugging Face Perceiver image classifier")
    m = re.match(r"^(.*?(?:cross_attn_1|cross_attn|self_attn_1\.layers\.\d+)\.)(.*)$", new)
    if m is None:
        return new
    head, tail = m.groups()
    tail = tail.replace("attention.self.layernorm1.", "norm." if "self_attn" in head else "q_norm.")
    for old, rep in LAYER_RENAMES:
        if tail.startswith(old):
            return head + rep + tail[len(old):]
    return head + tail


def _mlp_widening(layer) -> int:
    return layer.mlp.dense1.out_features // layer.mlp.dense1.in_features


def convert_config(hf_model, image_shape: Optional[tuple[int, int, int]] = None) -> ImageClassifierConfig:
    """The :class:`ImageClassifierConfig` of a ``PerceiverForImageClassificationFourier`` or ``...Learned``. Channel
    sizes are read from the modules, so they are right whatever defaults the Hugging Face config leaves to them."""
    c, perceiver = hf_model.config, hf_model.perceiver
    prep = perceiver.input_preprocessor
    cross, self_layer = perceiver.encoder.cross_attention, perceiver.encoder.self_attends[0]
    dec = perceiver.decoder.decoder.decoding_cross_attention
    if prep.prep_type == "pixels" and prep.position_encoding_type == "fourier":
        pos = prep.position_embeddings
        if not pos.concat_pos or pos.sine_only or prep.spatial_downsample != 1:
            raise ValueError("only Fourier features with concatenated positions, sine and cosine, no downsampling")
        encoding = dict(position_encoding="fourier", num_frequency_bands=pos.num_bands,
                        max_resolution=tuple(pos.max_resolution))
        channels = prep.in_channels
    elif prep.prep_type == "conv1x1" and prep.position_encoding_type == "trainable":
        encoding = dict(position_encoding="learned", num_position_channels=prep.num_channels - prep.out_channels,
                        num_pixel_channels=prep.out_channels)
        channels = prep.in_channels
    else:
        raise ValueError(f"unsupported Hugging Face image preprocessing prep_type={prep.prep_type!r} with "
                         f"{prep.position_encoding_type!r} position encoding (ConvProcessing is not supported)")
    if prep.concat_or_add_pos != "concat" or not cross.attention.use_query_residual:
        raise ValueError("only concatenated position encodings and an encoder query residual are supported")
    encoder = ImageEncoderConfig(
        image_shape=tuple(image_shape or (c.image_size, c.image_size, channels)),
        **encoding,
        num_cross_attention_heads=cross.attention.self.num_heads,
        num_cross_attention_qk_channels=cross.attention.self.qk_channels,
        num_cross_attention_v_channels=cross.attention.self.v_channels,
        cross_attention_widening_factor=_mlp_widening(cross),
        num_self_attention_heads=self_layer.attention.self.num_heads,
        num_self_attention_qk_channels=self_layer.attention.self.qk_channels,
        num_self_attention_v_channels=self_layer.attention.self.v_channels,
        num_self_attention_layers_per_block=c.num_self_attends_per_block,
        num_self_attention_blocks=c.num_blocks,
        first_self_attention_block_shared=True,
        self_attention_widening_factor=_mlp_widening(self_layer),
        dropout=c.attention_probs_dropout_prob,
        init_scale=c.initializer_range,
    )
    decoder = ClassificationDecoderConfig(
        num_output_query_channels=dec.attention.self.query.in_features,
        num_classes=c.num_labels,
        num_cross_attention_heads=dec.attention.self.num_heads,
        num_cross_attention_qk_channels=dec.attention.self.qk_channels,
        num_cross_attention_v_channels=dec.attention.self.v_channels,
        cross_attention_widening_factor=_mlp_widening(dec),
        cross_attention_residual=dec.attention.use_query_residual,
        dropout=c.attention_probs_dropout_prob,
        init_scale=c.initializer_range,
    )
    return ImageClassifierConfig(encoder, decoder, num_latents=c.num_latents, num_latent_channels=c.d_latents)


@torch.no_grad()
def convert_state_dict(hf_model) -> dict:
    """Our state dict of a Hugging Face Perceiver image classifier."""
    state = {}
    pos_prefix = "perceiver.input_preprocessor.position"
    for key, value in hf_model.state_dict().items():
        if key.startswith(pos_prefix):
            continue
        if key.endswith("convnet_1x1.weight"):
            value = value.flatten(1)  # 1x1 convolution (out, in, 1, 1) = linear layer (out, in)
        state[convert_key(key)] = value
    prep = hf_model.perceiver.input_preprocessor
    if prep.position_encoding_type == "trainable":
        embedding = prep.positions_projection(prep.position_embeddings.position_embeddings)  # (M, P)
        state["encoder.input_adapter.position_encoding.embedding"] = embedding
    return state


def convert_hf_model(hf_model, image_shape: Optional[tuple[int, int, int]] = None) -> ImageClassifier:
    """An equivalent :class:`ImageClassifier` of a ``transformers.PerceiverForImageClassificationFourier`` or
    ``...Learned`` (every weight copied). Our model takes channels-last images (B, H, W, C), of ``image_shape``."""
    model = ImageClassifier(convert_config(hf_model, image_shape))
    missing, unexpected = model.load_state_dict(convert_state_dict(hf_model), strict=False)
    if missing or unexpected:
        raise ValueError(f"conversion mismatch: missing {missing}, unexpected {unexpected}")
    return model.to(next(hf_model.parameters()).dtype)
