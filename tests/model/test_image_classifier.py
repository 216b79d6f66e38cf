"""The image classifier backend: Fourier features against Hugging Face's, presets against the documented sizes,
config validation, and the shapes of both position encodings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers.models.perceiver.modeling_perceiver import build_linear_positions, generate_fourier_features

from perceiver.model.core import ClassificationDecoderConfig, ConfigError
from perceiver.model.core.position import fourier_position_encodings
from perceiver.model.vision.image_classifier import ImageClassifier, ImageClassifierConfig, ImageEncoderConfig

DOCUMENTED = Path(__file__).parents[1] / "fixtures" / "predecessor" / "documented"


def num_params(config: ImageClassifierConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in ImageClassifier(config).parameters())


@pytest.mark.parametrize("shape, bands, max_resolution",
                         [((12, 10), 4, None), ((8, 8), 8, (224, 224)), ((5,), 3, (9,))])
def test_fourier_features_equal_hugging_face(shape, bands, max_resolution):
    pos = build_linear_positions(shape).reshape(1, -1, len(shape))
    expected = generate_fourier_features(pos, bands, max_resolution or shape)[0]
    actual = fourier_position_encodings(shape, bands, max_resolution)
    assert actual.shape == expected.shape == (torch.Size(shape).numel(), len(shape) * (2 * bands + 1))
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


def test_max_resolution_changes_only_the_frequencies():
    a = fourier_position_encodings((8, 8), 4)
    b = fourier_position_encodings((8, 8), 4, (224, 224))
    assert torch.equal(a[:, :2], b[:, :2]) and not torch.allclose(a[:, 2:], b[:, 2:])


def test_documented_mnist_preset_has_the_predecessors_parameter_count():
    documented = json.loads((DOCUMENTED / "num_params.json").read_text())["img_clf_907k"]  # counted by 0.11
    assert num_params(ImageClassifierConfig.from_preset("mnist-907k")) == documented == 907_212
    values = json.loads((DOCUMENTED / "img_clf_907k" / "config.json").read_text())["model_config"]
    from perceiver.model.vision.image_classifier.predecessor import image_classifier_config

    assert image_classifier_config(values) == ImageClassifierConfig.from_preset("mnist-907k")


def test_deepmind_preset_matches_hugging_face_parameter_count():
    from transformers import PerceiverConfig, PerceiverForImageClassificationFourier

    config = PerceiverConfig(d_latents=1024, num_latents=512, num_blocks=8, num_self_attends_per_block=6,
                             num_self_attention_heads=8, num_cross_attention_heads=1, num_labels=1000)
    with torch.device("meta"):
        hf = PerceiverForImageClassificationFourier(config)
    assert num_params(ImageClassifierConfig.from_preset("deepmind-fourier")) == sum(p.numel() for p in hf.parameters())


@pytest.mark.parametrize("encoding", ["fourier", "learned"])
def test_forward_shapes_and_gradients(encoding):
    torch.manual_seed(0)
    config = ImageClassifierConfig.from_preset(
        "tiny", encoder={"image_shape": (6, 5, 3), "position_encoding": encoding, "num_position_channels": 12,
                         "num_pixel_channels": 4 if encoding == "learned" else None},
        decoder={"num_classes": 7})
    model = ImageClassifier(config)
    adapted = model.encoder.input_adapter(torch.randn(2, 6, 5, 3))
    assert adapted.shape == (2, 30, config.encoder.num_input_channels)
    logits = model(torch.randn(2, 6, 5, 3))
    assert logits.shape == (2, 7)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cross_attention_query_key_channels_default_to_the_input_channels():
    config = ImageClassifierConfig.from_preset("mnist-907k")
    model = ImageClassifier(config)
    assert model.encoder.cross_attn_1.attention.q_proj.out_features == 1 + 2 * (2 * 32 + 1)  # as 0.11 and HF
    assert config.encoder.num_cross_attention_qk_channels is None  # the config itself is left as given


def test_wrong_image_shape_names_the_field():
    model = ImageClassifier(ImageClassifierConfig.from_preset("tiny"))
    with pytest.raises(ValueError, match="image_shape"):
        model(torch.randn(1, 28, 28, 1))


@pytest.mark.parametrize("overrides, field", [
    ({"encoder": {"image_shape": (8, 8)}}, "encoder.image_shape"),
    ({"encoder": {"position_encoding": "sine"}}, "encoder.position_encoding"),
    ({"encoder": {"max_resolution": (224,)}}, "encoder.max_resolution"),
    ({"encoder": {"num_cross_attention_heads": 2}}, "encoder.num_cross_attention_heads"),  # 35 input channels
    ({"decoder": {"num_classes": 0}}, "decoder.num_classes"),
    ({"decoder": {"num_cross_attention_heads": 5}}, "decoder.num_cross_attention_heads"),
])
def test_invalid_configs_name_the_field(overrides, field):
    with pytest.raises(ConfigError) as e:
        ImageClassifierConfig.from_preset("tiny", **overrides)
    assert e.value.field == field


def test_json_lists_become_tuples():
    config = ImageClassifierConfig(ImageEncoderConfig(image_shape=[8, 8, 1], max_resolution=[16, 16],
                                                      num_cross_attention_heads=1),
                                   ClassificationDecoderConfig(num_classes=10), num_latents=4, num_latent_channels=8)
    assert config.image_shape == (8, 8, 1) and config.encoder.max_resolution == (16, 16)
