"""Fill masked tokens in text with a masked language model (used by the workbench and validation samples)."""

from __future__ import annotations

from typing import Sequence

import torch

from perceiver.model.text.mlm.backend import MaskedLanguageModel


@torch.no_grad()
def fill_masks(model: MaskedLanguageModel, tokenizer, texts: Sequence[str] | str) -> list[str]:
    """Replace every mask token in ``texts`` (for the byte tokenizer each ``[MASK]`` is one byte) with the model's
    most likely non-special token, and return the completed texts."""
    if isinstance(texts, str):
        texts = [texts]
    if tokenizer.mask_token_id is None:
        raise ValueError("the tokenizer has no mask token, so masked text cannot be filled")
    enc = tokenizer(list(texts), padding=True, add_special_tokens=False, return_tensors="pt")
    ids = enc["input_ids"].to(next(model.parameters()).device)
    if ids.shape[1] > model.config.max_seq_len:
        raise ValueError(f"text of {ids.shape[1]} tokens exceeds the model's max_seq_len={model.config.max_seq_len}")
    pad_mask = enc["attention_mask"].to(ids.device) == 0
    was_training = model.training
    model.eval()
    try:
        logits = model(ids, pad_mask=pad_mask)  # (B, N, V)
    finally:
        model.train(was_training)
    special = [i for i in tokenizer.all_special_ids if i < logits.shape[-1]]
    logits[..., special] = float("-inf")
    masked = ids == tokenizer.mask_token_id
    filled = torch.where(masked, logits.argmax(dim=-1), ids)
    return [tokenizer.decode(row[~pad], skip_special_tokens=True) for row, pad in zip(filled, pad_mask)]
