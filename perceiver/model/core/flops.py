"""Analytic FLOPs of Perceiver IO and Perceiver AR: what one example costs, from the config and the sequence length.

What is counted follows ``torch.utils.flop_counter.FlopCounterMode``, so that the two can be compared:

- Matrix products only. A product (m, k) @ (k, n) is 2·m·n·k FLOPs. Bias adds, layer norms, softmax, GELU, rotary
  embeddings, embedding lookups, dropout and the loss are not counted (each is O(n·c), next to O(n·c²)).
- Attention inside ``scaled_dot_product_attention`` is two products per layer: scores q·kᵀ (2·I·J·Dqk over all heads)
  and weighted values (2·I·J·Dv). Causal masks and padding are not discounted: FlopCounterMode counts the whole
  I × J rectangle.
- Backward = 2 × forward: each product needs the gradients of both operands (every parameter is trained and every
  product's input depends on one). A training step is therefore 3 × forward. Recomputation (activation
  checkpointing, the GELU recomputed by ``ops.gelu_linear``, flash attention's backward) is not model work and is
  not counted; :meth:`Flops.flop_counter_total` says where FlopCounterMode itself differs on each device.
- Prefix dropout (Perceiver AR, training) removes ``int(prefix_len * cross_attention_dropout)`` prefix positions
  from the keys and values of the cross-attention; evaluation attends to all of them.

A task config exposes ``flops(seq_len=None, train=True) -> Flops`` for one example, built from
:func:`perceiver_io` or :func:`perceiver_ar`; the training callback, the workbench and the benchmarks only call that.

Dimensions:
    I: query positions,  J: key/value positions
    M: input positions (Perceiver IO),  N: latents,  O: output queries
    L: latent positions (Perceiver AR),  P: prefix positions,  K: prefix positions kept by prefix dropout
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Optional

from perceiver.model.core.config import PerceiverARConfig, PerceiverIOConfig
from perceiver.model.core.perceiver_ar import kept_prefix_len


@dataclass(frozen=True)
class Flops:
    """Forward FLOPs of one example by part (``parts``), of which ``scores`` and ``values`` are the two products
    inside scaled dot-product attention, ``input_layer`` those of a first layer applied to the raw input (whose
    backward pass computes only the weight gradient), and the number of input ``tokens`` of the example."""

    parts: Mapping[str, int] = field(default_factory=dict)
    scores: int = 0
    values: int = 0
    tokens: int = 1
    input_layer: int = 0

    @property
    def forward(self) -> int:
        return sum(self.parts.values())

    @property
    def forward_backward(self) -> int:
        """A training step's FLOPs for this example: forward plus backward (2 × forward, except 1 × for the
        ``input_layer``: the raw input needs no gradient)."""
        return 3 * self.forward - self.input_layer

    @property
    def per_token(self) -> float:
        """Training FLOPs per input token."""
        return self.forward_backward / self.tokens

    def step(self, batch_size: int) -> int:
        """Training FLOPs of a batch of ``batch_size`` such examples."""
        return batch_size * self.forward_backward

    def add(self, input_layer: bool = False, **parts: int) -> "Flops":
        """These FLOPs plus further forward FLOPs by part; ``input_layer``: the parts are applied to the raw input
        (e.g. an input adapter's projection of pixels), so their backward pass has no input gradient."""
        merged = dict(self.parts)
        for name, flops in parts.items():
            merged[name] = merged.get(name, 0) + flops
        extra = sum(parts.values()) if input_layer else 0
        return replace(self, parts=merged, input_layer=self.input_layer + extra)

    def flop_counter_total(self, device_type: str) -> int:
        """What ``FlopCounterMode`` (torch 2.13) counts for the forward and backward pass of this example.

        On ``"meta"`` attention runs as batched matrix products, so it counts :attr:`forward_backward` exactly. On
        ``"cuda"`` the backward of the flash and memory-efficient kernels also recomputes the scores (+ ``scores``).
        On a CPU, the fused attention kernel (taken when queries, keys and values have the same channels per head)
        has no FLOP formula, so there the count lacks ``3 * (scores + values)`` of such layers; other layers fall
        back to matrix products and are counted as on ``"meta"``.
        """
        return self.forward_backward + (self.scores if device_type == "cuda" else 0)


# --- building blocks --------------------------------------------------------------------------------------------------


def linear(rows: int, in_channels: int, out_channels: int) -> int:
    """A linear layer applied to ``rows`` positions."""
    return 2 * rows * in_channels * out_channels


def mlp(rows: int, channels: int, widening_factor: int) -> int:
    """``layers.MLP``: channels -> widening_factor * channels -> channels."""
    return 2 * linear(rows, channels, widening_factor * channels)


@dataclass
class Tally:
    """Accumulates parts and the attention products while a model's FLOPs are added up."""

    parts: dict[str, int] = field(default_factory=dict)
    scores: int = 0
    values: int = 0

    def add(self, part: str, flops: int) -> None:
        self.parts[part] = self.parts.get(part, 0) + flops

    def attention(
        self, part: str, i: int, j: int, q_channels: int, kv_channels: int,
        qk_channels: Optional[int] = None, v_channels: Optional[int] = None, out_channels: Optional[int] = None,
    ) -> None:
        """``attention.MultiHeadAttention`` of I queries over J keys (channel defaults as there): the q, k, v and
        output projections and the two products inside scaled dot-product attention."""
        qk = qk_channels or q_channels
        v = v_channels or qk
        out = out_channels or q_channels
        scores, values = 2 * i * j * qk, 2 * i * j * v
        self.scores += scores
        self.values += values
        self.add(part, linear(i, q_channels, qk) + linear(j, kv_channels, qk + v) + scores + values + linear(i, v, out))

    def result(self, tokens: int) -> Flops:
        return Flops(dict(self.parts), self.scores, self.values, tokens)


# --- models ---------------------------------------------------------------------------------------------------------


def perceiver_io(
    config: PerceiverIOConfig,
    input_len: int,
    input_channels: int,
    num_queries: int,
    query_channels: int,
    output_channels: int,
) -> Flops:
    """Forward FLOPs of one example of ``perceiver_io.PerceiverIO``: an input of M = ``input_len`` positions with
    ``input_channels`` (after the input adapter), ``num_queries`` output queries of ``query_channels`` and an output
    adapter that projects each query to ``output_channels`` (e.g. the vocabulary or the classes)."""
    enc, dec = config.encoder, config.decoder
    n, d = config.num_latents, config.num_latent_channels
    t = Tally()
    for _ in range(enc.num_cross_attention_layers):
        t.attention("cross_attention", n, input_len, d, input_channels,
                    enc.num_cross_attention_qk_channels, enc.num_cross_attention_v_channels)
        t.add("cross_attention_mlp", mlp(n, d, enc.cross_attention_widening_factor))
    for _ in range(enc.num_self_attention_blocks * enc.num_self_attention_layers_per_block):
        t.attention("self_attention", n, n, d, d, enc.num_self_attention_qk_channels, enc.num_self_attention_v_channels)
        t.add("self_attention_mlp", mlp(n, d, enc.self_attention_widening_factor))
    t.attention("decoder_cross_attention", num_queries, n, query_channels, d,
                dec.num_cross_attention_qk_channels, dec.num_cross_attention_v_channels)
    t.add("decoder_mlp", mlp(num_queries, query_channels, dec.cross_attention_widening_factor))
    t.add("output", linear(num_queries, query_channels, output_channels))
    return t.result(tokens=input_len)


def perceiver_ar(
    config: PerceiverARConfig,
    seq_len: int,
    prefix_len: int,
    channels: int,
    output_channels: int,
    train: bool = True,
) -> Flops:
    """Forward FLOPs of one example of ``perceiver_ar.PerceiverAR`` with ``channels`` and an output projection of the
    L = ``seq_len - prefix_len`` latents to ``output_channels``; ``train``: with prefix dropout."""
    latents = seq_len - prefix_len
    kept = kept_prefix_len(prefix_len, config.cross_attention_dropout) if train else prefix_len
    t = Tally()
    t.attention("cross_attention", latents, kept + latents, channels, channels)
    t.add("cross_attention_mlp", mlp(latents, channels, config.cross_attention_widening_factor))
    for _ in range(config.num_self_attention_layers):
        t.attention("self_attention", latents, latents, channels, channels)
        t.add("self_attention_mlp", mlp(latents, channels, config.self_attention_widening_factor))
    t.add("output", linear(latents, channels, output_channels))
    return t.result(tokens=seq_len)


__all__ = ["Flops", "Tally", "linear", "mlp", "perceiver_ar", "perceiver_io"]
