"""python -m perceiver.scripts.convert: DeepMind's model and perceiver-io 0.11 checkpoints to our format."""

from __future__ import annotations

import os
import time

import pytest
import torch
from interop_helpers import fixture_path, reference
from transformers import PerceiverConfig, PerceiverForMaskedLM

from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModel
from perceiver.model.text.mlm.huggingface import PerceiverMaskedLanguageModel
from perceiver.scripts.convert import main

SMALL = dict(d_model=64, d_latents=96, num_latents=8, num_blocks=2, num_self_attends_per_block=2,
             num_self_attention_heads=4, num_cross_attention_heads=4, qk_channels=32, v_channels=96,
             vocab_size=262, max_position_embeddings=64)


@torch.no_grad()
def test_deepmind_from_local_directory(tmp_path, capsys, seed):
    hf = PerceiverForMaskedLM(PerceiverConfig(**SMALL)).eval()
    hf.save_pretrained(tmp_path / "src")
    main(["deepmind", str(tmp_path / "out"), "--source", str(tmp_path / "src")])
    assert "max abs logit difference" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= set(os.listdir(tmp_path / "out"))
    model = PerceiverMaskedLanguageModel.from_pretrained(tmp_path / "out").eval()
    x = torch.randint(6, 262, (2, 40))
    assert (model(x).logits - hf(input_ids=x).logits[:, :40]).abs().max() <= 1e-4


def test_deepmind_offline_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(SystemExit, match="HF_HUB_OFFLINE"):
        main(["deepmind", str(tmp_path / "out")])
    assert time.monotonic() - start < 5
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name,source,wrapper", [
    ("mlm", "hf", PerceiverMaskedLanguageModel),
    ("clm", "lightning.ckpt", PerceiverCausalLanguageModel),
])
@torch.no_grad()
def test_predecessor(tmp_path, capsys, name, source, wrapper):
    main(["predecessor", fixture_path(name, source), str(tmp_path)])
    assert "max abs logit difference: 0" in capsys.readouterr().out
    model = wrapper.from_pretrained(tmp_path).backend_model.eval()
    ref, info = reference(name)
    if name == "mlm":
        logits = model(ref["short.input_ids"], ref["short.pad_mask"])
        expected = ref["short.logits"]
    else:
        logits = model(ref["padded.input_ids"], info["cases"]["padded"]["prefix_len"], ref["padded.pad_mask"])
        expected = ref["padded.logits"]
    assert (logits - expected).abs().max() <= 1e-5


def test_predecessor_rejects_other_sources(tmp_path):
    with pytest.raises(SystemExit, match="not an existing file or directory"):
        main(["predecessor", str(tmp_path / "missing"), str(tmp_path / "out")])
