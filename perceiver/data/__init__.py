"""Data modules: ``perceiver.data.text`` for text corpora."""
