"""Data modules: ``perceiver.data.text`` for text corpora, ``perceiver.data.audio`` for symbolic music (MIDI)."""
