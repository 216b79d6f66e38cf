"""The Hugging Face wrappers: save/load round trips, losses, Auto classes, pipelines and generate()."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from interop_helpers import read_json, tiny_clm_config, tiny_mlm_config
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, PerceiverTokenizer, pipeline

from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModel, PerceiverCausalLanguageModelConfig
from perceiver.model.text.clm.lightning import LitCausalLanguageModel
from perceiver.model.text.huggingface import register_auto_classes
from perceiver.model.text.mlm.huggingface import PerceiverMaskedLanguageModel, PerceiverMaskedLanguageModelConfig
from perceiver.model.text.mlm.lightning import LitMaskedLanguageModel


@pytest.fixture
def mlm(seed):
    return PerceiverMaskedLanguageModel(PerceiverMaskedLanguageModelConfig(model_config=tiny_mlm_config())).eval()


@pytest.fixture
def clm(seed):
    return PerceiverCausalLanguageModel(PerceiverCausalLanguageModelConfig(model_config=tiny_clm_config())).eval()


@pytest.fixture
def tokenizer():
    return PerceiverTokenizer()


def left_padded(tokenizer, texts):
    tokenizer.padding_side = "left"
    return tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")


# --- save_pretrained / from_pretrained ------------------------------------------------------------------------------


@torch.no_grad()
def test_mlm_round_trip(mlm, tmp_path):
    mlm.save_pretrained(tmp_path)
    config = read_json(tmp_path / "config.json")
    assert config["model_type"] == "perceiver-mlm" and config["model_config"]["encoder"]["num_input_channels"] == 32
    assert all(k.startswith("backend_model.") for k in load_file(tmp_path / "model.safetensors"))
    loaded = PerceiverMaskedLanguageModel.from_pretrained(tmp_path).eval()
    assert loaded.config.backend_config == mlm.config.backend_config
    x = torch.randint(6, 262, (2, 20))
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[1, 15:] = 0
    expected = mlm(x, attention_mask=mask).logits
    assert torch.equal(loaded(x, attention_mask=mask).logits, expected)
    # the same directory is what --model.params reads
    lit = LitMaskedLanguageModel.create(mlm.config.backend_config, params=str(tmp_path)).eval()
    assert torch.equal(lit.model(x, mask == 0), expected)


@torch.no_grad()
def test_clm_round_trip(clm, tmp_path):
    clm.save_pretrained(tmp_path)
    assert read_json(tmp_path / "config.json")["model_type"] == "perceiver-clm"
    loaded = PerceiverCausalLanguageModel.from_pretrained(tmp_path).eval()
    x = torch.randint(6, 262, (2, 20))
    expected = clm(x).logits
    assert expected.shape == (2, 8, 262)  # latent positions: prefix_len = 20 - max_latents
    assert torch.equal(loaded(x).logits, expected)
    lit = LitCausalLanguageModel.create(clm.config.backend_config, params=str(tmp_path)).eval()
    assert torch.equal(lit.model(x, 12), expected)


def test_from_backend_shares_weights(clm):
    wrapped = PerceiverCausalLanguageModel.from_backend(clm.backend_model)
    assert wrapped.backend_model is clm.backend_model
    assert wrapped.get_input_embeddings() is clm.backend_model.input_adapter.txt_embedding


# --- losses (what the HF Trainer and PEFT use) -----------------------------------------------------------------------


def test_mlm_loss(mlm):
    x = torch.randint(6, 262, (2, 16))
    labels = torch.full_like(x, -100)
    labels[:, 3] = x[:, 3]
    out = mlm(x.masked_fill(labels != -100, 3), labels=labels)
    expected = F.cross_entropy(out.logits[:, 3], x[:, 3])
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    assert mlm.backend_model.encoder.latents.grad is not None


def test_clm_loss_shifts_labels_and_ignores_pads(clm):
    x = torch.randint(6, 262, (2, 20))
    mask = torch.ones_like(x)
    mask[1, :3] = 0
    out = clm(x, attention_mask=mask, labels=x)
    # latents are positions 12..19; each predicts the next token, the last one has none
    expected = F.cross_entropy(out.logits[:, :-1].flatten(0, 1), x[:, 13:].flatten())
    assert torch.allclose(out.loss, expected)
    out.loss.backward()


def test_clm_cache_through_forward(clm):
    x = torch.randint(6, 262, (1, 12))
    with torch.no_grad():
        first = clm(x[:, :6], prefix_len=2, use_cache=True)
        step = clm(x[:, 6:7], cache=first.cache)
        full = clm(x[:, :7], prefix_len=2)
    # logits of this random model reach ~1e2, so the fp32 tolerance is relative to their scale
    scale = full.logits[:, -1].abs().max()
    torch.testing.assert_close(step.logits[:, -1], full.logits[:, -1], rtol=0, atol=1e-6 * scale)


def test_trainer_trains(clm, tmp_path):
    pytest.importorskip("accelerate")
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    data = Dataset.from_dict({"input_ids": torch.randint(6, 262, (8, 16)).tolist()})
    data = data.map(lambda r: {"labels": r["input_ids"]})
    args = TrainingArguments(str(tmp_path), max_steps=2, per_device_train_batch_size=4, report_to=[], use_cpu=True)
    before = clm.backend_model.cross_attn.attention.q_proj.weight.clone()
    Trainer(model=clm.train(), args=args, train_dataset=data).train()
    assert not torch.equal(before, clm.backend_model.cross_attn.attention.q_proj.weight)


def test_peft_lora_trains(clm):
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"]
    model = get_peft_model(clm, LoraConfig(task_type="CAUSAL_LM", target_modules=targets, r=4))
    x = torch.randint(6, 262, (2, 16))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(3):
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        if not losses:  # every adapter gets a gradient, fc2's too (the MLP's GELU-recomputing path must not skip it)
            lora_b = {n: p for n, p in model.named_parameters() if "lora_B" in n}
            assert any(".fc2." in n for n in lora_b)
            assert [n for n, p in lora_b.items() if p.grad is None or not p.grad.abs().sum() > 0] == []
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# --- input embeddings: resize_token_embeddings, enable_input_require_grads, gradient checkpointing -----------------


def untied_mlm():
    config = PerceiverMaskedLanguageModelConfig(model_config=tiny_mlm_config(num_output_query_channels=16))
    return PerceiverMaskedLanguageModel(config).eval()


@pytest.fixture(params=["clm", "mlm", "mlm-untied"])
def wrapped(request, clm, mlm):
    return {"clm": clm, "mlm": mlm, "mlm-untied": None}[request.param] or untied_mlm()


def logits(model, x):
    return model(x).logits


@pytest.mark.parametrize("new_size", [270, 200])
@torch.no_grad()
def test_resize_token_embeddings(wrapped, new_size, tmp_path):
    x = torch.randint(6, 200, (2, 20))
    before = logits(wrapped, x)
    embedding = wrapped.resize_token_embeddings(new_size)
    assert embedding is wrapped.get_input_embeddings() and embedding.weight.shape[0] == new_size
    after = logits(wrapped, x)
    n = min(new_size, 262)
    assert after.shape[-1] == new_size and torch.equal(after[..., :n], before[..., :n])  # old tokens unchanged
    backend = wrapped.backend_model
    assert backend.config.vocab_size == wrapped.config.backend_config.vocab_size == new_size
    output = getattr(backend, "output_adapter", None) or backend.decoder.output_adapter
    if wrapped.get_output_embeddings() is None:  # tied: one weight, so a change of the embedding moves the logits
        assert output._embedding[0] is embedding
        embedding.weight[5] += 1.0
        assert not torch.equal(logits(wrapped, x)[..., 5], after[..., 5])
    else:
        assert wrapped.get_output_embeddings().weight.shape[0] == new_size
    new_ids = torch.full((1, 8), new_size - 1)  # the last id of the new vocabulary
    assert logits(wrapped, new_ids).shape[-1] == new_size
    wrapped.save_pretrained(tmp_path)  # the saved config has the new vocabulary
    loaded = type(wrapped).from_pretrained(tmp_path).eval()
    assert torch.equal(logits(loaded, x), logits(wrapped, x))


@torch.no_grad()
def test_resized_clm_generates_new_tokens(clm):
    clm.resize_token_embeddings(263)
    clm.backend_model.output_adapter.bias[262] = 1e4  # make the new token the certain next one
    out = clm.generate(torch.randint(6, 262, (2, 5)), max_new_tokens=3)
    assert out.shape == (2, 8) and (out[:, 5:] == 262).all()


def test_peft_lora_with_gradient_checkpointing(wrapped):
    """PEFT's path: gradient checkpointing (which calls enable_input_require_grads), then LoRA adapters; the layers
    are recomputed in the backward pass and the adapters' gradients equal those without checkpointing."""
    from peft import LoraConfig, get_peft_model

    x = torch.randint(6, 262, (2, 16))
    labels = x if isinstance(wrapped, PerceiverCausalLanguageModel) else x.masked_fill(x % 3 != 0, -100)
    targets = ["q_proj", "v_proj", "fc1"]
    torch.manual_seed(1)
    plain = get_peft_model(copy.deepcopy(wrapped), LoraConfig(target_modules=targets, r=4, init_lora_weights=False))
    torch.manual_seed(1)
    wrapped.activation_checkpointing_enable()  # transformers 5 name of gradient_checkpointing_enable
    model = get_peft_model(wrapped, LoraConfig(target_modules=targets, r=4, init_lora_weights=False))
    layer = next(m for n, m in model.named_modules() if n.endswith("layers.0"))
    calls = []
    layer.register_forward_pre_hook(lambda *args: calls.append(1))
    for m in (plain, model):
        m.train()
        torch.manual_seed(2)  # the same dropout (prefix dropout of the CLM) in both
        m(input_ids=x, labels=labels).loss.backward()
    assert len(calls) == 2  # the forward pass and its recomputation in the backward pass
    assert model.get_input_embeddings()(x).requires_grad  # enable_input_require_grads
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all("lora_" in n for n in grads)
    for n, p in plain.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(grads[n], p.grad, atol=1e-6, rtol=1e-5)


# --- Auto classes --------------------------------------------------------------------------------------------------


def test_nothing_registered_on_import():
    code = (
        "import perceiver.model.text.huggingface, perceiver.model.text.mlm.huggingface, "
        "perceiver.model.text.clm.huggingface\n"
        "from transformers.models.auto.configuration_auto import CONFIG_MAPPING\n"
        "assert 'perceiver-mlm' not in CONFIG_MAPPING and 'perceiver-clm' not in CONFIG_MAPPING\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@torch.no_grad()
def test_auto_classes(mlm, clm, tmp_path):
    register_auto_classes()
    register_auto_classes()  # idempotent
    mlm.save_pretrained(tmp_path / "mlm")
    clm.save_pretrained(tmp_path / "clm")
    auto_mlm = AutoModelForMaskedLM.from_pretrained(tmp_path / "mlm").eval()
    auto_clm = AutoModelForCausalLM.from_pretrained(tmp_path / "clm").eval()
    assert isinstance(auto_mlm, PerceiverMaskedLanguageModel) and isinstance(auto_clm, PerceiverCausalLanguageModel)
    x = torch.randint(6, 262, (1, 16))
    assert torch.equal(auto_mlm(x).logits, mlm(x).logits)
    assert torch.equal(auto_clm(x).logits, clm(x).logits)


# --- pipelines -----------------------------------------------------------------------------------------------------


@torch.no_grad()
def test_fill_mask_pipeline(mlm, tokenizer):
    text = "The capital of France is Pa[MASK]is."
    results = pipeline("fill-mask", model=mlm, tokenizer=tokenizer)(text, top_k=3)
    enc = tokenizer(text, return_tensors="pt")
    pos = (enc.input_ids[0] == tokenizer.mask_token_id).nonzero().item()
    probs = mlm(**enc).logits[0, pos].softmax(-1)
    top = probs.topk(3)
    assert [r["token"] for r in results] == top.indices.tolist()
    assert [r["score"] for r in results] == pytest.approx(top.values.tolist(), abs=1e-6)
    assert results[0]["sequence"] == text.replace("[MASK]", tokenizer.decode([results[0]["token"]]))


def test_saved_directories_hold_the_tokenizer(mlm, clm, tmp_path):
    mlm.save_pretrained(tmp_path / "mlm")
    clm.save_pretrained(tmp_path / "clm")
    for name, side in (("mlm", "right"), ("clm", "left")):
        assert json.loads((tmp_path / name / "config.json").read_text())["tokenizer_name"] == "deepmind/language-perceiver"
        loaded = AutoTokenizer.from_pretrained(tmp_path / name)  # from the directory alone
        assert isinstance(loaded, PerceiverTokenizer) and len(loaded) == 262 and loaded.padding_side == side


@torch.no_grad()
def test_pipelines_by_directory_name(mlm, clm, tokenizer, tmp_path):
    """A saved directory is all a pipeline needs: no tokenizer argument, no "install sentencepiece" detour."""
    register_auto_classes()
    mlm.save_pretrained(tmp_path / "my-mlm")
    results = pipeline("fill-mask", model=str(tmp_path / "my-mlm"))("Hello w[MASK]rld", top_k=3)
    enc = tokenizer("Hello w[MASK]rld", return_tensors="pt")
    pos = (enc.input_ids[0] == tokenizer.mask_token_id).nonzero().item()
    assert [r["token"] for r in results] == mlm(**enc).logits[0, pos].topk(3).indices.tolist()

    clm.save_pretrained(tmp_path / "my-clm")
    generator = pipeline("text-generation", model=str(tmp_path / "my-clm"))
    options = dict(max_new_tokens=6, num_latents=2, add_special_tokens=False, do_sample=False)
    ids = tokenizer("Perceiver", add_special_tokens=False, return_tensors="pt").input_ids
    expected = clm.backend_model.generate(ids, 6, num_latents=2)[0].tolist()
    assert generator("Perceiver", return_tensors=True, **options)[0]["generated_token_ids"] == expected


def test_pipeline_by_object_without_alarming_messages():
    """In a fresh process, without registering anything by hand: no "is not supported for text-generation" and the
    list of ~200 model names that transformers logs for models it does not know."""
    code = (
        "from transformers import PerceiverTokenizer, pipeline\n"
        "from perceiver.model.text.clm import CausalLanguageModelConfig\n"
        "from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModel as M\n"
        "config = M.config_class(model_config=CausalLanguageModelConfig.from_preset('tiny', vocab_size=262, "
        "max_seq_len=64))\n"
        "out = pipeline('text-generation', model=M(config), tokenizer=PerceiverTokenizer())('The', max_new_tokens=2)\n"
        "print('GENERATED', out[0]['generated_text'][:3])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "GENERATED The" in out.stdout
    assert "not supported" not in out.stderr + out.stdout and "Supported models" not in out.stderr + out.stdout


def test_text_generation_pipeline(clm, tokenizer):
    prompt = "Perceiver AR"
    generator = pipeline("text-generation", model=clm, tokenizer=tokenizer)
    # the byte tokenizer would wrap the prompt in [CLS] ... [SEP]
    options = dict(max_new_tokens=12, num_latents=2, add_special_tokens=False, do_sample=False)  # pipeline default: sampling
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    expected = clm.backend_model.generate(ids, 12, num_latents=2)
    assert generator(prompt, return_tensors=True, **options)[0]["generated_token_ids"] == expected[0].tolist()
    assert generator(prompt, **options)[0]["generated_text"].startswith(prompt)


# --- generate() ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_equals_our_greedy(clm, tokenizer, use_cache):
    # prompt 11 + 30 new tokens > max_seq_len 24: latent growth past max_latents 8, prefix growth, sliding window
    enc = left_padded(tokenizer, ["Hello world", "abc"])
    out = clm.generate(**enc, max_new_tokens=30, num_latents=2, use_cache=use_cache)
    expected = clm.backend_model.generate(enc.input_ids, 30, num_latents=2, pad_mask=enc.attention_mask == 0)
    assert out.shape == (2, 41)
    assert torch.equal(out, expected)
    assert not torch.equal(out, clm.generate(**enc, max_new_tokens=30, num_latents=1))  # num_latents is used


def test_generate_sampling_options(clm, tokenizer):
    enc = left_padded(tokenizer, ["Hello world", "abc"])
    options = dict(do_sample=True, top_k=5, top_p=0.9, temperature=0.7)
    out = clm.generate(**enc, max_new_tokens=10, generator=torch.Generator().manual_seed(1), **options)
    expected = clm.backend_model.generate(enc.input_ids, 10, pad_mask=enc.attention_mask == 0,
                                          generator=torch.Generator().manual_seed(1), **options)
    assert torch.equal(out, expected)
    top1 = clm.generate(**enc, max_new_tokens=10, do_sample=True, top_k=1)  # top_k=1 sampling is greedy
    assert torch.equal(top1, clm.generate(**enc, max_new_tokens=10))


def test_generate_config_and_outputs(clm, tokenizer):
    from transformers import GenerationConfig

    enc = left_padded(tokenizer, ["Hello"])
    out = clm.generate(**enc, generation_config=GenerationConfig(max_new_tokens=4, return_dict_in_generate=True))
    assert out.sequences.shape == (1, 9)
    assert clm.generate(**enc, max_length=7).shape == (1, 7)
    with pytest.raises(ValueError, match="num_beams"):
        clm.generate(**enc, max_new_tokens=4, num_beams=2)
    tokenizer.padding_side = "right"
    enc = tokenizer(["Hello", "a"], padding=True, add_special_tokens=False, return_tensors="pt")
    with pytest.raises(ValueError, match="left padding"):
        clm.generate(**enc, max_new_tokens=4)
