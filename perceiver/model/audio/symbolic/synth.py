"""A small additive synthesizer: notes to a mono waveform and a 16-bit WAV file, in NumPy, with no soundfont and no
external program. It is a preview, not a piano: each note is a sum of harmonics with a short attack, an exponential
decay (faster for higher pitches and higher harmonics, like struck strings) and a release after the note's end.

    wav = synthesize(notes)                       # float32 (T,), T = sample_rate * seconds
    write_wav("sample.wav", wav)                  # or wav_bytes(wav) for IPython.display.Audio(data=...)

Dimensions: T samples, K harmonics.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Iterable, Union

import numpy as np

from perceiver.model.audio.symbolic.events import Note

SAMPLE_RATE = 22050
HARMONICS = np.array([1.0, 0.5, 0.28, 0.16, 0.09, 0.05])  # (K,) relative amplitudes
ATTACK_S, RELEASE_S = 0.005, 0.08


def frequency(pitch: int) -> float:
    """Equal temperament, A4 = MIDI 69 = 440 Hz."""
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def note_wave(note: Note, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The waveform (T,) of one note from its start to the end of its release."""
    length = note.end - note.start
    t = np.arange(int((length + RELEASE_S) * sample_rate)) / sample_rate  # (T,)
    k = np.arange(1, len(HARMONICS) + 1)[:, None]  # (K, 1)
    f = frequency(note.pitch)
    audible = (k[:, 0] * f) < sample_rate / 2  # drop harmonics above the Nyquist frequency
    decay = 1.2 * 2.0 ** (-(note.pitch - 60) / 24)  # seconds; higher notes die away faster
    partials = HARMONICS[:, None] * np.exp(-t * k / decay) * np.sin(2 * np.pi * f * k * t)  # (K, T)
    tone = partials[audible].sum(axis=0)
    envelope = np.minimum(1.0, t / ATTACK_S) * np.clip(1.0 - (t - length) / RELEASE_S, 0.0, 1.0)
    return (note.velocity / 127.0) ** 1.5 * envelope * tone


def synthesize(notes: Iterable[Note], sample_rate: int = SAMPLE_RATE, peak: float = 0.9) -> np.ndarray:
    """A mono float32 waveform (T,) of ``notes``, scaled so its largest magnitude is ``peak``."""
    notes = list(notes)
    end = max((n.end for n in notes), default=0.0) + RELEASE_S
    out = np.zeros(int(end * sample_rate) + 1, dtype=np.float64)
    for n in notes:
        w = note_wave(n, sample_rate)
        i = int(n.start * sample_rate)
        out[i : i + len(w)] += w[: len(out) - i]
    top = np.abs(out).max()
    return (out * (peak / top) if top > 0 else out).astype(np.float32)


def wav_bytes(wave_: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit PCM mono WAV file of a float waveform in [-1, 1]."""
    pcm = (np.clip(wave_, -1.0, 1.0) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(path: Union[str, Path], wave_: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(wave_, sample_rate))
    return path
