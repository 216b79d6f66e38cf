"""MIDI files and music21 scores to notes and event ids, and back: the MIDI event tokenizer.

Built on ``pretty_midi`` (notes with start and end in seconds through the file's tempo map, control changes,
instruments; it writes standard MIDI files) and its dependency ``mido`` (messages, for :func:`midi_problems`).
``music21`` is needed only for scores and the Bach chorales. All three are the optional extra
``perceiver[music]``; they are imported on first use, so importing this module needs none of them.

    tok = MidiTokenizer()
    ids = tok.encode("song.mid")               # or bytes, a pretty_midi.PrettyMIDI, a music21 score
    tok.decode(ids).write("again.mid")         # pretty_midi.PrettyMIDI
    tok.to_text(ids[:6])                       # 'v22 on60 on64 dt50 off60 off64'

Drum tracks are skipped. With ``sustain`` (the default, as perceiver-io 0.11), a note released while the sustain
pedal (control 64 >= 64) is down lasts until the pedal is lifted (or the same pitch is struck again).
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from perceiver.model.audio.symbolic.events import (
    PAD_ID,
    VOCAB_SIZE,
    Note,
    decode_events,
    encode_notes,
    from_text,
    to_text,
)

MidiSource = Union[str, Path, bytes, Any]  # a path, file bytes, a pretty_midi.PrettyMIDI or a music21 stream
INSTALL_HINT = "install the optional dependencies with: pip install 'perceiver[music]'"
SCORE_SUFFIXES = (".mxl", ".musicxml", ".xml", ".krn", ".mid", ".midi", ".abc")


class MidiError(ValueError):
    """A MIDI file (or score) cannot be read; ``path`` names it."""

    def __init__(self, path: Any, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")


def import_pretty_midi():
    try:
        import pretty_midi
    except ImportError as e:
        raise ImportError(f"MIDI support needs pretty_midi: {INSTALL_HINT}") from e
    return pretty_midi


def import_music21():
    try:
        import music21
    except ImportError as e:
        raise ImportError(f"scores and the Bach chorales need music21: {INSTALL_HINT}") from e
    return music21


# --- reading --------------------------------------------------------------------------------------------------------


def is_music21_stream(obj: Any) -> bool:
    return type(obj).__module__.startswith("music21.")


def score_to_midi_bytes(score: Any) -> bytes:
    """Standard MIDI file bytes of a music21 stream (its own tempo marks, 120 bpm without). Repeats are expanded;
    where music21 cannot expand them (badly formed repeat marks), they are removed and the music is played once."""
    from music21.midi.translate import streamToMidiFile
    from music21.repeat import ExpanderException

    try:
        return streamToMidiFile(score).writestr()
    except ExpanderException:
        return streamToMidiFile(without_repeats(score)).writestr()


def without_repeats(score: Any) -> Any:
    """``score`` with its repeat barlines and repeat marks removed (in place)."""
    from music21 import bar, repeat

    for measure in score.recurse().getElementsByClass("Measure"):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(measure, side), bar.Repeat):
                setattr(measure, side, None)
    for mark in list(score.recurse().getElementsByClass(repeat.RepeatMark)):
        mark.activeSite.remove(mark)
    return score


def load_pretty_midi(source: MidiSource, name: Optional[str] = None):
    """A ``pretty_midi.PrettyMIDI`` of ``source``; :class:`MidiError` naming the file if it cannot be read."""
    pretty_midi = import_pretty_midi()
    if isinstance(source, pretty_midi.PrettyMIDI):
        return source
    if is_music21_stream(source):
        name = name or f"music21 score {getattr(source.metadata, 'title', None) or source.id}"
        source = score_to_midi_bytes(source)
    if isinstance(source, (bytes, bytearray)):
        name, data = name or "<MIDI bytes>", io.BytesIO(bytes(source))
    else:
        name, data = name or str(source), str(source)
        if not Path(source).is_file():
            raise FileNotFoundError(f"{source}: no such MIDI file")
    try:
        return pretty_midi.PrettyMIDI(data)
    except Exception as e:  # mido and pretty_midi raise many types for broken files
        raise MidiError(name, f"not a readable MIDI file ({type(e).__name__}: {e})") from None


def pedal_intervals(control_changes: Iterable[Any], end_time: float) -> list[tuple[float, float]]:
    """(down, up) times of the sustain pedal (control 64, down at value >= 64); a pedal never lifted is up at
    ``end_time``."""
    intervals, down = [], None
    for cc in sorted((c for c in control_changes if c.number == 64), key=lambda c: c.time):
        if cc.value >= 64 and down is None:
            down = cc.time
        elif cc.value < 64 and down is not None:
            intervals.append((down, cc.time))
            down = None
    if down is not None:
        intervals.append((down, max(end_time, down)))
    return intervals


def sustained(notes: list[Note], intervals: list[tuple[float, float]]) -> list[Note]:
    """Notes released while the pedal is down last until it is lifted."""
    if not intervals:
        return notes
    downs = [d for d, _ in intervals]
    out = []
    for n in notes:
        k = bisect.bisect_right(downs, n.end) - 1
        if k >= 0 and intervals[k][0] <= n.end < intervals[k][1]:
            n = Note(n.start, intervals[k][1], n.pitch, n.velocity)
        out.append(n)
    return out


def read_notes(source: MidiSource, sustain: bool = True, name: Optional[str] = None) -> list[Note]:
    """The notes of all non-drum instruments of a MIDI file, MIDI bytes, ``PrettyMIDI`` or music21 score."""
    pm = load_pretty_midi(source, name)
    end_time = pm.get_end_time()
    notes: list[Note] = []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        inst_notes = [Note(float(n.start), float(n.end), int(n.pitch), int(n.velocity)) for n in inst.notes]
        if sustain:
            inst_notes = sustained(inst_notes, pedal_intervals(inst.control_changes, end_time))
        notes += inst_notes
    return sorted(notes)


# --- writing and checking -------------------------------------------------------------------------------------------


def to_pretty_midi(notes: Iterable[Note], program: int = 0):
    """A one-instrument ``PrettyMIDI`` (General MIDI ``program``, 0 = acoustic grand piano) at 120 bpm with 1 ms
    ticks, so times on the 10 ms event grid are written exactly."""
    pretty_midi = import_pretty_midi()
    pm = pretty_midi.PrettyMIDI(resolution=500, initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=program, name="perceiver")
    inst.notes = [pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start, end=n.end) for n in notes]
    pm.instruments.append(inst)
    return pm


def midi_bytes(pm) -> bytes:
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def midi_problems(source: Union[str, Path, bytes]) -> list[str]:
    """What is wrong with a MIDI file at the message level (empty list: nothing): it must parse, and every
    note-on must be followed by its note-off on the same channel before the pitch is struck again."""
    import mido

    try:
        mid = mido.MidiFile(file=io.BytesIO(source)) if isinstance(source, bytes) else mido.MidiFile(str(source))
    except Exception as e:
        return [f"unreadable: {type(e).__name__}: {e}"]
    problems = []
    for t, track in enumerate(mid.tracks):
        sounding: set[tuple[int, int]] = set()
        for msg in track:
            if msg.type not in ("note_on", "note_off"):
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                if key in sounding:
                    problems.append(f"track {t}: note-on of sounding note {key}")
                sounding.add(key)
            elif key in sounding:
                sounding.discard(key)
            else:
                problems.append(f"track {t}: note-off of silent note {key}")
        problems += [f"track {t}: note {key} never ends" for key in sorted(sounding)]
    return problems


# --- the tokenizer --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MidiTokenizer:
    """MIDI <-> perceiver-io 0.11 event ids (see :mod:`perceiver.model.audio.symbolic.events`).

    Args:
        velocity_every_note: emit a velocity event before every note-on (0.11's encoder did; prompts for 0.11
            checkpoints look like its training data then), not only when the velocity bin changes.
        sustain: extend notes held by the sustain pedal.
    """

    velocity_every_note: bool = False
    sustain: bool = True

    vocab_size = VOCAB_SIZE
    pad_token_id = PAD_ID

    def __len__(self) -> int:
        return VOCAB_SIZE

    def encode(self, source: MidiSource, name: Optional[str] = None) -> list[int]:
        """Event ids of a MIDI file, MIDI bytes, ``PrettyMIDI`` or music21 score."""
        return encode_notes(read_notes(source, self.sustain, name), self.velocity_every_note)

    def decode(self, ids: Sequence[int], path: Optional[Union[str, Path]] = None, program: int = 0):
        """A ``pretty_midi.PrettyMIDI`` of event ids (every note ended; see ``decode_events``), written to ``path``
        if given."""
        pm = to_pretty_midi(decode_events([int(i) for i in ids]).notes, program)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            pm.write(str(path))
        return pm

    @staticmethod
    def to_text(ids: Sequence[int]) -> str:
        return to_text(int(i) for i in ids)

    @staticmethod
    def from_text(text: str) -> list[int]:
        return from_text(text)


# --- the Bach chorales of music21's corpus --------------------------------------------------------------------------


def chorale_paths() -> list[Path]:
    """The Bach chorale scores of music21's corpus (MusicXML and Humdrum files, sorted by name). The corpus's
    Bach folder holds 433 files; its 20 ``.rntxt`` files are Roman-numeral analyses, not scores, and are left out."""
    music21 = import_music21()
    paths = music21.corpus.getComposer("bach")
    return sorted((Path(p) for p in paths if Path(p).suffix in SCORE_SUFFIXES), key=lambda p: p.name)


def chorale_name(path: Path) -> str:
    """``bach/bwv1.6`` for ``.../corpus/bach/bwv1.6.mxl``."""
    return f"{Path(path).parent.name}/{Path(path).stem}"


def load_score(name_or_path: Union[str, Path]):
    """A music21 score: a file path, or a corpus name such as ``bach/bwv1.6`` (``bwv1.6`` works too)."""
    music21 = import_music21()
    path = Path(name_or_path)
    if path.is_file():
        return music21.converter.parse(str(path))
    name = str(name_or_path) if "/" in str(name_or_path) else f"bach/{name_or_path}"
    try:
        return music21.corpus.parse(name)
    except Exception as e:
        raise MidiError(name_or_path, "neither a score file nor a music21 corpus name such as bach/bwv1.6") from e
