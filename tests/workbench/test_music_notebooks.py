"""Notebook regression tests of symbolic music: train_music.ipynb on a few Bach chorales (as a local folder of MIDI
files: converting all 413 takes minutes), then generate_music.ipynb on its checkpoint. Same checks and reference
figures as ``test_notebooks.py`` (one CPU device, one torch thread); refresh with ``PERCEIVER_UPDATE_REFERENCE=1``."""

import json
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from test_notebooks import LOSS_DROP, REFERENCE, REL_TOL, RUN_FILES, papermill, png_outputs, text_outputs

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

TINY = {"max_steps": 20, "max_seq_len": 128, "batch_size": 8, "seed": 0, "devices": "cpu", "cpu_threads": 1}
CHORALES = 12


def html_outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)


@pytest.fixture(scope="module")
def runs():
    pytest.importorskip("music21")
    from perceiver.data.audio.sources import chorale_pieces
    from perceiver.model.audio.symbolic.midi import load_score, score_to_midi_bytes

    tmp = Path(tempfile.mkdtemp(prefix="perceiver-music-notebooks-"))
    for piece in chorale_pieces()[:CHORALES]:
        (tmp / "chorales").mkdir(exist_ok=True)
        (tmp / "chorales" / f"{Path(piece.path).stem}.mid").write_bytes(score_to_midi_bytes(load_score(piece.path)))
    p = papermill("train_music.ipynb", tmp / "train_music.ipynb",
                  {**TINY, "run_dir": str(tmp / "music"), "data_source": str(tmp / "chorales")}, tmp)
    out, _ = p.communicate(timeout=900)
    assert p.returncode == 0, f"train_music.ipynb failed:\n{out[-3000:]}"
    p = papermill("generate_music.ipynb", tmp / "generate_music.ipynb",
                  {"run_dir": str(tmp / "music"), "max_new_events": 64, "num_samples": 2,
                   "out_dir": str(tmp / "generated")}, tmp)
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, f"generate_music.ipynb failed:\n{out[-3000:]}"
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def test_train_music_notebook(runs):
    run = runs / "music"
    files = [*RUN_FILES, "plots/byte_attention.png", "plots/piano_roll.png", "plots/sample_audio.html"]
    assert not [f for f in files if not (run / f).is_file()]
    assert list((run / "attention").glob("step-*.npz"))
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["steps"] == TINY["max_steps"]
    first, final = m["first_train_loss"], m["final"]["train_loss"]
    assert first - final >= LOSS_DROP, f"loss fell only from {first:.3f} to {final:.3f}"
    assert "val_acc" in m["final"] and json.loads((run / "env.json").read_text())["task"] == "music"
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
    env = json.loads((run / "env.json").read_text())
    assert env["device"].startswith("1 x cpu") and env["torch_threads"] == TINY["cpu_threads"]

    figures = {"first_train_loss": first, "final_train_loss": final, "final_val_loss": m["final"]["val_loss"]}
    ref_path = REFERENCE / "music.json"
    if os.environ.get("PERCEIVER_UPDATE_REFERENCE"):
        ref_path.write_text(json.dumps({"params": TINY, "chorales": CHORALES, **figures}, indent=1) + "\n")
    ref = json.loads(ref_path.read_text())
    assert ref["params"] == TINY and ref["chorales"] == CHORALES, "the reference was recorded with other parameters"
    for key, value in figures.items():
        assert value == pytest.approx(ref[key], rel=REL_TOL), f"{key}: {value} vs reference {ref[key]}"

    out = runs / "train_music.ipynb"
    assert png_outputs(out) >= 3  # loss curves, attention map, piano roll
    assert "<audio" in html_outputs(out)  # the generated piece, playable
    text = text_outputs(out)
    assert "[journal] step" in text and "unigram entropy" in text


def test_generate_music_notebook(runs):
    out = runs / "generate_music.ipynb"
    assert png_outputs(out) == 2  # one piano roll per sample
    assert html_outputs(out).count("<audio") == 2
    assert "valid_midi" in text_outputs(out)
    for i in range(2):
        for suffix in (".mid", ".png", ".wav"):
            assert (runs / "generated" / f"sample-{i}{suffix}").stat().st_size > 0
