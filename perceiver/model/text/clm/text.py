"""Text in, text out: prompt strings to generated strings with a causal language model and its tokenizer, all at
once (``generate_text``) or piece by piece as tokens are generated (``stream_text``, or ``generate_text`` with
``on_text``)."""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence

import torch

from perceiver.model.core.generation import stream
from perceiver.model.core.perceiver_ar import PerceiverAR


def decode_ids(tokenizer, ids: Sequence[int]) -> str:
    """Decode ids, skipping special tokens and ids the tokenizer cannot decode (e.g. model vocabulary entries beyond
    the tokenizer's)."""
    n = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    return tokenizer.decode([i for i in ids if 0 <= i < n and i not in special], skip_special_tokens=True)


class TextPieces:
    """Turns ids arriving one step at a time into text pieces. A character whose bytes are not all there yet (the
    byte tokenizer splits UTF-8 characters) is held back until it is complete. Ids are decoded together from the
    last piece that ended in whitespace, so tokenizers that attach spaces to tokens decode as a whole text would."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = 0  # characters of decode(self.ids) already returned

    def push(self, ids: Sequence[int]) -> str:
        self.ids += ids
        text = decode_ids(self.tokenizer, self.ids)
        end = len(text.rstrip("\ufffd"))  # an incomplete character decodes to U+FFFD until its last byte arrives
        piece = text[self.emitted : end]
        self.emitted = max(self.emitted, end)
        if piece[-1:].isspace() and end == len(text):
            self.ids, self.emitted = [], 0
        return piece

    def flush(self) -> str:
        piece = decode_ids(self.tokenizer, self.ids)[self.emitted :]
        self.ids, self.emitted = [], 0
        return piece


def encode_prompts(model: PerceiverAR, tokenizer, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids (B, N) and pad mask (B, N) of prompts, left-padded, on the model's device."""
    if any(p == "" for p in prompts):
        raise ValueError("prompts must be non-empty strings")
    tokenizer.padding_side = "left"
    enc = tokenizer(list(prompts), padding=True, add_special_tokens=False, return_tensors="pt")
    device = next(model.parameters()).device
    return enc["input_ids"].to(device), enc["attention_mask"].to(device) == 0


def stream_text(
    model: PerceiverAR, tokenizer, prompt: str, max_new_tokens: int = 128, **generate_kwargs
) -> Iterator[str]:
    """Generate a continuation of ``prompt``, yielding it in pieces as tokens are generated (the pieces joined are
    the text :func:`generate_text` returns). ``generate_kwargs`` go to :meth:`CausalLanguageModel.generate`."""
    if not isinstance(prompt, str):
        raise ValueError("stream_text takes one prompt string; use generate_text for a list of prompts")
    ids, pad_mask = encode_prompts(model, tokenizer, [prompt])
    generate_kwargs.setdefault("eos_token_id", tokenizer.eos_token_id)
    pieces = TextPieces(tokenizer)
    was_training = model.training
    model.eval()  # no prefix dropout
    try:
        for step in stream(model, ids, max_new_tokens, pad_mask=pad_mask, **generate_kwargs):
            piece = pieces.push(step.tokens.tolist())
            if piece:
                yield piece
    finally:
        model.train(was_training)
    piece = pieces.flush()
    if piece:
        yield piece


@torch.no_grad()
def generate_text(
    model: PerceiverAR,
    tokenizer,
    prompts: str | Sequence[str],
    max_new_tokens: int = 128,
    on_text: Optional[Callable[[str], None]] = None,
    **generate_kwargs,
) -> str | list[str]:
    """Generate continuations of ``prompts`` (a string or a list of strings, batched with left padding); returns
    only the new text. ``on_text`` (one prompt only) is called with each piece of text as it is generated.
    ``generate_kwargs`` go to :meth:`CausalLanguageModel.generate`."""
    single = isinstance(prompts, str)
    if on_text is not None:
        if not single:
            raise ValueError("on_text streams one prompt; pass a single prompt string")
        text = ""
        for piece in stream_text(model, tokenizer, prompts, max_new_tokens, **generate_kwargs):
            on_text(piece)
            text += piece
        return text
    prompts = [prompts] if single else list(prompts)
    ids, pad_mask = encode_prompts(model, tokenizer, prompts)
    generate_kwargs.setdefault("eos_token_id", tokenizer.eos_token_id)
    out = model.generate(ids, max_new_tokens, pad_mask=pad_mask, **generate_kwargs)
    texts = [decode_ids(tokenizer, row[ids.shape[1]:].tolist()) for row in out]
    return texts[0] if single else texts
