"""The image classifier in the workbench: forms from its configs (tuple fields included), presets, parameter count and
the CLI configuration, without a browser."""

from __future__ import annotations

import pytest

from perceiver.model.vision.image_classifier import ImageClassifier, ImageClassifierConfig
from widgets import Workbench


@pytest.fixture(scope="module")
def wb():
    return Workbench("image_classifier", preset="tiny CPU", run_dir="runs/test-widgets-image")


def test_form_presets_and_links(wb):
    fields = wb.model_form.all_fields()
    assert "encoder.max_resolution" in fields and "encoder.position_encoding" in fields
    assert "encoder.image_shape" not in fields and "decoder.num_classes" not in fields  # linked from the data
    assert set(wb.settings_form.fields) == {"source", "batch_size", "devices", "precision", "max_steps", "optimizer",
                                            "lr", "seed", "cpu_threads"}  # images have no max_seq_len
    assert wb.config() == ImageClassifierConfig.from_preset("tiny")  # the digits give (8, 8, 1) and 10 classes
    assert not wb.error_list and "0.1M" in wb.params_label.value
    wb.apply_preset("MNIST classifier (907K)")
    n = sum(p.numel() for p in ImageClassifier(wb.config()).parameters())
    assert n == 907_212 and "0.9M" in wb.params_label.value
    wb.apply_preset("tiny CPU")


def test_tuple_field_parses_and_validates(wb):
    field = wb.model_form.field("encoder.max_resolution")
    field.input.value = "(16, 16)"
    assert not wb.validate() and wb.config().encoder.max_resolution == (16, 16)
    field.input.value = "16"
    assert any("max_resolution" in e for e in wb.validate()) and wb.start_button.disabled
    field.set((224, 224))
    assert field.input.value == "224,224" and not wb.validate()
    field.set(None)
    assert not wb.validate()


def test_cli_config(wb):
    cfg = wb.cli_config()
    assert cfg["data"]["class_path"] == "perceiver.data.vision.MNISTDataModule"
    assert cfg["data"]["init_args"]["source"] == "sample" and "max_seq_len" not in cfg["data"]["init_args"]
    assert "image_shape" not in cfg["model"]["encoder"] and "num_classes" not in cfg["model"]["decoder"]
    assert cfg["trainer"]["max_steps"] == 800 and cfg["optimizer"]["init_args"]["lr"] == 2e-3
