"""Where MIDI pieces come from: the Bach chorales of music21's corpus, a local folder of MIDI files, or a dataset
repository of MIDI files on the Hugging Face Hub; and how they are split.

A piece is a file plus a name (its path relative to the source). Sources without their own split send every
``valid_every``-th piece (sorted by name) to validation, so the split is fixed by piece: no piece is in both. A
folder with ``train/`` and ``validation/`` (or ``valid/``, ``val/``) subfolders keeps that split.

Source identities (``*_identity``) are small JSON-able dicts that enter the cache key of the preprocessed events.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from perceiver.hub import require_hub

MIDI_SUFFIXES = (".mid", ".midi")
VALID_DIR_NAMES = ("validation", "valid", "val")
SAMPLE_FORMAT = 2  # bump when the conversion or the split of the chorales changes: it is part of the cache key


@dataclass(frozen=True)
class Piece:
    name: str
    """Identifier of the piece within its source (``bach/bwv1.6``, ``2018/xyz.midi``)."""
    path: str
    """The file to read."""
    kind: Literal["midi", "score"] = "midi"
    """``midi`` (read with pretty_midi) or ``score`` (parsed by music21 and converted to MIDI)."""


Splits = dict[str, list[Piece]]


def split_by_index(pieces: list[Piece], valid_every: int) -> Splits:
    """Every ``valid_every``-th piece (indices ``valid_every - 1``, ``2 valid_every - 1``, ...) is validation; pieces
    of the same name (one chorale in two file formats) stay in one split."""
    pieces = sorted(pieces, key=lambda p: (p.name, p.path))
    valid = [p for i, p in enumerate(pieces) if i % valid_every == valid_every - 1] or pieces[-1:]
    names = {p.name for p in valid}
    return {"train": [p for p in pieces if p.name not in names], "validation": [p for p in pieces if p.name in names]}


# --- the Bach chorales --------------------------------------------------------------------------------------------


def chorale_pieces() -> list[Piece]:
    """The 413 Bach chorale scores of music21's corpus (see ``perceiver.model.audio.symbolic.midi.chorale_paths``)."""
    from perceiver.model.audio.symbolic.midi import chorale_name, chorale_paths

    return [Piece(chorale_name(p), str(p), "score") for p in chorale_paths()]


def chorale_identity() -> dict[str, Any]:
    from importlib.metadata import version

    pieces = chorale_pieces()
    digest = hashlib.sha256("\n".join(p.name for p in pieces).encode()).hexdigest()[:16]
    return {"source": "sample", "corpus": "music21 bach", "music21": version("music21"), "pieces": len(pieces),
            "names": digest, "format": SAMPLE_FORMAT}


# --- local folders ------------------------------------------------------------------------------------------------


def midi_files(root: Path) -> list[Path]:
    """MIDI files below ``root`` (``.mid``/``.midi``, any case), sorted."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)


def folder_pieces(root: Path) -> list[Piece]:
    root = Path(root)
    return [Piece(p.relative_to(root).as_posix(), str(p)) for p in midi_files(root)]


def check_folder(root: str | Path) -> Path:
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data source path does not exist: {root} (--data.source)")
    if not root.is_dir():
        raise NotADirectoryError(f"data source must be a folder of MIDI files (.mid, .midi): {root}")
    return root


def folder_splits(root: str | Path, valid_every: int) -> Splits:
    """Pieces of a local folder: its ``train/`` and ``validation/`` subfolders, or all its MIDI files split by
    index."""
    root = check_folder(root)
    valid_dir = next((root / d for d in VALID_DIR_NAMES if (root / d).is_dir()), None)
    if (root / "train").is_dir() and valid_dir is not None:
        splits = {"train": folder_pieces(root / "train"), "validation": folder_pieces(valid_dir)}
    else:
        pieces = folder_pieces(root)
        if len(pieces) < 2:
            raise ValueError(f"{root} holds {len(pieces)} MIDI files (.mid, .midi); at least 2 are needed for a "
                             f"train and a validation piece")
        splits = split_by_index(pieces, valid_every)
    for split, pieces in splits.items():
        if not pieces:
            raise ValueError(f"the {split} split of {root} has no MIDI files (.mid, .midi)")
    return splits


def folder_identity(root: str | Path, exclude: Optional[str] = None) -> dict[str, Any]:
    """Relative path, size and modification time of every MIDI and metadata file below ``root``."""
    root = check_folder(root)
    skip = Path(exclude).resolve() if exclude else None
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if (Path(dirpath) / d).resolve() != skip)
        for f in sorted(filenames):
            if Path(f).suffix.lower() in (*MIDI_SUFFIXES, ".json", ".csv"):
                st = (Path(dirpath) / f).stat()
                h.update(f"{(Path(dirpath) / f).relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return {"source": "local", "path": str(root.resolve()), "files": h.hexdigest()}


# --- the Hugging Face Hub -----------------------------------------------------------------------------------------


def hub_snapshot(repo_id: str, revision: Optional[str], instead: str) -> Path:
    """A local copy of the MIDI files (and metadata) of the Hub dataset repository ``repo_id``; fails within
    seconds, saying what to do ``instead``, when the Hub cannot be reached."""
    require_hub(f"the MIDI dataset {repo_id!r}", instead)
    from huggingface_hub import snapshot_download

    patterns = [f"*{s}" for s in MIDI_SUFFIXES] + [f"*{s.upper()}" for s in MIDI_SUFFIXES] + ["*.json", "*.csv"]
    return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=patterns))
