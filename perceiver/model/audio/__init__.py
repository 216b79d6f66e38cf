"""Audio models: ``perceiver.model.audio.symbolic`` (Perceiver AR on MIDI performance events)."""
