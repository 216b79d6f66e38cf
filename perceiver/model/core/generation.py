"""Autoregressive generation for Perceiver AR: the window rule, logits processing and the decoding loop.

The window rule (what the model sees at each step). Let a prompt have n0 positions (left padding included) and
let L0 = max(num_latents, n0 - max_prefix_len) clamped to [1, n0] be the initial number of latents. After t new
tokens the sequence has N = n0 + t positions and the model is run on the last W of them:

    latents(t) = min(L0 + t, max_latents)
    prefix(t)  = min(N - latents(t), max_prefix_len)
    W          = prefix(t) + latents(t)

So the latent window first grows up to ``max_latents``; then the prefix grows up to ``max_prefix_len``
(= max_seq_len - max_latents); then the window of max_seq_len positions slides, so generation can run past
``max_seq_len``. Positions are counted from the first real token inside the window.

Cached and uncached decoding follow the same rule and give the same logits. The kv-cache is exact only while the
window start and the prefix length stay fixed, i.e. while the latent window grows; there each step processes one
new position. Once the prefix grows or the window slides, the hidden states of all latents change (they attend to
a different set of positions), so each step is a full pass over the window, exactly as without the cache.

Dimensions:
    B: batch size
    T: tokens so far
    V: vocabulary size
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch


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


# --- window rule ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: int  # first position of the window in the whole sequence
    prefix_len: int
    num_latents: int


def initial_latents(n0: int, num_latents: int, max_prefix_len: int) -> int:
    return min(max(num_latents, n0 - max_prefix_len), n0)


def window(n0: int, l0: int, t: int, max_latents: int, max_prefix_len: int) -> Window:
    """The window after t new tokens (see the module docstring)."""
    n = n0 + t
    latents = min(l0 + t, max_latents)
    prefix = min(n - latents, max_prefix_len)
    return Window(start=n - prefix - latents, prefix_len=prefix, num_latents=latents)


# --- decoding loop -------------------------------------------------------------------------------------------------


@torch.no_grad()
def generate(
    forward: Callable,
    init_cache: Callable,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    max_seq_len: int,
    max_latents: int,
    num_latents: int = 1,
    pad_mask: Optional[torch.Tensor] = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    eos_token_id: Optional[int] = None,
    use_cache: bool = True,
    generator: Optional[torch.Generator] = None,
    step_callback: Optional[Callable[[int, torch.Tensor], None]] = None,
) -> torch.Tensor:
    """Prompt (B, n0) plus up to ``max_new_tokens`` new tokens. ``forward(x, prefix_len, pad_mask, kv_cache)``
    returns last-window logits (B, L, V) and the cache. Sequences that emitted ``eos_token_id`` are continued
    with ``eos_token_id``; the loop stops when all have. ``step_callback(t, logits)`` sees each step's logits."""
    check_generation_args(input_ids, max_new_tokens, num_latents, temperature, top_k, top_p, max_seq_len, max_latents)
    b, n0 = input_ids.shape
    max_prefix_len = max_seq_len - max_latents
    l0 = initial_latents(n0, num_latents, max_prefix_len)
    tokens = input_ids
    pad = pad_mask if pad_mask is not None and bool(pad_mask.any()) else None
    done = torch.zeros(b, dtype=torch.bool, device=input_ids.device)
    cache, prev = None, None

    for t in range(max_new_tokens):
        w = window(n0, l0, t, max_latents, max_prefix_len)
        incremental = cache is not None and prev is not None and w.start == prev.start and w.prefix_len == prev.prefix_len
        if incremental:
            logits, cache = forward(tokens[:, -1:], w.prefix_len, None, cache)
        else:
            # a cache is only worth building if the next step can extend it
            nxt = window(n0, l0, t + 1, max_latents, max_prefix_len)
            build = use_cache and nxt.start == w.start and nxt.prefix_len == w.prefix_len and t + 1 < max_new_tokens
            x, m = tokens[:, w.start :], None if pad is None else pad[:, w.start :]
            logits, cache = forward(x, w.prefix_len, m, init_cache() if build else None)
        logits = logits[:, -1]  # (B, V)
        if step_callback is not None:
            step_callback(t, logits)
        new = next_token(logits, do_sample, temperature, top_k, top_p, generator)  # (B,)
        if eos_token_id is not None:
            new = new.masked_fill(done, eos_token_id)
            done = done | (new == eos_token_id)
        tokens = torch.cat([tokens, new.unsqueeze(1)], dim=1)
        if pad is not None:
            pad = torch.cat([pad, pad.new_zeros(b, 1)], dim=1)
        prev = w
        if eos_token_id is not None and bool(done.all()):
            break
    return tokens
