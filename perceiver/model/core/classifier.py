"""The classification decoder shared by the classifiers (image, text): one learned output query cross-attends to the
latents and a linear layer maps the result to class logits (Perceiver IO paper, Figure 2: "classification").

Dimensions:
    B: batch size
    N: latents,  D: latent channels
    F: output query channels
    K: classes
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from perceiver.model.core.adapter import ClassificationOutputAdapter, TrainableQueryProvider
from perceiver.model.core.config import ConfigError, DecoderConfig, check_divisible, check_positive
from perceiver.model.core.perceiver_io import PerceiverDecoder


@dataclass
class ClassificationDecoderConfig(DecoderConfig):
    num_output_query_channels: int = 256
    """Channels of the output query (F)."""
    num_classes: int = 100
    """Number of classes (K); the CLI and the workbench take it from the data."""
    class_names: Optional[list[str]] = None
    """Names of the classes in index order, for plots and Hugging Face's ``id2label`` (None: the class indices); the
    CLI and the workbench take them from the data where it has them."""

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "num_output_query_channels", "num_classes")
        if self.num_cross_attention_qk_channels is None:
            check_divisible(self, "num_output_query_channels", self.num_output_query_channels,
                            "num_cross_attention_heads")
        if self.class_names is not None:
            names = [str(n) for n in self.class_names]
            if len(names) != self.num_classes:
                raise ConfigError(self, "class_names", f"has {len(names)} names but num_classes is {self.num_classes}")
            if len(set(names)) != len(names):
                raise ConfigError(self, "class_names", f"must be distinct, got {names}")
            self.class_names = names


class ClassificationDecoder(PerceiverDecoder):
    """A :class:`PerceiverDecoder` whose query provider is one learned query (1, F) and whose output adapter is a
    linear layer to K logits. ``forward(x_latent)`` returns logits (B, K)."""

    def __init__(
        self,
        config: ClassificationDecoderConfig,
        num_latent_channels: int,
        activation_checkpointing: bool = False,
        activation_offloading: bool = False,
    ):
        query_provider = TrainableQueryProvider(1, config.num_output_query_channels, config.init_scale)
        output_adapter = ClassificationOutputAdapter(config.num_classes, config.num_output_query_channels)
        super().__init__(config, output_adapter, query_provider, num_latent_channels,
                         activation_checkpointing=activation_checkpointing,
                         activation_offloading=activation_offloading)

    def forward(self, x_latent: torch.Tensor, x_adapted: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x_latent, x_adapted)[:, 0]  # (B, 1, K) -> (B, K)
