"""A non-byte (WordPiece) tokenizer from a local directory: multiprocess tokenization and whole-word masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from perceiver.data.text import WikipediaDataModule
from perceiver.data.text.masking import JOIN, NOT_MASKABLE, START, token_classes
from perceiver.data.text.sample import load_sample_articles

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def wordpiece_dir(tmp_path_factory):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=600, special_tokens=SPECIALS)
    tok.train_from_iterator([a["text"] for a in load_sample_articles()[:10]], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip
    path = tmp_path_factory.mktemp("wordpiece")
    fast.save_pretrained(path)
    return str(path)


def test_wordpiece_token_classes(wordpiece_dir):
    dm = WikipediaDataModule(source="sample", tokenizer=wordpiece_dir, max_seq_len=64)
    classes = token_classes(dm.tokenizer)
    vocab = dm.tokenizer.get_vocab()
    assert classes[vocab["[MASK]"]] == NOT_MASKABLE and classes[vocab["[PAD]"]] == NOT_MASKABLE
    continuation = next(t for t in vocab if t.startswith("##"))
    assert classes[vocab[continuation]] == JOIN and classes[vocab["the"]] == START
    assert dm.vocab_size == len(dm.tokenizer)


def test_wordpiece_preprocessing_and_masking(tmp_path, wordpiece_dir):
    dm = WikipediaDataModule(
        source="sample", dataset_dir=str(tmp_path), tokenizer=wordpiece_dir, max_seq_len=128, max_documents=4,
        preproc_workers=2, num_workers=0, batch_size=32,
    )  # fmt: skip
    dm.setup()
    assert dm.manifest["dtype"] == "uint16"
    docs = dm.load_source()["train"]["text"]
    expected = np.concatenate([dm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in docs])
    stored = np.fromfile(dm.cache_dir / "train.tokens.bin", dtype=np.uint16)
    assert np.array_equal(stored, expected)

    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    target = batch["labels"] != -100
    original = torch.where(target, batch["labels"], batch["input_ids"])
    tokens = dm.tokenizer.convert_ids_to_tokens(original.flatten().tolist())
    is_cont = torch.tensor([t.startswith("##") for t in tokens]).view_as(original)
    # a continuation piece is a target exactly when the piece before it is
    prev_target = torch.nn.functional.pad(target[:, :-1], (1, 0), value=False)
    assert torch.equal(target[:, 1:][is_cont[:, 1:]], prev_target[:, 1:][is_cont[:, 1:]])
    assert abs(float(target.float().mean()) - 0.15) < 0.03
