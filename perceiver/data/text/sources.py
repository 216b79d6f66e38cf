"""Raw text sources: the Hugging Face Hub, the Wikipedia sample shipped with gensim, and local directories.

Every loader returns a ``datasets.DatasetDict`` with the splits ``train`` and ``validation`` and a ``text`` column
(plus an integer ``label`` column for classification). Sources without a validation split are split by document
index: every ``valid_every``-th document (indices ``valid_every - 1``, ``2 * valid_every - 1``, ...) goes to
validation. A source with a single document is split at a line boundary near 90% of its text.

Source identities (``*_identity``) are small JSON-able dicts that enter the cache key of preprocessed data.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import datasets
import datasets.config
from datasets import Dataset, DatasetDict
from perceiver.hub import hub_endpoint, offline_by_env

logger = logging.getLogger(__name__)

HUB_PROBE_TIMEOUT_S = 3.0
VALID_DIR_NAMES = ("validation", "valid", "val")

OFFLINE_HINT = (
    "Use the Wikipedia sample shipped with gensim (--data.source=sample) or a local directory of .txt/.parquet "
    "files or a dataset saved with datasets.save_to_disk (--data.source=/path/to/dir)."
)


class HubUnreachableError(ConnectionError):
    """The Hugging Face Hub cannot be reached (offline mode or no network)."""


# ---------------------------------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------------------------------


def is_valid_index(i: int, valid_every: int) -> bool:
    return i % valid_every == valid_every - 1


def split_dataset(ds: Dataset, valid_every: int) -> DatasetDict:
    """Split ``ds`` by document index (see module docstring)."""
    n = len(ds)
    if n == 1:
        text = ds[0]["text"]
        cut = text.rfind("\n", 0, int(len(text) * 0.9)) + 1 or int(len(text) * 0.9)
        row = {k: v for k, v in ds[0].items() if k != "text"}
        train = Dataset.from_list([{**row, "text": text[:cut]}])
        valid = Dataset.from_list([{**row, "text": text[cut:]}])
        return DatasetDict(train=train, validation=valid)
    valid_idx = [i for i in range(n) if is_valid_index(i, valid_every)] or [n - 1]
    valid_set = set(valid_idx)
    train_idx = [i for i in range(n) if i not in valid_set]
    return DatasetDict(train=ds.select(train_idx), validation=ds.select(valid_idx))


def load_sample(valid_every: int) -> DatasetDict:
    """The gensim Wikipedia sample (see ``perceiver.data.text.sample``), split by article index."""
    from perceiver.data.text.sample import load_sample_articles  # here: keeps this module free of package imports

    return split_dataset(Dataset.from_list(list(load_sample_articles())), valid_every)


def limit_documents(dsd: DatasetDict, max_documents: int | None) -> DatasetDict:
    if max_documents is None:
        return dsd
    return DatasetDict({k: v.select(range(min(len(v), max_documents))) for k, v in dsd.items()})


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face Hub
# ---------------------------------------------------------------------------------------------------------------


def hub_offline() -> bool:
    return offline_by_env() is not None


def check_hub_reachable(path: str, revision: str | None = None, timeout: float = HUB_PROBE_TIMEOUT_S) -> None:
    """Raise ``HubUnreachableError`` unless the Hub answers for dataset ``path`` within about ``timeout`` seconds.

    The probe is the request ``datasets`` starts with (``HEAD .../resolve/<revision>/README.md``). A 2xx/3xx answer,
    or 401/403 (gated: left to ``datasets`` to report), counts as reachable. Anything else, e.g. a connection error,
    a timeout or a proxy's error page, does not.
    """
    url = f"{hub_endpoint().rstrip('/')}/datasets/{path}/resolve/{revision or 'main'}/README.md"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in (401, 403):
            return
        problem = f"HTTP {e.code} from {url}"
    except (OSError, ValueError) as e:  # URLError, socket timeout, bad URL
        problem = f"{url}: {getattr(e, 'reason', e)}"
    raise HubUnreachableError(f"the Hugging Face Hub is unreachable ({problem}). {OFFLINE_HINT}")


def load_hub(path: str, name: str | None, revision: str | None, **kwargs: Any) -> DatasetDict:
    """``datasets.load_dataset`` that fails fast when the Hub is offline or unreachable.

    When ``datasets`` runs in offline mode (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` set before it was imported),
    it fails immediately unless the dataset is in its local cache, so it is called without a probe. Offline
    variables set after ``datasets`` was imported are not seen by it, so then we fail right away.
    """
    if hub_offline():
        if not datasets.config.HF_HUB_OFFLINE:
            raise HubUnreachableError(
                f"the Hugging Face Hub is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE). {OFFLINE_HINT}"
            )
    else:
        check_hub_reachable(path, revision)
    try:
        return datasets.load_dataset(path, name, revision=revision, **kwargs)
    except ConnectionError as e:
        raise HubUnreachableError(f"cannot load {path!r} ({name}) from the Hugging Face Hub: {e}. {OFFLINE_HINT}")


def hub_identity(path: str, name: str | None, revision: str | None) -> dict[str, Any]:
    return {"source": "hub", "path": path, "name": name, "revision": revision or "main"}


# ---------------------------------------------------------------------------------------------------------------
# Local directories
# ---------------------------------------------------------------------------------------------------------------

TEXT_SUFFIXES = (".txt", ".parquet")
IDENTITY_SUFFIXES = (*TEXT_SUFFIXES, ".arrow", ".json")  # what load_local may read


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _list_files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(TEXT_SUFFIXES))
    return found


def local_identity(path: str, exclude: str | None = None) -> dict[str, Any]:
    """Identity of a local source: relative path, size and modification time of every file it may read.

    ``exclude`` (the cache directory, if it lies inside the source) is skipped.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"data source path does not exist: {root} (--data.source)")
    if not root.is_dir():
        raise NotADirectoryError(f"data source must be a directory of .txt/.parquet files or a saved dataset: {root}")
    h = hashlib.sha256()
    skip = Path(exclude).resolve() if exclude else None
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if (Path(dirpath) / d).resolve() != skip)
        for f in sorted(filenames):
            if not f.endswith(IDENTITY_SUFFIXES):
                continue
            p = Path(dirpath) / f
            try:
                st = p.stat()
                h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{p.relative_to(root)}|unreadable\n".encode())
    return {"source": "local", "path": str(root.resolve()), "files": h.hexdigest()}


def read_text_file(path: Path) -> str:
    """Read a text file as UTF-8; undecodable bytes become U+FFFD, one per byte, and are logged."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise OSError(f"cannot read text file {path}: {e}") from e
    text = data.decode("utf-8", errors="surrogateescape")
    num_bad = sum(1 for c in text if "\udc80" <= c <= "\udcff")
    if num_bad:
        logger.warning("%s: %d byte(s) are not valid UTF-8 and were replaced by U+FFFD", path, num_bad)
        text = re.sub("[\udc80-\udcff]", "\ufffd", text)
    return text


def _read_parquet(path: Path, with_label: bool) -> Dataset:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:
        raise OSError(f"cannot read parquet file {path}: {e}") from e
    columns = ["text", "label"] if with_label else ["text"]
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"parquet file {path} has no {missing} column(s); columns are {table.column_names}")
    return Dataset(table.select(columns))


def _read_files(files: list[Path], root: Path, with_label: bool) -> Dataset:
    """Documents from ``files``: one per .txt file (label: parent directory name), one per parquet row."""
    parts, texts, labels = [], [], []
    for f in files:
        if f.suffix == ".parquet":
            parts.append(_read_parquet(f, with_label))
        else:
            texts.append(read_text_file(f))
            labels.append(f.parent.name)
    if texts:
        rows: dict[str, list] = {"text": texts}
        if with_label:
            classes = sorted(set(labels))
            logger.info("class labels from directory names under %s: %s", root, classes)
            rows["label"] = [classes.index(c) for c in labels]
        parts.append(Dataset.from_dict(rows))
    if not parts:
        raise ValueError(f"no .txt or .parquet files found in {root}")
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def load_local(path: str, valid_every: int, with_label: bool = False) -> DatasetDict:
    """Load a directory: a saved dataset, ``train/`` + ``validation/`` subdirectories, or files split by index."""
    root = Path(path)
    local_identity(path)  # existence checks
    if _is_saved_dataset(root):
        loaded = datasets.load_from_disk(str(root))
        if isinstance(loaded, Dataset):
            return split_dataset(loaded, valid_every)
        valid_key = next((k for k in (*VALID_DIR_NAMES, "test") if k in loaded), None)
        if "train" not in loaded or valid_key is None:
            if len(loaded) != 1:
                raise ValueError(f"saved dataset {root} needs a 'train' and a 'validation' split, has {list(loaded)}")
            return split_dataset(next(iter(loaded.values())), valid_every)
        return DatasetDict(train=loaded["train"], validation=loaded[valid_key])
    valid_dir = next((root / d for d in VALID_DIR_NAMES if (root / d).is_dir()), None)
    if (root / "train").is_dir() and valid_dir is not None:
        train = _read_files(_list_files(root / "train"), root / "train", with_label)
        valid = _read_files(_list_files(valid_dir), valid_dir, with_label)
        return DatasetDict(train=train, validation=valid)
    return split_dataset(_read_files(_list_files(root), root, with_label), valid_every)
