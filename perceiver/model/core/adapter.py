"""Input adapters, output adapters and query providers: the task-specific ends of a Perceiver.

An input adapter turns task input into an array (B, M, C) for the encoder's cross-attention. A query provider
gives the decoder its output queries (B, O, F); an output adapter turns the decoder output (B, O, F) into task
output. A task model only picks these; encoder and decoder stay generic.

Dimensions:
    B: batch size
    M: input positions
    C: input channels
    O: output queries
    F: output query channels
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from perceiver.model.core.ops import Linear


class InputAdapter(nn.Module):
    """Maps task input to (B, M, C). Subclasses set ``num_input_channels`` (C)."""

    def __init__(self, num_input_channels: int):
        super().__init__()
        self.num_input_channels = num_input_channels


class OutputAdapter(nn.Module):
    """Maps decoder output (B, O, F) to task output."""


class QueryProvider(nn.Module):
    """Provides output queries (B, O, F) given the adapted input (B, M, C). Subclasses set ``num_query_channels``."""

    num_query_channels: int


class TrainableQueryProvider(QueryProvider):
    """Learned queries (O, F). With ``crop_to_input``, only the first M queries are used for an input of length M
    (text: one query per input position)."""

    def __init__(self, num_queries: int, num_query_channels: int, init_scale: float = 0.02, crop_to_input=False):
        super().__init__()
        self.query = nn.Parameter(torch.empty(num_queries, num_query_channels))
        self.num_query_channels = num_query_channels
        self.crop_to_input = crop_to_input
        nn.init.normal_(self.query, std=init_scale)

    def forward(self, x_adapted: Optional[torch.Tensor] = None, batch_size: Optional[int] = None) -> torch.Tensor:
        b = batch_size if x_adapted is None else x_adapted.shape[0]
        n = x_adapted.shape[1] if self.crop_to_input and x_adapted is not None else None
        return self.query[:n].expand(b, -1, -1)  # (B, O, F)


class ClassificationOutputAdapter(OutputAdapter):
    """Linear projection of the decoder output (B, O, F) to class logits (B, O, K)."""

    def __init__(self, num_classes: int, num_output_query_channels: int):
        super().__init__()
        self.linear = Linear(num_output_query_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)
