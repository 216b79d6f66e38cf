"""The text classifier: conversion of Hugging Face's PerceiverForSequenceClassification (logits <= 1e-4), the
documented size against perceiver-io 0.11's, padding invariance, the query attention over the input, learning."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import PerceiverConfig, PerceiverForSequenceClassification

from perceiver.model.core.config import ConfigError
from perceiver.model.text.classifier import TextClassifier, TextClassifierConfig, query_attention
from perceiver.model.text.classifier.convert import convert_hf_model
from perceiver.model.text.classifier.predecessor import clf_config

DOCUMENTED = Path(__file__).parents[1] / "fixtures" / "predecessor" / "documented"
SMALL = dict(d_model=64, d_latents=96, num_latents=8, num_blocks=2, num_self_attends_per_block=2,
             num_self_attention_heads=4, num_cross_attention_heads=4, qk_channels=32, v_channels=96,
             vocab_size=262, max_position_embeddings=64, num_labels=3, initializer_range=0.2)


def random_hf_classifier(**config) -> PerceiverForSequenceClassification:
    """A random PerceiverForSequenceClassification whose LayerNorms and biases are random too (HF initializes them to
    1 and 0, which would hide mapping mistakes), with logits of order 10."""
    torch.manual_seed(0)
    hf = PerceiverForSequenceClassification(PerceiverConfig(**config)).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "layernorm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return hf


@torch.no_grad()
def test_convert_hf_sequence_classifier():
    hf = random_hf_classifier(**SMALL, id2label={0: "neg", 1: "neutral", 2: "pos"})
    model = convert_hf_model(hf).eval()
    assert model.config.class_names == ["neg", "neutral", "pos"]
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in hf.parameters())
    x = torch.randint(0, 262, (2, 40))
    attention_mask = torch.ones(2, 40, dtype=torch.long)
    attention_mask[1, 25:] = 0
    for mask in (None, attention_mask):
        ref = hf(input_ids=x, attention_mask=mask).logits
        out = model(x, pad_mask=None if mask is None else mask == 0)
        assert ref.abs().max() > 1.0  # the comparison is not between near-zero logits
        assert (ref - out).abs().max().item() <= 1e-4


def test_documented_preset_is_the_predecessors_imdb_classifier():
    """Preset ``deepmind-encoder`` has the config and parameter count of 0.11's IMDb classifier (its CLI defaults,
    written by 0.11 itself into tests/fixtures/predecessor/documented)."""
    values = json.loads((DOCUMENTED / "txt_clf_imdb" / "config.json").read_text())["model_config"]
    predecessor = clf_config(values)  # 0.11's config; its num_output_queries (always 1) is not a field of ours
    ours = TextClassifierConfig.from_preset("deepmind-encoder")
    assert ours == predecessor
    with torch.device("meta"):
        model = TextClassifier(ours)
    expected = json.loads((DOCUMENTED / "num_params.json").read_text())["txt_clf_imdb"]
    assert sum(p.numel() for p in model.parameters()) == expected == 200_587_010


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return TextClassifier(TextClassifierConfig.from_preset("tiny", decoder={"num_classes": 3})).eval()


@torch.no_grad()
def test_right_padding_does_not_change_logits(tiny):
    x = torch.randint(6, 262, (1, 30))
    padded = torch.cat([x, torch.zeros(1, 10, dtype=torch.long)], dim=1)
    pad_mask = torch.zeros(1, 40, dtype=torch.bool)
    pad_mask[:, 30:] = True
    torch.testing.assert_close(tiny(padded, pad_mask), tiny(x), atol=1e-5, rtol=0)


@torch.no_grad()
def test_query_attention_is_a_distribution_over_the_real_inputs(tiny):
    x = torch.randint(6, 262, (2, 40))
    pad_mask = torch.zeros(2, 40, dtype=torch.bool)
    pad_mask[1, 30:] = True
    weights = query_attention(tiny, x, pad_mask)  # (B, He, O, M)
    assert weights.shape == (2, 4, 1, 40)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 1))
    assert weights[1, ..., 30:].abs().max() == 0


def test_learns_a_batch():
    """A real learning signal: the tiny classifier fits 8 random byte sequences with random labels."""
    torch.manual_seed(0)
    model = TextClassifier(TextClassifierConfig.from_preset("tiny"))
    x, y = torch.randint(6, 262, (8, 32)), torch.randint(0, 2, (8,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        first = first or loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 0.6 and loss.item() < 0.05


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError) as e:
        TextClassifierConfig.from_preset("tiny", decoder={"num_classes": 3}, class_names=["neg", "pos"])
    assert e.value.field == "class_names"
    with pytest.raises(ConfigError) as e:
        TextClassifierConfig.from_preset("tiny", decoder={"num_output_query_channels": 30,
                                                          "num_cross_attention_heads": 4})
    assert e.value.field == "decoder.num_output_query_channels"
