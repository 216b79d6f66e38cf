"""Use a finished (or stopped) run: load its checkpoint, generate text, fill masks, plot attention for any input."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import json

import yaml

from perceiver import tasks
from perceiver.runs import paths
from perceiver.runs.figures import attention_plot
from perceiver.tasks import Task


def find_run(run_dir: str | Path) -> Path:
    """``run_dir`` if it is a run directory, else the latest run below it (``runs/clm`` -> its newest run);
    relative paths are taken from the repository root (``perceiver.runs.paths``)."""
    run = paths.latest_run(run_dir)
    if run is None:
        raise FileNotFoundError(f"no run in {paths.resolve(run_dir)}; train first (notebooks/train_*.ipynb, or "
                                f"python -m perceiver.scripts.text.<task> fit)")
    return run


def run_task(run_dir: str | Path) -> Task:
    """The task of a run: recorded in its ``env.json`` or ``status.json``, else the one whose Lightning module its
    ``config.yaml`` names."""
    for name in ("env.json", "status.json"):
        path = Path(run_dir, name)
        if path.is_file() and json.loads(path.read_text()).get("task"):
            return tasks.get(json.loads(path.read_text())["task"])
    config = yaml.safe_load(Path(run_dir, "config.yaml").read_text())
    lit = (config.get("model") or {}).get("class_path")
    found = [t for t in tasks.tasks().values() if lit and t.lit.replace(":", ".") == lit]
    if not found:
        raise ValueError(f"{run_dir}: env.json names no task; is it a run directory of this library?")
    return found[0]


def checkpoint_path(run_dir: str | Path) -> Path:
    """``checkpoints/final.ckpt``, else the newest checkpoint of the run."""
    ckpts = Path(run_dir, "checkpoints")
    final = ckpts / "final.ckpt"
    if final.is_file():
        return final
    found = sorted(ckpts.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no checkpoint in {ckpts}; train first (notebooks/train_*.ipynb)")
    return found[-1]


def load_run(run_dir: str | Path, map_location: str = "cpu"):
    """The Lightning module of a run (or of the latest run below ``run_dir``), from its checkpoint, in eval mode."""
    run_dir = find_run(run_dir)
    lit_class = run_task(run_dir).lit_class
    return lit_class.load_from_checkpoint(str(checkpoint_path(run_dir)), map_location=map_location).eval()


def generate(lit, prompt: str, max_new_tokens: int = 64, seed: Optional[int] = 0, **kwargs) -> str:
    """Prompt plus generated continuation (top-k sampling with a seeded generator, or greedy with seed=None)."""
    import torch

    from perceiver.model.text.clm import generate_text

    if seed is not None:
        kwargs = {"do_sample": True, "top_k": 10, "generator": torch.Generator().manual_seed(seed), **kwargs}
    return prompt + generate_text(lit.model, lit.tokenizer, prompt, max_new_tokens, **kwargs)


def fill(lit, masked_text: str) -> str:
    """``masked_text`` with every ``[MASK]`` byte filled by the model."""
    from perceiver.model.text.mlm import fill_masks

    return fill_masks(lit.model, lit.tokenizer, masked_text)[0]


def attention_for_text(lit, text: str, task=None):
    """Figure of the attention the model plots (``lit.attention_maps``, e.g. the MLM's encoder cross-attention or
    the CLM's prefix cross-attention) for ``text``."""
    enc = lit.tokenizer([text], add_special_tokens=False, return_tensors="pt")
    ids = enc["input_ids"][:, : lit.model.config.max_seq_len].to(lit.device)
    maps = lit.attention_maps({"input_ids": ids})
    return attention_plot(maps["weights"].float().cpu().numpy(), maps["labels"], maps["title"],
                          f"{ids.shape[1]} input tokens")
