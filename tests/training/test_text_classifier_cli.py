"""The text classifier's Lightning CLI: documented defaults, data -> model links (vocabulary, length, classes), and the
two-stage fine-tuning recipe from a masked language model's run directory: decoder only, then everything."""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from perceiver.model.core.params import read_checkpoint
from perceiver.model.text.classifier import TextClassifierConfig
from perceiver.model.text.mlm import MaskedLanguageModelConfig
from perceiver.runs.classification import confusion_matrix
from perceiver.scripts.text import classifier, mlm
from perceiver.tasks import drop_fields, get


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["cli"])  # pytest's own arguments are not the CLI's


def model_yaml(path, config) -> str:
    """A ``--config`` file with the ``model`` section of ``config`` (what the workbench exports)."""
    task = get("text_classifier" if isinstance(config, TextClassifierConfig) else "mlm")
    path.write_text(yaml.safe_dump({"model": drop_fields(dataclasses.asdict(config), task.linked_fields)}))
    return f"--config={path}"


def common(dataset_dir, run_dir, steps=4) -> list[str]:
    return [
        "--data.source=sample", f"--data.dataset_dir={dataset_dir}", "--data.max_seq_len=64", "--data.batch_size=8",
        "--data.num_workers=0", "--optimizer=AdamW", "--optimizer.lr=1e-3", "--trainer.accelerator=cpu",
        "--trainer.devices=1", f"--trainer.max_steps={steps}", f"--trainer.val_check_interval={steps}",
        "--trainer.check_val_every_n_epoch=null", "--trainer.limit_val_batches=2",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.callbacks+=perceiver.training.journal.RunJournal", f"--trainer.callbacks.run_dir={run_dir}",
        f"--checkpoint.dirpath={run_dir}/checkpoints",
    ]


def test_print_config_shows_the_documented_classifier(capsys):
    with pytest.raises(SystemExit) as e:
        classifier.main(["fit", "--print_config"])
    assert e.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    model, data = config["model"], config["data"]
    assert (model["num_latents"], model["num_latent_channels"]) == (256, 1280)
    assert model["encoder"]["num_self_attention_layers_per_block"] == 26
    assert model["decoder"]["num_output_query_channels"] == 768 and model["decoder"]["num_cross_attention_heads"] == 1
    assert "num_classes" not in model["decoder"]  # linked from the data
    assert data["class_path"].endswith("ImdbDataModule")
    assert data["init_args"]["task"] == "clf" and data["init_args"]["max_seq_len"] == 2048


def test_links_classes_from_the_data(tmp_path, dataset_dir):
    tiny = model_yaml(tmp_path / "tiny.yaml", TextClassifierConfig.from_preset("tiny"))
    cli = classifier.main([tiny, "--data.source=sample", f"--data.dataset_dir={dataset_dir}",
                           "--data.max_seq_len=96"], run=False)
    config = cli.model.backend_model.config
    assert (config.num_classes, config.class_names) == (2, ["neg", "pos"])
    assert (config.max_seq_len, config.vocab_size) == (96, 262)

    pd.DataFrame({"text": list("abcdef"), "label": ["x", "y", "z"] * 2}).to_csv(tmp_path / "d.csv", index=False)
    cli = classifier.main([tiny, f"--data.source={tmp_path / 'd.csv'}"], run=False)
    assert cli.model.backend_model.config.class_names == ["x", "y", "z"]
    assert cli.model.backend_model.decoder.output_adapter.linear.out_features == 3


def encoder_state(ckpt) -> dict:
    state, _ = read_checkpoint(str(ckpt))
    return {k[len("model.encoder."):]: v for k, v in state.items() if k.startswith("model.encoder.")}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_stage_fine_tuning_from_an_mlm_run_directory(tmp_path, dataset_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    # a masked language model pretrained (briefly) on the Wikipedia sample; its run directory holds final.ckpt
    mlm_run = tmp_path / "mlm"
    mlm.main(["fit", model_yaml(tmp_path / "mlm.yaml", MaskedLanguageModelConfig.from_preset("tiny")),
              *common(dataset_dir, mlm_run)])
    pretrained = encoder_state(mlm_run / "checkpoints" / "final.ckpt")

    # stage 1: the encoder comes from the MLM run directory and is frozen; only the decoder trains
    tiny = model_yaml(tmp_path / "clf.yaml", TextClassifierConfig.from_preset("tiny"))
    stage1 = tmp_path / "stage1"
    classifier.main(["fit", tiny, f"--model.encoder.params={mlm_run}", "--model.encoder.freeze=true",
                     "--model.encoder.dropout=0.0", *common(dataset_dir, stage1)])
    assert same(encoder_state(stage1 / "checkpoints" / "final.ckpt"), pretrained)
    metrics = json.loads((stage1 / "metrics.json").read_text())
    assert metrics["status"] == "completed" and 0.0 <= metrics["final"]["val_accuracy"] <= 1.0
    (validation,) = sorted((stage1 / "records" / "predictions").glob("step-*.npz"))
    outputs = np.load(validation)
    assert list(outputs["class_names"]) == ["neg", "pos"] and len(outputs["labels"]) == 16  # 2 batches of 8
    accuracy = float(np.mean(outputs["labels"] == outputs["predictions"]))
    assert accuracy == pytest.approx(metrics["final"]["val_accuracy"], abs=1e-6)
    assert confusion_matrix(stage1) is not None
    assert list((stage1 / "attention").glob("step-*.npz"))

    # stage 2: everything trains, starting from the stage-1 classifier (its run directory)
    stage2 = tmp_path / "stage2"
    classifier.main(["fit", tiny, f"--model.params={stage1}", "--model.encoder.freeze=false",
                     *common(dataset_dir, stage2)])
    assert not same(encoder_state(stage2 / "checkpoints" / "final.ckpt"), pretrained)
