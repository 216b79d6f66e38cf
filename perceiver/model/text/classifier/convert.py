"""Conversion of Hugging Face's ``transformers.PerceiverForSequenceClassification`` into a :class:`TextClassifier`:
map the config, copy every weight. The encoder is converted as for the masked language model
(:mod:`perceiver.model.text.mlm.convert`), so DeepMind's ``deepmind/language-perceiver`` weights also initialize a
classifier's encoder (:func:`map_hf_state_dict`, used by ``encoder.params``)."""

from __future__ import annotations

import re

from perceiver.model.core.classifier import ClassificationDecoderConfig
from perceiver.model.text.classifier.backend import TextClassifier, TextClassifierConfig
from perceiver.model.text.mlm import convert as mlm_convert

# the classification decoder's keys -> ours; its cross-attention is renamed to the MLM decoder's name first, so the
# MLM conversion maps the layer's parameters
_DECODER_PREFIXES = [
    (r"perceiver\.decoder\.decoder\.output_position_encodings\.position_embeddings$",
     "decoder.output_query_provider.query"),
    (r"perceiver\.decoder\.decoder\.final_layer\.", "decoder.output_adapter.linear."),
]
_DECODER_LAYER = (r"^perceiver\.decoder\.decoder\.decoding_cross_attention\.",
                  "perceiver.decoder.decoding_cross_attention.")


def convert_key(key: str) -> str:
    """Our name of a ``PerceiverForSequenceClassification`` (or ``PerceiverForMaskedLM``) parameter."""
    for pattern, repl in _DECODER_PREFIXES:
        new, n = re.subn("^" + pattern, repl, key)
        if n:
            return new
    return mlm_convert.convert_key(re.sub(*_DECODER_LAYER, key))


def is_hf_state_dict(state: dict) -> bool:
    """True if the keys have the layout of a Hugging Face ``Perceiver*`` text model."""
    return any(k.startswith("perceiver.input_preprocessor.") for k in state)


def map_hf_state_dict(state: dict) -> dict:
    """Our names of the parameters of a Hugging Face Perceiver text model (``PerceiverForMaskedLM``, e.g. DeepMind's
    ``deepmind/language-perceiver``, or ``PerceiverForSequenceClassification``); parameters we have no name for
    (another task's decoder) are left out. Any other state dict is returned unchanged, so this can be used as a
    ``key_map`` on every source."""
    if not is_hf_state_dict(state):
        return state
    mapped = {}
    for key, value in state.items():
        try:
            mapped[convert_key(key)] = value
        except KeyError:
            pass
    return mapped


def convert_config(hf_model) -> TextClassifierConfig:
    """The :class:`TextClassifierConfig` of a ``PerceiverForSequenceClassification``; channel sizes are read from its
    weights, class names from ``config.id2label``."""
    c = hf_model.config
    dec = hf_model.perceiver.decoder.decoder
    layer = dec.decoding_cross_attention
    attention = layer.attention.self
    query_channels = dec.output_position_encodings.position_embeddings.shape[-1]
    decoder = ClassificationDecoderConfig(
        num_cross_attention_heads=attention.num_heads,
        num_cross_attention_qk_channels=attention.qk_channels,
        num_cross_attention_v_channels=attention.v_channels,
        cross_attention_widening_factor=layer.mlp.dense1.out_features // query_channels,
        cross_attention_residual=layer.attention.use_query_residual,
        dropout=c.attention_probs_dropout_prob,
        init_scale=c.initializer_range,
        num_output_query_channels=query_channels,
        num_classes=c.num_labels,
    )
    encoder = mlm_convert.convert_encoder_config(hf_model)
    return TextClassifierConfig(encoder, decoder, num_latents=c.num_latents, num_latent_channels=c.d_latents,
                                class_names=[str(c.id2label[i]) for i in range(c.num_labels)])


def convert_hf_model(hf_model) -> TextClassifier:
    """An equivalent :class:`TextClassifier` of a ``transformers.PerceiverForSequenceClassification`` (every weight
    copied)."""
    model = TextClassifier(convert_config(hf_model))
    state = {convert_key(k): v for k, v in hf_model.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"conversion mismatch: missing {missing}, unexpected {unexpected}")
    return model.to(next(hf_model.parameters()).dtype)
