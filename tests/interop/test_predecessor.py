"""perceiver-io 0.11 checkpoints, loaded unchanged, give 0.11's logits (fixtures made by 0.11 itself)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import zipfile

import pytest
import torch
from interop_helpers import FIXTURES, fixture_path, read_json, reference

from perceiver.model.core.params import ParamsError
from perceiver.model.text.clm.backend import CausalLanguageModel
from perceiver.model.text.clm.lightning import LitCausalLanguageModel
from perceiver.model.text.mlm.backend import MaskedLanguageModel
from perceiver.model.text.mlm.lightning import LitMaskedLanguageModel
from perceiver.model.text.predecessor import (
    clm_config,
    is_predecessor_state_dict,
    load_predecessor,
    map_state_dict,
    mlm_config,
    read_predecessor,
)

ATOL = 1e-5
SOURCES = ["hf", "lightning.ckpt"]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", ["mlm", "mlm_var"])
@torch.no_grad()
def test_mlm_logits(name, source):
    ref, info = reference(name)
    model = load_predecessor(fixture_path(name, source))
    assert isinstance(model, MaskedLanguageModel)
    assert sum(p.numel() for p in model.parameters()) == info["num_params"]
    latents = model.encoder(ref["short.input_ids"], ref["short.pad_mask"])
    assert max_diff(latents, ref["short.encoder_latents"]) <= ATOL
    for case in info["cases"]:
        logits = model(ref[f"{case}.input_ids"], ref.get(f"{case}.pad_mask"))
        assert max_diff(logits, ref[f"{case}.logits"]) <= ATOL, case


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", ["clm", "clm_noabs"])  # abs_pos_emb on / off
@torch.no_grad()
def test_clm_logits(name, source):
    ref, info = reference(name)
    model = load_predecessor(fixture_path(name, source))
    assert isinstance(model, CausalLanguageModel)
    assert model.config.abs_pos_emb == (name == "clm")
    # 0.11 counts its persistent rotary buffer inv_freq as a state-dict entry, not as a parameter
    assert sum(p.numel() for p in model.parameters()) == info["num_params"]
    for case, c in info["cases"].items():
        logits = model(ref[f"{case}.input_ids"], c["prefix_len"], ref.get(f"{case}.pad_mask"))
        expected = ref[f"{case}.logits"]
        if case == "pad_in_latents":
            # Intentional difference: we mask pad latents in the latent self-attention, 0.11 did not. Row 0 has no
            # padding and matches; in row 1 (12 left pads reaching into the latents) 0.11's real latents attended to
            # pads, ours don't: they equal the logits of the same tokens without any padding.
            assert max_diff(logits[0], expected[0]) <= ATOL
            assert max_diff(logits[1], expected[1]) > 1e-2
            ids = ref[f"{case}.input_ids"][1:, 12:]
            assert max_diff(logits[1, 4:], model(ids, 0)[0]) <= ATOL
        else:
            assert max_diff(logits, expected) <= ATOL, case


@torch.no_grad()
def test_clm_kv_cache_steps():
    ref, _ = reference("clm")
    model = load_predecessor(fixture_path("clm", "hf"))
    logits, cache = model(ref["kv.step0.input_ids"], 32, ref["kv.step0.pad_mask"], model.init_cache())
    assert max_diff(logits, ref["kv.step0.logits"]) <= ATOL
    for step in (1, 2):
        logits, cache = model(ref[f"kv.step{step}.input_ids"], 32, ref[f"kv.step{step}.pad_mask"], cache)
        assert max_diff(logits, ref[f"kv.step{step}.logits"]) <= ATOL


def test_clm_greedy_generation_matches_predecessor():
    # 0.11's HF generate(num_latents=4, max_new_tokens=40): latent growth, prefix growth and the sliding window
    ref, _ = reference("clm")
    model = load_predecessor(fixture_path("clm", "hf"))
    out = model.generate(ref["generate.prompt_ids"], 40, num_latents=4)
    assert torch.equal(out, ref["generate.output_ids"])


def test_mapping_covers_every_parameter():
    for name in ("mlm", "mlm_var", "clm", "clm_noabs"):
        config, state = read_predecessor(fixture_path(name, "hf"))
        model = MaskedLanguageModel(config) if name.startswith("mlm") else CausalLanguageModel(config)
        assert set(state) == set(model.state_dict()), name  # nothing missing, nothing left over (inv_freq dropped)


def test_our_state_dicts_are_left_alone():
    model = CausalLanguageModel(clm_config({"vocab_size": 262, "max_seq_len": 16, "max_latents": 4,
                                            "num_channels": 16, "num_heads": 2, "num_self_attention_layers": 1}))
    state = {f"backend_model.{k}": v for k, v in model.state_dict().items()}
    assert not is_predecessor_state_dict(state)
    assert map_state_dict(state) is state


def test_configs_from_predecessor_values():
    _, info = reference("mlm")
    config = mlm_config(info["model_config"])
    assert config.decoder.cross_attention_residual is False and config.num_latents == 16
    _, info = reference("clm_noabs")
    config = clm_config({**info["model_config"], "params": "x", "validation_sample_record": 2})  # Lit arguments
    assert config.output_norm and not config.output_bias and not config.abs_pos_emb


def test_unknown_predecessor_config_keys_are_named(tmp_path):
    _, info = reference("clm_noabs")
    with pytest.raises(ParamsError, match=r"key\(s\) \['rope_scaling'\]") as e:
        clm_config({**info["model_config"], "rope_scaling": 2.0})
    assert e.value.keys == ("rope_scaling",)
    with pytest.warns(UserWarning, match=r"\['rope_scaling'\] .*ignored"):
        config = clm_config({**info["model_config"], "rope_scaling": 2.0}, strict=False)
    assert config == clm_config(info["model_config"])
    _, info = reference("mlm")
    values = {**info["model_config"], "encoder": {**info["model_config"]["encoder"], "moe_experts": 4}}
    with pytest.raises(ParamsError, match=r"config encoder has key\(s\) \['moe_experts'\]"):
        mlm_config(values)
    # from a directory: the error names the file too
    shutil.copytree(fixture_path("mlm", "hf"), tmp_path / "mlm")
    config_file = tmp_path / "mlm" / "config.json"
    saved = json.loads(config_file.read_text())
    saved["model_config"]["encoder"]["moe_experts"] = 4
    config_file.write_text(json.dumps(saved))
    with pytest.raises(ParamsError, match=r"mlm'.*\['moe_experts'\]"):
        load_predecessor(str(tmp_path / "mlm"))
    with pytest.warns(UserWarning, match="moe_experts"):
        load_predecessor(str(tmp_path / "mlm"), strict=False)


@pytest.mark.parametrize("source", SOURCES)
def test_lightning_params_from_predecessor(source):
    """What ``--model.params=<0.11 dir or ckpt>`` does."""
    ref, info = reference("clm")
    lit = LitCausalLanguageModel.create(clm_config(info["model_config"]), params=fixture_path("clm", source)).eval()
    with torch.no_grad():
        assert max_diff(lit.model(ref["full.input_ids"], 48), ref["full.logits"]) <= ATOL
    ref, info = reference("mlm")
    lit = LitMaskedLanguageModel.create(mlm_config(info["model_config"]), params=fixture_path("mlm", source)).eval()
    with torch.no_grad():
        assert max_diff(lit.model(ref["full.input_ids"]), ref["full.logits"]) <= ATOL


def test_lightning_params_shape_mismatch_names_the_field():
    _, info = reference("clm")
    config = clm_config({**info["model_config"], "num_channels": 32})
    with pytest.raises(ParamsError, match="num_channels"):
        LitCausalLanguageModel.create(config, params=fixture_path("clm", "hf"))


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = RunsCode()
    payload.marker = marker
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "hyper_parameters": {"x": payload}}, ckpt)
    assert zipfile.is_zipfile(ckpt)
    with pytest.raises(ParamsError, match="refusing to load"):
        load_predecessor(str(ckpt))
    with pytest.raises(ParamsError, match="refusing to load"):
        LitCausalLanguageModel(vocab_size=262, max_seq_len=64, max_latents=16, num_channels=64, num_heads=4,
                               num_self_attention_layers=2, params=str(ckpt))
    assert not marker.exists()
    # the same pickle, loaded without the safeguard, would have run the command
    pickle.loads(pickle.dumps(payload))
    assert marker.exists()


def test_not_a_predecessor_directory(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    torch.save({"w": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ParamsError, match="not a perceiver-io 0.11 model directory"):
        load_predecessor(str(tmp_path))


def test_documented_predecessor_configs():
    """The config.json files of the published 201M MLM and 30.6M CLM build models of the documented sizes."""
    for name, build, size in (("mlm_201m", lambda c: MaskedLanguageModel(mlm_config(c)), 201_108_230),
                              ("clm_30m", lambda c: CausalLanguageModel(clm_config(c)), 30_563_078)):
        config = read_json(os.path.join(FIXTURES, "documented", name, "config.json"))["model_config"]
        with torch.device("meta"):
            assert sum(p.numel() for p in build(config).parameters()) == size


@torch.no_grad()
def test_cli_model_params_from_predecessor_checkpoint(tmp_path, monkeypatch):
    from perceiver.scripts.text.clm import main

    monkeypatch.setattr(sys, "argv", ["perceiver.scripts.text.clm"])  # not pytest's arguments

    _, info = reference("clm")
    c = info["model_config"]
    args = ["--data.source=sample", f"--data.dataset_dir={tmp_path}", f"--trainer.default_root_dir={tmp_path}",
            f"--data.max_seq_len={c['max_seq_len']}", f"--model.params={fixture_path('clm', 'lightning.ckpt')}"]
    args += [f"--model.{k}={c[k]}" for k in ("max_latents", "num_channels", "num_heads", "num_self_attention_layers",
                                             "cross_attention_widening_factor", "self_attention_widening_factor")]
    cli = main(args, run=False)
    ref, _ = reference("clm")
    assert max_diff(cli.model.model.eval()(ref["full.input_ids"], 48), ref["full.logits"]) <= ATOL
