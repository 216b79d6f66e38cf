import time

import pytest
import torch
from transformers import PerceiverConfig, PerceiverForMaskedLM

from perceiver.hub import HubUnavailableError
from perceiver.model.text.mlm import MaskedLanguageModelConfig, convert_hf_model, load_deepmind_model
from perceiver.model.text.mlm.convert import convert_config

SMALL = dict(d_model=64, d_latents=96, num_latents=8, num_blocks=2, num_self_attends_per_block=2,
             num_self_attention_heads=4, num_cross_attention_heads=4, qk_channels=32, v_channels=96,
             vocab_size=262, max_position_embeddings=64)


def hf_config(config: MaskedLanguageModelConfig) -> dict:
    """``transformers.PerceiverConfig`` arguments of the model that ``config`` describes."""
    e = config.encoder
    return dict(d_model=e.num_input_channels, d_latents=config.num_latent_channels, num_latents=config.num_latents,
                num_blocks=e.num_self_attention_blocks,
                num_self_attends_per_block=e.num_self_attention_layers_per_block,
                num_self_attention_heads=e.num_self_attention_heads,
                num_cross_attention_heads=e.num_cross_attention_heads,
                qk_channels=e.num_self_attention_qk_channels, v_channels=e.num_self_attention_v_channels,
                vocab_size=e.vocab_size, max_position_embeddings=e.max_seq_len)


def compare(config: dict, seq_len: int):
    torch.manual_seed(0)
    hf = PerceiverForMaskedLM(PerceiverConfig(**config)).eval()
    model = convert_hf_model(hf).eval()
    x = torch.randint(0, 262, (2, seq_len))
    attention_mask = torch.ones(2, seq_len, dtype=torch.long)
    attention_mask[1, seq_len // 2 :] = 0
    with torch.no_grad():
        for mask in (None, attention_mask):
            ref = hf(input_ids=x, attention_mask=mask).logits[:, :seq_len]
            out = model(x, pad_mask=None if mask is None else mask == 0)
            assert (ref - out).abs().max().item() <= 1e-4
    return hf, model


def test_convert_small_model():
    hf, model = compare(SMALL, 40)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in hf.parameters())


@pytest.mark.slow
def test_convert_full_size_model():
    """DeepMind's configuration (``deepmind/language-perceiver``) is our ``deepmind-201m`` preset."""
    preset = MaskedLanguageModelConfig.from_preset("deepmind-201m")
    hf, model = compare(hf_config(preset), 256)
    assert convert_config(hf) == preset
    assert sum(p.numel() for p in model.parameters()) == 201_108_230


def test_offline_hub_load_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="local directory"):
        load_deepmind_model()
    assert time.monotonic() - start < 5


def test_load_from_local_directory_offline(tmp_path, monkeypatch):
    torch.manual_seed(0)
    hf = PerceiverForMaskedLM(PerceiverConfig(**SMALL))
    hf.save_pretrained(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a local directory needs no Hub
    model = load_deepmind_model(str(tmp_path)).eval()
    x = torch.randint(0, 262, (1, 16))
    with torch.no_grad():
        torch.testing.assert_close(model(x), hf.eval()(input_ids=x).logits[:, :16], atol=1e-4, rtol=0)
