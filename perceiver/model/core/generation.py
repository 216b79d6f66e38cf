"""Autoregressive generation for Perceiver AR: the window rule, logits processing and the decoding loop.

The window rule (what the model sees at each step). A prompt has n0 positions (left padding included); after t new
tokens the sequence has N = n0 + t positions, and the model runs on a window [start, N) of them: ``prefix_len``
prefix positions followed by ``num_latents`` latents, the last of which predicts token N. With
max_prefix_len = max_seq_len - max_latents and R = ``restart_latents``:

    t = 0:      num_latents = L0 = min(max(num_latents, n0 - max_prefix_len), n0),  prefix_len = n0 - L0,  start = 0
    t -> t + 1: if num_latents < max_latents:  num_latents += 1                     (a growth step)
                else (a restart):              num_latents = R,
                                               prefix_len = min(N + 1 - start - R, max_prefix_len),
                                               start = N + 1 - prefix_len - R

So the latents grow one position per step up to ``max_latents``; then the model restarts with R latents and the
former latents (and the newest token) join the prefix. While the prefix is shorter than ``max_prefix_len`` the start
stays at 0; once it is full, each restart slides the window forward by max_latents + 1 - R positions, so the model
sees between max_seq_len - (max_latents - R) and max_seq_len positions and generation runs past ``max_seq_len``.
Positions are counted from the first real token inside the window.

``window_rule="restart"`` (the default, as the original Perceiver AR sampler) uses R = ``restart_latents``, by default
``max_latents // 2``. ``window_rule="slide"`` is R = max_latents: after the latent window is full, every step is a
restart, the prefix grows by one position per step and then the window slides by one position per step
(perceiver-io 0.11's rule without a cache).

The kv-cache is exact: cached and uncached decoding run the same function on the same windows and give the same
logits (to float rounding) and tokens.

- A growth step processes one new position and appends its keys and values.
- A restart with an unchanged start keeps the cross-attention keys and values of the former prefix: they are
  ``k_proj(kv_norm(embedding))`` and ``v_proj(...)``, rotated at their positions, so they depend only on tokens and
  positions. The former latents' cross-attention keys and values (normed with ``q_norm``) and all self-attention
  keys and values (they depend on latent hidden states) are dropped. One pass embeds the positions that join the
  prefix (``kv_norm``) and runs the R latents through all layers.
- A restart that moves the start changes every position (positions count from the window start): one full pass.

With R = max_latents / 2 that is one pass of R latents per R + 1 tokens (plus the window's prefix keys and values
when it slides), so decoding keeps cached speed past ``max_latents`` and ``max_seq_len``.

Dimensions:
    B: batch size
    T: tokens so far
    V: vocabulary size
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch

WINDOW_RULES = ("restart", "slide")


# --- logits processing ---------------------------------------------------------------------------------------------


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (B, V); set the others to -inf."""
    k = min(k, logits.shape[-1])
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose total probability reaches p (nucleus sampling)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cum - sorted_logits.softmax(dim=-1) >= p  # mass before this token already reaches p
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return logits.scatter(-1, order, sorted_logits)


def next_token(
    logits: torch.Tensor,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Next token ids (B,) from last-position logits (B, V): greedy, or sampled after temperature, top-k, top-p."""
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


# --- window rule ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: int  # first position of the window in the whole sequence
    prefix_len: int
    num_latents: int

    @property
    def end(self) -> int:
        return self.start + self.prefix_len + self.num_latents


def restart_size(window_rule: str, restart_latents: Optional[int], max_latents: int) -> int:
    """R of the window rule (see the module docstring)."""
    if window_rule not in WINDOW_RULES:
        raise ValueError(f"window_rule={window_rule!r} is not one of {WINDOW_RULES}")
    if window_rule == "slide":
        if restart_latents not in (None, max_latents):
            raise ValueError(f"window_rule='slide' restarts with max_latents={max_latents} latents; "
                             f"restart_latents={restart_latents} needs window_rule='restart'")
        return max_latents
    r = max(1, max_latents // 2) if restart_latents is None else restart_latents
    if not 1 <= r <= max_latents:
        raise ValueError(f"restart_latents={restart_latents} is out of range [1, max_latents={max_latents}]")
    return r


def initial_window(n0: int, num_latents: int, max_prefix_len: int) -> Window:
    latents = min(max(num_latents, n0 - max_prefix_len), n0)
    return Window(start=0, prefix_len=n0 - latents, num_latents=latents)


def next_window(w: Window, max_latents: int, max_prefix_len: int, restart_latents: int) -> Window:
    """The window after one more token (see the module docstring)."""
    if w.num_latents < max_latents:
        return Window(w.start, w.prefix_len, w.num_latents + 1)
    n = w.end + 1
    prefix = min(n - w.start - restart_latents, max_prefix_len)
    return Window(start=n - prefix - restart_latents, prefix_len=prefix, num_latents=restart_latents)


def windows(n0: int, steps: int, num_latents: int, max_seq_len: int, max_latents: int,
            restart_latents: int) -> list[Window]:
    """The windows of the first ``steps`` decoding steps."""
    w = initial_window(n0, num_latents, max_seq_len - max_latents)
    out = [w]
    for _ in range(steps - 1):
        w = next_window(w, max_latents, max_seq_len - max_latents, restart_latents)
        out.append(w)
    return out


def check_generation_args(
    input_ids: torch.Tensor, max_new_tokens: int, num_latents: int, temperature: float, top_k, top_p,
    max_seq_len: int, max_latents: int,
) -> None:
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must be a non-empty prompt of shape (B, N), got shape {tuple(input_ids.shape)}")
    if input_ids.shape[1] > max_seq_len:
        raise ValueError(f"prompt length {input_ids.shape[1]} exceeds max_seq_len={max_seq_len}; shorten the prompt")
    if not 1 <= num_latents <= max_latents:
        raise ValueError(f"num_latents={num_latents} is out of range [1, max_latents={max_latents}]")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


# --- decoding loop -------------------------------------------------------------------------------------------------


def decoding_step(model, tokens: torch.Tensor, pad: Optional[torch.Tensor], w: Window, prev: Optional[Window],
                  cache) -> torch.Tensor:
    """Last-position logits (B, V) of window w of ``tokens`` (B, T), given the previous step's window ``prev`` and
    the kv-cache (None: no cache)."""
    if cache is not None and prev is not None and w.start == prev.start:
        if w.prefix_len == prev.prefix_len:  # growth step: one new latent
            return model.next_token_logits(tokens[:, w.end - 1 : w.end], w.prefix_len, None, cache)
        cache.drop_latents()  # restart: the cached prefix stays, the rest of the window is computed
        s = w.start + prev.prefix_len
        return model.next_token_logits(tokens[:, s : w.end], w.prefix_len, None if pad is None else pad[:, s : w.end],
                                       cache)
    if cache is not None:  # first step or a moved window: the whole window
        cache.reset()
    m = None if pad is None else pad[:, w.start : w.end]
    return model.next_token_logits(tokens[:, w.start : w.end], w.prefix_len, m, cache)


@dataclass
class Step:
    """One decoding step: its index t, the window the model ran on, the last-position logits (B, V), the new
    tokens (B,) and the sequences so far (B, N + 1), prompt included (a view of the decoder's buffer)."""

    t: int
    window: Window
    logits: torch.Tensor
    tokens: torch.Tensor
    sequences: torch.Tensor


def stream(
    model,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    num_latents: int = 1,
    pad_mask: Optional[torch.Tensor] = None,
    window_rule: str = "restart",
    restart_latents: Optional[int] = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    eos_token_id: Optional[int] = None,
    use_cache: bool = True,
    generator: Optional[torch.Generator] = None,
) -> Iterator[Step]:
    """Decode step by step, yielding a :class:`Step` per new token (see :func:`generate` for the arguments).

    ``model`` is a :class:`~perceiver.model.core.perceiver_ar.PerceiverAR` with a token output (``logits``); it is
    used as it is (call ``model.eval()`` first). Nothing is computed between the steps a caller takes."""
    max_seq_len, max_latents = model.max_seq_len, model.max_latents
    check_generation_args(input_ids, max_new_tokens, num_latents, temperature, top_k, top_p, max_seq_len, max_latents)
    r = restart_size(window_rule, restart_latents, max_latents)
    b, n0 = input_ids.shape
    max_prefix_len = max_seq_len - max_latents

    tokens = input_ids.new_empty(b, n0 + max_new_tokens)  # (B, T), filled as we go
    tokens[:, :n0] = input_ids
    pad = None
    if pad_mask is not None and bool(pad_mask.any()):
        pad = torch.zeros(b, n0 + max_new_tokens, dtype=torch.bool, device=input_ids.device)
        pad[:, :n0] = pad_mask
    done = torch.zeros(b, dtype=torch.bool, device=input_ids.device)
    cache = model.init_cache() if use_cache else None
    prev = None

    for t in range(max_new_tokens):
        if prev is None:
            w = initial_window(n0, num_latents, max_prefix_len)
        else:
            w = next_window(prev, max_latents, max_prefix_len, r)
        with torch.no_grad():
            logits = decoding_step(model, tokens, pad, w, prev, cache)  # (B, V)
            new = next_token(logits, do_sample, temperature, top_k, top_p, generator)  # (B,)
        if eos_token_id is not None:
            new = new.masked_fill(done, eos_token_id)
            done = done | (new == eos_token_id)
        tokens[:, w.end] = new
        yield Step(t, w, logits, new, tokens[:, : w.end + 1])
        prev = w
        if eos_token_id is not None and bool(done.all()):
            return


@torch.no_grad()
def generate(model, input_ids: torch.Tensor, max_new_tokens: int, streamer=None, **options) -> torch.Tensor:
    """The prompt ``input_ids`` (B, n0) followed by up to ``max_new_tokens`` generated tokens.

    Args:
        model: a Perceiver AR with a token output (``model.logits``), in eval mode.
        num_latents: initial number of latents, the last prompt positions (at least n0 - max_prefix_len).
        pad_mask: (B, n0), True at left padding.
        window_rule: ``"restart"`` (default) or ``"slide"``; see the module docstring.
        restart_latents: R, the number of latents after a restart (default ``max_latents // 2``).
        do_sample, temperature, top_k, top_p, generator: greedy decoding, or sampling after temperature, top-k and
            top-p (nucleus) filtering, with ``generator`` for reproducibility.
        eos_token_id: sequences that emitted it continue with it; decoding stops when all have.
        use_cache: the kv-cache (exact; without it, every step is a full pass over its window).
        streamer: an object with ``put(ids)`` and ``end()`` (e.g. ``transformers.TextStreamer``): it gets the
            prompt (B, n0), then each step's new tokens (B,), then ``end()``.
    """
    if streamer is not None:
        streamer.put(input_ids.cpu())
    sequences = input_ids
    for step in stream(model, input_ids, max_new_tokens, **options):
        if streamer is not None:
            streamer.put(step.tokens.cpu())
        sequences = step.sequences
    if streamer is not None:
        streamer.end()
    return sequences
