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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

NOT_MASKABLE, JOIN, START = -1, 0, 1
IGNORE_INDEX = -100
BYTE_OFFSET = 6  # PerceiverTokenizer: byte b has id b + 6
WHITESPACE_BYTES = (9, 10, 11, 12, 13, 32)


def token_classes(tokenizer: PreTrainedTokenizerBase, whole_words: bool = True) -> torch.Tensor:
    """The (V,) word-membership table of ``tokenizer`` (see module docstring)."""
    vocab_size = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    if is_byte_tokenizer(tokenizer):
        classes = torch.full((vocab_size,), JOIN, dtype=torch.int8)
        classes[[BYTE_OFFSET + b for b in WHITESPACE_BYTES]] = NOT_MASKABLE
    else:
        tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
        tokens = [t or "" for t in tokens]
        if any(t.startswith("##") for t in tokens):
            classes = torch.tensor([JOIN if t.startswith("##") else START for t in tokens], dtype=torch.int8)
        elif any(t.startswith(("\u0120", "\u2581")) for t in tokens):
            classes = torch.tensor([START if t.startswith(("\u0120", "\u2581")) else JOIN for t in tokens])
            classes = classes.to(torch.int8)
        else:
            classes = torch.full((vocab_size,), START, dtype=torch.int8)
    if not whole_words:
        classes[classes == JOIN] = START
    classes[sorted(special)] = NOT_MASKABLE
    return classes


def is_byte_tokenizer(tokenizer: PreTrainedTokenizerBase) -> bool:
    return type(tokenizer).__name__ == "PerceiverTokenizer"


def random_token_ids(tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """Ids that may replace a masked token: all non-special ids."""
    special = set(tokenizer.all_special_ids)
    return torch.tensor([i for i in range(len(tokenizer)) if i not in special], dtype=torch.long)


def word_ids(input_ids: torch.Tensor, classes: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """Number the words of a batch consecutively across rows; -1 for tokens outside words.

    Args:
        input_ids: (B, N) token ids.
        classes: (V,) word-membership table from ``token_classes``.
        pad_mask: (B, N), True at padding.

    Returns:
        (B, N) word ids in ``[0, num_words)`` or -1.
    """
    cls = classes[input_ids].long()  # (B, N)
    cls[pad_mask] = NOT_MASKABLE
    maskable = cls != NOT_MASKABLE
    prev_maskable = torch.nn.functional.pad(maskable[:, :-1], (1, 0), value=False)
    start = maskable & ((cls == START) | ~prev_maskable)
    ids = torch.cumsum(start.flatten(), 0).view_as(input_ids) - 1
    return torch.where(maskable, ids, -1)


def mask_words(
    input_ids: torch.Tensor,
    pad_mask: torch.Tensor,
    classes: torch.Tensor,
    random_ids: torch.Tensor,
    mask_token_id: int,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask whole words of ``input_ids`` (B, N).

    Returns:
        ``(masked_ids, labels)``, both (B, N): labels are the original ids at target positions, -100 elsewhere.
    """
    wid = word_ids(input_ids, classes, pad_mask)  # (B, N)
    in_word = wid >= 0
    num_words = int(wid.max().item()) + 1 if in_word.any() else 0
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    if num_words == 0:
        return input_ids.clone(), labels

    num_tokens = int((~pad_mask).sum())
    word_prob = min(1.0, mask_prob * num_tokens / int(in_word.sum()))
    selected = torch.rand(num_words, generator=generator) < word_prob
    action = torch.rand(num_words, generator=generator)  # < 0.8 mask, < 0.9 random, else keep

    w = wid.clamp(min=0)
    target = in_word & selected[w]
    labels[target] = input_ids[target]

    masked_ids = input_ids.clone()
    masked_ids[target & (action[w] < 0.8)] = mask_token_id
    to_random = target & (action[w] >= 0.8) & (action[w] < 0.9)
    num_random = int(to_random.sum())
    if num_random:
        picks = torch.randint(len(random_ids), (num_random,), generator=generator)
        masked_ids[to_random] = random_ids[picks]
    return masked_ids, labels


@dataclass
class WordMasker:
    """``mask_words`` bound to a tokenizer's tables: ``(input_ids, pad_mask) -> (masked_ids, labels)``.

    A plain picklable object, so it can be a DataLoader worker's collate function.
    """

    classes: torch.Tensor
    random_ids: torch.Tensor
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
