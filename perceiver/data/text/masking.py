"""Masked language modeling targets: (whole-)word masking as plain functions on token id tensors.

Dimensions: B batch size, N sequence length, V vocabulary size.

A per-vocabulary table ``token_classes`` (V,) tells how a token takes part in words:

- ``NOT_MASKABLE`` (-1): special tokens and, for the byte tokenizer, whitespace bytes. They are never masked and
  separate words.
- ``JOIN`` (0): the token continues the word of the previous maskable token (byte tokenizer: every non-whitespace
  byte, so a word is a run of non-whitespace bytes; WordPiece: ``##`` pieces; BPE/SentencePiece: pieces without a
  leading space marker).
- ``START`` (1): the token starts a new word.

Words are selected with a probability chosen so that about ``mask_prob`` of all non-padding tokens become targets.
Each selected word is replaced as a whole: 80% by ``[MASK]``, 10% by random non-special tokens, 10% unchanged.

The math runs in NumPy on the CPU: it is a handful of elementwise ops on (B, N) arrays, which torch would spread
over intra-op threads for no gain (and large slowdowns on busy machines). Randomness still comes from torch
(the global generator, seeded per DataLoader worker, or a given ``torch.Generator``) through one seed per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

NOT_MASKABLE, JOIN, START = -1, 0, 1
IGNORE_INDEX = -100
BYTE_OFFSET = 6  # PerceiverTokenizer: byte b has id b + 6
WHITESPACE_BYTES = (9, 10, 11, 12, 13, 32)
_SPACE_MARKERS = ("\u0120", "\u2581")  # BPE "Ġ", SentencePiece "▁"


def token_classes(tokenizer: PreTrainedTokenizerBase, whole_words: bool = True) -> np.ndarray:
    """The (V,) int8 word-membership table of ``tokenizer`` (see module docstring)."""
    vocab_size = len(tokenizer)
    if is_byte_tokenizer(tokenizer):
        classes = np.full(vocab_size, JOIN, dtype=np.int8)
        classes[[BYTE_OFFSET + b for b in WHITESPACE_BYTES]] = NOT_MASKABLE
    else:
        tokens = [t or "" for t in tokenizer.convert_ids_to_tokens(list(range(vocab_size)))]
        if any(t.startswith("##") for t in tokens):
            classes = np.array([JOIN if t.startswith("##") else START for t in tokens], dtype=np.int8)
        elif any(t.startswith(_SPACE_MARKERS) for t in tokens):
            classes = np.array([START if t.startswith(_SPACE_MARKERS) else JOIN for t in tokens], dtype=np.int8)
        else:
            classes = np.full(vocab_size, START, dtype=np.int8)
    if not whole_words:
        classes[classes == JOIN] = START
    classes[sorted(set(tokenizer.all_special_ids))] = NOT_MASKABLE
    return classes


def is_byte_tokenizer(tokenizer: PreTrainedTokenizerBase) -> bool:
    return type(tokenizer).__name__ == "PerceiverTokenizer"


def random_token_ids(tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """Ids that may replace a masked token: all non-special ids."""
    special = set(tokenizer.all_special_ids)
    return np.array([i for i in range(len(tokenizer)) if i not in special], dtype=np.int64)


def word_ids(input_ids: np.ndarray, classes: np.ndarray, pad_mask: np.ndarray) -> np.ndarray:
    """Number the words of a batch consecutively across rows; -1 for tokens outside words.

    Args:
        input_ids: (B, N) token ids.
        classes: (V,) word-membership table from ``token_classes``.
        pad_mask: (B, N), True at padding.

    Returns:
        (B, N) word ids in ``[0, num_words)`` or -1.
    """
    cls = np.where(pad_mask, NOT_MASKABLE, classes[input_ids])  # (B, N)
    maskable = cls != NOT_MASKABLE
    prev_maskable = np.zeros_like(maskable)
    prev_maskable[:, 1:] = maskable[:, :-1]
    start = maskable & ((cls == START) | ~prev_maskable)
    ids = np.cumsum(start.ravel()).reshape(input_ids.shape) - 1
    return np.where(maskable, ids, -1)


def mask_words(
    input_ids: torch.Tensor,
    pad_mask: torch.Tensor,
    classes: np.ndarray,
    random_ids: np.ndarray,
    mask_token_id: int,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask whole words of ``input_ids`` (B, N), a CPU tensor.

    Returns:
        ``(masked_ids, labels)``, both (B, N): labels are the original ids at target positions, -100 elsewhere.
    """
    ids = input_ids.numpy()
    wid = word_ids(ids, classes, pad_mask.numpy())  # (B, N)
    in_word = wid >= 0
    num_words = int(wid.max()) + 1 if in_word.any() else 0
    labels = np.full_like(ids, IGNORE_INDEX)
    masked = ids.copy()
    if num_words:
        rng = np.random.default_rng(int(torch.randint(2**62, (), generator=generator)))
        num_tokens = int((~pad_mask).sum())
        word_prob = min(1.0, mask_prob * num_tokens / int(in_word.sum()))
        selected = rng.random(num_words) < word_prob
        action = rng.random(num_words)  # < 0.8 mask, < 0.9 random, else keep

        w = np.maximum(wid, 0)
        target = in_word & selected[w]
        labels[target] = ids[target]
        masked[target & (action[w] < 0.8)] = mask_token_id
        to_random = target & (action[w] >= 0.8) & (action[w] < 0.9)
        masked[to_random] = random_ids[rng.integers(len(random_ids), size=int(to_random.sum()))]
    return torch.from_numpy(masked), torch.from_numpy(labels)


@dataclass
class WordMasker:
    """``mask_words`` bound to a tokenizer's tables: ``(input_ids, pad_mask) -> (masked_ids, labels)``.

    A plain picklable object, so it can be a DataLoader worker's collate function.
    """

    classes: np.ndarray
    random_ids: np.ndarray
    mask_token_id: int
    mask_prob: float = 0.15
    generator: torch.Generator | None = None

    @classmethod
    def for_tokenizer(
        cls, tokenizer: PreTrainedTokenizerBase, mask_prob: float, whole_words: bool = True, **kwargs
    ) -> WordMasker:
        if tokenizer.mask_token_id is None:
            raise ValueError(f"masked language modeling needs a mask token; {tokenizer.name_or_path!r} has none")
        classes, random_ids = token_classes(tokenizer, whole_words), random_token_ids(tokenizer)
        return cls(classes, random_ids, tokenizer.mask_token_id, mask_prob, **kwargs)

    def __call__(
        self, input_ids: torch.Tensor, pad_mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        args = (self.classes, self.random_ids, self.mask_token_id, self.mask_prob, generator or self.generator)
        return mask_words(input_ids, pad_mask, *args)
