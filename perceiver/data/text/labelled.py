"""Labelled text for classification: the 200 movie-review sentences shipped with gensim, and local sources.

Every loader returns a ``datasets.DatasetDict`` with the splits ``train`` and ``validation``, a ``text`` column and
an integer ``label`` column, and the class names in label order.

The sample is ``gensim/test/test_data/pang_lee_polarity.cor`` of the installed gensim (read there, never copied):
100 negative, then 100 positive sentences of the sentence polarity data of Pang and Lee (2005), one per line as
``__label__neg <text>`` / ``__label__pos <text>`` (cp1252). Its split is fixed: sentence ``i`` (0-based line
number) is a validation sentence if ``i % 5 == 4``, so 160 sentences train and 40 (20 of each class) validate.

Local sources (a path):

- a ``.csv``, ``.jsonl``/``.json`` (JSON lines) or ``.parquet`` file with a ``text`` and a ``label`` column;
- a directory of such files, or with one folder per class holding ``.txt`` files (``<dir>/<class>/*.txt``; the
  folder name is the class);
- a dataset saved with ``datasets.save_to_disk`` (``text`` and ``label`` columns);
- a directory with ``train/`` and ``validation/`` (or ``valid/``, ``val/``, ``test/``) subdirectories of either
  layout keeps that split; otherwise every ``valid_every``-th example validates (``sources.split_dataset``).

Labels are class names (strings: the sorted distinct names are the classes) or class indices (integers ``0..K-1``).
``classes`` fixes the classes and their order: rows of other classes are an error, folders of others are skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import datasets
import numpy as np
from datasets import Dataset, DatasetDict

from perceiver.data.text.sources import VALID_DIR_NAMES, read_text_file, split_dataset

logger = logging.getLogger(__name__)

SAMPLE_FILE = "test/test_data/pang_lee_polarity.cor"
SAMPLE_CLASSES = ["neg", "pos"]  # also the class names (and label order) of IMDb on the Hub
SAMPLE_VALID_EVERY = 5
SAMPLE_FORMAT = 1  # bump when the parsing or the split below changes: it is part of the cache key
TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")
Part = tuple[Path, list[str], list]  # (file or class folder, texts, raw labels)
LAYOUT_HELP = (
    "Expected a .csv/.jsonl/.parquet file (or a directory of them) with 'text' and 'label' columns, one folder per "
    "class holding .txt files (<dir>/<class name>/*.txt), or a dataset saved with datasets.save_to_disk"
)


class LabelledSourceError(ValueError):
    """A classification source cannot be read; ``path`` is the offending file or directory."""

    def __init__(self, path: str | Path, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)


# ---------------------------------------------------------------------------------------------------------------
# The sample shipped with gensim
# ---------------------------------------------------------------------------------------------------------------


def sample_path() -> Path:
    """Path of ``pang_lee_polarity.cor`` inside the installed gensim package."""
    import gensim

    path = Path(gensim.__file__).parent / SAMPLE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"movie-review sample not found at {path}; reinstall gensim (pip install gensim>=4.3)")
    return path


def sample_identity() -> dict[str, Any]:
    return {"source": "sample", "file": SAMPLE_FILE, "bytes": sample_path().stat().st_size, "format": SAMPLE_FORMAT}


def load_sample() -> DatasetDict:
    """The 200 sentences with labels 0 (neg) and 1 (pos), split as the module docstring says."""
    path = sample_path()
    rows = []
    for i, line in enumerate(path.read_bytes().decode("cp1252").splitlines()):
        tag, _, text = line.partition(" ")
        name = tag.removeprefix("__label__")
        if name not in SAMPLE_CLASSES:
            raise LabelledSourceError(path, f"line {i + 1} starts with {tag!r}, expected __label__neg or __label__pos")
        rows.append({"text": text.strip(), "label": SAMPLE_CLASSES.index(name)})
    valid = [i % SAMPLE_VALID_EVERY == SAMPLE_VALID_EVERY - 1 for i in range(len(rows))]
    return DatasetDict(
        train=Dataset.from_list([r for r, v in zip(rows, valid) if not v]),
        validation=Dataset.from_list([r for r, v in zip(rows, valid) if v]),
    )


# ---------------------------------------------------------------------------------------------------------------
# Local sources: raw rows (text, raw label), then labels mapped to class indices
# ---------------------------------------------------------------------------------------------------------------


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _read_table(path: Path) -> tuple[list[str], list]:
    import pandas as pd

    readers = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True),
               ".json": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}
    try:
        frame = readers[path.suffix](path)
    except Exception as e:
        raise LabelledSourceError(path, f"cannot be read as {path.suffix[1:]} ({e})") from e
    missing = [c for c in ("text", "label") if c not in frame.columns]
    if missing:
        raise LabelledSourceError(
            path, f"has no {' and no '.join(repr(c) for c in missing)} column (columns: {list(frame.columns)}); "
                  f"classification needs a 'text' and a 'label' column: rename them, or use one folder per class")
    if frame["label"].isna().any():
        rows = [int(i) + 1 for i in frame.index[frame["label"].isna()][:5]]
        raise LabelledSourceError(path, f"has rows without a label (e.g. data rows {rows}); label or remove them")
    texts = ["" if t is None or t != t else str(t) for t in frame["text"].tolist()]  # NaN: an empty (skipped) text
    return texts, frame["label"].tolist()


def _class_folders(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _read_rows(root: Path) -> list[Part]:
    """(file or folder, texts, raw labels) of one split: a table file, a directory of tables or of class folders."""
    if root.is_file():
        if root.suffix not in TABLE_SUFFIXES:
            raise LabelledSourceError(root, f"is not a {'/'.join(TABLE_SUFFIXES)} file. {LAYOUT_HELP}")
        return [(root, *_read_table(root))]
    tables = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in TABLE_SUFFIXES)
    folders = _class_folders(root)
    if tables and folders:
        raise LabelledSourceError(root, f"holds both table files ({tables[0].name}, ...) and class folders "
                                        f"({folders[0].name}/, ...); keep one layout. {LAYOUT_HELP}")
    if tables:
        return [(t, *_read_table(t)) for t in tables]
    parts = []
    for folder in folders:
        files = sorted(p for p in folder.rglob("*.txt") if not any(s.startswith(".") for s in p.parts))
        if not files:
            raise LabelledSourceError(folder, f"holds no .txt files. {LAYOUT_HELP}")
        parts.append((folder, [read_text_file(f) for f in files], [folder.name] * len(files)))
    if not parts:
        raise LabelledSourceError(root, f"holds no class folders and no table files. {LAYOUT_HELP}")
    return parts


def _read_saved(root: Path) -> tuple[dict[str, list[Part]], Optional[list[str]]]:
    """The splits of a saved dataset, and the names of its ``ClassLabel`` label feature, if it has one."""
    loaded = datasets.load_from_disk(str(root))
    dsd = loaded if isinstance(loaded, DatasetDict) else DatasetDict(train=loaded)
    valid = next((k for k in (*VALID_DIR_NAMES, "test") if k in dsd), None)
    if "train" in dsd and valid is not None:  # other splits (e.g. IMDb's unlabelled "unsupervised") are left out
        dsd = DatasetDict(train=dsd["train"], validation=dsd[valid])
    elif len(dsd) == 1:
        dsd = DatasetDict(train=next(iter(dsd.values())))
    else:
        raise LabelledSourceError(root, f"needs a 'train' and a 'validation' (or 'test') split, or one split; "
                                        f"has {list(dsd)}")
    out, names = {}, None
    for split, ds in dsd.items():
        missing = [c for c in ("text", "label") if c not in ds.column_names]
        if missing:
            raise LabelledSourceError(root, f"split {split!r} has no {missing} column(s) (columns: {ds.column_names}); "
                                            f"classification needs 'text' and 'label' columns")
        feature = ds.features["label"]
        if isinstance(feature, datasets.ClassLabel):
            names = list(feature.names)
        out[split] = [(root, ["" if t is None else t for t in ds["text"]], list(ds["label"]))]
    return out, names


def _read_splits(root: Path) -> tuple[dict[str, list[Part]], Optional[list[str]]]:
    if not root.exists():
        raise FileNotFoundError(f"data source path does not exist: {root} (--data.source)")
    if root.is_dir() and _is_saved_dataset(root):
        return _read_saved(root)
    valid_dir = next((root / d for d in (*VALID_DIR_NAMES, "test") if (root / d).is_dir()), None)
    if root.is_dir() and (root / "train").is_dir() and valid_dir is not None:
        return {"train": _read_rows(root / "train"), "validation": _read_rows(valid_dir)}, None
    return {"train": _read_rows(root)}, None


def _is_index(x) -> bool:
    return isinstance(x, (int, np.integer)) or (isinstance(x, float) and x.is_integer())


def _classes(parts: list[Part], class_names: Optional[Sequence[str]], names_hint: Optional[list[str]],
             source: str) -> tuple[list[str], bool]:
    """(class names, whether labels are class indices) of all rows of a source."""
    labels = [x for _, _, raw in parts for x in raw]
    by_index = bool(labels) and all(_is_index(x) for x in labels)
    if by_index:
        low, high = min(int(x) for x in labels), max(int(x) for x in labels)
        names = [str(n) for n in class_names] if class_names is not None else names_hint or [
            str(i) for i in range(high + 1)]
        if low < 0 or high >= len(names):
            bad = low if low < 0 else high
            path = next(p for p, _, raw in parts if bad in (int(x) for x in raw))
            raise LabelledSourceError(path, f"has the label {bad}, but integer labels are class indices "
                                            f"0..{len(names) - 1} (classes: {names}); fix it or --data.classes")
    else:
        names = [str(n) for n in class_names] if class_names is not None else sorted({str(x) for x in labels})
    if len(names) < 2:
        raise LabelledSourceError(source, f"classification needs at least 2 classes, found {names}")
    return names, by_index


def _to_dataset(parts: list[Part], classes: list[str], by_index: bool) -> Dataset:
    index = {name: i for i, name in enumerate(classes)}
    texts, labels = [], []
    for path, part_texts, raw in parts:
        if path.is_dir() and raw and isinstance(raw[0], str) and raw[0] == path.name and path.name not in index:
            logger.info("skipping class folder %s: not one of the classes %s", path, classes)
            continue
        for text, label in zip(part_texts, raw):
            if not by_index and str(label) not in index:
                raise LabelledSourceError(path, f"has the label {label!r}, which is not one of the classes {classes}; "
                                                f"add it to --data.classes or remove those examples")
            texts.append(text)
            labels.append(int(label) if by_index else index[str(label)])
    return Dataset.from_dict({"text": texts, "label": labels})


def local_class_names(path: str, class_names: Optional[Sequence[str]] = None) -> list[str]:
    """The classes of a local source: ``class_names`` if given (checked against the labels), else inferred."""
    splits, hint = _read_splits(Path(path))
    return _classes([p for parts in splits.values() for p in parts], class_names, hint, path)[0]


def load_local(
    path: str, valid_every: int, class_names: Optional[Sequence[str]] = None
) -> tuple[DatasetDict, list[str]]:
    """The labelled splits of a local source and its class names (see the module docstring)."""
    splits, hint = _read_splits(Path(path))
    classes, by_index = _classes([p for parts in splits.values() for p in parts], class_names, hint, path)
    data = {split: _to_dataset(parts, classes, by_index) for split, parts in splits.items()}
    if list(data) == ["train"]:
        return split_dataset(data["train"], valid_every), classes
    valid = next((data[k] for k in (*VALID_DIR_NAMES, "test") if k in data), None)
    if "train" not in data or valid is None:
        raise LabelledSourceError(path, f"needs a 'train' and a 'validation' split, has {list(data)}")
    return DatasetDict(train=data["train"], validation=valid), classes


def local_identity(path: str) -> dict[str, Any]:
    """Relative path, size and modification time of every file a local source may read (the cache key)."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"data source path does not exist: {root} (--data.source)")
    files = [root] if root.is_file() else sorted(
        Path(d) / f for d, _, fs in os.walk(root) for f in fs if not f.startswith(".")
    )
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root) if p != root else p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return {"source": "local", "path": str(root.resolve()), "files": h.hexdigest()}
