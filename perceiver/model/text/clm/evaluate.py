"""Held-out evaluation of a causal language model: bits per byte of any text, with the window rule of training
evaluation.

Window rule: every window holds at most ``max_seq_len`` input tokens, of which the last ``num_latents`` are latents
(the rest is the prefix), as in training and validation. Windows slide by ``stride`` (default ``num_latents``) and
each scores the next tokens of only its last ``stride`` latent positions, so every token but the first is predicted
exactly once, with at least ``max_seq_len - stride`` tokens of context once the text is that long. With the default
stride a full window is scored exactly like a validation window (all latents, prefix ``max_seq_len - num_latents``).

    from perceiver.model.text.clm.evaluate import bits_per_byte
    bits_per_byte(model, tokenizer, open("news.txt").read())      # e.g. 2.4

Dimensions: T tokens of a text, W windows, N window length (<= max_seq_len), L latents, V vocabulary size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import torch
import torch.nn.functional as F

from perceiver.model.text.clm.backend import CausalLanguageModel


@dataclass(frozen=True)
class Window:
    """Inputs ``ids[start:end]``, of which the last ``num_latents`` are latents; the next tokens of the last
    ``num_scored`` positions, ``ids[end - num_scored + 1 : end + 1]``, are scored."""

    start: int
    end: int
    num_latents: int
    num_scored: int

    @property
    def prefix_len(self) -> int:
        return self.end - self.start - self.num_latents


def windows(num_tokens: int, max_seq_len: int, num_latents: int, stride: Optional[int] = None) -> list[Window]:
    """The windows that score each of the ``num_tokens - 1`` next-token targets of a text exactly once (module
    docstring). The first window has ``num_latents`` inputs (fewer for a shorter text), all latents and all scored."""
    stride = num_latents if stride is None else stride
    if not 0 < num_latents <= max_seq_len:
        raise ValueError(f"num_latents ({num_latents}) must be in [1, max_seq_len={max_seq_len}]")
    if not 0 < stride <= num_latents:
        raise ValueError(f"stride ({stride}) must be in [1, num_latents={num_latents}]")
    last = num_tokens - 1  # inputs ids[:last] predict targets ids[1:]
    if last < 1:
        return []
    end = min(num_latents, last)
    out = [Window(0, end, end, end)]
    while end < last:
        new_end = min(end + stride, last)
        start = max(0, new_end - max_seq_len)
        out.append(Window(start, new_end, min(num_latents, new_end - start), new_end - end))
        end = new_end
    return out


@dataclass(frozen=True)
class TextScore:
    """Summed cross-entropy of a model on text(s): ``bits`` over ``num_tokens`` predicted tokens that encode
    ``num_bytes`` UTF-8 bytes."""

    bits: float
    num_tokens: int
    num_bytes: int

    @property
    def bits_per_byte(self) -> float:
        return self.bits / self.num_bytes if self.num_bytes else float("nan")

    @property
    def bits_per_token(self) -> float:
        return self.bits / self.num_tokens if self.num_tokens else float("nan")

    def __add__(self, other: "TextScore") -> "TextScore":
        return TextScore(self.bits + other.bits, self.num_tokens + other.num_tokens, self.num_bytes + other.num_bytes)


@torch.no_grad()
def score_ids(
    model: CausalLanguageModel,
    ids: Sequence[int] | torch.Tensor,
    num_latents: Optional[int] = None,
    stride: Optional[int] = None,
    batch_size: int = 16,
) -> tuple[float, int]:
    """Summed negative log-likelihood in bits (accumulated in float64) and the number of predicted tokens of the
    token ids of one text, in eval mode, with :func:`windows` of ``model.max_seq_len`` and ``num_latents``
    (default ``model.max_latents``)."""
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    device = next(model.parameters()).device
    spans = windows(len(ids), model.max_seq_len, num_latents or model.max_latents, stride)
    was_training = model.training
    model.eval()
    nats = torch.zeros((), dtype=torch.float64)
    try:
        # windows of one shape form a batch: the few short ones at the start, then all full ones
        groups: dict[tuple[int, int, int], list[Window]] = {}
        for w in spans:
            groups.setdefault((w.end - w.start, w.num_latents, w.num_scored), []).append(w)
        for (n, num_lat, num_scored), group in groups.items():
            for i in range(0, len(group), batch_size):
                chunk = group[i : i + batch_size]
                x = torch.stack([ids[w.start : w.end] for w in chunk]).to(device)  # (W, N)
                targets = torch.stack([ids[w.end - num_scored + 1 : w.end + 1] for w in chunk]).to(device)
                logits = model(x, prefix_len=n - num_lat)[:, num_lat - num_scored :]  # (W, scored, V)
                nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
                nats += nll.double().sum().cpu()
    finally:
        model.train(was_training)
    return float(nats) / math.log(2), sum(w.num_scored for w in spans)


def score_text(
    model: CausalLanguageModel,
    tokenizer,
    texts: str | Iterable[str],
    num_latents: Optional[int] = None,
    stride: Optional[int] = None,
    batch_size: int = 16,
) -> TextScore:
    """:class:`TextScore` of ``texts`` (one string or several documents, each scored on its own; the first token
    of each is context only). Special tokens are not added."""
    total = TextScore(0.0, 0, 0)
    for text in [texts] if isinstance(texts, str) else texts:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if len(ids) < 2:
            continue
        bits, n = score_ids(model, ids, num_latents, stride, batch_size)
        total = total + TextScore(bits, n, predicted_bytes(tokenizer, text, ids))
    return total


def predicted_bytes(tokenizer, text: str, ids: Sequence[int]) -> int:
    """UTF-8 bytes of ``text`` encoded by all tokens but the first (which is context only): one per token for a byte
    tokenizer (as many tokens as bytes), else the text's bytes less those the first token decodes to."""
    num_bytes = len(text.encode("utf-8"))
    if len(ids) == num_bytes:
        return num_bytes - 1
    return num_bytes - len(tokenizer.decode(ids[:1]).encode("utf-8"))


def bits_per_byte(
    model: CausalLanguageModel,
    tokenizer,
    texts: str | Iterable[str],
    num_latents: Optional[int] = None,
    stride: Optional[int] = None,
    batch_size: int = 16,
) -> float:
    """Bits per UTF-8 byte of ``model`` on ``texts`` (see :func:`score_text`); for the byte tokenizer, the mean
    cross-entropy of the predicted bytes divided by ln 2, as ``val_bpb`` in training."""
    return score_text(model, tokenizer, texts, num_latents, stride, batch_size).bits_per_byte


__all__ = ["TextScore", "Window", "bits_per_byte", "predicted_bytes", "score_ids", "score_text", "windows"]
