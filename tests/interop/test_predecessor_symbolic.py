"""perceiver-io 0.11 symbolic audio models and MIDI events, checked against fixtures written by 0.11 itself
(``tests/fixtures/predecessor/make_fixtures.py``: ``sam/`` and ``documented/sam_*``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from interop_helpers import fixture_path, read_json, reference

from perceiver.model.audio.symbolic import SymbolicAudioModel, SymbolicAudioModelConfig
from perceiver.model.audio.symbolic.events import decode_events, velocity_bin
from perceiver.model.audio.symbolic.huggingface import PerceiverSymbolicAudioModel
from perceiver.model.audio.symbolic.predecessor import load_predecessor, read_predecessor
from perceiver.model.core.params import ParamsError

ATOL = 1e-5
SOURCES = ["hf", "lightning.ckpt"]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("source", SOURCES)
@torch.no_grad()
def test_logits_match_predecessor(source):
    ref, info = reference("sam")
    model = load_predecessor(fixture_path("sam", source))
    assert isinstance(model, SymbolicAudioModel)
    assert sum(p.numel() for p in model.parameters()) == info["num_params"]
    assert model.config.output_norm and not model.config.output_bias and not model.config.abs_pos_emb
    for case, c in info["cases"].items():
        logits = model(ref[f"{case}.input_ids"], c["prefix_len"], ref.get(f"{case}.pad_mask"))
        assert max_diff(logits, ref[f"{case}.logits"]) <= ATOL, case


def test_generation_matches_predecessor():
    # 0.11's HF generate(num_latents=4, max_new_tokens=40), greedy: latent growth, prefix growth, sliding window;
    # the backend and our HF wrapper run the causal language model's decoding loop
    ref, _ = reference("sam")
    model = load_predecessor(fixture_path("sam", "hf"))
    assert torch.equal(model.generate(ref["generate.prompt_ids"], 40, num_latents=4), ref["generate.output_ids"])
    hf = PerceiverSymbolicAudioModel.from_backend(model)
    out = hf.generate(ref["generate.prompt_ids"], max_new_tokens=40, num_latents=4, do_sample=False)
    assert torch.equal(out, ref["generate.output_ids"])


def test_lightning_params_from_predecessor():
    from perceiver.model.audio.symbolic.lightning import LitSymbolicAudioModel

    ref, info = reference("sam")
    config = SymbolicAudioModelConfig(**{k: v for k, v in info["model_config"].items()
                                         if k in {f.name for f in dataclasses.fields(SymbolicAudioModelConfig)}})
    for source in SOURCES:
        lit = LitSymbolicAudioModel.create(config, params=fixture_path("sam", source)).eval()
        with torch.no_grad():
            logits = lit.model(ref["full.input_ids"], info["cases"]["full"]["prefix_len"])
        assert max_diff(logits, ref["full.logits"]) <= ATOL


def test_other_directories_are_refused():
    with pytest.raises(ParamsError, match="perceiver-ar-symbolic-audio-model"):
        read_predecessor(fixture_path("clm", "hf"))


@pytest.mark.parametrize("name,preset", [("sam_maestro_28m", "maestro-28.5m"),
                                         ("sam_giantmidi_134m", "giantmidi-134m")])
def test_documented_configs_and_parameter_counts(name, preset):
    # 0.11's published symbolic audio models, configured as its training examples do; counts from 0.11 itself
    values = read_json(fixture_path("documented", name, "config.json"))["model_config"]
    ours = dataclasses.asdict(SymbolicAudioModelConfig.from_preset(preset))
    assert {k: ours[k] for k in values if k in ours} == {k: v for k, v in values.items() if k in ours}
    with torch.device("meta"):
        model = SymbolicAudioModel(SymbolicAudioModelConfig.from_preset(preset))
    expected = read_json(fixture_path("documented", "num_params.json"))[name]
    assert sum(p.numel() for p in model.parameters()) == expected
    assert expected == {"sam_maestro_28m": 28_531_712, "sam_giantmidi_134m": 134_840_832}[name]


# --- MIDI events: 0.11's encode_midi / decode_midi ----------------------------------------------------------------


def test_event_ids_equal_predecessor_encoding():
    # a monophonic file on the 10 ms grid: 0.11 emits a velocity event before every note-on, as we do with
    # velocity_every_note; then the id sequences are identical (same vocabulary, same event order)
    pytest.importorskip("pretty_midi")
    from perceiver.model.audio.symbolic.midi import MidiTokenizer

    midi = read_json(fixture_path("sam", "reference.json"))["midi"]["monophonic"]
    tok = MidiTokenizer(velocity_every_note=True, sustain=False)
    assert tok.encode(fixture_path("sam", midi["file"])) == midi["encode_midi"]


@pytest.mark.parametrize("name", ["monophonic", "polyphonic"])
def test_decoding_equals_predecessor(name):
    pytest.importorskip("pretty_midi")
    from perceiver.model.audio.symbolic.midi import MidiTokenizer

    midi = read_json(fixture_path("sam", "reference.json"))["midi"][name]
    expected = sorted((round(s, 2), round(e, 2), p, v // 4) for s, e, p, v in midi["decode_midi"])

    def notes(ids):
        return sorted((round(n.start, 2), round(n.end, 2), n.pitch, velocity_bin(n.velocity))
                      for n in decode_events(ids).notes)

    assert notes(midi["encode_midi"]) == expected  # we read 0.11's event sequences as 0.11 does
    assert notes(MidiTokenizer(sustain=False).encode(fixture_path("sam", midi["file"]))) == expected
