"""The image classifier's Lightning module and CLI: documented defaults, data links, a short fit on the offline digits
that leaves the run directory the dashboard figures need, and the test subcommand."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import yaml

from perceiver.model.vision.image_classifier import ImageClassifier, ImageClassifierConfig
from perceiver.model.vision.image_classifier.lightning import LitImageClassifier
from perceiver.runs.figures import png
from perceiver.runs.image_figures import misclassified, pixel_attention
from perceiver.scripts.vision import image_classifier as cli_script
from perceiver.tasks import get

TINY_ARGS = [
    "--data.source=sample", "--data.batch_size=32", "--model.num_latents=8", "--model.num_latent_channels=32",
    "--model.encoder.num_frequency_bands=4", "--model.encoder.num_cross_attention_layers=1",
    "--model.encoder.num_self_attention_blocks=1", "--model.encoder.num_self_attention_layers_per_block=1",
    "--model.encoder.num_self_attention_heads=2", "--model.decoder.num_output_query_channels=32",
]


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["cli"])


def test_lit_module_loss_accuracy_and_attention_over_pixels():
    torch.manual_seed(0)
    lit = LitImageClassifier.create(ImageClassifierConfig.from_preset("tiny")).eval()  # no dropout
    assert isinstance(lit.backend_model, ImageClassifier)
    batch = {"image": torch.randn(4, 8, 8, 1), "label": torch.tensor([0, 1, 2, 3])}
    loss, metrics = lit.loss_and_metrics(batch)
    logits = lit.backend_model(batch["image"])
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, batch["label"]).item())
    assert metrics["accuracy"].item() == (logits.argmax(-1) == batch["label"]).float().mean().item()
    assert lit.batch_size(batch) == 4 and lit.batch_tokens(batch) == 4 * 64
    maps = lit.attention_maps({k: v[:1] for k, v in batch.items()})
    assert maps["weights"].shape == (1, 16, 64)  # (heads, latents, pixels)
    torch.testing.assert_close(maps["weights"].sum(-1), torch.ones(1, 16))
    assert maps["image"].shape == (8, 8, 1) and "pixels" in maps["title"]


def test_print_config_shows_the_documented_mnist_defaults(capsys):
    with pytest.raises(SystemExit):
        cli_script.main(["fit", "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    model = config["model"]
    assert (model["num_latents"], model["num_latent_channels"]) == (32, 128)
    assert model["encoder"]["num_cross_attention_layers"] == 2 and model["encoder"]["num_frequency_bands"] == 32
    assert config["data"]["class_path"] == "perceiver.data.vision.MNISTDataModule"


def test_data_links_image_shape_and_classes():
    cli = cli_script.main(["--data.source=sample"], run=False)  # the documented 907K model on 8x8 digits
    config = cli.model.backend_model.config
    assert config.image_shape == (8, 8, 1) and config.num_classes == 10
    assert sum(p.numel() for p in cli.model.parameters()) == 907_212  # Fourier features: no size-dependent weights


@pytest.mark.slow
def test_fit_writes_the_run_directory_and_test_reports_accuracy(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    cli_script.main([
        "fit", *TINY_ARGS, "--optimizer=AdamW", "--optimizer.lr=3e-3", "--trainer.max_steps=8",
        "--trainer.val_check_interval=4", "--trainer.check_val_every_n_epoch=null", "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false", f"--run_dir={run}", "--seed_everything=0",
        "--journal.attention_every=4",
    ])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("train_accuracy" not in r and "val_accuracy" in r for r in records)
    assert json.loads((run / "env.json").read_text())["task"] == "image_classifier"
    tokens = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
    assert len(tokens) == 8 and all(t > 0 for t in tokens)
    attention = np.load(sorted((run / "attention").glob("step-*.npz"))[-1], allow_pickle=True)
    assert attention["weights"].shape == (1, 8, 64) and attention["image"].shape == (8, 8, 1)
    record = np.load(sorted((run / "records" / "misclassified").glob("step-*.npz"))[-1])
    n = len(record["labels"])
    assert int(record["num_seen"]) == 178 and n == min(32, int(record["num_errors"]))
    assert record["images"].shape == (n, 8, 8, 1) and (record["labels"] != record["predictions"]).all()
    sample = json.loads((run / "samples.jsonl").read_text().splitlines()[-1])["text"]
    assert f"{int(record['num_errors'])} of 178 validation images misclassified" in sample
    for figure in (pixel_attention, misclassified):
        assert png(figure(run, get("image_classifier")))[:4] == b"\x89PNG"

    capsys.readouterr()
    cli_script.main(["test", *TINY_ARGS, "--trainer.accelerator=cpu", "--trainer.logger=false",
                     f"--ckpt_path={run / 'checkpoints' / 'final.ckpt'}"])
    assert "test_accuracy" in capsys.readouterr().out
