"""The training scripts of ``docs/model-construction.md`` (``mlm.py`` and ``clm.py`` written like perceiver-io 0.11's
documented ones: same imports, links, defaults and calls) train for 2 steps with the documented command lines, each in
its own process."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "model-construction.md"
TEST_ARGS = ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.limit_val_batches=1",
             "--trainer.enable_progress_bar=false", "--data.batch_size=2", "--data.num_workers=0",
             "--trainer.max_steps=2"]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def script(name: str) -> str:
    """The code block of ``docs/model-construction.md`` that starts with ``# File <name>``."""
    found = [b for b in python_blocks(DOC.read_text()) if b.startswith(f"# File {name}\n")]
    assert len(found) == 1, f"docs/model-construction.md has {len(found)} blocks '# File {name}'"
    return found[0]


def command(name: str) -> list[str]:
    """The documented ``python <name> fit ...`` line (continuations joined), as an argument list."""
    bash = "\n".join(re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)).replace("\\\n", " ")
    lines = [line for line in bash.splitlines() if line.startswith(f"python {name} ")]
    assert len(lines) == 1, f"docs/model-construction.md documents {len(lines)} commands for {name}"
    return shlex.split(lines[0])[2:]


def test_scripts_are_predecessor_style():
    """What makes them the predecessor's scripts: pytorch_lightning's CLI, our data and Lit modules, the links and
    defaults, nothing of ours beyond the documented imports."""
    mlm, clm = script("mlm.py"), script("clm.py")
    for text in (mlm, clm):
        assert "from pytorch_lightning.cli import (\n    LightningArgumentParser,\n    LightningCLI\n)" in text
        assert "class CLI(LightningCLI):" in text and 'apply_on="instantiate"' in text
        assert len(re.findall(r"^from perceiver", text, flags=re.M)) == 2
    assert '"model.num_latents": 256' in mlm and "CLI(model_class=LitMaskedLanguageModel)" in mlm
    assert '"model.num_latents": 512' in clm and "CLI(LitCausalLanguageModel)" in clm


@pytest.mark.slow
def test_documented_scripts_train_two_steps(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    procs = {}
    for name in ("mlm.py", "clm.py"):  # both at once: each is mostly process startup
        cwd = tmp_path / name.removesuffix(".py")
        cwd.mkdir()
        (cwd / name).write_text(script(name))
        args = [*command(name), f"--data.dataset_dir={tmp_path / 'data' / name}", *TEST_ARGS]
        procs[name] = (cwd, subprocess.Popen([sys.executable, name, *args], cwd=cwd, env=env, text=True,
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for name, (cwd, proc) in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name} failed:\n{out[-4000:]}"
        run = cwd / "lightning_logs" / "version_0"
        ckpts = list((run / "checkpoints").glob("*.ckpt"))
        assert len(ckpts) == 1, out[-2000:]
        ckpt = torch.load(ckpts[0], map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == 2
        hparams = ckpt["hyper_parameters"]
        if name == "clm.py":  # the documented --model.num_latents sets the config's max_latents
            assert hparams["max_latents"] == 32 and hparams["num_channels"] == 64
            assert yaml.safe_load((run / "config.yaml").read_text())["model"]["num_latents"] == 32
        else:
            assert hparams["num_latents"] == 16 and hparams["encoder"]["num_input_channels"] == 32
            assert hparams["encoder"]["dropout"] == 0.1  # the script's set_defaults
