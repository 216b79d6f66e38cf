"""Encode MIDI pieces to event ids once and cache them as flat binary files, like the text data
(``perceiver.data.text.preprocess``: same manifest, checksums and atomic build).

Cache layout::

    <dataset_dir>/preproc/<name>-<key>/     key: first 16 hex digits of sha256(settings as JSON)
        manifest.json                       settings, dtype, per split: event and piece counts, piece names,
                                            event counts per id (for the unigram entropy), file sizes, checksums,
                                            and the pieces that were skipped (with ``skip_invalid``)
        <split>.tokens.bin                  event ids of all pieces, concatenated (uint16)
        <split>.offsets.bin                 int64 start offset of each piece, plus the total

A cache is built in a temporary sibling directory and renamed into place when complete; ``open_cache`` checks
every file against the manifest and deletes a corrupt cache, which is then rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np

from perceiver.data.audio.sources import Piece, Splits
from perceiver.data.text.preprocess import CACHE_FORMAT, MANIFEST, file_checksum, open_cache, token_dtype
from perceiver.model.audio.symbolic.events import VOCAB_SIZE
from perceiver.model.audio.symbolic.midi import MidiError, MidiTokenizer, load_score

logger = logging.getLogger(__name__)

__all__ = ["build_event_cache", "encode_piece", "open_cache"]


def encode_piece(piece: Piece, tokenizer: MidiTokenizer) -> list[int]:
    """Event ids of one piece; :class:`MidiError` naming its file if it cannot be read."""
    if piece.kind == "midi":
        return tokenizer.encode(piece.path)
    try:
        return tokenizer.encode(load_score(piece.path), name=piece.path)
    except MidiError:
        raise
    except Exception as e:  # music21 raises many types for scores it cannot parse or convert
        raise MidiError(piece.path, f"music21 cannot convert this score ({type(e).__name__}: {e})") from None


def _encode(args: tuple[Piece, MidiTokenizer]) -> tuple[Optional[list[int]], Optional[str]]:
    piece, tokenizer = args
    try:
        return encode_piece(piece, tokenizer), None
    except (MidiError, FileNotFoundError) as e:
        return None, str(e)


def _encode_all(pieces: list[Piece], tokenizer: MidiTokenizer, workers: Optional[int]):
    jobs = [(p, tokenizer) for p in pieces]
    if not workers or workers < 2 or len(jobs) < 2:
        yield from map(_encode, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_encode, jobs, chunksize=4)


def build_event_cache(
    cache_dir: Path,
    splits: Splits,
    tokenizer: MidiTokenizer,
    settings: dict[str, Any],
    workers: Optional[int] = None,
    skip_invalid: bool = False,
    describe: str = "the source",
) -> dict[str, Any]:
    """Encode the pieces of ``splits`` into ``cache_dir`` (atomically) and return the manifest.

    A piece that cannot be read raises :class:`MidiError` naming its file, unless ``skip_invalid`` (then it is
    logged and listed in the manifest's ``skipped``). Pieces with fewer than two events are skipped too. A split
    without pieces raises ``ValueError`` naming ``describe``."""
    dtype = token_dtype(VOCAB_SIZE)
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.tmp-", dir=cache_dir.parent))
    skipped: list[dict[str, str]] = []
    try:
        manifest_splits = {}
        for split, pieces in splits.items():
            logger.info("encoding the %s split (%d pieces) into %s", split, len(pieces), cache_dir)
            offsets, names, counts = [0], [], np.zeros(VOCAB_SIZE, dtype=np.int64)
            with open(tmp / f"{split}.tokens.bin", "wb") as f:
                for piece, (ids, error) in zip(pieces, _encode_all(pieces, tokenizer, workers)):
                    if error is not None:
                        if not skip_invalid:
                            raise MidiError(piece.path, error.partition(": ")[2] + " (pass --data.skip_invalid=true "
                                            "to skip files that cannot be read)")
                        logger.warning("skipping %s", error)
                        skipped.append({"name": piece.name, "reason": error})
                        continue
                    if len(ids) < 2:
                        skipped.append({"name": piece.name, "reason": f"{len(ids)} events"})
                        continue
                    arr = np.asarray(ids, dtype=np.int64)
                    arr.astype(dtype).tofile(f)
                    counts += np.bincount(arr, minlength=VOCAB_SIZE)
                    offsets.append(offsets[-1] + len(arr))
                    names.append(piece.name)
            if not names:
                raise ValueError(f"the {split} split of {describe} has no readable pieces with events")
            np.asarray(offsets, dtype=np.int64).tofile(tmp / f"{split}.offsets.bin")
            manifest_splits[split] = {"num_tokens": offsets[-1], "num_documents": len(names), "pieces": names,
                                      "event_counts": counts.tolist()}
        files = {p.name: {"bytes": p.stat().st_size, "checksum": file_checksum(p)} for p in sorted(tmp.glob("*.bin"))}
        manifest = {"format": CACHE_FORMAT, "dtype": dtype.name, "settings": settings, "splits": manifest_splits,
                    "skipped": skipped, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        tmp.chmod(0o755)  # mkdtemp creates it private; the cache may be shared
        try:
            os.replace(tmp, cache_dir)
        except OSError:  # another process finished the same cache first
            if open_cache(cache_dir) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def unigram_entropy(counts) -> float:
    """Entropy (nats) of the event distribution with ``counts`` per id: the loss per event of the best model
    that ignores context."""
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())
