"""The model snippets users paste (README, docs/model-construction.md) stay literal; they must build exactly the
documented presets, with the parameter counts the text gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from perceiver.model.text.clm import CausalLanguageModelConfig
from perceiver.model.text.mlm import MaskedLanguageModelConfig

ROOT = Path(__file__).resolve().parents[2]


def first_python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)


def run_snippet(code: str) -> dict:
    scope: dict = {}
    with torch.device("meta"):  # the models' structure only: no memory, no time
        exec(code, scope)
    return scope


def num_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


SNIPPETS = [
    # (file, section the snippet opens, preset, documented parameter count)
    ("docs/model-construction.md", "## Masked language model", MaskedLanguageModelConfig, "deepmind-201m", 201_108_230),
    ("docs/model-construction.md", "## Causal language model", CausalLanguageModelConfig, "clm-30.6m", 30_563_078),
    ("README.md", "### 1. PyTorch backend models", CausalLanguageModelConfig, "clm-30.6m", 30_563_078),
]


@pytest.mark.parametrize("path, section, config_class, preset, count", SNIPPETS)
def test_snippet_builds_the_preset(path, section, config_class, preset, count):
    text = (ROOT / path).read_text().split(section, 1)[1]
    scope = run_snippet(first_python_block(text))
    assert scope["config"] == config_class.from_preset(preset)
    assert num_params(scope["backend_model"]) == count
    assert f"{count:,}" in text.split("##", 1)[0]  # the count the text states beside the snippet
