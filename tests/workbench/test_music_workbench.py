"""The symbolic music task in the registry, the CLI, the workbench and the dashboard (piano roll and audio)."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from matplotlib.figure import Figure

from perceiver import tasks
from perceiver.model.audio.symbolic import SymbolicAudioModelConfig
from perceiver.model.audio.symbolic.music import MusicSample
from perceiver.runs.music import piano_roll, sample_audio
from perceiver.scripts.audio import symbolic


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["cli"])


def test_task_is_registered():
    task = tasks.get("music")
    assert task.config_class is SymbolicAudioModelConfig and task.model_preset == "maestro-28.5m"
    assert task.data_class.__name__ == "MaestroV3DataModule"
    assert set(task.presets) == {"MAESTRO (28.5M)", "tiny CPU"}


def test_cli_defaults_are_the_maestro_model(capsys):
    with pytest.raises(SystemExit):
        symbolic.main(["fit", "--print_config", "--data.source=sample"])
    config = yaml.safe_load(capsys.readouterr().out)
    model, data = config["model"], config["data"]
    assert (model["max_latents"], model["num_channels"], model["num_self_attention_layers"]) == (1024, 512, 8)
    assert model["output_norm"] is True and model["abs_pos_emb"] is False
    assert data["class_path"].endswith("MaestroV3DataModule") and data["init_args"]["max_seq_len"] == 2048


def test_workbench_presets(tmp_path):
    pytest.importorskip("ipywidgets")
    from widgets import Workbench

    wb = Workbench("music", preset="tiny CPU", run_dir=str(tmp_path))
    assert wb.config() == SymbolicAudioModelConfig.from_preset("tiny")  # vocab_size and max_seq_len from the data
    assert not wb.validate()
    wb.apply_preset("MAESTRO (28.5M)")
    assert "28.5M" in wb.params_label.value
    config = wb.cli_config()
    assert config["data"]["init_args"]["source"] == "sample" and config["model"]["max_latents"] == 1024


def test_dashboard_shows_piano_roll_and_audio(tmp_path):
    pytest.importorskip("ipywidgets")
    from widgets.dashboard import Dashboard, _bundle

    assert piano_roll(tmp_path) is None and sample_audio(tmp_path) is None  # nothing yet
    sample = MusicSample.from_text("v22 on60 on64 | dt50 off60 off64 on62 dt50 off62")
    (tmp_path / "samples.jsonl").write_text(json.dumps({"step": 7, "text": sample.text}) + "\n")
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "train_loss": 5.0, "lr": 1e-3,
                                                        "tokens_per_s": 10.0}) + "\n")
    fig = piano_roll(tmp_path)
    assert isinstance(fig, Figure) and "step 7" in fig.axes[0].get_title()
    assert "<audio" in _bundle(sample_audio(tmp_path))["text/html"]
    saved = Dashboard(tmp_path, tasks.get("music")).save()
    assert saved["piano_roll"].suffix == ".png" and saved["sample_audio"].suffix == ".html"
    assert "<audio" in saved["sample_audio"].read_text()
