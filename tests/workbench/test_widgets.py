"""Workbench forms without a browser: widget values in, config/YAML/inline errors/Start state out."""

import dataclasses
import subprocess
import sys

import pytest
import yaml

from perceiver.model.text.clm import CausalLanguageModelConfig
from perceiver.model.text.mlm import MaskedLanguageModelConfig
from perceiver import tasks
from widgets import Workbench
from widgets.forms import DataclassForm, attribute_docs


@pytest.fixture(scope="module")
def clm():
    return Workbench("clm", preset="tiny CPU", run_dir="runs/test-widgets")


@pytest.fixture(scope="module")
def mlm():
    return Workbench("mlm", preset="tiny CPU", run_dir="runs/test-widgets-mlm")


def test_every_config_field_is_in_the_form_with_its_help(clm, mlm):
    fields = clm.model_form.all_fields()
    expected = {f.name for f in dataclasses.fields(CausalLanguageModelConfig)} - {"vocab_size", "max_seq_len"}
    assert set(fields) == expected  # data-linked fields come from the data settings, like on the CLI
    docs = attribute_docs(CausalLanguageModelConfig)
    assert fields["max_latents"].help == docs["max_latents"] and "latent" in fields["max_latents"].help
    assert fields["num_heads"].help  # inherited from PerceiverARConfig
    mfields = mlm.model_form.all_fields()
    assert {"num_latents", "num_latent_channels", "encoder.num_input_channels", "decoder.cross_attention_residual",
            "encoder.dropout"} <= set(mfields)
    assert not any(name.endswith(("vocab_size", "max_seq_len")) for name in mfields)
    assert {"source", "max_seq_len", "batch_size", "devices", "precision", "max_steps", "optimizer", "lr",
            "seed", "cpu_threads"} == set(clm.settings_form.fields)
    assert clm.settings_form.fields["max_seq_len"].help  # from the data module's docstring
    assert "usable cores" in clm.settings_form.fields["cpu_threads"].help  # from set_cpu_threads' docstring
    assert clm.settings()["cpu_threads"] is None and clm.cli_config(log=lambda _: None)["cpu_threads"] is None


def test_a_new_config_field_appears_by_itself():
    @dataclasses.dataclass
    class Extended(CausalLanguageModelConfig):
        new_knob: int = 3
        """A field added later."""

    form = DataclassForm(Extended)
    assert form.fields["new_knob"].get() == 3 and form.fields["new_knob"].help == "A field added later."


def test_presets_and_parameter_count(clm, mlm):
    assert set(tasks.get("clm").presets) == {"Perceiver AR (30.6M)", "tiny CPU"}
    assert set(tasks.get("mlm").presets) == {"DeepMind MLM (201M)", "tiny CPU"}
    clm.preset_select.value = "Perceiver AR (30.6M)"
    assert "30.6M" in clm.params_label.value and clm.config() == CausalLanguageModelConfig(vocab_size=262)
    mlm.preset_select.value = "DeepMind MLM (201M)"
    assert "201.1M" in mlm.params_label.value
    clm.preset_select.value = mlm.preset_select.value = "tiny CPU"
    assert clm.config().num_channels == 128 and not clm.start_button.disabled
    clm.model_form.fields["num_self_attention_layers"].input.value = 4
    assert clm.config().num_self_attention_layers == 4  # the count follows the form live
    assert "1.1M" in clm.params_label.value
    clm.preset_select.value = "Perceiver AR (30.6M)"
    clm.preset_select.value = "tiny CPU"
    assert clm.config().num_self_attention_layers == 3


def test_invalid_values_show_inline_errors_and_disable_start(clm, mlm):
    heads = clm.model_form.fields["num_heads"]
    heads.input.value = 3  # 128 channels are not divisible by 3 heads
    assert clm.start_button.disabled and clm.error_list
    # the ConfigError's field (num_channels) is marked; its message names the other field involved
    assert "num_heads" in clm.model_form.fields["num_channels"].error.value
    assert "divisible" in clm.errors.value
    with pytest.raises(ValueError, match="num_heads"):
        clm.config()
    heads.input.value = 4
    assert not clm.start_button.disabled and heads.error.value == ""

    latents = clm.model_form.fields["max_latents"]
    latents.input.value = 1000  # exceeds the data's max_seq_len, which flows into the model config
    assert clm.start_button.disabled and "max_latents" in latents.error.value
    latents.input.value = 64

    drop = mlm.model_form.field("encoder.dropout")
    drop.input.value = 1.5
    assert mlm.start_button.disabled and "dropout" in drop.error.value
    drop.input.value = 0.0
    assert not mlm.start_button.disabled

    lr = clm.settings_form.fields["lr"]
    lr.input.value = "-1"
    assert clm.start_button.disabled and "learning rate" in lr.error.value
    lr.input.value = "abc"
    assert clm.start_button.disabled and "not valid" in lr.error.value
    lr.input.value = "0.002"
    clm.settings_form.fields["batch_size"].input.value = 0
    assert clm.start_button.disabled and "batch_size" in clm.settings_form.fields["batch_size"].error.value
    clm.settings_form.fields["batch_size"].input.value = 16
    assert not clm.start_button.disabled and clm.error_list == []


def test_export_yaml_is_accepted_by_the_cli(clm, mlm, tmp_path):
    clm.model_form.fields["num_channels"].input.value = 96
    clm.export_path.value = str(tmp_path / "clm.yaml")
    clm.export_button.click()
    cfg = yaml.safe_load((tmp_path / "clm.yaml").read_text())
    assert cfg["model"]["num_channels"] == 96 and cfg["data"]["init_args"]["max_seq_len"] == 256
    assert cfg["optimizer"]["init_args"]["lr"] == pytest.approx(0.002)
    assert any("RunJournal" in c["class_path"] for c in cfg["trainer"]["callbacks"])
    clm.model_form.fields["num_channels"].input.value = 128

    path = mlm.export(tmp_path / "mlm.yaml")
    config = mlm.config()
    assert isinstance(config, MaskedLanguageModelConfig) and config.encoder.max_seq_len == 256
    cmd = [sys.executable, "-m", "perceiver.scripts.text.mlm", "fit", "--config", str(path), "--print_config"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = yaml.safe_load(out.stdout)
    assert printed["model"]["encoder"]["num_self_attention_layers_per_block"] == 3
    assert printed["model"]["num_latents"] == config.num_latents


def test_start_and_stop_buttons():
    import tempfile
    from pathlib import Path

    tmp_path = Path(tempfile.mkdtemp(prefix="perceiver-widgets-"))  # not pruned by concurrent pytest sessions
    wb = Workbench("clm", preset="tiny CPU", run_dir=str(tmp_path / "run"), max_steps=1000)
    wb.start_button.click()
    try:
        assert wb.running and wb.start_button.disabled and not wb.stop_button.disabled
        import time

        deadline = time.time() + 240
        while time.time() < deadline and not (tmp_path / "run" / "metrics.jsonl").exists():
            time.sleep(1)
        wb.stop_button.click()
        assert wb.run_.wait(180) == 0
        wb.dashboard.thread.join(60)  # the dashboard saves the final plots after the run
    finally:
        if wb.running:
            wb.run_.stop(grace_s=5)
    import json

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "stopped" and metrics["steps"] < 1000
    assert (tmp_path / "run" / "checkpoints" / "final.ckpt").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "env.json").is_file()
    assert (tmp_path / "run" / "plots" / "curves.png").is_file() and wb.stop_button.disabled
    import shutil

    shutil.rmtree(tmp_path, ignore_errors=True)
