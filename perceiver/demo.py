"""Short demo: build the documented 201M masked language model, fill a masked sentence, print its size.

The weights are random unless ``--params`` names pretrained weights (a local directory or checkpoint, or a Hub id
when online), so the filled bytes are noise; the point is the API. ``python -m perceiver.demo``
"""

from __future__ import annotations

import argparse

import torch

from perceiver.model.text.mlm import MaskedLanguageModelConfig, fill_masks
from perceiver.model.text.mlm.lightning import LitMaskedLanguageModel
from perceiver.model.text.tokenizer import load_tokenizer


def documented_mlm(params: str | None = None) -> LitMaskedLanguageModel:
    return LitMaskedLanguageModel.create(MaskedLanguageModelConfig.from_preset("deepmind-201m"), params=params)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=None, help="pretrained weights (directory, checkpoint or Hub id)")
    parser.add_argument("--text", default="The capital of France is [MASK][MASK][MASK][MASK][MASK].")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = documented_mlm(args.params).backend_model.eval()
    print(f"MaskedLanguageModel: {sum(p.numel() for p in model.parameters()):,} parameters")
    if args.params is None:
        print("weights: random (no --params), so the filled bytes are noise; this shows the API. For DeepMind's "
              "weights: --params deepmind/language-perceiver (online) or a converted directory.")
    else:
        print(f"weights: {args.params}")
    print(f"input : {args.text}")
    print(f"filled: {fill_masks(model, load_tokenizer(), args.text)[0]}")


if __name__ == "__main__":
    main()
