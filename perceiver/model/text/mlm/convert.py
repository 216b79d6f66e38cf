"""Conversion of DeepMind's Perceiver IO language model (``transformers.PerceiverForMaskedLM``, the architecture
of ``deepmind/language-perceiver``) into a :class:`MaskedLanguageModel`: map the config, copy every weight."""

from __future__ import annotations

import re

from perceiver.hub import require_hub
from perceiver.model.text.mlm.backend import (
    MaskedLanguageModel,
    MaskedLanguageModelConfig,
    TextDecoderConfig,
    TextEncoderConfig,
)

DEEPMIND_MODEL = "deepmind/language-perceiver"

# Hugging Face layer parameter names -> ours (within one cross- or self-attention layer)
_LAYER_RENAMES = [
    ("attention.self.layernorm2.", "kv_norm."),
    ("attention.self.query.", "attention.q_proj."),
    ("attention.self.key.", "attention.k_proj."),
    ("attention.self.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
    ("layernorm.", "mlp.norm."),
    ("mlp.dense1.", "mlp.fc1."),
    ("mlp.dense2.", "mlp.fc2."),
]

_PREFIXES = [
    (r"perceiver\.input_preprocessor\.embeddings\.", "encoder.input_adapter.txt_embedding."),
    (r"perceiver\.input_preprocessor\.position_embeddings\.", "encoder.input_adapter.pos_embedding."),
    (r"perceiver\.embeddings\.latents", "encoder.latents"),
    (r"perceiver\.encoder\.cross_attention\.", "encoder.cross_attn_1."),
    (r"perceiver\.encoder\.self_attends\.(\d+)\.", r"encoder.self_attn_1.layers.\1."),
    (r"perceiver\.decoder\.output_position_encodings\.position_embeddings", "decoder.output_query_provider.query"),
    (r"perceiver\.decoder\.decoding_cross_attention\.", "decoder.cross_attn."),
    (r"embedding_decoder\.bias", "decoder.output_adapter.bias"),
]


def convert_key(key: str) -> str:
    for pattern, repl in _PREFIXES:
        new, n = re.subn("^" + pattern, repl, key)
        if n:
            break
    else:
        raise KeyError(f"unexpected parameter {key!r} in the Hugging Face Perceiver model")
    prefix, layer_key = new, ""
    if "self_attn_1.layers." in new or "cross_attn" in new:
        head, tail = re.match(r"^(.*?(?:cross_attn_1|cross_attn|self_attn_1\.layers\.\d+)\.)(.*)$", new).groups()
        is_self = "self_attn_1" in head
        tail = tail.replace("attention.self.layernorm1.", "norm." if is_self else "q_norm.")
        for old, rep in _LAYER_RENAMES:
            if tail.startswith(old):
                tail = rep + tail[len(old):]
                break
        prefix, layer_key = head, tail
    return prefix + layer_key


def convert_encoder_config(hf_model) -> TextEncoderConfig:
    """The :class:`TextEncoderConfig` of the encoder of a Hugging Face Perceiver with a text preprocessor
    (``PerceiverForMaskedLM``, ``PerceiverForSequenceClassification``); channel sizes are read from its weights, so
    they are right whatever defaults the Hugging Face config leaves to the layers."""
    c = hf_model.config
    enc = hf_model.perceiver.encoder
    ca, sa = enc.cross_attention.attention.self, enc.self_attends[0].attention.self
    if not enc.cross_attention.attention.use_query_residual:
        raise ValueError("encoder cross-attention without query residual is not supported")
    return TextEncoderConfig(
        vocab_size=c.vocab_size,
        max_seq_len=c.max_position_embeddings,
        num_input_channels=c.d_model,
        num_cross_attention_heads=ca.num_heads,
        num_cross_attention_qk_channels=ca.qk_channels,
        num_cross_attention_v_channels=ca.v_channels,
        cross_attention_widening_factor=c.cross_attention_widening_factor,
        num_self_attention_heads=sa.num_heads,
        num_self_attention_qk_channels=sa.qk_channels,
        num_self_attention_v_channels=sa.v_channels,
        num_self_attention_layers_per_block=c.num_self_attends_per_block,
        num_self_attention_blocks=c.num_blocks,
        first_self_attention_block_shared=True,
        self_attention_widening_factor=c.self_attention_widening_factor,
        dropout=c.attention_probs_dropout_prob,
        init_scale=c.initializer_range,
    )


def convert_config(hf_model) -> MaskedLanguageModelConfig:
    """The :class:`MaskedLanguageModelConfig` of a ``PerceiverForMaskedLM`` (see :func:`convert_encoder_config`)."""
    c = hf_model.config
    dec = hf_model.perceiver.decoder.decoding_cross_attention.attention.self
    decoder = TextDecoderConfig(
        vocab_size=c.vocab_size,
        max_seq_len=c.max_position_embeddings,
        num_cross_attention_heads=dec.num_heads,
        num_cross_attention_qk_channels=dec.qk_channels,
        num_cross_attention_v_channels=dec.v_channels,
        cross_attention_widening_factor=1,
        cross_attention_residual=False,
        dropout=c.attention_probs_dropout_prob,
        init_scale=c.initializer_range,
    )
    encoder = convert_encoder_config(hf_model)
    return MaskedLanguageModelConfig(encoder, decoder, num_latents=c.num_latents, num_latent_channels=c.d_latents)


def convert_hf_model(hf_model) -> MaskedLanguageModel:
    """An equivalent :class:`MaskedLanguageModel` of a ``transformers.PerceiverForMaskedLM`` (every weight copied)."""
    model = MaskedLanguageModel(convert_config(hf_model))
    state = {convert_key(k): v for k, v in hf_model.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"conversion mismatch: missing {missing}, unexpected {unexpected}")
    return model.to(next(hf_model.parameters()).dtype)


def load_deepmind_model(name: str = DEEPMIND_MODEL, **kwargs) -> MaskedLanguageModel:
    """Download (or take from the local Hugging Face cache) DeepMind's pretrained language Perceiver and convert
    it. Offline, this fails within seconds unless ``name`` is a local directory."""
    import os

    from transformers import PerceiverForMaskedLM

    if not os.path.isdir(name):
        require_hub(
            f"model {name!r}",
            "Pass a local directory holding the model (config.json and weights), e.g. one made with "
            "`python -m perceiver.scripts.convert` on a machine with access, or unset the offline variable.",
        )
    return convert_hf_model(PerceiverForMaskedLM.from_pretrained(name, **kwargs))
