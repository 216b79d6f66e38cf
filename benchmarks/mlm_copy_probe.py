"""Can the masked language model route each position through the latents back to itself? (docs/demo-tuning.md)

A copy task: random bytes, every output position labelled with its own input byte. A model that learns nothing
but the output bias stays at ln(30) = 3.40 nats; one that routes positions through the latents goes to ~0.

    python benchmarks/mlm_copy_probe.py --init-scale 0.02 0.1
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from perceiver.model.text.mlm import MaskedLanguageModel, MaskedLanguageModelConfig


def run(init_scale: float, seq_len: int, latents: int, steps: int, lr: float, batch: int) -> tuple[float, float]:
    torch.manual_seed(0)
    config = MaskedLanguageModelConfig.from_preset(
        "tiny", encoder=dict(max_seq_len=seq_len, init_scale=init_scale),
        decoder=dict(max_seq_len=seq_len, init_scale=init_scale), num_latents=latents)
    model = MaskedLanguageModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        x = torch.randint(10, 40, (batch, seq_len))  # (B, M)
        logits = model(x)  # (B, M, V)
        loss = F.cross_entropy(logits.flatten(0, 1), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach()), float((logits.argmax(-1) == x).float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init-scale", type=float, nargs="+", default=[0.02, 0.1])
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--latents", type=int, default=32)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for scale in args.init_scale:
        loss, acc = run(scale, args.seq_len, args.latents, args.steps, args.lr, args.batch)
        print(f"init_scale {scale}: loss {loss:.3f} nats, copy accuracy {acc:.1%}", flush=True)


if __name__ == "__main__":
    main()
