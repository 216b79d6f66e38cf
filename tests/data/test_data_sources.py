"""Text sources: the gensim Wikipedia sample, local directories, the byte tokenizer fast path."""

from __future__ import annotations

import logging
import os

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perceiver.data.text import TextFilesDataModule, WikiTextDataModule
from perceiver.data.text.preprocess import DocumentEncoder
from perceiver.data.text.sample import load_sample_articles
from perceiver.data.text.sources import SourceError, load_local, load_sample, read_text_file
from perceiver.model.text.tokenizer import load_tokenizer


def test_sample_has_106_clean_articles():
    articles = load_sample_articles()
    assert len(articles) == 106
    assert articles[0]["title"] == "Anarchism"
    assert articles[0]["text"].startswith("Anarchism\n\nAnarchism is a political philosophy")
    for a in articles:
        for markup in ("[[", "]]", "{{", "'''", "<ref", "==="):
            assert markup not in a["text"], (a["title"], markup)
    assert "\n\n" in articles[0]["text"]  # paragraphs survive
    assert sum(len(a["text"]) for a in articles) > 2_500_000


def test_sample_split_is_deterministic_by_article_index():
    articles = load_sample_articles()
    dsd = load_sample(valid_every=10)
    assert (len(dsd["train"]), len(dsd["validation"])) == (96, 10)
    assert dsd["validation"]["title"] == [articles[i]["title"] for i in range(9, 106, 10)]
    assert dsd["train"]["title"][:9] == [a["title"] for a in articles[:9]]
    assert load_sample(valid_every=10)["validation"]["title"] == dsd["validation"]["title"]


@pytest.mark.parametrize("add_special_tokens", [False, True])
def test_byte_fast_path_equals_perceiver_tokenizer(add_special_tokens):
    tokenizer = load_tokenizer("deepmind/language-perceiver")
    texts = ["Hello, world!", "naïve café — 日本語 🙂\n\ttabs", "", load_sample_articles()[3]["text"][:3000]]
    fast = DocumentEncoder(tokenizer, add_special_tokens, add_eos_token=False).encode_ids(texts)
    for text, ids in zip(texts, fast):
        expected = tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        assert ids.tolist() == expected
        n, k = len(text.encode("utf-8")), int(add_special_tokens)
        assert ids.tolist()[k : k + n] == [b + 6 for b in text.encode("utf-8")]


def test_eos_token_appended_per_document():
    tokenizer = load_tokenizer("deepmind/language-perceiver")
    ids = DocumentEncoder(tokenizer, add_special_tokens=False, add_eos_token=True).encode_ids(["ab", "c"])
    assert [x.tolist() for x in ids] == [[103, 104, 2], [105, 2]]


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_txt_directory(tmp_path):
    for i in range(12):
        _write(tmp_path / "corpus" / f"doc{i:02d}.txt", f"document number {i}\n".encode())
    dsd = load_local(str(tmp_path / "corpus"), valid_every=10)
    assert dsd["validation"]["text"] == ["document number 9\n"]
    assert len(dsd["train"]) == 11

    dm = TextFilesDataModule(source=str(tmp_path / "corpus"), dataset_dir=str(tmp_path / "d"), max_seq_len=8)
    dm.setup()
    assert dm.manifest["splits"]["validation"] == {"num_tokens": len("document number 9\n"), "num_documents": 1}
    first = dm.ds_train[0]["input_ids"]
    assert bytes((first - 6).tolist()) == b"document"


def test_train_validation_subdirectories_keep_their_split(tmp_path):
    _write(tmp_path / "train" / "a.txt", b"train text")
    _write(tmp_path / "train" / "nested" / "b.txt", b"more train text")
    _write(tmp_path / "validation" / "c.txt", b"valid text")
    dsd = load_local(str(tmp_path), valid_every=10)
    assert dsd["train"]["text"] == ["train text", "more train text"]
    assert dsd["validation"]["text"] == ["valid text"]


def test_single_file_is_split_at_a_line(tmp_path):
    _write(tmp_path / "one.txt", "".join(f"line {i}\n" for i in range(100)).encode())
    dsd = load_local(str(tmp_path), valid_every=10)
    assert dsd["train"][0]["text"].endswith("\n") and dsd["validation"][0]["text"].startswith("line ")
    assert dsd["train"][0]["text"] + dsd["validation"][0]["text"] == (tmp_path / "one.txt").read_text()


def test_parquet_directory(tmp_path):
    rows = [f"parquet row {i}" for i in range(20)]
    pq.write_table(pa.table({"text": rows[:10], "other": list(range(10))}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"text": rows[10:]}), tmp_path / "b.parquet")
    dsd = load_local(str(tmp_path), valid_every=10)
    assert dsd["validation"]["text"] == ["parquet row 9", "parquet row 19"]
    dm = TextFilesDataModule(source=str(tmp_path), dataset_dir=str(tmp_path / "d"), max_seq_len=16, task="clm")
    dm.setup()
    assert dm.manifest["splits"]["train"]["num_documents"] == 18


def test_parquet_without_text_column(tmp_path):
    pq.write_table(pa.table({"content": ["x"]}), tmp_path / "bad.parquet")
    with pytest.raises(SourceError, match=r"bad\.parquet: has no \['text'\] column"):
        load_local(str(tmp_path), valid_every=10)


def test_saved_dataset_directory(tmp_path):
    dsd = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"text": ["a b c", "d e f"]}),
        validation=datasets.Dataset.from_dict({"text": ["g h"]}),
        test=datasets.Dataset.from_dict({"text": ["unused"]}),
    )
    dsd.save_to_disk(str(tmp_path / "saved"))
    dm = WikiTextDataModule(source=str(tmp_path / "saved"), dataset_dir=str(tmp_path / "d"), max_seq_len=4)
    dm.setup()
    assert dm.manifest["splits"]["train"] == {"num_tokens": 10, "num_documents": 2}
    assert dm.manifest["splits"]["validation"] == {"num_tokens": 3, "num_documents": 1}


def test_non_utf8_bytes_are_refused_or_replaced_and_counted(tmp_path, caplog):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café naïve ok".encode("latin-1"))
    first_bad = r"latin1.txt: is not valid UTF-8 \(2 undecodable byte\(s\), the first at byte offset 3\)"
    with pytest.raises(SourceError, match=first_bad):
        read_text_file(path)
    with caplog.at_level(logging.WARNING):
        text = read_text_file(path, errors="replace")
    assert text == "caf\ufffd na\ufffdve ok"
    assert "latin1.txt: 2 byte(s) are not valid UTF-8" in caplog.text


def test_empty_directory_error(tmp_path):
    (tmp_path / "empty").mkdir()
    dm = TextFilesDataModule(source=str(tmp_path / "empty"), dataset_dir=str(tmp_path / "d"), max_seq_len=8)
    with pytest.raises(SourceError, match="empty: holds no .txt or .parquet files"):
        dm.setup()


def test_whitespace_only_corpus_error(tmp_path):
    for i in range(3):
        _write(tmp_path / "c" / f"{i}.txt", b" \n\t\n")
    dm = TextFilesDataModule(source=str(tmp_path / "c"), dataset_dir=str(tmp_path / "d"), max_seq_len=8)
    with pytest.raises(ValueError, match="train split of TextFilesDataModule source .* has no non-empty documents"):
        dm.setup()
    assert not list((tmp_path / "d" / "preproc").iterdir())  # no partial cache left behind


def test_missing_path_and_unreadable_file(tmp_path):
    dm = TextFilesDataModule(source=str(tmp_path / "nope"), dataset_dir=str(tmp_path / "d"), max_seq_len=8)
    with pytest.raises(FileNotFoundError, match="data source path does not exist: .*nope"):
        dm.setup()
    _write(tmp_path / "c" / "good.txt", b"fine")
    os.symlink(tmp_path / "gone.txt", tmp_path / "c" / "broken.txt")
    with pytest.raises(OSError, match="cannot read text file .*broken.txt"):
        load_local(str(tmp_path / "c"), valid_every=10)


def test_textfiles_requires_a_path():
    with pytest.raises(ValueError, match="--data.source=/path/to/dir"):
        TextFilesDataModule(source="hub")


def test_clf_labels_from_directory_names(tmp_path):
    for split in ("train", "validation"):
        for label in ("neg", "pos"):
            for i in range(3):
                _write(tmp_path / split / label / f"{i}.txt", f"{label} review {i} ".encode() * 10)
    dm = TextFilesDataModule(source=str(tmp_path), dataset_dir=str(tmp_path / "d"), max_seq_len=32, task="clf")
    dm.setup()
    assert dm.num_classes == 2 and len(dm.ds_train) == 6
    batch = next(iter(dm.train_dataloader()))
    assert batch["labels"].shape == (6,) and batch["input_ids"].shape == (6, 32)
    for ids, label in zip(batch["input_ids"], batch["labels"]):
        assert bytes((ids[:3] - 6).tolist()) == [b"neg", b"pos"][label]
    assert np.all(batch["pad_mask"].numpy() == False)


def test_check_source_before_reading_anything(tmp_path, monkeypatch):
    """``check_source`` (what the workbench form calls while you type) names the field and says what to give."""
    from perceiver.model.core.config import ConfigError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for source in ("sample", "hub", str(tmp_path)):
        WikiTextDataModule(source=source, task="clm").check_source()
    _write(tmp_path / "file.txt", b"text")
    for source, message in ((str(tmp_path / "nope"), "does not exist"), (str(tmp_path / "file.txt"), "not a directory")):
        with pytest.raises(ConfigError, match=message) as e:
            TextFilesDataModule(source=source).check_source()
        assert e.value.field == "source"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE=1 is set; use 'sample'") as e:
        WikiTextDataModule(source="hub", task="clm").check_source()
    assert e.value.field == "source"
