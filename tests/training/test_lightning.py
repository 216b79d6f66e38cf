"""The Lightning modules: create/backend_model, checkpoints that rebuild the model, params loading (checkpoint and
directory, shape mismatch, malicious pickle, offline hub id), loss alignment and metrics."""

from __future__ import annotations

import math
import os
import pickle
import time
import zipfile

import pytest
import torch
import torch.nn.functional as F

from perceiver.hub import HubUnavailableError
from perceiver.model.core.config import ConfigError
from perceiver.model.core.params import ParamsError
from perceiver.model.text.clm import CausalLanguageModel, LitCausalLanguageModel
from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModel
from perceiver.model.text.mlm import LitMaskedLanguageModel, MaskedLanguageModel
from perceiver.model.text.mlm.huggingface import PerceiverMaskedLanguageModel
from training_helpers import state_equal, tiny_clm_config, tiny_mlm_config


def shapes(model) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("lit_class, backend_class, config", [
    (LitCausalLanguageModel, CausalLanguageModel,
     tiny_clm_config(num_self_attention_layers=2, output_norm=True, abs_pos_emb=False, output_bias=False)),
    (LitMaskedLanguageModel, MaskedLanguageModel,
     tiny_mlm_config(num_latents=4, decoder={"num_output_query_channels": 16},
                     encoder={"num_self_attention_blocks": 2, "first_self_attention_block_shared": False})),
])
def test_create_builds_the_backend_of_the_config(lit_class, backend_class, config):
    """Every field reaches the backend: its parameters are those of the backend built from the config directly,
    which differ from those of the default (tiny) config."""
    lit = lit_class.create(config)
    assert type(lit.backend_model) is backend_class and lit.backend_model is lit.model
    assert shapes(lit.backend_model) == shapes(backend_class(config))
    assert shapes(lit.backend_model) != shapes(backend_class(type(config).from_preset("tiny")))


@pytest.mark.parametrize("lit_class, config", [(LitCausalLanguageModel, tiny_clm_config), (LitMaskedLanguageModel, tiny_mlm_config)])
def test_load_from_checkpoint_rebuilds_the_model(lit_class, config, tmp_path):
    import pytorch_lightning as pl

    model = lit_class.create(config())
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = lit_class.load_from_checkpoint(path, weights_only=True)
    assert loaded.backend_model.config == model.backend_model.config
    assert state_equal(loaded.backend_model.state_dict(), model.backend_model.state_dict())


def save_lightning_ckpt(model, path):
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)


@pytest.mark.parametrize("source", ["ckpt", "ckpt_no_extension", "directory"])
def test_params_load_pretrained_weights(source, tmp_path):
    pretrained = LitCausalLanguageModel.create(tiny_clm_config())
    if source == "directory":
        path = tmp_path / "model_dir"
        PerceiverCausalLanguageModel.from_backend(pretrained.backend_model).save_pretrained(path)
    else:  # what a path is, is decided by its content, not by its extension
        path = tmp_path / ("model.ckpt" if source == "ckpt" else "weights")
        save_lightning_ckpt(pretrained, path)
    model = LitCausalLanguageModel.create(tiny_clm_config(), params=str(path))
    assert state_equal(model.backend_model.state_dict(), pretrained.backend_model.state_dict())
    assert model.hparams["params"] is None  # a checkpoint of this model carries its own weights


def test_mlm_params_from_directory(tmp_path):
    pretrained = LitMaskedLanguageModel.create(tiny_mlm_config())
    PerceiverMaskedLanguageModel.from_backend(pretrained.backend_model).save_pretrained(tmp_path)
    model = LitMaskedLanguageModel.create(tiny_mlm_config(), params=str(tmp_path))
    assert state_equal(model.backend_model.state_dict(), pretrained.backend_model.state_dict())


def test_params_shape_mismatch_names_parameter_and_field(tmp_path):
    save_lightning_ckpt(LitCausalLanguageModel.create(tiny_clm_config()), tmp_path / "m.ckpt")
    with pytest.raises(ParamsError) as e:
        LitCausalLanguageModel.create(tiny_clm_config(vocab_size=300), params=str(tmp_path / "m.ckpt"))
    assert "txt_embedding" in str(e.value) and "vocab_size" in str(e.value)


@pytest.mark.parametrize("problem", ["unexpected", "missing", "shape"])
def test_params_strict_by_default_and_partial_loading_on_request(problem, tmp_path, caplog):
    """A checkpoint of a deeper model (unexpected keys), a shallower one (missing keys) or one with another
    vocabulary (shapes) is refused naming the keys and the field; params_strict=False loads the rest and logs each
    skipped key."""
    source, target = {"unexpected": ({"num_self_attention_layers": 2}, {}),
                      "missing": ({}, {"num_self_attention_layers": 2}),
                      "shape": ({"vocab_size": 300}, {})}[problem]
    pretrained = LitCausalLanguageModel.create(tiny_clm_config(**source))
    save_lightning_ckpt(pretrained, tmp_path / "m.ckpt")
    with pytest.raises(ParamsError) as e:
        LitCausalLanguageModel.create(tiny_clm_config(**target), params=str(tmp_path / "m.ckpt"))
    field = "vocab_size" if problem == "shape" else "num_self_attention_layers"
    assert e.value.field.startswith(field) and field in str(e.value).splitlines()[-1]
    assert e.value.keys and all(k.startswith("self_attn.layers.1.") or "embedding" in k or "output" in k
                                for k in e.value.keys)
    with caplog.at_level("WARNING", logger="perceiver.model.core.params"):
        model = LitCausalLanguageModel.create(tiny_clm_config(**target), params=str(tmp_path / "m.ckpt"),
                                              params_strict=False)
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == len(e.value.keys) and all(any(k in m for m in skipped) for k in e.value.keys)
    loaded, source_state = model.backend_model.state_dict(), pretrained.backend_model.state_dict()
    shared = [k for k in loaded if k in source_state and loaded[k].shape == source_state[k].shape]
    assert len(shared) > 10 and all(torch.equal(loaded[k], source_state[k]) for k in shared)


class Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_params_refuse_a_malicious_pickle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = LitCausalLanguageModel.create(tiny_clm_config())
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": model.state_dict(), "payload": Boom()}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(ParamsError, match="refusing to load"):
        LitCausalLanguageModel.create(tiny_clm_config(), params=str(path))
    assert not (tmp_path / "PWNED").exists()
    # the raw pickle really would have run code
    assert b"system" in pickle.dumps(Boom())


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}])
def test_params_hub_id_offline_fails_fast(env, monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="krasserm/perceiver-ar-clm-base"):
        LitCausalLanguageModel.create(tiny_clm_config(), params="krasserm/perceiver-ar-clm-base")
    assert time.monotonic() - start < 5


def test_clm_loss_predicts_the_next_token_at_latent_positions():
    torch.manual_seed(0)
    model = LitCausalLanguageModel.create(tiny_clm_config()).eval()
    tokens = torch.randint(6, 262, (2, 65))
    x, labels = tokens[:, :-1], tokens[:, 1:]  # (B, N): labels are inputs shifted by one
    pad_mask = torch.zeros_like(x, dtype=torch.bool)
    pad_mask[1, :10] = True  # left padding sits in the prefix
    loss, metrics = model.loss_and_metrics({"input_ids": x, "labels": labels, "pad_mask": pad_mask})
    prefix_len = 64 - 16
    logits = model.backend_model(x, prefix_len=prefix_len, pad_mask=pad_mask)  # (B, L, V)
    expected = F.cross_entropy(logits.flatten(0, 1), labels[:, prefix_len:].flatten())
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(metrics["bpb"], expected / math.log(2))
    torch.testing.assert_close(metrics["ppl"], expected.exp())
    # the last position's prediction is the token after the input
    assert logits.shape == (2, 16, 262)


def test_mlm_masked_accuracy_counts_targets_only():
    torch.manual_seed(0)
    model = LitMaskedLanguageModel.create(tiny_mlm_config()).eval()
    x = torch.randint(6, 262, (2, 64))
    labels = torch.full_like(x, -100)
    labels[:, :5] = x[:, :5]
    loss, metrics = model.loss_and_metrics({"input_ids": x, "labels": labels, "pad_mask": torch.zeros_like(x).bool()})
    logits = model.backend_model(x, pad_mask=torch.zeros_like(x).bool())
    expected = (logits[:, :5].argmax(-1) == x[:, :5]).float().mean()
    torch.testing.assert_close(metrics["masked_accuracy"], expected)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_mlm_unmasked_loss_weight_adds_the_loss_of_the_given_positions(weight):
    torch.manual_seed(0)
    model = LitMaskedLanguageModel.create(tiny_mlm_config(), unmasked_loss_weight=weight).eval()
    x = torch.randint(6, 262, (2, 64))
    x[:, 3:8] = 4  # [MASK] ids at the targets
    labels = torch.full_like(x, -100)
    labels[:, 3:8] = torch.randint(6, 262, (2, 5))
    pad = torch.zeros_like(x).bool()
    pad[1, -10:] = True  # padding is neither a target nor a given position
    loss, metrics = model.loss_and_metrics({"input_ids": x, "labels": labels, "pad_mask": pad})
    logits = model.backend_model(x, pad_mask=pad).double()
    masked = F.cross_entropy(logits[:, 3:8].flatten(0, 1), labels[:, 3:8].flatten())
    given = torch.ones_like(pad)
    given[:, 3:8] = False
    given &= ~pad
    unmasked = F.cross_entropy(logits[given], x[given])
    torch.testing.assert_close(loss.double(), masked + weight * unmasked, rtol=1e-5, atol=1e-5)
    if weight:
        torch.testing.assert_close(metrics["masked_loss"].double(), masked, rtol=1e-5, atol=1e-5)
    else:
        assert "masked_loss" not in metrics
    with pytest.raises(ValueError, match="unmasked_loss_weight"):
        LitMaskedLanguageModel.create(tiny_mlm_config(), unmasked_loss_weight=-1.0)


def test_num_latents_is_an_alias_of_max_latents():
    """perceiver-io 0.11's documented clm.py sets ``model.num_latents``; our config calls it ``max_latents``."""
    config = tiny_clm_config()
    fields = {k: v for k, v in config.__dict__.items() if k != "max_latents"}
    lit = LitCausalLanguageModel(**fields, num_latents=8)
    assert lit.backend_model.config.max_latents == 8 and lit.hparams["max_latents"] == 8
    assert "num_latents" not in lit.hparams  # a checkpoint rebuilds the model from max_latents alone
    assert LitCausalLanguageModel(**fields, num_latents=8, max_latents=8).backend_model.config.max_latents == 8
    with pytest.raises(ConfigError) as e:
        LitCausalLanguageModel(**fields, num_latents=8, max_latents=12)
    assert e.value.field == "num_latents" and "max_latents" in str(e.value)
