"""Figures of a symbolic music run directory: the latest generated piece (``samples.jsonl``, event text written by
``LitSymbolicAudioModel.sample``) as a piano roll and as audio from the built-in synthesizer.

Like every figure function of ``perceiver.runs``, each takes the run directory (and the task) and returns what the
dashboard shows, or None when there is nothing yet: a Matplotlib ``Figure``, or an ``IPython.display.Audio``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from matplotlib.figure import Figure

from perceiver.runs.figures import read_jsonl


def latest_sample(run_dir: Path):
    """(step, ``MusicSample``) of the last sample in ``samples.jsonl``; None if there is none."""
    from perceiver.model.audio.symbolic.music import MusicSample

    samples = read_jsonl(Path(run_dir) / "samples.jsonl")
    if not samples:
        return None
    try:
        return samples[-1]["step"], MusicSample.from_text(samples[-1]["text"])
    except ValueError:  # not event text: a sample of another task
        return None


def piano_roll(run_dir: Path, task=None) -> Optional[Figure]:
    """Piano roll of the latest generated piece (the prompt grey, the continuation coloured by velocity)."""
    found = latest_sample(run_dir)
    if found is None:
        return None
    step, sample = found
    d = sample.decoded
    return sample.piano_roll(f"sample at step {step}: {len(d.notes)} notes, {d.duration:.1f} s "
                             f"({len(sample.generated)} generated events)")


def sample_audio(run_dir: Path, task=None):
    """``IPython.display.Audio`` of the latest generated piece (built-in synthesizer, no soundfont)."""
    found = latest_sample(run_dir)
    if found is None or not found[1].decoded.notes:
        return None
    return found[1].audio()
