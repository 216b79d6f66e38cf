"""Lightning data modules for symbolic music: MIDI performance events of MAESTRO v3, GiantMIDI-Piano, a local folder
of MIDI files, or, offline, the Bach chorales shipped with music21.

Example (offline)::

    from perceiver.data.audio import MaestroV3DataModule

    dm = MaestroV3DataModule(source="sample", max_seq_len=512, batch_size=16, transpose=3, time_stretch=0.05)
    dm.vocab_size                  # 389, known right after __init__ (CLI: link data.vocab_size to the model)
    dm.setup()                     # encodes the 413 chorales once into dataset_dir/preproc/maestro-v3-<hash>
    dm.unigram_entropy()           # nats per validation event of the best context-free model
    batch = next(iter(dm.train_dataloader()))
    batch["input_ids"], batch["labels"], batch["pad_mask"]   # (B, N) long, (B, N) long (-100 = ignore), (B, N) bool

Reading MIDI needs the optional extra ``perceiver[music]`` (pretty_midi, music21).
"""

from perceiver.data.audio.giantmidi import GiantMidiPianoDataModule
from perceiver.data.audio.maestro import MaestroV3DataModule
from perceiver.data.audio.symbolic import SymbolicAudioDataModule

__all__ = ["GiantMidiPianoDataModule", "MaestroV3DataModule", "SymbolicAudioDataModule"]
