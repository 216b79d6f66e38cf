"""Configuration dataclasses: the single source of truth for every model default.

Field names and defaults follow perceiver-io 0.11, so its users' configs and YAML files keep working. Each field
carries a docstring; the Lightning CLI and the workbench forms show it as help text. ``__post_init__`` validates a
config before any tensor is allocated and names the offending field in its ``ValueError``.

Dimensions named by the fields:
    N: num_latents                 D: num_latent_channels
    C: input channels              F: output query channels
    qk / v channels: channels of queries/keys and of values, over all heads (per head: divided by the heads)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Mapping, Optional, TypeVar


# --- validation helpers -------------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """An invalid config value. ``field`` is the dotted name of the offending field relative to ``config`` (the
    class name of the config that rejected it); interfaces use these attributes, never the message's wording."""

    def __init__(self, config: object, field: str, message: str):
        name = config if isinstance(config, str) else type(config).__name__
        super().__init__(f"{name}.{field} {message}")
        self.config, self.field, self.message = name, field, message

    def __reduce__(self):  # picklable across processes (the default would call __init__ with the message only)
        return ConfigError, (self.config, self.field, self.message)

    def nested(self, parent: object, name: str) -> "ConfigError":
        """The same error seen from the enclosing config ``parent`` (an instance or class name), whose field
        ``name`` holds the config that rejected the value."""
        return ConfigError(parent, f"{name}.{self.field}", self.message)


def check_positive(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ConfigError(config, name, f"must be a positive integer, got {value!r}")


def check_dropout(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ConfigError(config, name, f"must be in [0, 1), got {value!r}")


def check_init_scale(config) -> None:
    if isinstance(config.init_scale, bool) or not isinstance(config.init_scale, (int, float)) or config.init_scale <= 0:
        raise ConfigError(config, "init_scale", f"must be positive, got {config.init_scale!r}")


def check_divisible(config, channels_name: str, channels: Optional[int], heads_name: str) -> None:
    heads = getattr(config, heads_name)
    if channels is not None and channels % heads != 0:
        raise ConfigError(config, channels_name, f"({channels}) must be divisible by {heads_name} ({heads})")


def config_dict(config) -> dict:
    """A nested plain-dict copy of a config dataclass (JSON/YAML friendly)."""
    return dataclasses.asdict(config)


# --- Perceiver IO -------------------------------------------------------------------------------------------------


@dataclass
class EncoderConfig:
    num_cross_attention_heads: int = 8
    """Number of heads of the encoder cross-attention (latents attend to the input)."""
    num_cross_attention_qk_channels: Optional[int] = None
    """Query/key channels of the cross-attention (None: the input channels)."""
    num_cross_attention_v_channels: Optional[int] = None
    """Value channels of the cross-attention (None: the query/key channels)."""
    num_cross_attention_layers: int = 1
    """Number of cross-attention layers; cross-attention layer i is applied before self-attention block i."""
    first_cross_attention_layer_shared: bool = False
    """Share the weights of the first cross-attention layer with the following ones."""
    cross_attention_widening_factor: int = 1
    """Hidden width of the cross-attention MLP as a multiple of the latent channels."""
    num_self_attention_heads: int = 8
    """Number of heads of the latent self-attention."""
    num_self_attention_qk_channels: Optional[int] = None
    """Query/key channels of the latent self-attention (None: the latent channels)."""
    num_self_attention_v_channels: Optional[int] = None
    """Value channels of the latent self-attention (None: the query/key channels)."""
    num_self_attention_layers_per_block: int = 8
    """Number of self-attention layers in each self-attention block."""
    num_self_attention_blocks: int = 1
    """Number of times a self-attention block is applied."""
    first_self_attention_block_shared: bool = True
    """Share the weights of the first self-attention block with the following ones."""
    self_attention_widening_factor: int = 1
    """Hidden width of the self-attention MLPs as a multiple of the latent channels."""
    dropout: float = 0.0
    """Dropout of the attention probabilities."""
    init_scale: float = 0.02
    """Standard deviation of the normal weight initialization."""
    freeze: bool = False
    """Freeze the encoder's parameters (e.g. for fine-tuning a decoder)."""

    def __post_init__(self):
        check_positive(
            self,
            "num_cross_attention_heads",
            "num_cross_attention_qk_channels",
            "num_cross_attention_v_channels",
            "num_cross_attention_layers",
            "cross_attention_widening_factor",
            "num_self_attention_heads",
            "num_self_attention_qk_channels",
            "num_self_attention_v_channels",
            "num_self_attention_layers_per_block",
            "num_self_attention_blocks",
            "self_attention_widening_factor",
        )
        check_dropout(self, "dropout")
        for kind in ("cross", "self"):
            for ch in ("qk", "v"):
                name = f"num_{kind}_attention_{ch}_channels"
                check_divisible(self, name, getattr(self, name), f"num_{kind}_attention_heads")
        if self.num_cross_attention_layers > self.num_self_attention_blocks:
            raise ConfigError(
                self, "num_cross_attention_layers",
                f"({self.num_cross_attention_layers}) must not exceed num_self_attention_blocks "
                f"({self.num_self_attention_blocks})",
            )
        check_init_scale(self)


@dataclass
class DecoderConfig:
    num_cross_attention_heads: int = 8
    """Number of heads of the decoder cross-attention (output queries attend to the latents)."""
    num_cross_attention_qk_channels: Optional[int] = None
    """Query/key channels of the decoder cross-attention (None: the output query channels)."""
    num_cross_attention_v_channels: Optional[int] = None
    """Value channels of the decoder cross-attention (None: the query/key channels)."""
    cross_attention_widening_factor: int = 1
    """Hidden width of the decoder MLP as a multiple of the output query channels."""
    cross_attention_residual: bool = True
    """Add the output queries to the cross-attention output (query residual)."""
    dropout: float = 0.0
    """Dropout of the attention probabilities."""
    init_scale: float = 0.02
    """Standard deviation of the normal weight initialization."""
    freeze: bool = False
    """Freeze the decoder's parameters."""

    def __post_init__(self):
        check_positive(
            self,
            "num_cross_attention_heads",
            "num_cross_attention_qk_channels",
            "num_cross_attention_v_channels",
            "cross_attention_widening_factor",
        )
        check_dropout(self, "dropout")
        for ch in ("qk", "v"):
            name = f"num_cross_attention_{ch}_channels"
            check_divisible(self, name, getattr(self, name), "num_cross_attention_heads")
        check_init_scale(self)


E = TypeVar("E", bound=EncoderConfig)
D = TypeVar("D", bound=DecoderConfig)


@dataclass
class PerceiverIOConfig(Generic[E, D]):
    encoder: E
    """Encoder configuration."""
    decoder: D
    """Decoder configuration."""
    num_latents: int = 256
    """Number of latent vectors (N)."""
    num_latent_channels: int = 1280
    """Channels of each latent vector (D)."""
    activation_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass (saves memory, costs compute)."""
    activation_offloading: bool = False
    """Offload checkpointed activations to CPU memory (requires activation_checkpointing)."""

    presets: ClassVar[Mapping[str, Any]] = {}
    """Named configurations of this class (see ``perceiver.model.core.presets``); task configs define them."""

    @classmethod
    def from_preset(cls, name: str, **overrides):
        """The config of the preset ``name`` (one of ``cls.presets``) with ``overrides`` (nested dicts for
        sub-configs); raises ``ConfigError`` naming the field if the result is invalid."""
        from perceiver.model.core.presets import from_preset

        return from_preset(cls, name, **overrides)

    def __post_init__(self):
        check_positive(self, "num_latents", "num_latent_channels")
        enc = self.encoder
        for kind in ("cross", "self"):
            qk = getattr(enc, f"num_{kind}_attention_qk_channels")
            if qk is None and self.num_latent_channels % getattr(enc, f"num_{kind}_attention_heads") != 0:
                raise ConfigError(
                    self, "num_latent_channels",
                    f"({self.num_latent_channels}) must be divisible by encoder.num_{kind}_attention_heads when "
                    f"encoder.num_{kind}_attention_qk_channels is None",
                )
        check_offloading(self)


def check_offloading(config) -> None:
    if config.activation_offloading and not config.activation_checkpointing:
        raise ConfigError(config, "activation_offloading", "requires activation_checkpointing=True")


# --- Perceiver AR -------------------------------------------------------------------------------------------------


@dataclass
class PerceiverARConfig:
    num_heads: int = 8
    """Number of attention heads of all layers."""
    max_heads_parallel: Optional[int] = None
    """Compute at most this many heads at once (saves memory on the explicit-weights path; None: all)."""
    num_self_attention_layers: int = 8
    """Number of causal self-attention layers over the latents."""
    num_self_attention_rotary_layers: int = 1
    """Number of self-attention layers (from the first) that use rotary position embeddings; -1: all."""
    self_attention_widening_factor: int = 4
    """Hidden width of the self-attention MLPs as a multiple of the channels."""
    cross_attention_widening_factor: int = 4
    """Hidden width of the cross-attention MLP as a multiple of the channels."""
    cross_attention_dropout: float = 0.5
    """Prefix dropout: fraction of prefix positions dropped from the cross-attention in training."""
    post_attention_dropout: float = 0.0
    """Dropout of the attention probabilities."""
    residual_dropout: float = 0.0
    """Dropout applied to each residual branch before it is added."""
    activation_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass (saves memory, costs compute)."""
    activation_offloading: bool = False
    """Offload checkpointed activations to CPU memory (requires activation_checkpointing)."""

    presets: ClassVar[Mapping[str, Any]] = {}
    """Named configurations of this class (see ``perceiver.model.core.presets``); task configs define them."""

    @classmethod
    def from_preset(cls, name: str, **overrides):
        """The config of the preset ``name`` (one of ``cls.presets``) with ``overrides`` (nested dicts for
        sub-configs); raises ``ConfigError`` naming the field if the result is invalid."""
        from perceiver.model.core.presets import from_preset

        return from_preset(cls, name, **overrides)

    def __post_init__(self):
        check_positive(self, "num_heads", "max_heads_parallel", "num_self_attention_layers")
        check_positive(self, "self_attention_widening_factor", "cross_attention_widening_factor")
        check_dropout(self, "cross_attention_dropout", "post_attention_dropout", "residual_dropout")
        r = self.num_self_attention_rotary_layers
        if r != -1 and not 0 <= r <= self.num_self_attention_layers:
            raise ConfigError(
                self, "num_self_attention_rotary_layers",
                f"must be -1 (all) or in [0, num_self_attention_layers={self.num_self_attention_layers}], got {r}",
            )
        check_offloading(self)

    @property
    def num_rotary_layers(self) -> int:
        r = self.num_self_attention_rotary_layers
        return self.num_self_attention_layers if r == -1 else r


__all__ = [
    "ConfigError",
    "EncoderConfig",
    "DecoderConfig",
    "PerceiverIOConfig",
    "PerceiverARConfig",
    "config_dict",
    "field",
]
