"""The image classifier against Hugging Face and perceiver-io 0.11: conversion of random-initialised
``PerceiverForImageClassification{Fourier,Learned}`` (logits <= 1e-4), our wrapper in the ``image-classification``
pipeline, and 0.11 directories and checkpoints (fixtures written by 0.11 itself)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from interop_helpers import fixture_path, read_json
from safetensors.torch import load_file
from transformers import (
    AutoModelForImageClassification,
    PerceiverConfig,
    PerceiverForImageClassificationConvProcessing,
    PerceiverForImageClassificationFourier,
    PerceiverForImageClassificationLearned,
    pipeline,
)

from perceiver.model.core.params import ParamsError
from perceiver.model.vision.image_classifier import ImageClassifier, ImageClassifierConfig
from perceiver.model.vision.image_classifier.convert import convert_hf_model
from perceiver.model.vision.image_classifier.huggingface import (
    PerceiverImageClassifier,
    register_auto_classes,
    save_pretrained,
)
from perceiver.model.vision.image_classifier.lightning import LitImageClassifier
from perceiver.model.vision.image_classifier.predecessor import image_classifier_config, load_predecessor

SMALL = dict(d_latents=32, num_latents=8, num_blocks=2, num_self_attends_per_block=2, num_self_attention_heads=4,
             num_cross_attention_heads=1, image_size=12, num_labels=7)
FIXTURES = ["img_clf", "img_clf_rgb"]


def random_hf(cls, **overrides):
    torch.manual_seed(0)
    hf = cls(PerceiverConfig(**{**SMALL, **overrides})).eval()
    with torch.no_grad():  # distinctive values: HF initializes LayerNorms to 1/0 and biases to 0
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return hf


@pytest.mark.parametrize("cls", [PerceiverForImageClassificationFourier, PerceiverForImageClassificationLearned])
@pytest.mark.parametrize("overrides", [{}, {"qk_channels": 16, "v_channels": 32, "num_cross_attention_heads": 2,
                                            "self_attention_widening_factor": 2, "cross_attention_widening_factor": 2}])
@torch.no_grad()
def test_hugging_face_conversion(cls, overrides):
    hf = random_hf(cls, **overrides)
    model = convert_hf_model(hf).eval()
    x = torch.randn(3, 3, 12, 12)  # (B, C, H, W)
    ref = hf(pixel_values=x).logits
    assert (model(x.permute(0, 2, 3, 1)) - ref).abs().max().item() <= 1e-4
    # and through our own Hugging Face wrapper (channels first, like HF)
    assert (PerceiverImageClassifier.from_backend(model)(pixel_values=x).logits - ref).abs().max().item() <= 1e-4
    n_hf, n_ours = (sum(p.numel() for p in m.parameters()) for m in (hf, model))
    if cls is PerceiverForImageClassificationFourier:
        assert n_ours == n_hf
    else:  # HF's linear projection of the learned position embedding is folded into our embedding
        assert n_hf - n_ours == 256 * 256 + 256


def test_conv_processing_is_refused_clearly():
    with pytest.raises(ValueError, match="ConvProcessing"):
        convert_hf_model(PerceiverForImageClassificationConvProcessing(PerceiverConfig(**SMALL)))


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = ImageClassifier(ImageClassifierConfig.from_preset("tiny")).eval()
    save_pretrained(model, tmp_path, class_names=[f"digit {i}" for i in range(10)])
    return model, tmp_path


@torch.no_grad()
def test_round_trip_and_model_params(saved):
    model, path = saved
    assert read_json(path / "config.json")["model_type"] == "perceiver-image-classifier"
    assert all(k.startswith("backend_model.") for k in load_file(path / "model.safetensors"))
    loaded = PerceiverImageClassifier.from_pretrained(path).eval()
    assert loaded.config.id2label[3] == "digit 3" and loaded.config.backend_config == model.config
    x = torch.randn(2, 8, 8, 1)
    assert torch.equal(loaded.backend_model(x), model(x))  # the computed Fourier buffer is restored too
    lit = LitImageClassifier.create(model.config, params=str(path)).eval()  # what --model.params reads
    assert torch.equal(lit.model(x), model(x))


@torch.no_grad()
def test_image_classification_pipeline(saved):
    from PIL import Image

    model, path = saved
    register_auto_classes()
    assert isinstance(AutoModelForImageClassification.from_pretrained(path), PerceiverImageClassifier)
    classify = pipeline("image-classification", model=str(path))
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    image = Image.fromarray(pixels)  # the pipeline loads it as RGB and resizes to 8x8; the wrapper takes the luma
    result = classify(image, top_k=3)
    small = np.asarray(image.convert("RGB").resize((8, 8), Image.BICUBIC).convert("L"), dtype=np.float32)
    probs = model(torch.from_numpy(small / 127.5 - 1)[None, ..., None]).softmax(-1)[0]
    top = probs.topk(3)
    assert [r["label"] for r in result] == [f"digit {i}" for i in top.indices.tolist()]
    np.testing.assert_allclose([r["score"] for r in result], top.values.numpy(), atol=0.02)


@pytest.mark.parametrize("source", ["hf", "lightning.ckpt"])
@pytest.mark.parametrize("name", FIXTURES)
@torch.no_grad()
def test_predecessor_logits(name, source):
    ref = load_file(fixture_path(name, "reference.safetensors"))
    info = read_json(fixture_path(name, "reference.json"))
    model = load_predecessor(fixture_path(name, source))
    assert sum(p.numel() for p in model.parameters()) == info["num_params"]
    assert (model.encoder(ref["images"]) - ref["encoder_latents"]).abs().max().item() <= 1e-5
    assert (model(ref["images"]) - ref["logits"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("source", ["hf", "lightning.ckpt"])
@torch.no_grad()
def test_lightning_params_from_predecessor(source):
    """What ``--model.params=<0.11 dir or ckpt>`` and ``--model.encoder.params=...`` do."""
    ref = load_file(fixture_path("img_clf", "reference.safetensors"))
    config = image_classifier_config(read_json(fixture_path("img_clf", "reference.json"))["model_config"])
    lit = LitImageClassifier.create(config, params=fixture_path("img_clf", source)).eval()
    assert (lit.model(ref["images"]) - ref["logits"]).abs().max().item() <= 1e-5
    fresh = config.encoder.__class__(**{**vars(config.encoder), "params": fixture_path("img_clf", source)})
    lit = LitImageClassifier.create(type(config)(fresh, config.decoder, num_latents=8, num_latent_channels=16)).eval()
    assert (lit.model.encoder(ref["images"]) - ref["encoder_latents"]).abs().max().item() <= 1e-5


def test_predecessor_shape_mismatch_names_the_field():
    config = ImageClassifierConfig.from_preset("tiny", encoder={"image_shape": (12, 10, 1)},
                                               decoder={"num_classes": 5})
    with pytest.raises(ParamsError, match="encoder"):
        LitImageClassifier.create(config, params=fixture_path("img_clf", "hf"))


def test_text_model_directory_is_not_an_image_classifier():
    with pytest.raises(ParamsError, match="perceiver-io-image-classifier"):
        load_predecessor(fixture_path("mlm", "hf"))
