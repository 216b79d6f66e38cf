"""ImdbDataModule: the movie-review sentences shipped with gensim (fixed split), local labelled sources (class
folders, CSV/JSONL/parquet, save_to_disk), class names, clear errors for bad sources, and the offline Hub."""

from __future__ import annotations

import json
import time
from collections import Counter

import datasets
import pandas as pd
import pytest

from perceiver.data.text import HubUnreachableError, ImdbDataModule
from perceiver.data.text.labelled import SAMPLE_FILE, LabelledSourceError, load_local, load_sample, sample_path


def module(source, tmp_path, **kwargs) -> ImdbDataModule:
    args = dict(dataset_dir=str(tmp_path / "cache"), max_seq_len=64, batch_size=4, num_workers=0)
    return ImdbDataModule(source=str(source), **{**args, **kwargs})


def labels_of(ds) -> list[int]:
    return [int(ds[i]["labels"]) for i in range(len(ds))]


# --- the sample ----------------------------------------------------------------------------------------------------


def test_sample_is_read_from_gensim_with_a_fixed_split():
    lines = sample_path().read_bytes().decode("cp1252").splitlines()
    assert str(sample_path()).endswith(SAMPLE_FILE) and len(lines) == 200
    dsd = load_sample()
    assert (len(dsd["train"]), len(dsd["validation"])) == (160, 40)
    assert Counter(dsd["train"]["label"]) == {0: 80, 1: 80} and Counter(dsd["validation"]["label"]) == {0: 20, 1: 20}
    # sentence i validates iff i % 5 == 4, labels follow the __label__ tags
    assert dsd["validation"]["text"][0] == lines[4].partition(" ")[2].strip()
    assert list(dsd["validation"]["label"]) == [int(lines[i].startswith("__label__pos")) for i in range(4, 200, 5)]
    assert "clichés" in " ".join(list(dsd["train"]["text"]) + list(dsd["validation"]["text"]))  # cp1252 decoded


def test_sample_module_batches(tmp_path):
    dm = module("sample", tmp_path, max_seq_len=128, batch_size=8)
    assert (dm.num_classes, dm.class_names) == (2, ["neg", "pos"])
    dm.setup()
    assert (len(dm.ds_train), len(dm.ds_valid)) == (160, 40)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (8, 128) and batch["labels"].shape == (8,)
    first = dm.ds_valid[0]["input_ids"]
    assert dm.tokenizer.decode(first) == load_sample()["validation"]["text"][0]
    renamed = module("sample", tmp_path, classes=["NEGATIVE", "POSITIVE"])
    assert renamed.class_names == ["NEGATIVE", "POSITIVE"] and renamed.cache_dir != dm.cache_dir


def test_sample_for_masked_language_modeling(tmp_path):
    dm = module("sample", tmp_path, task="mlm")
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["labels"].shape == batch["input_ids"].shape  # token targets, no class labels


# --- local sources ----------------------------------------------------------------------------------------------------


def write_class_folders(root, classes=("neg", "pos"), per_class=5):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            (root / c / f"{i}.txt").write_text(f"{c} review number {i}")


def test_class_folders_with_train_and_test_splits(tmp_path):
    """The layout of the original aclImdb archive: train/{neg,pos,unsup}, test/{neg,pos}."""
    src = tmp_path / "aclImdb"
    write_class_folders(src / "train", ("neg", "pos", "unsup"), per_class=4)
    write_class_folders(src / "test", ("neg", "pos"), per_class=3)
    dm = module(src, tmp_path, classes=["neg", "pos"])  # unsup (unlabelled) is skipped
    assert dm.num_classes == 2
    dm.setup()
    assert labels_of(dm.ds_train) == [0] * 4 + [1] * 4 and labels_of(dm.ds_valid) == [0] * 3 + [1] * 3
    assert dm.tokenizer.decode(dm.ds_valid[3]["input_ids"]) == "pos review number 0"
    assert module(src, tmp_path).class_names == ["neg", "pos", "unsup"]  # without classes: every folder


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_table_files_with_string_labels(tmp_path, suffix):
    frame = pd.DataFrame({"text": [f"text {i}" for i in range(20)], "label": ["b", "a", "c", "a"] * 5, "x": 1})
    path = tmp_path / f"data{suffix}"
    {".csv": lambda: frame.to_csv(path, index=False), ".jsonl": lambda: frame.to_json(path, orient="records",
                                                                                       lines=True),
     ".parquet": lambda: frame.to_parquet(path)}[suffix]()
    dm = module(path, tmp_path, valid_every=5)
    assert dm.class_names == ["a", "b", "c"]
    dm.setup()
    assert (len(dm.ds_train), len(dm.ds_valid)) == (16, 4)
    assert labels_of(dm.ds_valid) == [1, 0, 2, 0]  # rows 4, 9, 14, 19: labels b, a, c, a
    assert dm.tokenizer.decode(dm.ds_valid[0]["input_ids"]) == "text 4"


def test_integer_labels_index_class_names_and_saved_dataset(tmp_path):
    ds = datasets.Dataset.from_dict({"text": ["good", "bad", "great", "awful"], "label": [1, 0, 1, 0]})
    unlabelled = datasets.Dataset.from_dict({"text": ["meh"], "label": [-1]})  # as IMDb's "unsupervised" split
    saved = datasets.DatasetDict(train=ds, test=ds.select([0, 1]), unsupervised=unlabelled)
    saved.save_to_disk(str(tmp_path / "saved"))
    dsd, classes = load_local(str(tmp_path / "saved"), valid_every=10)
    assert classes == ["0", "1"] and list(dsd["validation"]["label"]) == [1, 0]
    dsd, classes = load_local(str(tmp_path / "saved"), valid_every=10, class_names=["neg", "pos"])
    assert classes == ["neg", "pos"] and list(dsd["train"]["label"]) == [1, 0, 1, 0]
    # a ClassLabel feature names the classes
    named = ds.cast_column("label", datasets.ClassLabel(names=["negative", "positive"]))
    named.save_to_disk(str(tmp_path / "named"))
    assert module(tmp_path / "named", tmp_path).class_names == ["negative", "positive"]


def test_local_source_changes_rebuild_the_cache(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "x"]}).to_csv(path, index=False)
    key = module(path, tmp_path).cache_dir
    pd.DataFrame({"text": ["a", "b", "c", "d"], "label": ["x", "y", "x", "y"]}).to_csv(path, index=False)
    assert module(path, tmp_path).cache_dir != key


# --- errors ----------------------------------------------------------------------------------------------------------


def test_bad_sources_name_the_file_and_the_fix(tmp_path):
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"review": ["a", "b"], "sentiment": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(LabelledSourceError, match=r"reviews\.csv: has no 'text' and no 'label' column.*rename"):
        module(path, tmp_path).class_names
    assert LabelledSourceError.__mro__[1] is ValueError

    pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}).to_csv(path, index=False)
    with pytest.raises(LabelledSourceError, match=r"reviews\.csv: has the label 'y'.*--data\.classes"):
        module(path, tmp_path, classes=["x", "z"]).setup()

    pd.DataFrame({"text": ["a", "b"], "label": ["x", "x"]}).to_csv(path, index=False)
    with pytest.raises(LabelledSourceError, match="at least 2 classes"):
        module(path, tmp_path).class_names

    pd.DataFrame({"text": ["a", "b"], "label": [0, 5]}).to_csv(path, index=False)
    with pytest.raises(LabelledSourceError, match=r"reviews\.csv: has the label 5.*--data\.classes"):
        module(path, tmp_path, classes=["neg", "pos"]).class_names

    (tmp_path / "mixed" / "pos").mkdir(parents=True)
    (tmp_path / "mixed" / "pos" / "a.txt").write_text("x")
    path.rename(tmp_path / "mixed" / "data.csv")
    with pytest.raises(LabelledSourceError, match="both table files.*class folders"):
        module(tmp_path / "mixed", tmp_path).class_names

    (tmp_path / "empty" / "neg").mkdir(parents=True)
    with pytest.raises(LabelledSourceError, match=r"neg: holds no \.txt files"):
        module(tmp_path / "empty", tmp_path).class_names

    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(LabelledSourceError, match=r"notes\.md: is not a \.csv/"):
        module(tmp_path / "notes.md", tmp_path).class_names
    with pytest.raises(FileNotFoundError, match="--data.source"):
        module(tmp_path / "missing", tmp_path).class_names
    with pytest.raises(ValueError, match="has 2 classes"):
        module("sample", tmp_path, classes=["a", "b", "c"])


def test_hub_offline_fails_fast_with_the_offline_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    dm = module("hub", tmp_path)
    assert dm.class_names == ["neg", "pos"]  # known without loading anything
    start = time.monotonic()
    with pytest.raises(HubUnreachableError, match=r"IMDb \(stanfordnlp/imdb\).*--data\.source=sample is the 200"):
        dm.setup()
    assert time.monotonic() - start < 5
    assert json.dumps(dm.hub_identity())  # the cache key of the hub source is plain data
