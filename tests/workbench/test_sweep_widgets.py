"""Overrides (what a sweep's points and papermill's ``overrides`` parameter set) reach the form and the CLI
configuration; the Sweep panel builds the sweep command from the form; the run picker overlays the chosen runs."""

import ast
from pathlib import Path
from typing import Optional, Union  # noqa: F401 (the notebooks' annotations are evaluated here)

import nbformat
import pytest
import yaml
from run_dirs import write_run

from perceiver import tasks
from widgets import Workbench, spec
from widgets.compare import RunPicker
from widgets.forms import FieldError
from widgets.notebook import matches

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TRAINING = ["train_clm", "train_mlm", "train_text_classifier", "train_image_classifier", "train_music"]


@pytest.fixture(scope="module")
def wb():
    return Workbench("clm", preset="tiny CPU", run_dir="runs/test-sweep-widgets/{time}", max_steps=7, overrides=[
        "optimizer.lr=3e-3", "model.num_channels=64", "data.batch_size=4", "trainer.val_check_interval=3",
        "data.num_workers=2", "lr_scheduler.warmup_steps=2", "seed_everything=5"])


def test_overrides_set_the_forms_fields_and_the_rest_of_the_cli_configuration(wb):
    assert wb.model_form.field("num_channels").get() == 64
    settings = wb.settings()
    assert (settings["lr"], settings["batch_size"], settings["seed"], settings["max_steps"]) == (0.003, 4, 5, 7)
    cfg = wb.cli_config()
    preset_args = tasks.get("clm").presets["tiny CPU"].extra["optimizer"]["init_args"]  # e.g. AdamW's betas
    assert cfg["optimizer"] == {"class_path": "torch.optim.AdamW", "init_args": {**preset_args, "lr": 0.003}}
    assert cfg["model"]["num_channels"] == 64 and cfg["seed_everything"] == 5
    assert cfg["trainer"]["val_check_interval"] == 3  # not a field: into the configuration as --key=value would
    assert cfg["data"]["init_args"]["num_workers"] == 2 and cfg["data"]["init_args"]["batch_size"] == 4
    assert cfg["lr_scheduler"]["init_args"]["warmup_steps"] == 2  # below a class_path: its init_args
    assert cfg["lr_scheduler"]["class_path"].endswith("CosineWithWarmupLR")
    assert yaml.safe_load(wb.to_yaml()) == cfg


def test_a_value_a_field_cannot_take_names_the_key_and_an_invalid_one_disables_start():
    with pytest.raises(FieldError, match="model.num_heads: 'many' is not an integer"):
        Workbench("clm", overrides={"model.num_heads": "many"})
    with pytest.raises(FieldError, match="optimizer: 'Adamax' is not one of"):
        Workbench("clm", overrides=["optimizer=Adamax"])
    wb = Workbench("clm", overrides=["model.num_channels=-8"])
    assert wb.error_list == ["num_channels: must be a positive integer, got -8"] and wb.start_button.disabled


def test_every_setting_is_overridden_by_the_cli_key_it_becomes(wb):
    cfg, settings = wb.cli_config(), wb.settings()
    for name, key in spec.SETTING_KEYS.items():
        if name == "optimizer":  # a class chosen by name
            assert spec.OPTIMIZERS[settings[name]] == cfg["optimizer"]["class_path"]
        elif name in settings:
            assert spec.config_value(cfg, key) == settings[name], key


@pytest.mark.parametrize("name", TRAINING)
def test_every_training_notebook_takes_overrides(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    [cell] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    [line] = [line for line in cell.source.splitlines() if line.startswith("overrides:")]
    [node] = ast.parse(line).body
    annotation = eval(ast.unparse(node.annotation))
    assert matches(["optimizer.lr=3e-3"], annotation) and matches({"optimizer.lr": 3e-3}, annotation)
    assert matches(None, annotation) and ast.literal_eval(node.value) is None and "#" in line  # a help comment
    assert "overrides=overrides" in "".join(c.source for c in nb.cells)  # the Workbench interprets them


def test_the_sweep_panel_sweeps_the_forms_configuration(wb, tmp_path):
    panel = wb.sweep_panel
    assert "model.num_channels" in panel.rows[0][0].options and "optimizer.lr" in panel.rows[0][0].options
    panel.rows[0][1].value = "1e-3, 3e-3"
    panel.add_row("model.num_channels", "32,64")
    cmd = panel.command(tmp_path)
    assert cmd[1:5] == ["-m", "perceiver.scripts.sweep", "clm", "--out"]
    assert cmd[cmd.index("--sampler") + 1] == "grid" and "--trials" not in cmd
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--param"] == ["optimizer.lr=0.001,0.003",
                                                                         "model.num_channels=32,64"]
    assert cmd[-3:] == ["--", "--config", str(tmp_path / "base.yaml")]
    panel.sampler.value = "random"
    assert not panel.trials.disabled and "--trials" in panel.command(tmp_path)
    panel.rows[1][1].value = "32..64"
    assert panel.params()[1].is_range
    panel.remove_row(panel.rows[1][2])
    panel.rows[0][1].value = ""
    with pytest.raises(ValueError, match="give its values"):
        panel.params()
    panel.sampler.value, panel.rows[0][1].value = "grid", "1e-3, 3e-3"


def test_the_run_picker_overlays_the_chosen_runs(tmp_path):
    for lr in (1e-3, 3e-3, 1e-2):
        write_run(tmp_path / f"lr={lr}", lr=lr, val_losses=(5.0, 5.0 - 100 * lr))
    picker = RunPicker(tmp_path)
    assert len(picker.select.options) == 3 and len(picker.select.value) == 3
    assert picker.select.options[0][0].startswith("lr=0.01 — completed · best.val_loss 4")  # best first
    assert picker.curve.value == "val_loss" and set(picker.curve.options) >= {"val_loss", "train_loss"}
    assert len(picker.figure().axes[0].get_lines()) == 3
    picker.select.value = picker.select.value[:1]
    picker.x.value = "flops"
    fig = picker.figure()
    assert len(fig.axes[0].get_lines()) == 1 and fig.axes[0].get_xscale() == "log"
    assert picker.image.value[:4] == b"\x89PNG" and "lr=0.01" in picker.table.value
