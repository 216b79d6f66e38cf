"""Torch datasets over cached token files, and the collator that builds batches.

Dimensions: B batch size, N = ``max_seq_len``, L example window (N + 1 for clm, N otherwise), T tokens in a split.

Stream layout (mlm, clm): example ``i`` is the window ``tokens[i * N : i * N + L]`` of the concatenated documents,
so consecutive clm windows overlap by one token and every token is a target once. With ``random_shift`` the
window starts at ``i * N + s`` for a random ``s`` in ``[0, N)`` (at most ``T - L``). The last window of a split
may be shorter and is padded. Document layout (clf): example ``i`` is document ``i``, truncated to N tokens.
Random shifts use torch's global generator, which DataLoader seeds per worker (``seed_everything`` makes them
reproducible).

Batch format (``TextCollator``)::

    input_ids  LongTensor (B, N)    padded with the tokenizer's pad id on ``padding_side``
    labels     LongTensor (B, N)    mlm: original ids at targets; clm: next tokens; -100 = ignore
               LongTensor (B,)      clf: class labels
    pad_mask   BoolTensor (B, N)    True = padding
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from perceiver.data.text.masking import IGNORE_INDEX, WordMasker

Item = dict[str, torch.Tensor]


class _Memmaps:
    """Lazily opened read-only memmaps; pickles as paths, so DataLoader workers do not copy the data."""

    def __init__(self, paths: dict[str, tuple[Path, str]]):
        self.paths = paths
        self._maps: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._maps:
            path, dtype = self.paths[name]
            self._maps[name] = np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else np.zeros(0, dtype)
        return self._maps[name]

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "_maps": {}}


class TokenStreamDataset(Dataset):
    """Fixed-length windows over one split's concatenated token ids (see module docstring)."""

    def __init__(
        self,
        cache_dir: Path,
        split: str,
        dtype: str,
        num_tokens: int,
        stride: int,
        window: int,
        random_shift: bool = False,
        static_masking: bool = False,
    ):
        names = {"tokens": (cache_dir / f"{split}.tokens.bin", dtype)}
        if static_masking:
            names["masked"] = (cache_dir / f"{split}.masked.bin", dtype)
            names["targets"] = (cache_dir / f"{split}.targets.bin", "uint8")
        self.files = _Memmaps(names)
        self.num_tokens = num_tokens
        self.stride = stride
        self.window = window
        self.random_shift = random_shift
        self.static_masking = static_masking

    def __len__(self) -> int:
        overlap = self.window - self.stride
        return max(1, -(-(self.num_tokens - overlap) // self.stride))

    def __getitem__(self, idx: int) -> Item:
        if not 0 <= idx < len(self):
            raise IndexError(idx)
        start = idx * self.stride
        if self.random_shift:
            start += int(torch.randint(self.stride, ()).item())
            start = min(start, max(0, self.num_tokens - self.window))  # shifted windows stay full where possible
        end = min(start + self.window, self.num_tokens)
        if not self.static_masking:
            return {"input_ids": _long(self.files["tokens"][start:end]), "index": torch.tensor(idx)}
        tokens = _long(self.files["tokens"][start:end])
        targets = torch.from_numpy(np.asarray(self.files["targets"][start:end], dtype=bool))
        labels = torch.where(targets, tokens, IGNORE_INDEX)
        return {"input_ids": _long(self.files["masked"][start:end]), "labels": labels}


class DocumentDataset(Dataset):
    """One example per document with an integer label; documents longer than ``max_len`` are truncated."""

    def __init__(self, cache_dir: Path, split: str, dtype: str, max_len: int, random_shift: bool = False):
        self.files = _Memmaps(
            {
                "tokens": (cache_dir / f"{split}.tokens.bin", dtype),
                "offsets": (cache_dir / f"{split}.offsets.bin", "int64"),
                "labels": (cache_dir / f"{split}.labels.bin", "int64"),
            }
        )
        self.max_len = max_len
        self.random_shift = random_shift

    def __len__(self) -> int:
        return len(self.files["labels"])

    def __getitem__(self, idx: int) -> Item:
        start, end = (int(x) for x in self.files["offsets"][idx : idx + 2])
        if self.random_shift and end - start > self.max_len:
            start += int(torch.randint(end - start - self.max_len + 1, ()).item())
        end = min(end, start + self.max_len)
        label = torch.tensor(int(self.files["labels"][idx]))
        return {"input_ids": _long(self.files["tokens"][start:end]), "labels": label}


def _long(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.int64))


def pad(seqs: list[torch.Tensor], length: int, value: int, side: Literal["left", "right"]) -> torch.Tensor:
    """Pad 1-d tensors to (len(seqs), length) on ``side`` (NumPy: no intra-op threads for a memory copy)."""
    out = np.full((len(seqs), length), value, dtype=np.int64)
    for i, s in enumerate(seqs):
        s = s[:length].numpy()
        if side == "left":
            out[i, length - len(s) :] = s
        else:
            out[i, : len(s)] = s
    return torch.from_numpy(out)


class TextCollator:
    """Pad examples to ``max_seq_len`` and build labels for ``task`` (batch format in the module docstring).

    Args:
        task: "mlm", "clm" or "clf".
        max_seq_len: N, the padded length of ``input_ids``.
        pad_token_id: id used for padding.
        padding_side: "left" or "right".
        mask_fn: dynamic masking for mlm examples without labels: a ``WordMasker``.
        mask_seed: If set, each example is masked with a generator seeded by ``mask_seed`` and the example's
            index, so that it gets the same masks in every epoch (used for validation).
    """

    def __init__(
        self,
        task: Literal["mlm", "clm", "clf"],
        max_seq_len: int,
        pad_token_id: int,
        padding_side: Literal["left", "right"],
        mask_fn: WordMasker | None = None,
        mask_seed: int | None = None,
    ):
        self.task = task
        self.max_seq_len = max_seq_len
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.mask_fn = mask_fn
        self.mask_seed = mask_seed

    def __call__(self, items: list[Item]) -> dict[str, torch.Tensor]:
        n, side = self.max_seq_len, self.padding_side
        if self.task == "clm":
            inputs = [x["input_ids"][:-1] for x in items]
            labels = pad([x["input_ids"][1:] for x in items], n, IGNORE_INDEX, side)
        else:
            inputs = [x["input_ids"] for x in items]
        pad_mask = pad([torch.zeros(len(x), dtype=torch.long) for x in inputs], n, 1, side) == 1
        input_ids = pad(inputs, n, self.pad_token_id, side)
        if self.task == "clf":
            labels = torch.stack([x["labels"] for x in items])
        elif self.task == "mlm":
            if "labels" in items[0]:
                labels = pad([x["labels"] for x in items], n, IGNORE_INDEX, side)
            else:
                input_ids, labels = self._mask(input_ids, pad_mask, [x.get("index") for x in items])
        return {"input_ids": input_ids, "labels": labels, "pad_mask": pad_mask}

    def _mask(
        self, input_ids: torch.Tensor, pad_mask: torch.Tensor, indices: list
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.mask_fn is not None, "dynamic masking needs a mask_fn"
        if self.mask_seed is None:
            return self.mask_fn(input_ids, pad_mask)
        rows = []
        for i, idx in enumerate(indices):
            if idx is None:
                raise ValueError("fixed masking (mask_seed) needs examples with an 'index'")
            g = torch.Generator().manual_seed(self.mask_seed * 1_000_003 + int(idx))
            rows.append(self.mask_fn(input_ids[i : i + 1], pad_mask[i : i + 1], generator=g))
        return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])
