"""Perceiver AR symbolic audio model: MIDI performance events (perceiver-io 0.11's vocabulary), the model, and
generation that you can hear (MIDI, piano roll, WAV preview).

    from perceiver.model.audio.symbolic import SymbolicAudioModel, SymbolicAudioModelConfig, MidiTokenizer

    model = SymbolicAudioModel(SymbolicAudioModelConfig.from_preset("maestro-28.5m"))   # 28,531,712 parameters
    ids = MidiTokenizer().encode("song.mid")

The MIDI tokenizer, the chorales and generation need the optional extra ``perceiver[music]`` (pretty_midi, music21);
the model does not.
"""

from perceiver.model.audio.symbolic.backend import SymbolicAudioModel, SymbolicAudioModelConfig
from perceiver.model.audio.symbolic.events import VOCAB_SIZE, Note, decode_events, encode_notes
from perceiver.model.audio.symbolic.midi import MidiError, MidiTokenizer
from perceiver.model.audio.symbolic.music import MusicSample, generate_music, prompt_ids


def __getattr__(name):
    # the Lightning wrapper is imported on first use, so the backend model needs no Lightning import
    if name == "LitSymbolicAudioModel":
        from perceiver.model.audio.symbolic.lightning import LitSymbolicAudioModel

        return LitSymbolicAudioModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LitSymbolicAudioModel", "MidiError", "MidiTokenizer", "MusicSample", "Note", "SymbolicAudioModel",
    "SymbolicAudioModelConfig", "VOCAB_SIZE", "decode_events", "encode_notes", "generate_music", "prompt_ids",
]
