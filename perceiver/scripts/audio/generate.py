"""Generate music with a symbolic audio model and write it as MIDI, a piano-roll PNG and a WAV preview.

    python -m perceiver.scripts.audio.generate --model runs/music --prompt chorale:bwv1.6 --out samples/bach

writes ``samples/bach.mid``, ``samples/bach.png`` and ``samples/bach.wav`` (``-<i>`` before the suffix for
``--num_samples`` > 1). ``--model`` is a run directory (its ``checkpoints/final.ckpt``) or a directory of runs such
as ``runs/music`` (its latest run), a Lightning checkpoint, a directory saved with ``save_pretrained``, or a
perceiver-io 0.11 symbolic audio model (directory or checkpoint). Relative paths are taken from the repository root
(``perceiver.runs.paths``), as everywhere else.
``--prompt`` is ``chorale:<name>`` (music21's Bach chorales), a MIDI or score file, or event text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from jsonargparse import CLI

from perceiver.model.audio.symbolic.backend import SymbolicAudioModel
from perceiver.runs import paths


def load_model(source: str, map_location: str = "cpu") -> SymbolicAudioModel:
    """The backend model of a run directory, checkpoint, saved model directory or perceiver-io 0.11 model."""
    from perceiver.model.audio.symbolic.lightning import LitSymbolicAudioModel
    from perceiver.model.audio.symbolic.predecessor import SAM_MODEL_TYPE, load_predecessor

    path = paths.resolve(source)
    if path.is_dir() and not (path / "config.json").is_file():  # a run directory, or a directory of runs
        path = paths.latest_run(path) or path
    if (path / "checkpoints").is_dir():  # a run directory
        ckpts = sorted((path / "checkpoints").glob("*.ckpt"),
                       key=lambda p: (p.name != "final.ckpt", -p.stat().st_mtime))
        if not ckpts:
            raise FileNotFoundError(f"no checkpoint in {path / 'checkpoints'}; train first")
        path = ckpts[0]
    if path.is_dir():
        config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
        if config.get("model_type") == SAM_MODEL_TYPE:
            return load_predecessor(str(path))
        from perceiver.model.audio.symbolic.huggingface import PerceiverSymbolicAudioModel

        return PerceiverSymbolicAudioModel.from_pretrained(str(path)).backend_model.eval()
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such run directory, checkpoint or model directory")
    try:
        return LitSymbolicAudioModel.load_from_checkpoint(str(path), map_location=map_location).model.eval()
    except (KeyError, TypeError, RuntimeError):  # not our Lightning checkpoint: perhaps perceiver-io 0.11's
        return load_predecessor(str(path))


def main(
    model: str,
    prompt: str = "chorale:bwv1.6",
    out: str = "runs/generated_music/sample",
    prompt_events: Optional[int] = 64,
    max_new_events: int = 512,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    seed: Optional[int] = 0,
) -> list[dict[str, Path]]:
    """Continue ``prompt`` with ``model`` and write each piece as ``<out>.mid``, ``.png`` and ``.wav``.

    Args:
        model: run directory (or a directory of runs: the latest), Lightning checkpoint, saved model directory or
            perceiver-io 0.11 model.
        prompt: ``chorale:<name>`` (e.g. ``chorale:bwv1.6``), a MIDI or score file, or event text.
        out: path of the output files without suffix (relative: from the repository root).
        prompt_events: keep only the first this many events of the prompt (None: all that fit the model).
        max_new_events: events to generate.
        num_samples: pieces to generate (``<out>-<i>.*``).
        temperature: sampling temperature.
        top_k: sample from the k most probable events only.
        top_p: nucleus sampling.
        seed: seed of the sampling (the same seed gives the same music).
    """
    from perceiver.model.audio.symbolic.music import generate_music, validity

    backend = load_model(model)
    samples = generate_music(backend, prompt, max_new_events, prompt_events=prompt_events, num_samples=num_samples,
                             temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    written = []
    for i, sample in enumerate(samples):
        stem = paths.resolve(out if num_samples == 1 else f"{out}-{i}")
        files = sample.save(stem)
        d = sample.decoded
        print(f"{len(d.notes)} notes, {d.duration:.1f} s: " + ", ".join(str(p) for p in files.values()))
        written.append(files)
    print("validity:", validity(samples))
    return written


if __name__ == "__main__":
    CLI(main, as_positional=False)
