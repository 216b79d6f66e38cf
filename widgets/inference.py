"""Use a finished (or stopped) run: load its checkpoint, generate text, fill masks, plot attention for any input."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml

from perceiver.training.journal import plotted_attention, token_labels
from widgets.dashboard import attention_plot


def run_task(run_dir: str | Path) -> str:
    """``"mlm"`` or ``"clm"``, read from the run's ``config.yaml``."""
    config = yaml.safe_load(Path(run_dir, "config.yaml").read_text())
    return "mlm" if "encoder" in config["model"] else "clm"


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
    """The Lightning module of a run, from its checkpoint, in eval mode."""
    if run_task(run_dir) == "mlm":
        from perceiver.model.text.mlm.lightning import LitMaskedLanguageModel as Lit
    else:
        from perceiver.model.text.clm.lightning import LitCausalLanguageModel as Lit
    return Lit.load_from_checkpoint(str(checkpoint_path(run_dir)), map_location=map_location).eval()


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


def attention_for_text(lit, text: str, task: str):
    """Figure of the plotted attention (MLM: encoder cross-attention, CLM: prefix cross-attention) for ``text``."""
    enc = lit.tokenizer([text], add_special_tokens=False, return_tensors="pt")
    ids = enc["input_ids"][:, : lit.model.config.max_seq_len].to(lit.device)
    weights = plotted_attention(lit.model, ids)[0].float().cpu().numpy()
    return attention_plot(weights, token_labels(lit.tokenizer, ids[0].tolist()), task, f"{ids.shape[1]} input tokens")
