"""Symbolic audio model: the causal language model with the event vocabulary, at the three interface levels, and
generation that writes MIDI, a piano roll and a WAV preview."""

from __future__ import annotations

import wave

import pytest
import torch
import torch.nn.functional as F

from perceiver.model.audio.symbolic import (
    MusicSample,
    SymbolicAudioModel,
    SymbolicAudioModelConfig,
    generate_music,
    prompt_ids,
)
from perceiver.model.audio.symbolic.events import PAD_ID, VOCAB_SIZE, from_text
from perceiver.model.audio.symbolic.music import validity
from perceiver.model.core.config import ConfigError
from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig


def tiny_config(**overrides) -> SymbolicAudioModelConfig:
    return SymbolicAudioModelConfig.from_preset(
        "tiny", **{"max_seq_len": 64, "max_latents": 16, "num_channels": 32, "num_self_attention_layers": 2,
                   "init_scale": 0.2, **overrides})


@pytest.fixture(scope="module")
def model() -> SymbolicAudioModel:
    torch.manual_seed(0)
    return SymbolicAudioModel(tiny_config()).eval()


def test_presets_and_defaults():
    config = SymbolicAudioModelConfig()
    assert config == SymbolicAudioModelConfig.from_preset("maestro-28.5m")
    assert (config.vocab_size, config.max_seq_len, config.max_latents) == (VOCAB_SIZE, 2048, 1024)
    assert config.output_norm and not config.output_bias and not config.abs_pos_emb
    with torch.device("meta"):
        counts = {name: sum(p.numel() for p in SymbolicAudioModel(SymbolicAudioModelConfig.from_preset(name))
                            .parameters()) for name in SymbolicAudioModelConfig.presets}
    assert counts["maestro-28.5m"] == 28_531_712 and counts["giantmidi-134m"] == 134_840_832
    assert counts["tiny"] < 1_500_000
    with pytest.raises(ConfigError) as info:
        tiny_config(max_latents=128)
    assert info.value.field == "max_latents"


@torch.no_grad()
def test_same_logits_as_the_causal_language_model(model):
    # the symbolic audio model is the causal language model over events: same config, same weights, same logits
    import dataclasses

    clm = CausalLanguageModel(CausalLanguageModelConfig(**dataclasses.asdict(model.config))).eval()
    clm.load_state_dict(model.state_dict())
    x = torch.randint(0, VOCAB_SIZE - 1, (2, 40))
    assert torch.equal(model(x, prefix_len=24), clm(x, prefix_len=24))


def test_generate_music_is_seeded_and_well_formed(model):
    a = generate_music(model, "v22 on60 on64 dt50", max_new_events=48, num_samples=3, seed=1)
    b = generate_music(model, "v22 on60 on64 dt50", max_new_events=48, num_samples=3, seed=1)
    assert [s.ids for s in a] == [s.ids for s in b]
    assert len({tuple(s.generated) for s in a}) > 1  # samples of a batch differ
    assert all(s.prompt == from_text("v22 on60 on64 dt50") and len(s.generated) == 48 for s in a)
    # every generated sequence decodes to a valid MIDI file in which every note-on is closed
    assert validity(a)["valid_midi"] == 1.0
    greedy = generate_music(model, [378, 60], max_new_events=16, do_sample=False, num_samples=2)
    assert greedy[0].ids == greedy[1].ids == model.generate(torch.tensor([[378, 60]]), 16)[0].tolist()


def test_validity_of_many_sampled_sequences():
    # the test behind the ">= 99% decode to valid MIDI with every note-on closed" target: an untrained model samples
    # arbitrary event sequences; decoding must still give valid MIDI for every one of them
    torch.manual_seed(1)
    untrained = SymbolicAudioModel(tiny_config(init_scale=1.0)).eval()
    samples = generate_music(untrained, "v20", max_new_events=64, num_samples=100, seed=0)
    assert validity(samples)["valid_midi"] == 1.0
    assert validity(samples)["grammatical"] < 1.0  # ...although an untrained model's events need repairs


def test_sample_files(model, tmp_path):
    pretty_midi = pytest.importorskip("pretty_midi")
    sample = generate_music(model, "v22 on60 dt30 off60 on62", max_new_events=32, seed=0)[0]
    paths = sample.save(tmp_path / "out" / "bwv1.6")
    assert sorted(p.name for p in paths.values()) == ["bwv1.6.mid", "bwv1.6.png", "bwv1.6.wav"]
    assert sorted(p.suffix for p in paths.values()) == [".mid", ".png", ".wav"]
    notes = [n for i in pretty_midi.PrettyMIDI(str(paths["mid"])).instruments for n in i.notes]
    assert len(notes) == len(sample.decoded.notes) > 0
    with wave.open(str(paths["wav"])) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        end = max(n.end for n in sample.decoded.notes) + 0.08  # the last release
        assert w.getnframes() / w.getframerate() == pytest.approx(end, abs=0.01)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert MusicSample.from_text(sample.text) == sample
    assert sample.audio().data[:4] == b"RIFF"


def test_prompts(tmp_path):
    pytest.importorskip("pretty_midi")
    from perceiver.model.audio.symbolic.midi import MidiTokenizer

    ids = from_text("v22 on60 dt50 off60 on64 dt25 off64")
    path = tmp_path / "prompt.mid"
    MidiTokenizer().decode(ids, path)
    assert prompt_ids(str(path)) == ids == prompt_ids(ids) == prompt_ids("v22 on60 dt50 off60 on64 dt25 off64")
    with pytest.raises(ValueError, match="chorale:"):
        prompt_ids("no such file.mid")


def test_chorale_prompt():
    pytest.importorskip("music21")
    ids = prompt_ids("chorale:bwv1.6")
    assert len(ids) > 500 and ids[0] == from_text("v22")[0]


def test_lightning_module_loss_and_sample():
    from perceiver.model.audio.symbolic.lightning import LitSymbolicAudioModel

    config = tiny_config()
    lit = LitSymbolicAudioModel.create(config, validation_sample_length=8)
    x = torch.randint(0, VOCAB_SIZE - 1, (2, 41))
    batch = {"input_ids": x[:, :-1], "labels": x[:, 1:].clone(), "pad_mask": torch.zeros(2, 40, dtype=torch.bool)}
    batch["pad_mask"][1, :5] = True
    batch["input_ids"][1, :5] = PAD_ID
    loss, metrics = lit.loss_and_metrics(batch)
    logits = lit.model(batch["input_ids"], 24, batch["pad_mask"])  # the last max_latents = 16 positions
    expected = F.cross_entropy(logits.flatten(0, 1), batch["labels"][:, 24:].flatten())
    assert loss.item() == pytest.approx(expected.item())
    assert 0.0 <= float(metrics["acc"]) <= 1.0
    sample = MusicSample.from_text(lit.sample())
    assert sample.prompt == from_text("v22") and len(sample.generated) == 8
    assert lit.token_labels([60, 188, 300, 380]) == ["on60", "off60", "dt45", "v24"]
    assert LitSymbolicAudioModel.create(config).config == config


def test_huggingface_wrapper(model, tmp_path):
    from transformers import AutoModelForCausalLM

    from perceiver.model.audio.symbolic.huggingface import PerceiverSymbolicAudioModel, register_auto_classes

    hf = PerceiverSymbolicAudioModel.from_backend(model)
    hf.save_pretrained(tmp_path)
    register_auto_classes()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, PerceiverSymbolicAudioModel) and loaded.config.backend_config == model.config
    x = torch.randint(0, VOCAB_SIZE - 1, (2, 30))
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x, prefix_len=14))
        assert loaded(x, labels=x).loss > 0
    # generate() is the causal language model's loop: sampling with the same generator gives the same events
    prompt = torch.tensor([[378, 60, 64]])
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    out = loaded.generate(prompt, max_new_tokens=20, do_sample=True, top_k=20, generator=g1)
    assert torch.equal(out, model.generate(prompt, 20, do_sample=True, top_k=20, generator=g2))


def test_imports_need_no_music_packages():
    # pretty_midi and music21 are the optional extra perceiver[music]: the model, the data module classes and the
    # task registry import without them; reading MIDI says what to install
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pretty_midi'] = sys.modules['music21'] = sys.modules['mido'] = None\n"
        "import perceiver, perceiver.tasks, perceiver.data.audio\n"
        "from perceiver.model.audio.symbolic import SymbolicAudioModel, SymbolicAudioModelConfig, MidiTokenizer\n"
        "perceiver.tasks.get('music').config_class\n"
        "try:\n    MidiTokenizer().encode(b'MThd')\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "perceiver[music]" in out.stdout
