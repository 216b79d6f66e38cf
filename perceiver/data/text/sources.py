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
    offline = f"the Hugging Face Hub is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE). {OFFLINE_HINT}"
    if hub_offline():
        if not datasets.config.HF_HUB_OFFLINE:
            raise HubUnreachableError(offline)
    else:
        check_hub_reachable(path, revision)
    try:
        return datasets.load_dataset(path, name, revision=revision, **kwargs)
    except ConnectionError as e:
        if hub_offline():  # offline and not in the local datasets cache: the same message, whenever datasets was imported
            raise HubUnreachableError(offline) from None
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
        raise FileNotFoundError(f"data source path does not exist: {root} (--data.source): check the path, or pass "
                                f"--data.source=sample for the offline Wikipedia sample")
    if not root.is_dir():
        raise NotADirectoryError(f"data source {root} is a file: pass its directory (--data.source=<dir> reads every "
                                 f".txt/.parquet file in it) or a dataset saved with datasets.save_to_disk")
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


class SourceError(ValueError):
    """A source file that cannot be used as text; ``path`` names it, the message says what to do."""

    def __init__(self, path: Path | str, message: str):
        super().__init__(f"{path}: {message}")
        self.path, self.message = str(path), message

    def __reduce__(self):
        return SourceError, (self.path, self.message)


ENCODING_ERRORS = ("strict", "replace")


def read_text_file(path: Path, errors: str = "strict") -> str:
    """Read a text file as UTF-8. A file with NUL bytes is binary and refused. Bytes that are not UTF-8 are refused
    (``errors="strict"``) or become U+FFFD, one per byte, and are counted in a warning (``errors="replace"``)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise OSError(f"cannot read text file {path}: {e}. Fix it (permissions? a dangling link?) or remove it "
                      f"from the source directory") from e
    nul = data.find(b"\0")
    if nul >= 0:
        raise SourceError(path, f"is binary, not text (a NUL byte at offset {nul}): remove it from the source "
                                f"directory (only .txt files of UTF-8 text and .parquet files are read)")
    text = data.decode("utf-8", errors="surrogateescape")
    bad = [i for i, c in enumerate(text) if "\udc80" <= c <= "\udcff"]
    if bad:
        if errors != "replace":
            offset = len(text[: bad[0]].encode("utf-8", errors="surrogateescape"))
            raise SourceError(
                path, f"is not valid UTF-8 ({len(bad)} undecodable byte(s), the first at byte offset {offset}): "
                      f"convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8), or pass --data.encoding_errors=replace "
                      f"to replace such bytes by U+FFFD")
        logger.warning("%s: %d byte(s) are not valid UTF-8 and were replaced by U+FFFD", path, len(bad))
        text = re.sub("[\udc80-\udcff]", "\ufffd", text)
    return text


def _read_parquet(path: Path, with_label: bool) -> Dataset:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:
        raise SourceError(path, f"cannot be read as parquet ({e}): replace it with an intact copy or remove it") from e
    columns = ["text", "label"] if with_label else ["text"]
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        todo = {"text": "name the text column 'text'",
                "label": "add the class of each row as an integer 'label' column"}
        raise SourceError(path, f"has no {missing} column(s); its columns are {table.column_names}: "
                                + " and ".join(todo[c] for c in missing))
    return Dataset(table.select(columns))


def _read_files(files: list[Path], root: Path, with_label: bool, errors: str = "strict") -> Dataset:
    """Documents from ``files``: one per .txt file (label: parent directory name), one per parquet row."""
    parts, texts, labels = [], [], []
    for f in files:
        if f.suffix == ".parquet":
            parts.append(_read_parquet(f, with_label))
        else:
            texts.append(read_text_file(f, errors))
            labels.append(f.parent.name)
    if texts:
        rows: dict[str, list] = {"text": texts}
        if with_label:
            classes = sorted(set(labels))
            logger.info("class labels from directory names under %s: %s", root, classes)
            rows["label"] = [classes.index(c) for c in labels]
        parts.append(Dataset.from_dict(rows))
    if not parts:
        raise SourceError(root, "holds no .txt or .parquet files (searched recursively, hidden directories "
                                "skipped): put your text there, or pass another --data.source")
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def load_local(path: str, valid_every: int, with_label: bool = False, errors: str = "strict") -> DatasetDict:
    """Load a directory: a saved dataset, ``train/`` + ``validation/`` subdirectories, or files split by index.
    ``errors``: what to do with bytes of text files that are not UTF-8 (see :func:`read_text_file`)."""
    root = Path(path)
    local_identity(path)  # existence checks
    if _is_saved_dataset(root):
        try:
            loaded = datasets.load_from_disk(str(root))
        except Exception as e:  # datasets raises many types for a damaged directory
            raise SourceError(root, f"looks like a dataset saved with datasets.save_to_disk but cannot be loaded "
                                    f"({type(e).__name__}: {e}): save it again") from e
        if isinstance(loaded, Dataset):
            return split_dataset(loaded, valid_every)
        valid_key = next((k for k in (*VALID_DIR_NAMES, "test") if k in loaded), None)
        if "train" not in loaded or valid_key is None:
            if len(loaded) != 1:
                raise SourceError(root, f"is a saved dataset with splits {list(loaded)}: it needs 'train' and "
                                        f"'validation' splits, or a single split (divided by valid_every)")
            return split_dataset(next(iter(loaded.values())), valid_every)
        return DatasetDict(train=loaded["train"], validation=loaded[valid_key])
    valid_dir = next((root / d for d in VALID_DIR_NAMES if (root / d).is_dir()), None)
    if (root / "train").is_dir() and valid_dir is not None:
        train = _read_files(_list_files(root / "train"), root / "train", with_label, errors)
        valid = _read_files(_list_files(valid_dir), valid_dir, with_label, errors)
        return DatasetDict(train=train, validation=valid)
    return split_dataset(_read_files(_list_files(root), root, with_label, errors), valid_every)
