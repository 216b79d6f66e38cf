"""The text classifier's interfaces to other formats: perceiver-io 0.11 classifier checkpoints (fixtures written by
0.11 itself), encoder weights from our MLM, 0.11's MLM and DeepMind's model, freezing, and the Hugging Face wrapper
in the text-classification pipeline."""

from __future__ import annotations

import copy
import time

import pytest
import torch
import torch.nn.functional as F
from interop_helpers import fixture_path, reference
from transformers import PerceiverConfig, PerceiverForMaskedLM, PerceiverTokenizer, pipeline

from perceiver.hub import HubUnavailableError
from perceiver.model.core.classifier import ClassificationDecoderConfig
from perceiver.model.core.params import ParamsError
from perceiver.model.text.classifier import LitTextClassifier, TextClassifier, TextClassifierConfig
from perceiver.model.text.classifier.huggingface import PerceiverTextClassifier, PerceiverTextClassifierConfig
from perceiver.model.text.huggingface import register_auto_classes
from perceiver.model.text.mlm import convert_hf_model
from perceiver.model.text.mlm.convert import convert_config
from perceiver.model.text.mlm.huggingface import PerceiverMaskedLanguageModel
from perceiver.model.text.mlm.lightning import LitMaskedLanguageModel
from perceiver.model.text.classifier.predecessor import is_predecessor_classifier
from perceiver.model.text.classifier.predecessor import load_predecessor as load_predecessor_classifier
from perceiver.model.text.classifier.predecessor import read_predecessor as read_predecessor_classifier
from perceiver.model.text.predecessor import load_predecessor

ATOL = 1e-5


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def classifier_config(mlm_config, **decoder) -> TextClassifierConfig:
    """A small classifier with the encoder and latents of ``mlm_config`` (a MaskedLanguageModelConfig), 3 classes."""
    decoder = ClassificationDecoderConfig(num_output_query_channels=16, num_cross_attention_heads=2, num_classes=3,
                                          **decoder)
    return TextClassifierConfig(copy.deepcopy(mlm_config.encoder), decoder, num_latents=mlm_config.num_latents,
                                num_latent_channels=mlm_config.num_latent_channels)


def encoders_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- perceiver-io 0.11 text classifiers --------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["hf", "lightning.ckpt"])
@torch.no_grad()
def test_predecessor_classifier_logits(source):
    ref, info = reference("txt_clf")
    assert is_predecessor_classifier(fixture_path("txt_clf", source))
    model = load_predecessor_classifier(fixture_path("txt_clf", source))
    assert isinstance(model, TextClassifier)
    assert sum(p.numel() for p in model.parameters()) == info["num_params"]
    assert max_diff(model.encoder(ref["short.input_ids"], ref["short.pad_mask"]), ref["short.encoder_latents"]) <= ATOL
    for case in info["cases"]:
        logits = model(ref[f"{case}.input_ids"], ref.get(f"{case}.pad_mask"))
        assert logits.shape == (2, 3)
        assert max_diff(logits, ref[f"{case}.logits"]) <= ATOL, case
    if source == "hf":  # 0.11's id2label becomes the class names
        assert model.config.class_names == [info["id2label"][str(i)] for i in range(3)]


@torch.no_grad()
def test_predecessor_classifier_as_params():
    ref, _ = reference("txt_clf")
    config, _ = read_predecessor_classifier(fixture_path("txt_clf", "lightning.ckpt"))
    lit = LitTextClassifier.create(config, params=fixture_path("txt_clf", "hf")).eval()
    assert max_diff(lit.model(ref["full.input_ids"]), ref["full.logits"]) <= ATOL


def test_convert_script_writes_our_classifier(tmp_path, capsys):
    from perceiver.scripts.convert import main

    ref, _ = reference("txt_clf")
    main(["predecessor", fixture_path("txt_clf", "hf"), str(tmp_path)])
    assert "max abs logit difference: 0" in capsys.readouterr().out
    model = PerceiverTextClassifier.from_pretrained(tmp_path).eval()
    assert model.config.id2label == {0: "NEGATIVE", 1: "NEUTRAL", 2: "POSITIVE"}
    with torch.no_grad():
        assert max_diff(model(ref["full.input_ids"]).logits, ref["full.logits"]) <= ATOL


# --- encoder.params ------------------------------------------------------------------------------------------------


def test_encoder_from_predecessor_mlm():
    assert not any(is_predecessor_classifier(fixture_path("mlm", s)) for s in ("hf", "lightning.ckpt"))
    mlm = load_predecessor(fixture_path("mlm", "hf"))
    config = classifier_config(mlm.config)
    for source in ("hf", "lightning.ckpt"):
        config.encoder.params = fixture_path("mlm", source)
        lit = LitTextClassifier.create(config)
        assert encoders_equal(lit.model.encoder, mlm.encoder)


def test_encoder_from_our_mlm_checkpoint_directory_and_run_directory(tmp_path, seed):
    mlm_config = TextClassifierConfig.from_preset("tiny")  # the tiny MLM's encoder, by construction of the preset
    from perceiver.model.text.mlm import MaskedLanguageModelConfig

    mlm = LitMaskedLanguageModel.create(MaskedLanguageModelConfig.from_preset("tiny"))
    # a Lightning checkpoint (state dict keys "model.<backend key>"), in a run directory as the journal writes it
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": mlm.state_dict(), "hyper_parameters": dict(mlm.hparams)},
               tmp_path / "run" / "checkpoints" / "final.ckpt")
    PerceiverMaskedLanguageModel.from_backend(mlm.model).save_pretrained(tmp_path / "saved")
    for source in ("run/checkpoints/final.ckpt", "run", "saved"):
        mlm_config.encoder.params = str(tmp_path / source)
        lit = LitTextClassifier.create(mlm_config)
        assert encoders_equal(lit.model.encoder, mlm.model.encoder), source
    # the encoder's weights do not come back from the classifier's own checkpoint hyperparameters
    assert lit.hparams["encoder"]["params"] is None


def test_encoder_from_deepmind_weights(tmp_path, seed):
    """DeepMind's deepmind/language-perceiver is a PerceiverForMaskedLM: a local directory of one (random, small)
    initializes the encoder exactly as the MLM conversion does."""
    hf = PerceiverForMaskedLM(PerceiverConfig(d_model=32, d_latents=32, num_latents=8, num_blocks=1,
                                              num_self_attends_per_block=2, num_self_attention_heads=4,
                                              num_cross_attention_heads=4, vocab_size=262,
                                              max_position_embeddings=48))
    hf.save_pretrained(tmp_path)
    converted = convert_hf_model(hf)
    config = classifier_config(convert_config(hf))
    config.encoder.params = str(tmp_path)
    assert encoders_equal(LitTextClassifier.create(config).model.encoder, converted.encoder)


def test_encoder_hub_id_offline_fails_fast():
    config = TextClassifierConfig.from_preset("tiny", encoder={"params": "deepmind/language-perceiver"})
    start = time.monotonic()
    with pytest.raises(HubUnavailableError):
        LitTextClassifier.create(config)
    assert time.monotonic() - start < 5


def test_encoder_shape_mismatch_names_the_field():
    config = classifier_config(load_predecessor(fixture_path("mlm", "hf")).config)
    config.encoder.params = fixture_path("mlm", "hf")
    config.encoder.num_input_channels = 64
    with pytest.raises(ParamsError, match=r"txt_embedding.*set encoder.vocab_size / encoder.num_input_channels"):
        LitTextClassifier.create(config)


def test_freeze_trains_the_decoder_only(seed):
    mlm = load_predecessor(fixture_path("mlm", "hf"))
    config = classifier_config(mlm.config)
    config.encoder.params, config.encoder.freeze, config.encoder.dropout = fixture_path("mlm", "hf"), True, 0.0
    lit = LitTextClassifier.create(config)
    assert not any(p.requires_grad for p in lit.model.encoder.parameters())
    assert all(p.requires_grad for p in lit.model.decoder.parameters())
    before = {k: v.clone() for k, v in lit.model.state_dict().items()}
    optimizer = lit.configure_optimizers()
    batch = {"input_ids": torch.randint(6, 262, (4, 20)), "labels": torch.tensor([0, 1, 2, 1])}
    for _ in range(2):
        loss, _ = lit.loss_and_metrics(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = lit.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert all(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder.") and "norm" not in k)
    assert encoders_equal(lit.model.encoder, mlm.encoder)


# --- Hugging Face wrapper --------------------------------------------------------------------------------------------


@pytest.fixture
def wrapped(seed):
    config = TextClassifierConfig.from_preset("tiny", class_names=["negative", "positive"],
                                              decoder={"init_scale": 0.05})
    return PerceiverTextClassifier(PerceiverTextClassifierConfig(model_config=config)).eval()


@torch.no_grad()
def test_hf_round_trip_and_text_classification_pipeline(wrapped, tmp_path):
    wrapped.save_pretrained(tmp_path)
    PerceiverTokenizer().save_pretrained(tmp_path)
    register_auto_classes()
    classify = pipeline("text-classification", model=str(tmp_path))
    assert isinstance(classify.model, PerceiverTextClassifier)
    assert classify.model.config.id2label == {0: "negative", 1: "positive"}
    texts = ["A wonderful, moving film.", "Two hours I will never get back."]
    results = classify(texts, top_k=None)
    # the pipeline's scores are the softmax of our backend's logits for the same (tokenized) ids
    enc = PerceiverTokenizer()(texts, padding=True, return_tensors="pt")
    probs = wrapped.backend_model(enc["input_ids"], enc["attention_mask"] == 0).softmax(-1)
    for result, p in zip(results, probs):
        scores = {r["label"]: r["score"] for r in result}
        assert scores["negative"] == pytest.approx(p[0].item(), abs=1e-6)
        assert scores["positive"] == pytest.approx(p[1].item(), abs=1e-6)
    assert len({round(p[1].item(), 6) for p in probs}) == 2  # the two texts are told apart


def test_hf_input_embeddings(wrapped):
    assert wrapped.get_input_embeddings() is wrapped.backend_model.encoder.input_adapter.txt_embedding


def test_hf_loss(wrapped):
    x, labels = torch.randint(6, 262, (3, 16)), torch.tensor([0, 1, 1])
    out = wrapped(x, labels=labels)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, labels))
    out.loss.backward()
    assert wrapped.backend_model.decoder.output_adapter.linear.weight.grad is not None
