"""Whole-word masking statistics on real Wikipedia sample text, and static masking."""

from __future__ import annotations

import torch

from perceiver.data.text import WikipediaDataModule
from perceiver.data.text.masking import WHITESPACE_BYTES

MASK, IGNORE = 3, -100


def _batches(dm, n):
    torch.manual_seed(0)
    it = iter(dm.train_dataloader())
    return [next(it) for _ in range(n)]


def _words(ids: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) of runs of non-whitespace byte tokens in a row of original ids."""
    ws = {b + 6 for b in WHITESPACE_BYTES}
    spans, start = [], None
    for i, t in enumerate(ids.tolist() + [32 + 6]):
        if t in ws or t < 6:
            if start is not None:
                spans.append((start, i))
            start = None
        elif start is None:
            start = i
    return spans


def test_masking_statistics_on_sample_text(sample_mlm):
    batches = _batches(sample_mlm, 8)  # 8 x 32 x 512 tokens
    targets = masked = randomized = kept = tokens = 0
    for b in batches:
        t = b["labels"] != IGNORE
        tokens += int((~b["pad_mask"]).sum())
        targets += int(t.sum())
        masked += int((b["input_ids"][t] == MASK).sum())
        kept += int((b["input_ids"][t] == b["labels"][t]).sum())
        randomized += int(((b["input_ids"][t] != MASK) & (b["input_ids"][t] != b["labels"][t])).sum())
        assert not (t & b["pad_mask"]).any()
        assert (b["input_ids"][~t] != MASK).all()
    assert abs(targets / tokens - 0.15) < 0.02
    assert abs(masked / targets - 0.8) < 0.04
    assert abs(randomized / targets - 0.1) < 0.03
    assert abs(kept / targets - 0.1) < 0.03


def test_whole_words_are_masked_together(sample_mlm):
    b = _batches(sample_mlm, 1)[0]
    original = torch.where(b["labels"] != IGNORE, b["labels"], b["input_ids"])
    num_words = num_masked_words = 0
    for row in range(len(original)):
        target = (b["labels"][row] != IGNORE).tolist()
        for s, e in _words(original[row]):
            covered = target[s:e]
            assert all(covered) or not any(covered), bytes((original[row, s:e] - 6).tolist())
            num_words += 1
            num_masked_words += covered[0]
        ws = [i for i, t in enumerate(original[row].tolist()) if t - 6 in WHITESPACE_BYTES]
        assert not any(target[i] for i in ws)  # whitespace is never a target
    assert 0.05 < num_masked_words / num_words < 0.3


def test_token_masking_splits_words(sample_dir):
    dm = WikipediaDataModule(source="sample", dataset_dir=sample_dir, max_seq_len=512, mask_words=False, num_workers=0)
    dm.setup()
    b = _batches(dm, 1)[0]
    original = torch.where(b["labels"] != IGNORE, b["labels"], b["input_ids"])
    partial = 0
    for row in range(len(original)):
        target = (b["labels"][row] != IGNORE).tolist()
        partial += sum(any(target[s:e]) and not all(target[s:e]) for s, e in _words(original[row]))
    assert partial > 10
    assert abs(float((b["labels"] != IGNORE).float().mean()) - 0.15) < 0.02


def test_dynamic_masking_differs_between_epochs(sample_mlm):
    item = [sample_mlm.ds_train[0]] * 2
    a, b = sample_mlm.collator(item[:1]), sample_mlm.collator(item[1:])
    assert not torch.equal(a["labels"], b["labels"])


def test_static_masking_is_fixed_and_cached_separately(tmp_path, sample_mlm):
    kwargs = {
        "source": "sample",
        "dataset_dir": str(tmp_path),
        "max_seq_len": 512,
        "num_workers": 0,
        "max_documents": 20,
    }
    dm = WikipediaDataModule(static_masking=True, **kwargs)
    dm.setup()
    assert dm.cache_dir != WikipediaDataModule(**kwargs).cache_dir
    assert dm.cache_dir != WikipediaDataModule(static_masking=True, seed=1, **kwargs).cache_dir
    first = dm.collator([dm.ds_train[i] for i in range(128)])
    again = dm.collator([dm.ds_train[i] for i in range(128)])
    assert torch.equal(first["input_ids"], again["input_ids"]) and torch.equal(first["labels"], again["labels"])
    t = first["labels"] != IGNORE
    assert abs(float(t.float().mean()) - 0.15) < 0.02
    assert abs(float((first["input_ids"][t] == MASK).float().mean()) - 0.8) < 0.05
    # labels are the original text: same stream as the dynamically masked module
    original = torch.where(t, first["labels"], first["input_ids"])
    assert torch.equal(original[0][~t[0]], sample_mlm.ds_train[0]["input_ids"][~t[0]])


def test_validation_masks_are_fixed_across_epochs(sample_mlm):
    def first_batch(loader):
        return next(iter(loader))

    torch.manual_seed(0)
    a = first_batch(sample_mlm.val_dataloader())
    torch.manual_seed(1)
    b = first_batch(sample_mlm.val_dataloader())
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert abs(float((a["labels"] != IGNORE).float().mean()) - 0.15) < 0.03
    # different examples get different masks
    t = a["labels"] != IGNORE
    assert not torch.equal(t[0], t[1])
