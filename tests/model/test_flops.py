"""The analytic FLOPs (perceiver.model.core.flops) against torch's FlopCounterMode on a real forward and backward pass:
on the meta device (no memory, no compute: the documented 30.6M CLM and 201M MLM run in a second) and, for tiny models,
on the CPU, whose attention kernel FlopCounterMode does not count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from perceiver.model.core.flops import linear, mlp, perceiver_ar
from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig
from perceiver.model.text.mlm import MaskedLanguageModel, MaskedLanguageModelConfig

CLM, MLM = CausalLanguageModelConfig, MaskedLanguageModelConfig

# (name, config, batch size, sequence length): the documented configs and others that vary every dimension
CONFIGS = [
    ("clm-30.6m", lambda: CLM.from_preset("clm-30.6m"), 2, 4096),
    ("deepmind-201m", lambda: MLM.from_preset("deepmind-201m"), 1, 2048),
    ("clm tiny, no prefix (N < max_latents)", lambda: CLM.from_preset("tiny"), 3, 40),
    ("clm, odd prefix dropout, heads in chunks", lambda: CLM.from_preset(
        "tiny", cross_attention_dropout=0.3, max_heads_parallel=2, num_self_attention_rotary_layers=-1,
        self_attention_widening_factor=2, cross_attention_widening_factor=3, output_norm=True), 2, 203),
    ("mlm tiny", lambda: MLM.from_preset("tiny"), 2, 128),
    ("mlm, untied output, 2 cross-attentions, 2 blocks, qk/v channels", lambda: MLM.from_preset(
        "tiny", num_latents=24,
        encoder=dict(num_cross_attention_layers=2, num_self_attention_blocks=2, first_self_attention_block_shared=False,
                     num_cross_attention_qk_channels=32, num_cross_attention_v_channels=48,
                     num_self_attention_qk_channels=64, num_self_attention_v_channels=96,
                     cross_attention_widening_factor=2, self_attention_widening_factor=3),
        decoder=dict(num_output_query_channels=48, num_cross_attention_qk_channels=32,
                     cross_attention_widening_factor=2)), 2, 100),
]


def counted(config, batch_size: int, seq_len: int, device: str) -> int:
    """FlopCounterMode's total of a training-mode forward pass, the loss and the backward pass."""
    is_clm = isinstance(config, CLM)
    with torch.device(device):
        model = (CausalLanguageModel if is_clm else MaskedLanguageModel)(config).train()
    x = torch.randint(0, config.vocab_size, (batch_size, seq_len), device=device)
    with FlopCounterMode(display=False) as counter:
        logits = model(x, prefix_len=max(0, seq_len - config.max_latents)) if is_clm else model(x)
        labels = torch.zeros(logits.shape[:2], dtype=torch.long, device=device)
        F.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("name,make,b,n", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_analytic_flops_agree_with_flop_counter_on_meta(name, make, b, n):
    config = make()
    analytic = config.flops(n).step(b)
    measured = counted(config, b, n, "meta")
    assert analytic == pytest.approx(measured, rel=0.05)  # the tolerance ...
    assert analytic == measured  # ... and in fact exact: both count the same products


@pytest.mark.parametrize("name,make,b,n", CONFIGS[2:5], ids=[c[0] for c in CONFIGS[2:5]])
def test_flop_counter_on_cpu_leaves_out_fused_attention(name, make, b, n):
    """On a CPU (equal q/k and v channels per head), SDPA's fused kernel has no FLOP formula in torch: FlopCounterMode
    counts every matrix product but the two inside attention, forward and backward."""
    config = make()
    flops = config.flops(n)
    assert counted(config, b, n, "cpu") == b * (flops.forward_backward - 3 * (flops.scores + flops.values))


def test_prefix_dropout_scales_the_prefix_attention():
    config = CLM.from_preset("clm-30.6m")  # prefix 3584, dropout 0.5: 1792 prefix positions kept in training
    train, full = config.flops(4096, train=True), config.flops(4096, train=False)
    c, latents = config.num_channels, config.max_latents
    dropped = 3584 - 1792
    # k and v projections and both attention products lose the dropped positions; nothing else changes
    assert full.parts["cross_attention"] - train.parts["cross_attention"] == dropped * (2 * 2 * c * c + 2 * 2 * latents * c)
    assert {k: v for k, v in full.parts.items() if k != "cross_attention"} == \
        {k: v for k, v in train.parts.items() if k != "cross_attention"}
    # an evaluation pass (no prefix dropout) is counted as such
    with torch.device("meta"):
        model = CausalLanguageModel(config).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.randint(0, 262, (1, 4096), device="meta"), prefix_len=3584)
    assert counter.get_total_flops() == full.forward


def test_building_blocks_by_hand():
    assert linear(3, 4, 5) == 2 * 3 * 4 * 5
    assert mlp(3, 4, 2) == 2 * 3 * 4 * 8 * 2
    config = CLM.from_preset("tiny", cross_attention_dropout=0.0)  # C=128, 3 layers, widening 4, V=262
    f = perceiver_ar(config, seq_len=256, prefix_len=192, channels=128, output_channels=262)
    latents, c = 64, 128
    self_attention = 4 * 2 * latents * c * c + 2 * 2 * latents * latents * c
    assert f.parts["self_attention"] == 3 * self_attention
    assert f.parts["output"] == 2 * latents * c * 262
    assert f.tokens == 256 and f.per_token == 3 * f.forward / 256
    assert f.scores == f.values == 2 * latents * 256 * c + 3 * 2 * latents * latents * c
    more = f.add(output=10, adapter=5)  # an adapter's own work, for tasks that have some
    assert more.parts["output"] == f.parts["output"] + 10 and more.forward == f.forward + 15



def classifier_cases():
    from perceiver.model.text.classifier import TextClassifier, TextClassifierConfig
    from perceiver.model.vision.image_classifier import ImageClassifier, ImageClassifierConfig

    def text(config, b, n):
        return TextClassifier(config), torch.randint(0, config.vocab_size, (b, n)), config.flops(n)

    def image(config, b):
        return ImageClassifier(config), torch.randn(b, *config.image_shape), config.flops()

    return [
        ("text classifier 200.6M", lambda: text(TextClassifierConfig.from_preset("deepmind-encoder"), 2, 512)),
        ("text classifier tiny", lambda: text(TextClassifierConfig.from_preset("tiny"), 3, 100)),
        ("image classifier 907K", lambda: image(ImageClassifierConfig.from_preset("mnist-907k"), 4)),
        ("image classifier, learned positions, pixel projection", lambda: image(ImageClassifierConfig.from_preset(
            "tiny", encoder=dict(position_encoding="learned", num_position_channels=12, num_pixel_channels=6,
                                 image_shape=(6, 5, 3))), 2)),
    ]


@pytest.mark.parametrize("case", range(4), ids=lambda i: classifier_cases()[i][0])
def test_classifier_flops_agree_with_flop_counter_on_meta(case):
    with torch.device("meta"):
        model, x, flops = classifier_cases()[case][1]()
        model.train()
        with FlopCounterMode(display=False) as counter:
            logits = model(x)  # (B, K)
            F.cross_entropy(logits, torch.zeros(x.shape[0], dtype=torch.long)).backward()
    assert flops.step(x.shape[0]) == counter.get_total_flops()
