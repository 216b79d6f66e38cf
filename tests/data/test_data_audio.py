"""Symbolic music data: sources (local folders, MAESTRO layout, chorales, Hub), the checksummed event cache, windows
within pieces, augmentation and batches."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch

pretty_midi = pytest.importorskip("pretty_midi")

from perceiver.data.audio import GiantMidiPianoDataModule, MaestroV3DataModule, SymbolicAudioDataModule  # noqa: E402
from perceiver.data.audio.preprocess import unigram_entropy  # noqa: E402
from perceiver.hub import HubUnavailableError  # noqa: E402
from perceiver.model.audio.symbolic.events import PAD_ID, TIME_SHIFT, decode_events  # noqa: E402
from perceiver.model.audio.symbolic.midi import MidiError, MidiTokenizer  # noqa: E402
from perceiver.model.core.config import ConfigError  # noqa: E402


def write_piece(path, seed: int, num_notes: int = 40) -> None:
    rng = random.Random(seed)
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    t = 0.0
    for _ in range(num_notes):
        t += rng.choice([0.0, 0.25, 0.5])
        inst.notes.append(pretty_midi.Note(rng.randrange(40, 110), rng.randrange(48, 72) + (len(inst.notes) % 2) * 12,
                                           t, t + rng.choice([0.2, 0.4])))
    pm.instruments.append(inst)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "midi"
    for i in range(6):
        write_piece(root / f"set{i % 2}" / f"piece{i}.mid", seed=i, num_notes=30 + 10 * i)
    return root


def module(source, tmp_path, **kwargs) -> SymbolicAudioDataModule:
    kwargs = {"max_seq_len": 32, "batch_size": 4, "num_workers": 0, "dataset_dir": str(tmp_path / "cache"), **kwargs}
    return SymbolicAudioDataModule(source=str(source), **kwargs)


def test_folder_source_windows_within_pieces(folder, tmp_path):
    dm = module(folder, tmp_path, valid_every=3, random_train_shift=False)
    assert dm.vocab_size == 389 and dm.max_seq_len == 32  # known before any data is read
    dm.setup()
    m = dm.manifest
    # fixed split by piece: sorted names, every 3rd piece is validation; no piece in both
    assert m["splits"]["validation"]["pieces"] == ["set0/piece4.mid", "set1/piece5.mid"]
    assert not set(m["splits"]["train"]["pieces"]) & set(m["splits"]["validation"]["pieces"])
    tok = MidiTokenizer()
    pieces = [tok.encode(folder / name) for name in m["splits"]["train"]["pieces"]]
    assert m["splits"]["train"]["num_tokens"] == sum(map(len, pieces))
    # windows of N + 1 events inside one piece; every event but a piece's first is a target once
    windows = [dm.ds_train[i]["input_ids"].tolist() for i in range(len(dm.ds_train))]
    assert all(1 < len(w) <= 33 for w in windows)
    for piece in pieces:
        mine = [w for w in windows if any(piece[k:k + len(w)] == w for k in range(0, len(piece), 32))]
        assert sum(len(w) - 1 for w in mine) == len(piece) - 1
    counts = np.bincount(np.concatenate([tok.encode(folder / n) for n in m["splits"]["validation"]["pieces"]]),
                         minlength=389)
    assert dm.unigram_entropy("validation") == pytest.approx(unigram_entropy(counts))


def test_batches_are_left_padded_next_event_pairs(folder, tmp_path):
    dm = module(folder, tmp_path)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    ids, labels, pad = batch["input_ids"], batch["labels"], batch["pad_mask"]
    assert ids.shape == labels.shape == pad.shape == (4, 32)
    assert torch.equal(ids[:, 1:][~pad[:, 1:]], labels[:, :-1][~pad[:, 1:]])  # labels are the next events
    assert bool((ids[pad] == PAD_ID).all()) and bool((labels[pad] == -100).all())
    assert not bool((pad[:, 1:] < pad[:, :-1]).any())  # padding only on the left


def test_split_subfolders_and_limits(tmp_path):
    for split, n in (("train", 3), ("valid", 2)):
        for i in range(n):
            write_piece(tmp_path / "src" / split / f"{i}.midi", seed=10 * i + n)
    dm = module(tmp_path / "src", tmp_path, max_pieces=2)
    dm.setup()
    assert dm.manifest["splits"]["train"]["pieces"] == ["0.midi", "1.midi"]
    assert dm.manifest["splits"]["validation"]["num_documents"] == 2


def test_augmentation(folder, tmp_path):
    plain = module(folder, tmp_path, random_train_shift=False)
    plain.setup()
    aug = module(folder, tmp_path, random_train_shift=False, transpose=5, time_stretch=0.2)
    aug.setup()
    assert aug.cache_dir == plain.cache_dir  # augmentation is applied at read time, the cache is shared
    torch.manual_seed(0)
    changed = 0
    for i in range(len(plain.ds_train)):
        a, b = plain.ds_train[i]["input_ids"].tolist(), aug.ds_train[i]["input_ids"].tolist()
        assert len(b) == len(a)  # windows stay full
        notes_a = [x for x in a if x < TIME_SHIFT]
        notes_b = [x for x in b if x < TIME_SHIFT]
        shift = {(y % 128) - (x % 128) for x, y in zip(notes_a, notes_b)}
        assert len(shift) == 1 and abs(shift.pop()) <= 5  # one transposition for the whole window
        changed += a != b
        assert decode_events(b).issues["retriggered_note_on"] == decode_events(a).issues["retriggered_note_on"]
    assert changed > 0
    with pytest.raises(ConfigError) as info:
        module(folder, tmp_path, transpose=30)
    assert info.value.field == "transpose"


def test_cache_is_checksummed_and_rebuilt(folder, tmp_path):
    dm = module(folder, tmp_path)
    dm.setup()
    tokens = dm.cache_dir / "train.tokens.bin"
    data = bytearray(tokens.read_bytes())
    data[10] ^= 0xFF
    tokens.write_bytes(bytes(data))
    dm2 = module(folder, tmp_path)
    dm2.setup()  # the corrupt cache is deleted and built again
    assert json.loads((dm2.cache_dir / "manifest.json").read_text())["splits"] == dm.manifest["splits"]
    assert tokens.read_bytes() != bytes(data)


def test_bad_midi_file_names_the_file_and_leaves_no_cache(folder, tmp_path):
    (folder / "set0" / "broken.mid").write_bytes(b"MThd not really")
    dm = module(folder, tmp_path)
    with pytest.raises(MidiError, match="broken.mid.*skip_invalid"):
        dm.prepare_data()
    assert not (tmp_path / "cache" / "preproc").exists() or not any((tmp_path / "cache" / "preproc").iterdir())
    dm = module(folder, tmp_path, skip_invalid=True)
    dm.setup()
    assert [s["name"] for s in dm.manifest["skipped"]] == ["set0/broken.mid"]


def test_maestro_local_copy_uses_its_split(tmp_path):
    root = tmp_path / "maestro-v3.0.0"
    files = {"2004/a.midi": "train", "2004/b.midi": "validation", "2006/c.midi": "test", "2006/d.midi": "train"}
    for i, name in enumerate(files):
        write_piece(root / name, seed=i)
    table = {"midi_filename": {str(i): f for i, f in enumerate(files)},
             "split": {str(i): s for i, s in enumerate(files.values())}}
    (root / "maestro-v3.0.0.json").write_text(json.dumps(table))
    dm = MaestroV3DataModule(source=str(tmp_path), max_seq_len=32, num_workers=0, dataset_dir=str(tmp_path / "c"))
    splits = dm.load_splits()
    assert [p.name for p in splits["train"]] == ["2004/a.midi", "2006/d.midi"]
    assert [p.name for p in splits["validation"]] == ["2004/b.midi"]  # the test split is not used


def test_hub_offline_fails_fast_with_advice(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dm = MaestroV3DataModule(source="hub", max_seq_len=32, dataset_dir=str(tmp_path))
    with pytest.raises(HubUnavailableError, match="--data.source=sample"):
        dm.prepare_data()
    with pytest.raises(ValueError, match="GiantMIDI-Piano"):
        GiantMidiPianoDataModule(source="hub", dataset_dir=str(tmp_path)).prepare_data()


def test_chorales_are_split_by_piece():
    pytest.importorskip("music21")
    from perceiver.data.audio.sources import chorale_pieces, split_by_index

    pieces = chorale_pieces()
    assert len(pieces) == 413  # the Bach scores of music21's corpus (its 20 .rntxt analyses are not music)
    splits = split_by_index(pieces, 10)
    assert not {p.name for p in splits["train"]} & {p.name for p in splits["validation"]}
    assert len(splits["train"]) + len(splits["validation"]) == len(pieces)
    assert splits == split_by_index(list(reversed(pieces)), 10)  # fixed: independent of listing order


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data.source"):
        module(tmp_path / "nowhere", tmp_path).prepare_data()
    shutil.rmtree(tmp_path, ignore_errors=True)
