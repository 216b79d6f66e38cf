"""Prompts in, music out: continue a MIDI file, a chorale or event text with a symbolic audio model, and keep the
result as MIDI, a piano roll and a WAV preview.

    from perceiver.model.audio.symbolic import generate_music

    samples = generate_music(model, "chorale:bwv1.6", max_new_events=512, prompt_events=64, num_samples=2)
    paths = samples[0].save("out/sample")       # out/sample.mid, out/sample.png, out/sample.wav
    samples[0].audio()                          # IPython.display.Audio of the WAV preview

Prompts (:func:`prompt_ids`): event ids, event text (``"v22 on60 dt50"``), the path of a MIDI file or of a score
music21 reads, or ``chorale:<name>`` for a Bach chorale of music21's corpus (``chorale:bwv1.6``).
Generation is the model's own ``generate`` (the causal language model's kv-cached decoding loop); sampling is
seeded, so a seed gives the same music again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from perceiver.model.audio.symbolic.events import DecodedEvents, decode_events, from_text, to_text
from perceiver.model.audio.symbolic.midi import MidiTokenizer, load_score, midi_bytes, midi_problems, to_pretty_midi

Prompt = Union[str, Path, Sequence[int]]
MIDI_SUFFIXES = (".mid", ".midi")


def prompt_ids(prompt: Prompt, tokenizer: Optional[MidiTokenizer] = None) -> list[int]:
    """Event ids of a prompt (see the module docstring)."""
    tokenizer = tokenizer or MidiTokenizer()
    if not isinstance(prompt, (str, Path)):
        return [int(i) for i in prompt]
    text = str(prompt).strip()
    if text.startswith("chorale:"):
        return tokenizer.encode(load_score(text[len("chorale:"):]), name=text)
    path = Path(text).expanduser()
    if path.is_file():
        return tokenizer.encode(path if path.suffix.lower() in MIDI_SUFFIXES else load_score(path), name=str(path))
    try:
        return from_text(text)
    except ValueError as e:
        raise ValueError(f"prompt {text[:60]!r} is not an existing MIDI or score file, 'chorale:<name>' (e.g. "
                         f"chorale:bwv1.6) or event text ({e})") from None


@dataclass
class MusicSample:
    """A prompt and its generated continuation, as event ids."""

    prompt: list[int]
    generated: list[int]

    @property
    def ids(self) -> list[int]:
        return self.prompt + self.generated

    @cached_property
    def decoded(self) -> DecodedEvents:
        """Notes of prompt + continuation, with the repairs decoding needed (``issues``)."""
        return decode_events(self.ids)

    @property
    def prompt_end(self) -> float:
        """Time (seconds) at which the continuation starts."""
        return decode_events(self.prompt).duration

    @property
    def text(self) -> str:
        """Event text of the prompt and the continuation, separated by ``|`` (see :meth:`from_text`)."""
        return f"{to_text(self.prompt)} | {to_text(self.generated)}"

    @classmethod
    def from_text(cls, text: str) -> "MusicSample":
        """The sample of ``text`` (``"v22 on60 | dt50 off60"``; without ``|`` all events are generated)."""
        prompt, sep, generated = text.partition("|")
        return cls(from_text(prompt), from_text(generated)) if sep else cls([], from_text(text))

    def midi(self, program: int = 0):
        """A ``pretty_midi.PrettyMIDI`` of the whole piece."""
        return to_pretty_midi(self.decoded.notes, program)

    def midi_problems(self) -> list[str]:
        """Message-level problems of the written MIDI file (``midi_problems``); empty for a valid file."""
        return midi_problems(midi_bytes(self.midi()))

    def waveform(self):
        from perceiver.model.audio.symbolic.synth import synthesize

        return synthesize(self.decoded.notes)

    def wav_bytes(self) -> bytes:
        from perceiver.model.audio.symbolic.synth import wav_bytes

        return wav_bytes(self.waveform())

    def audio(self):
        """An ``IPython.display.Audio`` of the WAV preview."""
        from IPython.display import Audio

        return Audio(data=self.wav_bytes())

    def piano_roll(self, title: str = ""):
        from perceiver.model.audio.symbolic.roll import piano_roll

        d = self.decoded
        title = title or (f"{len(d.notes)} notes, {d.duration:.1f} s ({len(self.prompt)} prompt + "
                          f"{len(self.generated)} generated events)")
        return piano_roll(d.notes, title, prompt_end=self.prompt_end or None)  # no line for a prompt without time

    def save(self, stem: Union[str, Path]) -> dict[str, Path]:
        """Write ``<stem>.mid``, ``<stem>.png`` (piano roll) and ``<stem>.wav`` (preview); returns the paths."""
        from perceiver.runs.figures import png

        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        # suffixes are appended (a stem such as "bwv1.6" keeps its dot)
        paths = {kind: stem.parent / f"{stem.name}.{kind}" for kind in ("mid", "png", "wav")}
        self.midi().write(str(paths["mid"]))
        paths["png"].write_bytes(png(self.piano_roll()))
        paths["wav"].write_bytes(self.wav_bytes())
        return paths


@torch.no_grad()
def generate_music(
    model,
    prompt: Prompt = "v22",
    max_new_events: int = 512,
    prompt_events: Optional[int] = None,
    num_samples: int = 1,
    num_latents: int = 1,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    seed: Optional[int] = 0,
    tokenizer: Optional[MidiTokenizer] = None,
) -> list[MusicSample]:
    """``num_samples`` continuations of ``prompt`` by ``model`` (a :class:`SymbolicAudioModel`).

    Args:
        prompt: see :func:`prompt_ids`.
        max_new_events: events to generate per sample.
        prompt_events: keep only the first this many prompt events (also cut to the model's ``max_seq_len``).
        num_latents: prompt positions that start as latents (the rest is the prefix), as in ``generate``.
        do_sample: sample (with ``temperature``, ``top_k``, ``top_p``), or greedy decoding.
        seed: seed of the sampling generator (None: torch's global generator).
    """
    ids = prompt_ids(prompt, tokenizer)
    ids = ids[: min(prompt_events or len(ids), model.config.max_seq_len)]
    if not ids:
        raise ValueError(f"prompt {str(prompt)[:60]!r} has no events")
    device = next(model.parameters()).device
    x = torch.tensor([ids] * num_samples, device=device)  # (B, n0)
    generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    out = model.generate(x, max_new_events, num_latents=min(num_latents, len(ids), model.config.max_latents),
                         do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
                         generator=generator)  # (B, n0 + max_new_events)
    return [MusicSample(list(ids), row[len(ids):].tolist()) for row in out]


def validity(samples: Sequence[MusicSample]) -> dict[str, float]:
    """How well-formed generated music is (fractions over ``samples``):

    - ``valid_midi``: the written MIDI file parses and every note-on has its note-off (``midi_problems``);
    - ``grammatical``: the generated events need no repair: no note-off of a silent pitch, no note-on of a sounding
      pitch, no zero-length note (notes still sounding where generation stopped are allowed);
    - ``notes_closed_by_model``: of all generated note-ons, the share the model itself ended.
    """
    n = max(len(samples), 1)
    valid = sum(not s.midi_problems() for s in samples)
    grammatical = sum(s.decoded.grammatical for s in samples)
    notes = sum(len(s.decoded.notes) for s in samples)
    open_at_end = sum(s.decoded.issues["open_at_end"] for s in samples)
    return {"valid_midi": valid / n, "grammatical": grammatical / n,
            "notes_closed_by_model": 1.0 - open_at_end / max(notes, 1), "samples": len(samples)}
