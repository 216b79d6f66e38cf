"""Tokenize a text source once and cache the token ids as flat binary files.

Documents are tokenized and concatenated per split into one flat token file (optionally each document wrapped in
the tokenizer's special tokens and/or followed by ``eos``). Examples are cut from the flat file at read time, so
``max_seq_len`` and mlm/clm do not change the cache; only settings that change the stored ids enter the key.

Cache layout::

    <dataset_dir>/preproc/<name>-<key>/      key: first 16 hex digits of sha256(settings as JSON)
        manifest.json                        settings, dtype, per split: counts, file sizes and checksums
        <split>.tokens.bin                   token ids of all documents, concatenated (uint16, or int32)
        <split>.offsets.bin                  int64 document start offsets + total (layout "documents", clf)
        <split>.labels.bin                   int64 document labels (layout "documents", clf)
        <split>.masked.bin, <split>.targets.bin   static masking: masked ids, uint8 target flags

A cache is built in a temporary sibling directory (``.<name>-<key>.tmp-<pid>-*``) and renamed into place when
complete, so a cache directory either is complete or does not exist; a temporary directory left by a killed build is
never read, and the next build removes it. ``open_cache`` also checks every file's size and checksum against the
manifest and deletes a corrupt cache, which is then rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

from perceiver.data.text.masking import BYTE_OFFSET, is_byte_tokenizer

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
FULL_HASH_BYTES = 64 << 20
SAMPLED_BLOCKS, BLOCK_BYTES = 256, 256 << 10

# (tokens, pad_mask) of shape (B, L) -> (masked_ids, labels)
MaskFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def cache_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def file_checksum(path: Path) -> str:
    """blake2b of the whole file up to 64 MiB; of the size and 256 evenly spaced 256 KiB blocks beyond."""
    size = path.stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as f:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            for i in range(SAMPLED_BLOCKS):
                f.seek((size - BLOCK_BYTES) * i // (SAMPLED_BLOCKS - 1))
                h.update(f.read(BLOCK_BYTES))
    return h.hexdigest()


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.int32)


# ---------------------------------------------------------------------------------------------------------------
# Tokenization
# ---------------------------------------------------------------------------------------------------------------


class DocumentEncoder:
    """Encode documents to token id arrays; the byte tokenizer takes a fast path (UTF-8 bytes + 6)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, add_special_tokens: bool, add_eos_token: bool):
        self.tokenizer = tokenizer
        self.fast_bytes = is_byte_tokenizer(tokenizer)
        prefix, suffix = [], []
        if add_special_tokens:
            template = tokenizer.build_inputs_with_special_tokens([-1])
            pos = template.index(-1)
            prefix, suffix = template[:pos], template[pos + 1 :]
        if add_eos_token:
            if tokenizer.eos_token_id is None:
                raise ValueError(f"add_eos_token=True but tokenizer {tokenizer.name_or_path!r} has no eos token")
            suffix = suffix + [tokenizer.eos_token_id]
        self.prefix = np.array(prefix, dtype=np.int64)
        self.suffix = np.array(suffix, dtype=np.int64)

    def encode_ids(self, texts: list[str]) -> list[np.ndarray]:
        if self.fast_bytes:
            ids = [np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64) + BYTE_OFFSET for t in texts]
        else:
            enc = self.tokenizer(texts, add_special_tokens=False, return_attention_mask=False)
            ids = [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]
        return [np.concatenate([self.prefix, x, self.suffix]) for x in ids]

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        keep = [i for i, t in enumerate(batch["text"]) if t and t.strip()]
        result = {"input_ids": [x.tolist() for x in self.encode_ids([batch["text"][i] for i in keep])]}
        if "label" in batch:
            result["label"] = [batch["label"][i] for i in keep]
        return result

    def iter_encoded(self, ds: Dataset, num_proc: int | None, batch_size: int = 1000) -> Iterator[tuple]:
        """``(token ids, label or None)`` of all non-empty documents of ``ds``, in order.

        Non-byte tokenizers run in ``num_proc`` processes.
        """
        if self.fast_bytes or not num_proc or num_proc < 2:
            for batch in ds.iter(batch_size=batch_size):
                keep = [i for i, t in enumerate(batch["text"]) if t and t.strip()]
                labels = [batch["label"][i] for i in keep] if "label" in batch else [None] * len(keep)
                yield from zip(self.encode_ids([batch["text"][i] for i in keep]), labels)
        else:
            columns = [c for c in ds.column_names if c not in ("input_ids", "label")]
            encoded = ds.map(self, batched=True, num_proc=num_proc, remove_columns=columns, desc="Tokenize")
            for batch in encoded.iter(batch_size=batch_size):
                labels = batch["label"] if "label" in batch else [None] * len(batch["input_ids"])
                yield from ((np.asarray(x, dtype=np.int64), y) for x, y in zip(batch["input_ids"], labels))


# ---------------------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------------------


def _write_split(
    out: Path,
    split: str,
    ds: Dataset,
    encoder: DocumentEncoder,
    dtype: np.dtype,
    documents: bool,
    num_proc: int | None,
    describe: str,
) -> dict[str, int]:
    num_tokens, offsets, labels = 0, [0], []
    with open(out / f"{split}.tokens.bin", "wb") as f:
        for ids, label in encoder.iter_encoded(ds, num_proc):
            ids.astype(dtype).tofile(f)
            num_tokens += len(ids)
            offsets.append(num_tokens)
            labels.append(label)
    if len(labels) == 0:
        raise ValueError(f"the {split} split of {describe} has no non-empty documents: add text to it (files that "
                         f"hold only whitespace are skipped)")
    if documents:
        np.asarray(offsets, dtype=np.int64).tofile(out / f"{split}.offsets.bin")
        np.asarray(labels, dtype=np.int64).tofile(out / f"{split}.labels.bin")
    return {"num_tokens": num_tokens, "num_documents": len(labels)}


def _write_static_mask(out: Path, split: str, dtype: np.dtype, block_len: int, mask_fn: MaskFn) -> None:
    tokens = np.memmap(out / f"{split}.tokens.bin", dtype=dtype, mode="r")
    rows_per_step = max(1, (1 << 22) // block_len)
    step = rows_per_step * block_len
    with open(out / f"{split}.masked.bin", "wb") as fm, open(out / f"{split}.targets.bin", "wb") as ft:
        for start in range(0, len(tokens), step):
            chunk = np.asarray(tokens[start : start + step], dtype=np.int64)
            n = len(chunk)
            rows = -(-n // block_len)
            padded = np.zeros(rows * block_len, dtype=np.int64)
            padded[:n] = chunk
            pad_mask = np.arange(rows * block_len) >= n
            masked, labels = mask_fn(padded.reshape(rows, block_len), pad_mask.reshape(rows, block_len))
            masked.reshape(-1)[:n].astype(dtype).tofile(fm)
            (labels.reshape(-1)[:n] >= 0).astype(np.uint8).tofile(ft)


def build_cache(
    cache_dir: Path,
    dsd: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    settings: dict[str, Any],
    preproc_workers: int | None = None,
    static_mask: tuple[int, MaskFn] | None = None,
    extra: dict[str, Any] | None = None,
    describe: str = "the source",
) -> dict[str, Any]:
    """Tokenize ``dsd`` into ``cache_dir`` (atomically) and return the manifest.

    Empty (whitespace-only) documents are skipped; a split without documents raises ``ValueError`` naming
    ``describe``. ``settings["layout"]`` is ``"stream"`` (documents concatenated) or ``"documents"`` (with offsets and labels).
    ``static_mask`` is ``(block_len, mask_fn)`` to store one fixed masking of the stream. ``extra`` entries are
    added to the manifest.
    """
    dtype = token_dtype(len(tokenizer))
    encoder = DocumentEncoder(tokenizer, settings["add_special_tokens"], settings["add_eos_token"])
    documents = settings["layout"] == "documents"
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_builds(cache_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.tmp-{os.getpid()}-", dir=cache_dir.parent))
    try:
        (tmp / "HOST").write_text(socket.gethostname())  # a pid means something on this host only
        splits = {}
        for split, ds in dsd.items():
            logger.info("tokenizing %s split (%d documents) into %s", split, len(ds), cache_dir)
            splits[split] = _write_split(tmp, split, ds, encoder, dtype, documents, preproc_workers, describe)
            if static_mask is not None:
                _write_static_mask(tmp, split, dtype, *static_mask)
        files = {p.name: {"bytes": p.stat().st_size, "checksum": file_checksum(p)} for p in sorted(tmp.glob("*.bin"))}
        manifest = {"format": CACHE_FORMAT, "dtype": dtype.name, "settings": settings, "splits": splits}
        manifest.update(extra or {}, files=files)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        (tmp / "HOST").unlink()
        tmp.chmod(0o755)  # mkdtemp creates it private; the cache may be shared
        try:
            os.replace(tmp, cache_dir)
        except OSError:  # another process finished the same cache first
            if open_cache(cache_dir) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def remove_abandoned_builds(cache_dir: Path) -> None:
    """Delete the temporary directories of builds of ``cache_dir`` whose process is gone (killed mid-build: an
    exception cleans up after itself). They were never trusted (only a complete build is renamed into place), but
    they take space. Builds of processes still running, and those of other hosts' processes, are left alone."""
    for tmp in cache_dir.parent.glob(f".{cache_dir.name}.tmp-*"):
        pid = tmp.name[len(f".{cache_dir.name}.tmp-"):].split("-")[0]
        if pid.isdigit() and not _process_alive(int(pid)) and _same_host(tmp):
            logger.warning("removing %s, left by an interrupted preprocessing run", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists
        return True
    return True


def _same_host(tmp: Path) -> bool:
    marker = tmp / "HOST"
    return marker.is_file() and marker.read_text().strip() == socket.gethostname()


def open_cache(cache_dir: Path) -> dict[str, Any] | None:
    """The manifest of a complete, intact cache; ``None`` if missing. A corrupt cache is deleted (``None``)."""
    if not cache_dir.exists():
        return None
    problem = _check_cache(cache_dir)
    if problem is None:
        return json.loads((cache_dir / MANIFEST).read_text())
    logger.warning("preprocessed data in %s is corrupt (%s); deleting it to rebuild", cache_dir, problem)
    shutil.rmtree(cache_dir, ignore_errors=True)
    return None


def _check_cache(cache_dir: Path) -> str | None:
    try:
        manifest = json.loads((cache_dir / MANIFEST).read_text())
        if manifest.get("format") != CACHE_FORMAT:
            return f"format {manifest.get('format')} != {CACHE_FORMAT}"
        itemsize = np.dtype(manifest["dtype"]).itemsize
        for split, counts in manifest["splits"].items():
            expected = counts["num_tokens"] * itemsize
            actual = manifest["files"][f"{split}.tokens.bin"]["bytes"]
            if expected != actual:
                return f"{split}: manifest says {counts['num_tokens']} tokens but records {actual} bytes"
        for name, info in manifest["files"].items():
            path = cache_dir / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != info["bytes"]:
                return f"{name} has {path.stat().st_size} bytes, expected {info['bytes']}"
            if file_checksum(path) != info["checksum"]:
                return f"{name} checksum mismatch"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable manifest: {e}"
    return None
