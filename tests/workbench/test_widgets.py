"""Workbench without a browser: widget values in, config/YAML/inline errors/Start state out; run directories,
Stop, Resume and re-attaching to a run (slow: training subprocesses)."""

import dataclasses
import json
import subprocess
import sys

import pytest
import yaml

from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig
from perceiver.model.text.mlm import MaskedLanguageModelConfig
from perceiver import tasks
from perceiver.runs import status as run_status
from widgets import Workbench, spec
from widgets.forms import DataclassForm, attribute_docs

TINY_CLM = tasks.get("clm").presets["tiny CPU"]
TINY_MLM = tasks.get("mlm").presets["tiny CPU"]


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
    assert clm.settings()["cpu_threads"] is None and clm.cli_config()["cpu_threads"] is None


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
    assert clm.config() == CausalLanguageModelConfig.from_preset("clm-30.6m")
    mlm.preset_select.value = "DeepMind MLM (201M)"
    assert mlm.config() == MaskedLanguageModelConfig.from_preset("deepmind-201m")
    for wb in (clm, mlm):  # the live count is the preset model's
        count = spec.format_count(spec.parameter_count(wb.task, wb.config()))
        assert count in ("30.6M", "201.1M") and count in wb.params_label.value
    clm.preset_select.value = mlm.preset_select.value = "tiny CPU"
    tiny = CausalLanguageModelConfig.from_preset(TINY_CLM.model)
    assert clm.config() == tiny and not clm.start_button.disabled
    clm.model_form.fields["num_self_attention_layers"].input.value = tiny.num_self_attention_layers + 1
    deeper = dataclasses.replace(tiny, num_self_attention_layers=tiny.num_self_attention_layers + 1)
    assert clm.config() == deeper  # the count follows the form live
    count = sum(p.numel() for p in CausalLanguageModel(deeper).parameters())
    assert spec.format_count(count) in clm.params_label.value
    clm.preset_select.value = "Perceiver AR (30.6M)"
    clm.preset_select.value = "tiny CPU"
    assert clm.config() == tiny


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
    lr.input.value = str(TINY_CLM.settings["lr"])  # back to the preset's
    clm.settings_form.fields["batch_size"].input.value = 0
    assert clm.start_button.disabled and "batch_size" in clm.settings_form.fields["batch_size"].error.value
    clm.settings_form.fields["batch_size"].input.value = TINY_CLM.settings["batch_size"]
    assert not clm.start_button.disabled and clm.error_list == []


def test_export_yaml_is_accepted_by_the_cli(clm, mlm, tmp_path):
    clm.model_form.fields["num_channels"].input.value = 96
    clm.export_path.value = str(tmp_path / "clm.yaml")
    clm.export_button.click()
    cfg = yaml.safe_load((tmp_path / "clm.yaml").read_text())
    assert cfg["model"]["num_channels"] == 96
    assert cfg["data"]["init_args"]["max_seq_len"] == TINY_CLM.settings["max_seq_len"]
    # the preset's optimizer arguments, with the form's learning rate
    assert cfg["optimizer"]["init_args"] == {**TINY_CLM.extra["optimizer"]["init_args"], "lr": TINY_CLM.settings["lr"]}
    assert cfg["journal"] == TINY_CLM.extra["journal"]
    # portable: the user's device choice (resolved where the run starts) and relative paths
    assert cfg["trainer"]["devices"] == -1 and "accelerator" not in cfg["trainer"]
    assert cfg["run_dir"] == "runs/test-widgets" and cfg["data"]["init_args"]["source"] == "sample"
    clm.model_form.fields["num_channels"].input.value = 128

    path = mlm.export(tmp_path / "mlm.yaml")
    config = mlm.config()
    assert isinstance(config, MaskedLanguageModelConfig)
    assert config.encoder.max_seq_len == TINY_MLM.settings["max_seq_len"]
    cmd = [sys.executable, "-m", "perceiver.scripts.text.mlm", "fit", "--config", str(path), "--print_config"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = yaml.safe_load(out.stdout)
    assert printed["model"]["encoder"]["num_self_attention_layers_per_block"] == 3
    assert printed["model"]["num_latents"] == config.num_latents
    assert printed["trainer"]["devices"] == -1 and printed["run_dir"] == "runs/test-widgets-mlm"


def test_preset_optimizer_arguments_go_with_its_optimizer_only(clm):
    extra = TINY_CLM.extra["optimizer"]
    assert spec.optimizer_config("AdamW", 1e-3, extra) == {"class_path": extra["class_path"],
                                                          "init_args": {**extra["init_args"], "lr": 1e-3}}
    # another optimizer chosen in the form gets its own defaults (SGD has no betas)
    assert spec.optimizer_config("SGD", 1e-3, extra) == {"class_path": "torch.optim.SGD", "init_args": {"lr": 1e-3}}
    clm.settings_form.fields["optimizer"].input.value = "SGD"
    try:
        assert clm.cli_config()["optimizer"]["init_args"] == {"lr": TINY_CLM.settings["lr"]}
    finally:
        clm.settings_form.fields["optimizer"].input.value = "AdamW"


def test_export_is_disabled_with_the_reason_while_the_form_is_invalid(clm, tmp_path):
    clm.model_form.fields["num_heads"].input.value = 3
    assert clm.export_button.disabled and clm.start_button.disabled
    assert "Export" in clm.message.value and "divisible" in clm.message.value
    with pytest.raises(ValueError, match="nothing exported"):
        clm.export(tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()
    clm.model_form.fields["num_heads"].input.value = 4
    assert not clm.export_button.disabled and "Export" not in clm.message.value


def test_sources_and_devices_are_checked_in_the_form(clm, tmp_path):
    source = clm.settings_form.fields["source"]
    source.input.value = "/nonexistent"
    assert clm.start_button.disabled and clm.export_button.disabled
    assert "does not exist" in source.error.value
    source.input.value = str(tmp_path)  # an existing directory is accepted (its files are read at the start)
    assert not clm.start_button.disabled
    source.input.value = "sample"
    devices = clm.settings_form.fields["devices"]
    for bad in ("abc", "0", "1.5"):
        devices.input.value = bad
        assert clm.start_button.disabled and "devices" in devices.error.value, bad
    for good in ("-1", "2", "0,1", "auto"):
        devices.input.value = good
        assert not clm.start_button.disabled, good
    devices.input.value = "-1"


def test_preset_switch_changes_only_what_the_preset_defines(clm):
    clm.settings_form.fields["max_steps"].input.value = 40
    clm.settings_form.fields["seed"].set(7)
    clm.preset_select.value = "Perceiver AR (30.6M)"  # defines no max_steps: the user's 40 stays
    settings = clm.settings()
    assert settings["max_steps"] == 40 and settings["seed"] == 7 and settings["max_seq_len"] == 4096
    note = clm.preset_note.value
    assert "from_preset(&#x27;clm-30.6m&#x27;)" in note or "from_preset('clm-30.6m')" in note
    assert f"max_seq_len {TINY_CLM.settings['max_seq_len']} → 4096" in note
    assert "kept:" in note and "max_steps" in note.split("kept:")[1]
    clm.preset_select.value = "tiny CPU"  # defines max_steps, and says so
    steps = TINY_CLM.settings["max_steps"]
    assert clm.settings()["max_steps"] == steps and f"max_steps 40 → {steps}" in clm.preset_note.value
    assert clm.settings()["seed"] == 7
    clm.settings_form.fields["seed"].set(0)


def test_help_is_rendered_and_choices_are_meaningful(clm):
    source_help = clm.settings_form.fields["source"].widget.children[1].value
    assert "<code>\"hub\"</code>" in source_help and "``" not in source_help
    devices_help = clm.settings_form.fields["devices"].help
    assert "-1" in devices_help and "Default" not in devices_help  # ours, not Lightning's "Default: 'auto'"
    assert "tensor" not in clm.settings_form.fields["lr"].help.lower()
    options = [v for _, v in clm.settings_form.fields["precision"].input.options]
    assert options == ["32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true"]
    assert not any("<code>" in f.help or "``" in clm.model_form.fields[n].widget.children[1].value
                   for n, f in clm.model_form.fields.items() if hasattr(f, "help"))


def test_a_directory_with_a_run_needs_overwrite(monkeypatch, tmp_path):
    monkeypatch.setenv("PERCEIVER_ROOT", str(tmp_path))
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    run_status.write(run, status="completed", step=5, max_steps=5)
    wb = Workbench("clm", preset="tiny CPU", run_dir="runs/mine")
    assert wb.start_button.disabled and not wb.export_button.disabled
    assert "holds an earlier run" in wb.errors.value
    with pytest.raises(ValueError, match="holds an earlier run"):
        wb.start()
    wb.overwrite_box.value = True
    assert not wb.start_button.disabled
    wb.overwrite_box.value = False
    wb.run_dir_text.value = "runs/mine/{time}"  # a new directory per run
    assert not wb.start_button.disabled and wb.dashboard.run_dir == run  # it shows the latest run


def test_attach_shows_the_status_curves_and_error_of_a_run(clm, monkeypatch, tmp_path):
    """What a browser reload or a new notebook sees: everything comes from the run directory."""
    monkeypatch.setenv("PERCEIVER_ROOT", str(tmp_path))
    run = tmp_path / "runs" / "clm" / "2026-01-01T00-00-00"
    run.mkdir(parents=True)
    clm.settings_form.fields["max_steps"].input.value = 77
    (run / "config.yaml").write_text(clm.to_yaml())
    clm.settings_form.fields["max_steps"].input.value = 200
    records = [{"step": i, "train_loss": 5.0 - 0.1 * i, "train_bpb": 7.0 - 0.1 * i, "lr": 1e-3,
                "tokens_per_s": 100.0, "wall_s": float(i)} for i in range(1, 6)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run_status.write(run, status="failed", step=5, max_steps=77, task="clm",
                     **run_status.error_fields("Traceback (most recent call last):\nValueError: the reason"))
    fresh = Workbench("clm", max_steps=5)  # a new notebook: shows the latest run, keeps the settings it was given
    assert fresh.run_dir == run and fresh.settings()["max_steps"] == 5
    assert "failed at step 5/77" in fresh.dashboard.status_html.value
    wb = Workbench.attach("runs/clm")  # the run's own settings too
    assert wb.run_dir == run and wb.settings()["max_steps"] == 77
    assert "failed at step 5/77: ValueError: the reason" in wb.dashboard.status_html.value
    assert bytes(wb.dashboard.areas["curves"].image.value).startswith(b"\x89PNG")
    assert wb.stop_button.disabled and wb.resume_button.disabled  # no checkpoint to resume from
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    wb.show_run(run)
    assert not wb.resume_button.disabled


@pytest.mark.slow
def test_start_stop_resume_and_runs_that_never_mix(monkeypatch):
    """Two Starts make two run directories; the dashboard clears for the new one; Stop then Resume continues the
    first run exactly (its losses equal those of the uninterrupted second run, step by step)."""
    import tempfile
    import time
    from pathlib import Path

    tmp_path = Path(tempfile.mkdtemp(prefix="perceiver-widgets-"))  # not pruned by concurrent pytest sessions
    monkeypatch.setenv("PERCEIVER_ROOT", str(tmp_path))
    wb = Workbench("clm", preset="tiny CPU", max_steps=10, max_seq_len=64, batch_size=4)
    assert wb.run_dir is None and wb.run_dir_text.value == "runs/clm/{time}"
    try:
        wb.start_button.click()
        first = wb.run_dir
        assert wb.running and wb.start_button.disabled and not wb.stop_button.disabled
        deadline = time.time() + 300
        while time.time() < deadline and len(_losses(first)) < 3:
            time.sleep(0.5)
        wb.stop_button.click()
        assert wb.run_.wait(180) == 0
        wb.dashboard.thread.join(60)  # the dashboard saves the final plots after the run
        status = run_status.read(first)
        assert status["status"] == "stopped" and status["checkpoint"] == "checkpoints/final.ckpt"
        stopped_at = status["step"]
        assert 3 <= stopped_at < 10 and not wb.resume_button.disabled and "stopped" in wb.message.value
        assert (first / "plots" / "curves.png").is_file()
        assert wb.dashboard.areas["curves"].image.layout.display != "none"

        wb.start()  # a second run: a new directory, and a dashboard that forgets the first one
        second = wb.run_dir
        assert second != first and second.parent == first.parent
        assert wb.dashboard.areas["curves"].image.layout.display == "none" and wb.dashboard.sample.value == ""
        assert wb.run_.wait(300) == 0
        wb.dashboard.thread.join(60)
        assert run_status.read(second)["status"] == "completed"
        assert max(_losses(first)) == stopped_at  # the first run's files are untouched

        wb.show_run(first)
        wb.resume_button.click()
        assert wb.run_dir == first and wb.run_.ckpt_path == first / "checkpoints" / "final.ckpt"
        assert wb.run_.wait(300) == 0
        wb.dashboard.thread.join(60)
    finally:
        if wb.running:
            wb.run_.stop(grace_s=5)
    assert run_status.read(first)["status"] == "completed"
    assert _losses(first) == _losses(second) and sorted(_losses(first)) == list(range(1, 11))
    assert sorted(p.name for p in (first / "checkpoints").glob("last*.ckpt")) == ["last.ckpt"]
    import shutil

    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.slow
def test_a_failed_run_shows_its_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("PERCEIVER_ROOT", str(tmp_path))
    (tmp_path / "empty").mkdir()  # exists (the form accepts it), but holds no text: the run fails at the start
    wb = Workbench("clm", preset="tiny CPU", source=str(tmp_path / "empty"), max_seq_len=64)
    assert not wb.error_list
    with pytest.raises(RuntimeError, match="holds no .txt or .parquet files"):
        wb.run()
    status = run_status.read(wb.run_dir)
    assert status["status"] == "failed" and "holds no .txt or .parquet files" in status["error"]
    assert "holds no .txt or .parquet files" in wb.dashboard.status_html.value
    assert "exit code" not in wb.message.value


@pytest.mark.slow
def test_headless_run_from_a_plain_script(tmp_path):
    """``Workbench(...).run()`` outside a notebook: progress lines, the figures' paths, the metrics."""
    script = ("from widgets import Workbench\n"
              "m = Workbench('mlm', preset='tiny CPU', max_steps=2, max_seq_len=64, batch_size=4).run()\n"
              "print('STATUS', m['status'], m['steps'])\n")
    env = {**__import__("os").environ, "PERCEIVER_ROOT": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "[journal] validation at step" in out.stdout and "STATUS completed 2" in out.stdout
    [run] = (tmp_path / "runs" / "mlm").iterdir()
    assert f"figure curves: {run / 'plots' / 'curves.png'}" in out.stdout
    assert (run / "plots" / "byte_attention.png").is_file()


def _losses(run) -> dict:
    path = run / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return {r["step"]: r["train_loss"] for r in records if "train_loss" in r}


def test_the_data_module_has_the_presets_data_arguments_and_overrides(mlm):
    """The notebook evaluates with ``wb.data_module()``: it must mask as the run trains (the tiny MLM preset masks
    single bytes, the data module's default is whole words)."""
    mlm.preset_select.value = "tiny CPU"
    preset_data = tasks.get("mlm").presets["tiny CPU"].extra["data"]
    data = mlm.data_module()
    assert preset_data and all(data.hparams[k] == v for k, v in preset_data.items())
    assert data.hparams.mask_words != tasks.get("mlm").data_class(task="mlm").hparams.mask_words
    assert mlm.cli_config()["data"]["init_args"]["mask_words"] == data.hparams.mask_words  # what the run gets
    fresh = Workbench("mlm", preset="tiny CPU", run_dir="runs/test-widgets-mlm", overrides={"data.mask_prob": 0.3})
    assert fresh.data_module().hparams.mask_prob == 0.3
