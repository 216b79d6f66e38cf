"""``python -m perceiver.demo`` says when its weights are random (its filled bytes are noise then)."""

import sys

from perceiver import demo
from perceiver.model.text.mlm import MaskedLanguageModelConfig
from perceiver.model.text.mlm.lightning import LitMaskedLanguageModel


def test_demo_says_the_weights_are_random(monkeypatch, capsys):
    tiny = MaskedLanguageModelConfig.from_preset("tiny", encoder={"vocab_size": 262, "max_seq_len": 64},
                                                 decoder={"vocab_size": 262, "max_seq_len": 64})
    monkeypatch.setattr(demo, "documented_mlm", lambda params=None: LitMaskedLanguageModel.create(tiny))
    monkeypatch.setattr(sys, "argv", ["demo"])
    demo.main()
    out = capsys.readouterr().out
    assert "weights: random" in out and "noise" in out and "filled:" in out
