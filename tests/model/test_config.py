import pytest

from configs import mlm_config
from perceiver.model.core import ConfigError, DecoderConfig, EncoderConfig, PerceiverARConfig
from perceiver.model.text.clm import CausalLanguageModelConfig
from perceiver.model.text.mlm import TextEncoderConfig


def mlm(enc=None, dec=None, **kwargs):
    return mlm_config(encoder=enc or {}, decoder=dec or {}, **kwargs)


BAD_CONFIGS = [
    (lambda: EncoderConfig(num_cross_attention_heads=0), "num_cross_attention_heads"),
    (lambda: EncoderConfig(num_self_attention_qk_channels=30, num_self_attention_heads=8), "num_self_attention_qk_channels"),
    (lambda: EncoderConfig(num_cross_attention_v_channels=-8), "num_cross_attention_v_channels"),
    (lambda: EncoderConfig(num_cross_attention_layers=2, num_self_attention_blocks=1), "num_cross_attention_layers"),
    (lambda: EncoderConfig(dropout=1.0), "dropout"),
    (lambda: EncoderConfig(dropout=-0.1), "dropout"),
    (lambda: EncoderConfig(num_self_attention_layers_per_block=0), "num_self_attention_layers_per_block"),
    (lambda: DecoderConfig(num_cross_attention_qk_channels=10, num_cross_attention_heads=4), "num_cross_attention_qk_channels"),
    (lambda: DecoderConfig(cross_attention_widening_factor=0), "cross_attention_widening_factor"),
    (lambda: TextEncoderConfig(vocab_size=0), "vocab_size"),
    (lambda: mlm(num_latents=0), "num_latents"),
    (lambda: mlm(num_latent_channels=31), "num_latent_channels"),  # not divisible by the 2 heads
    (lambda: mlm(dec={"vocab_size": 300}), "decoder.vocab_size"),
    (lambda: mlm(dec={"max_seq_len": 32}), "decoder.max_seq_len"),
    (lambda: mlm(enc={"num_cross_attention_heads": 0}), "encoder.num_cross_attention_heads"),
    (lambda: mlm(activation_offloading=True), "activation_offloading"),
    (lambda: PerceiverARConfig(num_self_attention_rotary_layers=9, num_self_attention_layers=8), "num_self_attention_rotary_layers"),
    (lambda: PerceiverARConfig(cross_attention_dropout=1.5), "cross_attention_dropout"),
    (lambda: PerceiverARConfig(max_heads_parallel=0), "max_heads_parallel"),
    (lambda: CausalLanguageModelConfig(max_latents=8192), "max_latents"),
    (lambda: CausalLanguageModelConfig(num_channels=500), "num_channels"),
    (lambda: CausalLanguageModelConfig(num_channels=24, num_heads=8), "num_channels"),
    (lambda: CausalLanguageModelConfig(max_seq_len=0), "max_seq_len"),
    (lambda: CausalLanguageModelConfig(init_scale=0.0), "init_scale"),
]


@pytest.mark.parametrize("make, field", BAD_CONFIGS)
def test_bad_config_raises_config_error_naming_field(make, field):
    with pytest.raises(ConfigError) as e:
        make()
    assert e.value.field == field  # the structured field the widgets and the CLI mark
    assert str(e.value).startswith(f"{e.value.config}.{field} ")


def test_defaults_follow_perceiver_io_0_11():
    enc, dec, ar = EncoderConfig(), DecoderConfig(), PerceiverARConfig()
    assert (enc.num_cross_attention_heads, enc.num_self_attention_layers_per_block, enc.first_self_attention_block_shared) == (8, 8, True)
    assert (dec.cross_attention_residual, dec.init_scale) == (True, 0.02)
    assert (ar.num_heads, ar.num_self_attention_layers, ar.cross_attention_dropout, ar.self_attention_widening_factor) == (8, 8, 0.5, 4)
    clm = CausalLanguageModelConfig()
    assert (clm.vocab_size, clm.max_seq_len, clm.max_latents, clm.num_channels, clm.max_prefix_len) == (262, 4096, 512, 512, 3584)


def test_valid_config_builds():
    assert mlm().num_output_query_channels == 32
