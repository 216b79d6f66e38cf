"""Tokenizer loading.

``deepmind/language-perceiver`` is the UTF-8 byte tokenizer of the Perceiver IO paper. It needs no files, so it
resolves offline to ``transformers.PerceiverTokenizer()`` (262 ids: 6 special tokens and 256 bytes). Any other name
or path goes to ``transformers.AutoTokenizer``.

Use ``len(tokenizer)`` for the vocabulary size: ``tokenizer.vocab_size`` of the byte tokenizer says 256.
"""

from __future__ import annotations

import os

from perceiver.hub import offline_by_env
from transformers import AutoTokenizer, PerceiverTokenizer, PreTrainedTokenizerBase

BYTE_TOKENIZER = "deepmind/language-perceiver"


def load_tokenizer(name: str = BYTE_TOKENIZER, **kwargs) -> PreTrainedTokenizerBase:
    """Return the tokenizer called ``name`` (a Hub id or a local directory)."""
    if name == BYTE_TOKENIZER:
        return PerceiverTokenizer(**kwargs)
    if not os.path.isdir(name) and offline_by_env() is not None:
        raise OSError(
            f"tokenizer {name!r} is not a local directory and the Hugging Face Hub is offline "
            f"(HF_HUB_OFFLINE=1). Pass a local tokenizer directory, or use {BYTE_TOKENIZER!r}, which needs no files."
        )
    return AutoTokenizer.from_pretrained(name, **kwargs)


def token_labels(tokenizer, ids: list[int]) -> list[str]:
    """One printable label per token id, for plot axes (bytes of the byte tokenizer are decoded one by one)."""
    labels = []
    for i in ids:
        try:
            text = tokenizer.decode([i])
        except Exception:  # ids beyond the tokenizer's vocabulary
            text = ""
        labels.append(text.replace("\n", "⏎") if text.isprintable() or text == "\n" else "·")
    return labels
