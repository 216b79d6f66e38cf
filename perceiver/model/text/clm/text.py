"""Text in, text out: prompt strings to generated strings with a causal language model and its tokenizer."""

from __future__ import annotations

from typing import Sequence

import torch

from perceiver.model.text.clm.backend import CausalLanguageModel


def decode_ids(tokenizer, ids: Sequence[int]) -> str:
    """Decode ids, skipping special tokens and ids the tokenizer cannot decode (e.g. model vocabulary entries beyond
    the tokenizer's)."""
    n = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    return tokenizer.decode([i for i in ids if 0 <= i < n and i not in special], skip_special_tokens=True)


@torch.no_grad()
def generate_text(
    model: CausalLanguageModel,
    tokenizer,
    prompts: str | Sequence[str],
    max_new_tokens: int = 128,
    **generate_kwargs,
) -> str | list[str]:
    """Generate continuations of ``prompts`` (a string or a list of strings, batched with left padding); returns
    only the new text. ``generate_kwargs`` go to :meth:`CausalLanguageModel.generate`."""
    single = isinstance(prompts, str)
    prompts = [prompts] if single else list(prompts)
    if any(p == "" for p in prompts):
        raise ValueError("prompts must be non-empty strings")
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, padding=True, add_special_tokens=False, return_tensors="pt")
    device = next(model.parameters()).device
    ids, pad_mask = enc["input_ids"].to(device), enc["attention_mask"].to(device) == 0
    generate_kwargs.setdefault("eos_token_id", tokenizer.eos_token_id)
    out = model.generate(ids, max_new_tokens, pad_mask=pad_mask, **generate_kwargs)
    texts = [decode_ids(tokenizer, row[ids.shape[1]:].tolist()) for row in out]
    return texts[0] if single else texts
