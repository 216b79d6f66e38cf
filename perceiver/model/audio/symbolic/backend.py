"""Symbolic audio model: Perceiver AR over MIDI performance events (``perceiver.model.audio.symbolic.events``).

It is the causal language model with the event vocabulary (389 ids) and the configuration of perceiver-io 0.11's
symbolic audio models: rotary position embeddings on all channels of each head and no absolute ones, a LayerNorm
before the tied output projection, no output bias. Forward pass, kv-cache and generation (the CLM's exact decoding
loop) are :class:`~perceiver.model.text.clm.CausalLanguageModel`'s.

Dimensions:
    B: batch size
    N: input events,  L: latent positions
    V: vocabulary size (389)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

from perceiver.model.audio.symbolic.events import VOCAB_SIZE
from perceiver.model.core.presets import Preset
from perceiver.model.text.clm.backend import CausalLanguageModel, CausalLanguageModelConfig


@dataclass
class SymbolicAudioModelConfig(CausalLanguageModelConfig):
    """The defaults are perceiver-io 0.11's published MAESTRO v3 model (28,531,712 parameters)."""

    presets: ClassVar[Mapping[str, Preset]] = {
        "maestro-28.5m": Preset(
            "Perceiver AR on MAESTRO v3 as published with perceiver-io 0.11: 28.5M parameters, 2048 context, "
            "1024 latents"
        ),
        "giantmidi-134m": Preset(
            "Perceiver AR on GiantMIDI-Piano as published with perceiver-io 0.11: 134.8M parameters, 6144 context, "
            "2048 latents",
            dict(max_seq_len=6144, max_latents=2048, num_channels=768, num_self_attention_layers=18),
        ),
        "tiny": Preset(
            "0.8M parameters, 512 context, 128 latents: minutes of CPU training on the Bach chorales",
            dict(max_seq_len=512, max_latents=128, num_channels=128, num_heads=4, num_self_attention_layers=4,
                 cross_attention_dropout=0.0, post_attention_dropout=0.0, residual_dropout=0.0),
        ),
    }

    vocab_size: int = VOCAB_SIZE
    """Vocabulary size: 389 MIDI events (128 note-on, 128 note-off, 100 time shifts, 32 velocities, padding)."""
    max_seq_len: int = 2048
    """Maximum input length in events: prefix plus latents."""
    max_latents: int = 1024
    """Maximum number of latent positions."""
    cross_attention_dropout: float = 0.1
    """Prefix dropout: fraction of prefix positions dropped from the cross-attention in training."""
    post_attention_dropout: float = 0.1
    """Dropout of the attention probabilities."""
    residual_dropout: float = 0.1
    """Dropout applied to each residual branch before it is added."""
    output_norm: bool = True
    """Apply a LayerNorm to the latents before the output projection."""
    output_bias: bool = False
    """Add a learned bias to the output logits."""
    abs_pos_emb: bool = False
    """Add learned absolute position embeddings to the event embeddings (rotary embeddings are always used)."""


class SymbolicAudioModel(CausalLanguageModel):
    """Perceiver AR over MIDI events. ``forward(x, prefix_len, pad_mask, kv_cache)`` returns logits (B, L, V) of
    the latent positions; ``generate`` continues event prompts (see :class:`CausalLanguageModel`)."""

    plotted_attention_title = "prefix cross-attention: latent positions over prefix + latent events"

    def __init__(self, config: SymbolicAudioModelConfig):
        super().__init__(config)
