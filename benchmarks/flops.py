"""The analytic FLOPs of perceiver.model.core.flops against torch's FlopCounterMode: prints the agreement table and
the per-part breakdown of the documented models (docs/performance.md, "Compute accounting").

    .venv/bin/python benchmarks/flops.py            # meta device: no memory, no arithmetic, seconds

Each row counts one training step (forward, cross-entropy, backward) of the real model under FlopCounterMode on the
meta device, where attention runs as batched matrix products, and compares it with ``config.flops(n).step(batch)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig as CLM
from perceiver.model.text.mlm import MaskedLanguageModel, MaskedLanguageModelConfig as MLM
from perceiver.training.compute import format_flops

CONFIGS = [
    ("CLM clm-30.6m, 2 x 4096 (prefix 3584, dropout 0.5)", lambda: CLM.from_preset("clm-30.6m"), 2, 4096),
    ("MLM deepmind-201m, 1 x 2048", lambda: MLM.from_preset("deepmind-201m"), 1, 2048),
    ("CLM tiny, 3 x 40 (no prefix)", lambda: CLM.from_preset("tiny"), 3, 40),
    ("CLM tiny, dropout 0.3, widening 2/3, heads in chunks, 2 x 203",
     lambda: CLM.from_preset("tiny", cross_attention_dropout=0.3, max_heads_parallel=2, self_attention_widening_factor=2,
                             cross_attention_widening_factor=3, output_norm=True), 2, 203),
    ("MLM tiny, 2 x 128", lambda: MLM.from_preset("tiny"), 2, 128),
    ("MLM untied output, 2 cross-attentions, 2 blocks, qk/v channels, 2 x 100", lambda: MLM.from_preset(
        "tiny", num_latents=24,
        encoder=dict(num_cross_attention_layers=2, num_self_attention_blocks=2, first_self_attention_block_shared=False,
                     num_cross_attention_qk_channels=32, num_cross_attention_v_channels=48,
                     num_self_attention_qk_channels=64, num_self_attention_v_channels=96,
                     cross_attention_widening_factor=2, self_attention_widening_factor=3),
        decoder=dict(num_output_query_channels=48, num_cross_attention_qk_channels=32,
                     cross_attention_widening_factor=2)), 2, 100),
]


def counted(config, batch_size: int, seq_len: int) -> int:
    is_clm = isinstance(config, CLM)
    with torch.device("meta"):
        model = (CausalLanguageModel if is_clm else MaskedLanguageModel)(config).train()
    x = torch.randint(0, config.vocab_size, (batch_size, seq_len), device="meta")
    with FlopCounterMode(display=False) as counter:
        logits = model(x, prefix_len=max(0, seq_len - config.max_latents)) if is_clm else model(x)
        labels = torch.zeros(logits.shape[:2], dtype=torch.long, device="meta")
        F.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
    return counter.get_total_flops()


def main():
    print("| config | analytic FLOPs / step | FlopCounterMode (meta) | ratio | per token |")
    print("|---|---|---|---|---|")
    for name, make, b, n in CONFIGS:
        config = make()
        flops = config.flops(n)
        measured = counted(config, b, n)
        print(f"| {name} | {flops.step(b):,} | {measured:,} | {flops.step(b) / measured:.4f} | "
              f"{format_flops(flops.per_token)} |")
    for name, make, b, n in CONFIGS[:2]:
        flops = make().flops(n)
        print(f"\n{name}: forward FLOPs per example by part (of {format_flops(flops.forward)}; attention products "
              f"{100 * (flops.scores + flops.values) / flops.forward:.1f}%)")
        for part, value in flops.parts.items():
            print(f"  {part:26s} {format_flops(value):>12s}  {100 * value / flops.forward:5.1f}%")


if __name__ == "__main__":
    main()
