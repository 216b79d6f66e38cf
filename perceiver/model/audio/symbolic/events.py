"""MIDI performance events (Music Transformer, Huang et al. 2018, appendix A.2) with perceiver-io 0.11's ids.

Vocabulary (389 ids, the same as perceiver-io 0.11, so its checkpoints and prompts stay compatible)::

    0   .. 127   note-on  pitch p          on<p>
    128 .. 255   note-off pitch p          off<p>
    256 .. 355   time shift of k steps     dt<k>   k = 1..100, one step = 10 ms (up to 1 s per event)
    356 .. 387   set velocity bin b        v<b>    b = velocity // 4 (32 bins); decoded as 4 b + 2
    388          padding                   pad

A sequence is read left to right with a clock that starts at 0: ``dt<k>`` advances it, ``v<b>`` sets the velocity
of the following note-ons, ``on<p>``/``off<p>`` start and end pitch p at the current time. The right column is the
event text (``"v22 on60 dt50 off60"``), a readable and parseable form of a sequence.

Encoding (:func:`encode_notes`) quantizes absolute times to steps (so errors do not accumulate), gives every note at
least one step, and resolves overlapping notes of the same pitch, which one event stream cannot express: a note
that starts while the same pitch sounds ends the earlier note there; notes of the same pitch and onset are merged
(the longest, loudest one is kept). At one time, note-offs come before velocity and note-on events. A velocity event
is emitted when the bin changes (or before every note-on with ``velocity_every_note``, as 0.11's encoder did).

Decoding (:func:`decode_events`) never drops a note-on: a note-on of a sounding pitch ends the earlier note, a
note-off of a silent pitch is ignored, and notes still sounding at the end of the sequence end there. It counts each
such repair in ``DecodedEvents.issues``; a sequence produced by :func:`encode_notes` needs none, except
``open_at_end`` when it was cut out of a longer one.

Dimensions: none (plain Python lists of ids and :class:`Note` objects).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

NOTE_ON, NOTE_OFF, TIME_SHIFT, VELOCITY, PAD_ID = 0, 128, 256, 356, 388
NUM_PITCHES, NUM_TIME_SHIFTS, NUM_VELOCITY_BINS = 128, 100, 32
VOCAB_SIZE = 389
STEPS_PER_SECOND = 100
DEFAULT_VELOCITY_BIN = 20  # velocity 82 for note-ons that come before any velocity event


@dataclass(frozen=True, order=True)
class Note:
    """A note in seconds (``start < end``), MIDI pitch and velocity (1..127)."""

    start: float
    end: float
    pitch: int
    velocity: int


@dataclass
class DecodedEvents:
    """The notes of a decoded sequence and the repairs it needed (see the module docstring)."""

    notes: list[Note]
    issues: Counter = field(default_factory=Counter)
    """``orphan_note_off``, ``retriggered_note_on``, ``zero_length``, ``open_at_end``, ``padding``."""
    duration: float = 0.0
    """Time at the end of the sequence (seconds): the clock after the last event."""

    @property
    def grammatical(self) -> bool:
        """No orphan note-off, no note-on of a sounding pitch, no zero-length note (notes open at the end are
        allowed: a sequence cut from a longer one has them)."""
        return not any(self.issues[k] for k in ("orphan_note_off", "retriggered_note_on", "zero_length"))


# --- ids ------------------------------------------------------------------------------------------------------------


def velocity_bin(velocity: int) -> int:
    return min(max(int(velocity), 0), 127) // 4


def bin_velocity(b: int) -> int:
    """The velocity a bin decodes to: the centre of its range (never 0, which MIDI reads as a note-off)."""
    return 4 * b + 2


def kind(i: int) -> tuple[str, int]:
    """``("on" | "off" | "dt" | "v" | "pad", value)`` of id ``i``; ``ValueError`` outside the vocabulary."""
    if 0 <= i < NOTE_OFF:
        return "on", i
    if i < TIME_SHIFT:
        return "off", i - NOTE_OFF
    if i < VELOCITY:
        return "dt", i - TIME_SHIFT + 1
    if i < PAD_ID:
        return "v", i - VELOCITY
    if i == PAD_ID:
        return "pad", 0
    raise ValueError(f"event id {i} is outside the vocabulary [0, {VOCAB_SIZE})")


_RANGES = {  # event name -> (id of value 0, lowest value, highest value)
    "on": (NOTE_ON, 0, NUM_PITCHES - 1),
    "off": (NOTE_OFF, 0, NUM_PITCHES - 1),
    "dt": (TIME_SHIFT - 1, 1, NUM_TIME_SHIFTS),
    "v": (VELOCITY, 0, NUM_VELOCITY_BINS - 1),
}
_TOKEN = re.compile(r"^(on|off|dt|v)(\d+)$")


def event_id(name: str, value: int) -> int:
    offset, low, high = _RANGES[name]
    if not low <= value <= high:
        raise ValueError(f"{name}{value}: value out of range [{low}, {high}]")
    return offset + value


def to_text(ids: Iterable[int]) -> str:
    """Event text of ``ids`` (``"v22 on60 dt50 off60"``)."""
    return " ".join(f"{k}{v}" if k != "pad" else "pad" for k, v in map(kind, ids))


def from_text(text: str) -> list[int]:
    """Ids of event text (inverse of :func:`to_text`); ``ValueError`` naming the first bad token."""
    ids = []
    for token in text.split():
        if token == "pad":
            ids.append(PAD_ID)
            continue
        m = _TOKEN.match(token)
        if m is None:
            raise ValueError(f"{token!r} is not an event (on<pitch>, off<pitch>, dt<1..100>, v<0..31> or pad)")
        ids.append(event_id(m.group(1), int(m.group(2))))
    return ids


# --- notes -> events ------------------------------------------------------------------------------------------------


def quantize(notes: Iterable[Note]) -> list[tuple[int, int, int, int]]:
    """``(start_step, end_step, pitch, velocity_bin)`` of each note, sorted, with at least one step per note and
    overlaps of the same pitch resolved (see the module docstring)."""
    return resolve_overlaps(
        (round(n.start * STEPS_PER_SECOND), round(n.end * STEPS_PER_SECOND), n.pitch, velocity_bin(n.velocity))
        for n in notes if 0 <= n.pitch < NUM_PITCHES
    )


def resolve_overlaps(steps: Iterable[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Sorted ``(start, end, pitch, bin)`` step tuples with ``0 <= start < end`` and no two notes of one pitch
    sounding at once: the same pitch struck again ends the earlier note; notes of one pitch and onset are merged
    into the longest and loudest of them."""
    by_pitch: dict[int, list[list[int]]] = {}
    for s, e, p, b in sorted(steps):
        s = max(s, 0)
        e = max(e, s + 1)
        kept = by_pitch.setdefault(p, [])
        if kept and kept[-1][0] == s:
            kept[-1][1], kept[-1][3] = max(kept[-1][1], e), max(kept[-1][3], b)
            continue
        if kept and kept[-1][1] > s:
            kept[-1][1] = s
        kept.append([s, e, p, b])
    return sorted(tuple(n) for notes in by_pitch.values() for n in notes)


def time_shifts(steps: int) -> list[int]:
    """Time-shift ids that advance the clock by ``steps`` (greedy: 100-step events, then the rest)."""
    full, rest = divmod(steps, NUM_TIME_SHIFTS)
    return [TIME_SHIFT + NUM_TIME_SHIFTS - 1] * full + ([TIME_SHIFT + rest - 1] if rest else [])


def encode_notes(notes: Iterable[Note], velocity_every_note: bool = False) -> list[int]:
    """Event ids of ``notes`` (see the module docstring)."""
    events = []  # (time step, order, pitch, velocity bin): note-offs (order 0) before note-ons (order 1)
    for s, e, p, b in quantize(notes):
        events.append((e, 0, p, b))
        events.append((s, 1, p, b))
    events.sort()
    ids: list[int] = []
    clock, current_bin = 0, None
    for t, order, p, b in events:
        ids += time_shifts(t - clock)
        clock = t
        if order == 0:
            ids.append(NOTE_OFF + p)
            continue
        if b != current_bin or velocity_every_note:
            ids.append(VELOCITY + b)
            current_bin = b
        ids.append(NOTE_ON + p)
    return ids


# --- events -> notes ------------------------------------------------------------------------------------------------


def decode_events(ids: Sequence[int], default_velocity_bin: int = DEFAULT_VELOCITY_BIN) -> DecodedEvents:
    """Notes of event ids, with every note-on ended (see the module docstring)."""
    issues: Counter = Counter()
    notes: list[tuple[int, int, int, int]] = []
    sounding: dict[int, tuple[int, int]] = {}  # pitch -> (start step, velocity bin)
    clock, current_bin = 0, default_velocity_bin

    def end(p: int) -> None:
        s, b = sounding.pop(p)
        if clock == s:
            issues["zero_length"] += 1
        notes.append((s, max(clock, s + 1), p, b))

    for i in ids:
        k, v = kind(int(i))
        if k == "dt":
            clock += v
        elif k == "v":
            current_bin = v
        elif k == "on":
            if v in sounding:
                issues["retriggered_note_on"] += 1
                end(v)
            sounding[v] = (clock, current_bin)
        elif k == "off":
            if v in sounding:
                end(v)
            else:
                issues["orphan_note_off"] += 1
        else:
            issues["padding"] += 1
    for p in sorted(sounding):
        issues["open_at_end"] += 1
        end(p)
    # a zero-length note lasts one step, which may reach a later onset of its pitch: resolve as when encoding
    steps = resolve_overlaps(notes)
    out = [Note(s / STEPS_PER_SECOND, e / STEPS_PER_SECOND, p, bin_velocity(b)) for s, e, p, b in steps]
    return DecodedEvents(out, issues, clock / STEPS_PER_SECOND)


# --- augmentation on event ids ----------------------------------------------------------------------------------------


def pitch_range(ids: Sequence[int]) -> Optional[tuple[int, int]]:
    """(lowest, highest) pitch of the note events in ``ids``, None if there are none."""
    pitches = [i % NUM_PITCHES for i in ids if 0 <= i < TIME_SHIFT]
    return (min(pitches), max(pitches)) if pitches else None


def transpose(ids: Sequence[int], semitones: int) -> list[int]:
    """``ids`` with every note event moved by ``semitones``; ``ValueError`` if a pitch would leave 0..127."""
    out = []
    for i in ids:
        if 0 <= i < TIME_SHIFT:
            p = i % NUM_PITCHES + semitones
            if not 0 <= p < NUM_PITCHES:
                raise ValueError(f"transposing by {semitones} moves pitch {i % NUM_PITCHES} out of range 0..127")
            i = i - i % NUM_PITCHES + p
        out.append(i)
    return out


def stretch(ids: Sequence[int], factor: float) -> list[int]:
    """``ids`` played ``factor`` times as long: every event's time is scaled and re-quantized (absolute times, so
    rounding errors do not add up); the events themselves and their order are kept."""
    out: list[int] = []
    clock = new_clock = 0
    for i in ids:
        if TIME_SHIFT <= i < VELOCITY:
            clock += i - TIME_SHIFT + 1
            continue
        t = round(clock * factor)
        out += time_shifts(t - new_clock)
        new_clock = t
        out.append(i)
    out += time_shifts(round(clock * factor) - new_clock)
    return out
