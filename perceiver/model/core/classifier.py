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

import torch

from perceiver.model.core.adapter import ClassificationOutputAdapter, TrainableQueryProvider
from perceiver.model.core.config import DecoderConfig, check_positive
from perceiver.model.core.perceiver_io import PerceiverDecoder


@dataclass
class ClassificationDecoderConfig(DecoderConfig):
    num_output_query_channels: int = 256
    """Channels of the output query (F)."""
    num_classes: int = 100
    """Number of classes (K); the CLI and the workbench take it from the data."""

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "num_output_query_channels", "num_classes")


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
