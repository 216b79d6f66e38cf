"""Convert pretrained models into this library's format and verify the logits.

    python -m perceiver.scripts.convert deepmind OUTPUT_DIR [--source deepmind/language-perceiver]
    python -m perceiver.scripts.convert predecessor SOURCE OUTPUT_DIR [--tokenizer NAME]

``deepmind`` converts DeepMind's Perceiver IO language model (a Hub id, online, or a local directory saved by
``transformers.PerceiverForMaskedLM``). ``predecessor`` converts a perceiver-io 0.11 Hugging Face directory (local or a
Hub id such as ``krasserm/perceiver-io-mlm``) or Lightning checkpoint, MLM, CLM or text classifier (recognized by
content).

The output directory holds ``config.json`` (nested ``model_config``), ``model.safetensors`` and the tokenizer; load it
with ``PerceiverMaskedLanguageModel.from_pretrained`` / ``PerceiverCausalLanguageModel.from_pretrained`` /
``PerceiverTextClassifier.from_pretrained`` or pass it as
``--model.params``. After writing, the output is loaded again and its logits are compared with the source model's
(for ``deepmind``: the ``transformers`` model itself); the max abs difference is printed, and above ``--atol`` the
command fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable

import torch

from perceiver.hub import HubUnavailableError
from perceiver.model.core.params import ParamsError
from perceiver.model.text.classifier import predecessor as classifier_predecessor
from perceiver.model.text.classifier.backend import TextClassifier
from perceiver.model.text.classifier.huggingface import PerceiverTextClassifier
from perceiver.model.text.clm.backend import CausalLanguageModel
from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModel
from perceiver.model.text.mlm.convert import DEEPMIND_MODEL, load_deepmind_model
from perceiver.model.text.mlm.huggingface import PerceiverMaskedLanguageModel
from perceiver.model.text.predecessor import load_predecessor as load_language_model
from perceiver.model.text.tokenizer import BYTE_TOKENIZER, load_tokenizer


def sample_inputs(model: torch.nn.Module, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids (2, n) and a pad mask (True = pad) with padding in row 1: right padding for the MLM, left for the
    CLM."""
    g = torch.Generator().manual_seed(seed)
    n = min(model.config.max_seq_len, 64)
    ids = torch.randint(6, model.config.vocab_size, (2, n), generator=g)
    pad_mask = torch.zeros(2, n, dtype=torch.bool)
    if isinstance(model, CausalLanguageModel):
        pad_mask[1, : n // 4] = True
    else:
        pad_mask[1, n - n // 4 :] = True
    return ids.masked_fill(pad_mask, 0), pad_mask


def logits_fn(model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if isinstance(model, CausalLanguageModel):
        return lambda ids, pad: model(ids, max(0, ids.shape[1] - model.max_latents), pad)
    return lambda ids, pad: model(ids, pad)


def wrapper_class(model: torch.nn.Module):
    if isinstance(model, TextClassifier):
        return PerceiverTextClassifier
    return PerceiverCausalLanguageModel if isinstance(model, CausalLanguageModel) else PerceiverMaskedLanguageModel


def load_predecessor(source: str, *args, **kwargs) -> torch.nn.Module:
    """The backend model of a perceiver-io 0.11 text classifier, MLM or CLM, recognized by content."""
    if classifier_predecessor.is_predecessor_classifier(source):
        return classifier_predecessor.load_predecessor(source)
    return load_language_model(source, *args, **kwargs)


def save(model: torch.nn.Module, output_dir: str, tokenizer) -> None:
    wrapper_class(model).from_backend(model).save_pretrained(output_dir)
    if isinstance(model, CausalLanguageModel):
        tokenizer.padding_side = "left"
    tokenizer.save_pretrained(output_dir)


def reload(cls, output_dir: str) -> torch.nn.Module:
    """The backend model saved in ``output_dir`` by :func:`save`."""
    return cls.from_pretrained(output_dir).backend_model.eval()


@torch.no_grad()
def verify(reference: Callable, converted: torch.nn.Module, atol: float) -> float:
    ids, pad_mask = sample_inputs(converted)
    diff = (reference(ids, pad_mask) - logits_fn(converted)(ids, pad_mask)).abs().max().item()
    print(f"max abs logit difference: {diff:.3g}")
    if not diff <= atol:
        raise SystemExit(f"verification failed: max abs logit difference {diff:.3g} > atol {atol}")
    return diff


def source_tokenizer(source: str) -> str:
    """The tokenizer saved with a source directory (the byte tokenizer needs no files), else the byte tokenizer."""
    config_file = os.path.join(source, "tokenizer_config.json")
    if not os.path.isfile(config_file):
        return BYTE_TOKENIZER
    with open(config_file) as f:
        return BYTE_TOKENIZER if json.load(f).get("tokenizer_class") == "PerceiverTokenizer" else source


def convert_deepmind(source: str, output_dir: str, atol: float = 1e-4) -> float:
    """Convert DeepMind's language Perceiver (Hub id or local directory) and verify against ``transformers``."""
    from transformers import PerceiverForMaskedLM

    model = load_deepmind_model(source).eval()
    save(model, output_dir, load_tokenizer(source_tokenizer(source)))
    del model
    hf = PerceiverForMaskedLM.from_pretrained(source).eval()

    def reference(ids, pad_mask):
        return hf(input_ids=ids, attention_mask=(~pad_mask).long()).logits[:, : ids.shape[1]]

    return verify(reference, reload(PerceiverMaskedLanguageModel, output_dir), atol)


def convert_predecessor(source: str, output_dir: str, tokenizer: str | None = None, atol: float = 1e-4,
                        strict: bool = True) -> float:
    """Convert a perceiver-io 0.11 HF directory, Hub id or Lightning checkpoint and verify the written model
    (``strict=False``: config keys 0.11 does not have are dropped with a warning instead of refused)."""
    model = load_predecessor(source, strict)
    save(model, output_dir, load_tokenizer(tokenizer or source_tokenizer(source)))
    return verify(logits_fn(model), reload(wrapper_class(model), output_dir), atol)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perceiver.scripts.convert", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dm = sub.add_parser("deepmind", help="DeepMind's Perceiver IO language model (transformers.PerceiverForMaskedLM)")
    dm.add_argument("output_dir")
    dm.add_argument("--source", default=DEEPMIND_MODEL, help="Hub id (online) or local directory")
    pre = sub.add_parser("predecessor", help="a perceiver-io 0.11 HF directory, Hub id or Lightning checkpoint")
    pre.add_argument("source")
    pre.add_argument("output_dir")
    pre.add_argument("--tokenizer", default=None,
                     help=f"tokenizer to save (default: the source directory's, else {BYTE_TOKENIZER})")
    pre.add_argument("--ignore-unknown-keys", action="store_true",
                     help="drop config keys that perceiver-io 0.11 does not have (with a warning) instead of refusing")
    for p in (dm, pre):
        p.add_argument("--atol", type=float, default=1e-4, help="maximum abs logit difference accepted")
    args = parser.parse_args(argv)
    try:
        if args.command == "deepmind":
            convert_deepmind(args.source, args.output_dir, args.atol)
        else:
            convert_predecessor(args.source, args.output_dir, args.tokenizer, args.atol, not args.ignore_unknown_keys)
    except (HubUnavailableError, ParamsError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"saved to {args.output_dir}")


if __name__ == "__main__":
    sys.exit(main())
