"""MIDI events: round trips through real MIDI files, decoding repairs, augmentation, event text, bad files."""

from __future__ import annotations

import io
import random

import pytest

pretty_midi = pytest.importorskip("pretty_midi")

from perceiver.model.audio.symbolic.events import (  # noqa: E402
    NOTE_OFF,
    PAD_ID,
    TIME_SHIFT,
    VELOCITY,
    VOCAB_SIZE,
    Note,
    decode_events,
    encode_notes,
    from_text,
    quantize,
    stretch,
    to_text,
    transpose,
    velocity_bin,
)
from perceiver.model.audio.symbolic.midi import (  # noqa: E402
    MidiError,
    MidiTokenizer,
    midi_bytes,
    midi_problems,
    read_notes,
)

STEP = 0.01  # seconds per time-shift step


def random_midi(seed: int, num_notes: int = 60, instruments: int = 2, drums: bool = True) -> bytes:
    """A MIDI file with random notes at arbitrary (off-grid) times, tempo and resolution; notes of one pitch never
    overlap (one event stream cannot express that), but different pitches and instruments overlap freely. Notes
    last at least a tick (pretty_midi writes a zero-tick note's off before its on, so it would not read back)."""
    rng = random.Random(seed)
    pm = pretty_midi.PrettyMIDI(resolution=rng.choice([96, 220, 480, 960]), initial_tempo=rng.uniform(60, 180))
    insts = [pretty_midi.Instrument(program=rng.randrange(128)) for _ in range(instruments)]
    busy: dict[int, float] = {}  # pitch -> end of its last note
    t = 0.0
    for _ in range(num_notes * instruments):
        t += rng.choice([0.0, rng.uniform(0, 0.3), rng.uniform(0.5, 2.5)])  # chords, runs, long gaps (> 1 s)
        pitch = rng.randrange(21, 109)
        start = max(t, busy.get(pitch, -1.0) + 0.02)
        end = start + rng.choice([rng.uniform(0.011, 0.02), rng.uniform(0.05, 1.0), rng.uniform(1.0, 3.0)])
        busy[pitch] = end
        note = pretty_midi.Note(velocity=rng.randrange(1, 128), pitch=pitch, start=start, end=end)
        rng.choice(insts).notes.append(note)
    pm.instruments += insts
    if drums:  # percussion is not pitched: it is skipped
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        kit.notes = [pretty_midi.Note(velocity=100, pitch=36, start=0.5 * i, end=0.5 * i + 0.1) for i in range(8)]
        pm.instruments.append(kit)
    return midi_bytes(pm)


def file_notes(data: bytes) -> list[Note]:
    """The non-drum notes as pretty_midi reads them back from the file (times after tick rounding)."""
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    return sorted(Note(n.start, n.end, n.pitch, n.velocity) for i in pm.instruments if not i.is_drum for n in i.notes)


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_keeps_every_note_within_the_quantisation(seed):
    data = random_midi(seed)
    tok = MidiTokenizer()
    ids = tok.encode(data)
    assert all(0 <= i < VOCAB_SIZE - 1 for i in ids)
    decoded = file_notes(midi_bytes(tok.decode(ids)))  # through a written MIDI file
    original = file_notes(data)
    assert len(decoded) == len(original)
    key = lambda n: (n.pitch, n.start)  # noqa: E731
    for a, b in zip(sorted(original, key=key), sorted(decoded, key=key)):
        assert a.pitch == b.pitch
        assert velocity_bin(a.velocity) == velocity_bin(b.velocity)
        assert abs(a.start - b.start) <= STEP / 2 + 1e-3  # onset: rounded to the 10 ms grid (+ tick rounding)
        assert abs((a.end - a.start) - (b.end - b.start)) <= STEP + 1e-3  # duration: both ends rounded, >= 1 step


@pytest.mark.parametrize("seed", range(3))
def test_encoding_is_canonical(seed):
    tok = MidiTokenizer()
    ids = tok.encode(random_midi(seed))
    assert tok.encode(midi_bytes(tok.decode(ids))) == ids
    assert decode_events(ids).issues == {}  # an encoded piece needs no repair


def test_overlapping_notes_of_one_pitch():
    # unison doubling (same pitch and onset) becomes one note, the longest and loudest; a re-struck pitch ends the
    # earlier note at the new onset
    notes = [Note(0.0, 1.0, 60, 40), Note(0.0, 2.0, 60, 90), Note(3.0, 5.0, 62, 64), Note(4.0, 4.5, 62, 64)]
    assert quantize(notes) == [(0, 200, 60, 22), (300, 400, 62, 16), (400, 450, 62, 16)]
    assert to_text(encode_notes(notes)) == "v22 on60 dt100 dt100 off60 dt100 v16 on62 dt100 off62 on62 dt50 off62"


def test_vocabulary_and_event_text():
    # perceiver-io 0.11's ids: note-on 0..127, note-off 128..255, time shift 256..355 (1..100 steps), velocity
    # 356..387, padding 388
    assert from_text("on0 on127 off0 off127 dt1 dt100 v0 v31 pad") == [0, 127, 128, 255, 256, 355, 356, 387, 388]
    ids = list(range(VOCAB_SIZE))
    assert from_text(to_text(ids)) == ids
    for bad in ("on128", "dt0", "dt101", "v32", "x5", "on"):
        with pytest.raises(ValueError, match=bad):
            from_text(f"on60 {bad}")


def test_decoding_repairs_and_counts_them():
    # off61: silent pitch (ignored); second on60: ends the first at the new onset; on64: still sounding at the end;
    # on67 off67 without time between: one step long
    ids = from_text("v10 on60 dt10 off61 on60 dt20 off60 on64 pad on67 off67 dt5")
    d = decode_events(ids)
    assert d.issues == {"orphan_note_off": 1, "retriggered_note_on": 1, "open_at_end": 1, "zero_length": 1,
                        "padding": 1}
    assert not d.grammatical
    assert [(n.pitch, round(n.start, 2), round(n.end, 2), n.velocity) for n in d.notes] == [
        (60, 0.0, 0.1, 42), (60, 0.1, 0.3, 42), (67, 0.3, 0.31, 42), (64, 0.3, 0.35, 42)]
    assert d.duration == pytest.approx(0.35)
    assert decode_events(from_text("on60 dt10 off60")).notes[0].velocity > 0  # no velocity event: a default


def test_random_ids_always_decode_to_valid_midi():
    rng = random.Random(0)
    tok = MidiTokenizer()
    for _ in range(100):
        ids = [rng.randrange(VOCAB_SIZE) for _ in range(rng.randrange(1, 300))]
        assert midi_problems(midi_bytes(tok.decode(ids))) == []


def test_midi_problems_finds_unclosed_notes():
    import mido

    mid = mido.MidiFile()
    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=64, time=0),
                            mido.Message("note_off", note=62, velocity=0, time=10)])
    mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    problems = midi_problems(buf.getvalue())
    assert any("silent" in p for p in problems) and any("never ends" in p for p in problems)


def test_transpose_and_stretch():
    ids = from_text("v20 on60 dt50 off60 on72 dt100 dt30 off72")
    assert to_text(transpose(ids, 5)) == "v20 on65 dt50 off65 on77 dt100 dt30 off77"
    with pytest.raises(ValueError, match="out of range"):
        transpose(ids, 60)
    slow = decode_events(stretch(ids, 2.0)).notes
    assert [(n.start, n.end) for n in slow] == [(0.0, 1.0), (1.0, 3.6)]
    fast = stretch(ids, 0.5)
    assert to_text(fast) == "v20 on60 dt25 off60 on72 dt65 off72"
    assert [i for i in stretch(ids, 1.3) if not TIME_SHIFT <= i < VELOCITY] == [i for i in ids if i < TIME_SHIFT
                                                                                   or i >= VELOCITY]


def test_sustain_pedal_extends_released_notes():
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(80, 60, 0.0, 0.5), pretty_midi.Note(80, 64, 2.0, 2.5)]
    inst.control_changes = [pretty_midi.ControlChange(64, 127, 0.2), pretty_midi.ControlChange(64, 0, 1.5)]
    pm.instruments.append(inst)
    with_pedal = read_notes(midi_bytes(pm))
    assert [(n.pitch, n.end) for n in with_pedal] == [(60, pytest.approx(1.5, abs=1e-3)), (64, pytest.approx(2.5))]
    assert read_notes(midi_bytes(pm), sustain=False)[0].end == pytest.approx(0.5, abs=1e-3)


def test_bad_midi_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd this is not a MIDI file")
    with pytest.raises(MidiError, match="broken.mid") as info:
        MidiTokenizer().encode(bad)
    assert info.value.path == str(bad)
    with pytest.raises(FileNotFoundError, match="missing.mid"):
        MidiTokenizer().encode(tmp_path / "missing.mid")


def test_padding_and_note_off_ids():
    assert PAD_ID == 388 and NOTE_OFF == 128 and VOCAB_SIZE == 389
