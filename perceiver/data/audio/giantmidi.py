"""GiantMIDI-Piano (Kong et al. 2020): 10,855 solo piano works transcribed from recordings into MIDI."""

from __future__ import annotations

from typing import Any

from perceiver.data.audio.symbolic import SymbolicAudioDataModule


class GiantMidiPianoDataModule(SymbolicAudioDataModule):
    """GiantMIDI-Piano MIDI files from a local copy, or the Bach chorales offline.

    GiantMIDI-Piano is distributed after agreeing to its disclaimer (github.com/bytedance/GiantMIDI-Piano), not as
    MIDI files on the Hugging Face Hub: download it and pass the folder (``--data.source=/path/to/midis``; with
    ``train/`` and ``validation/`` subfolders, as perceiver-io 0.11 prepared it, or split every ``valid_every``-th
    file). To use a Hub dataset repository of MIDI files instead, subclass and set ``hub_repo``.

    Args:
        **kwargs: ``SymbolicAudioDataModule`` arguments (``source``, ``max_seq_len``, ``transpose``, ...).
    """

    cache_name = "giantmidi-piano"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)

    def offline_hint(self) -> str:
        return ("Download GiantMIDI-Piano (github.com/bytedance/GiantMIDI-Piano) and pass its folder "
                "(--data.source=/path/to/midis), or use the Bach chorales shipped with music21 (--data.source=sample).")
