"""Masked-token accuracy of the MLM over a whole split (``perceiver.model.text.mlm.evaluate``): every masked token
counts once, and the result agrees with the per-batch metric of validation and with float64 cross-entropy by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perceiver.model.text.mlm.evaluate import masked_accuracy
from perceiver.model.text.mlm.lightning import LitMaskedLanguageModel
from perceiver.model.text.mlm.backend import TextDecoderConfig, TextEncoderConfig


def tiny_lit() -> LitMaskedLanguageModel:
    torch.manual_seed(0)
    enc = TextEncoderConfig(vocab_size=262, max_seq_len=24, num_input_channels=32, num_cross_attention_heads=2,
                            num_self_attention_heads=2, num_self_attention_layers_per_block=1)
    dec = TextDecoderConfig(vocab_size=262, max_seq_len=24, num_cross_attention_heads=2)
    return LitMaskedLanguageModel(enc, dec, num_latents=4, num_latent_channels=32)


def batches() -> list[dict]:
    g = torch.Generator().manual_seed(1)
    out = []
    for b, n, p in [(3, 24, 0.3), (2, 17, 0.1), (4, 24, 0.5)]:  # unequal numbers of targets per batch
        ids = torch.randint(6, 262, (b, n), generator=g)
        targets = torch.rand(b, n, generator=g) < p
        targets[0, 0] = True
        pad_mask = torch.zeros(b, n, dtype=torch.bool)
        pad_mask[-1, n - 3 :] = True
        targets &= ~pad_mask
        out.append({"input_ids": torch.where(targets, 4, ids), "labels": torch.where(targets, ids, -100),
                    "pad_mask": pad_mask})
    return out


def test_masked_accuracy_counts_every_target_once():
    lit = tiny_lit()
    lit.train()
    score = masked_accuracy(lit.model, batches())
    assert lit.model.training  # restored

    lit.eval()
    correct = total = 0
    nats = 0.0
    with torch.no_grad():
        model64 = tiny_lit().model.double().eval()
        for batch in batches():
            _, metrics = lit.loss_and_metrics(batch)
            n = int((batch["labels"] != -100).sum())
            correct += round(float(metrics["masked_accuracy"]) * n)
            total += n
            logits = model64(batch["input_ids"], pad_mask=batch["pad_mask"])
            m = batch["labels"] != -100
            nats += float(F.cross_entropy(logits[m], batch["labels"][m], reduction="sum"))
    assert (score.correct, score.num_targets) == (correct, total)
    assert score.accuracy == correct / total
    assert score.loss == pytest.approx(nats / total, rel=1e-5)
