"""MAESTRO v3 (Hawthorne et al. 2019): about 200 hours of virtuosic piano performances captured as MIDI on Yamaha
Disklaviers, with its own train/validation/test split (the test split is not used)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from perceiver.data.audio import sources
from perceiver.data.audio.symbolic import SymbolicAudioDataModule


class MaestroV3DataModule(SymbolicAudioDataModule):
    """MAESTRO v3 MIDI files, from the Hub or a local copy, or the Bach chorales offline.

    Args:
        **kwargs: ``SymbolicAudioDataModule`` arguments. ``source="hub"`` downloads the MIDI files of the Hub dataset
            repository ``hub_repo`` (a mirror of ``maestro-v3.0.0-midi.zip``); a local copy is the folder of that
            zip (``maestro-v3.0.0/`` with ``maestro-v3.0.0.json``), whose ``split`` column gives the pieces of
            ``train`` and ``validation``; ``source="sample"`` uses the Bach chorales shipped with music21.
    """

    cache_name = "maestro-v3"
    hub_repo = "ddPn08/maestro-v3.0.0"
    metadata_files = ("maestro-v3.0.0.json",)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)

    def local_splits(self, root: str | Path) -> sources.Splits:
        root = sources.check_folder(root)
        meta = next((p for name in self.metadata_files for p in root.rglob(name)), None)
        if meta is None:  # any folder of MIDI files
            return super().local_splits(root)
        table = json.loads(meta.read_text())
        splits: sources.Splits = {"train": [], "validation": []}
        for key, filename in table["midi_filename"].items():
            split = table["split"][key]
            if split in splits:
                path = meta.parent / filename
                splits[split].append(sources.Piece(filename, str(path)))
        for split, pieces in splits.items():
            missing = [p.path for p in pieces if not Path(p.path).is_file()]
            if missing:
                raise FileNotFoundError(f"{meta} lists {len(missing)} {split} files that are missing, e.g. "
                                        f"{missing[0]}; is the MAESTRO copy complete?")
        return {k: sorted(v, key=lambda p: p.name) for k, v in splits.items()}
