"""Text building blocks shared by the masked and causal language models: token input adapter and token output
adapters (tied to the input embedding or not).

Dimensions:
    B: batch size
    N: sequence length
    C: channels
    V: vocabulary size
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from perceiver.model.core.adapter import InputAdapter, OutputAdapter
from perceiver.model.core.ops import Linear, linear


class TokenInputAdapter(InputAdapter):
    """Token embedding (V, C) plus, optionally, a learned absolute position embedding (max_seq_len, C)."""

    def __init__(self, vocab_size: int, max_seq_len: int, num_input_channels: int, abs_pos_emb: bool = True):
        super().__init__(num_input_channels)
        self.vocab_size = vocab_size
        self.max_seq_len = max_seq_len
        self.txt_embedding = nn.Embedding(vocab_size, num_input_channels)
        self.pos_embedding = nn.Embedding(max_seq_len, num_input_channels) if abs_pos_emb else None

    def set_embedding(self, embedding: nn.Embedding) -> None:
        """Use ``embedding`` (V', C) as the token embedding (e.g. a resized one)."""
        if embedding.embedding_dim != self.txt_embedding.embedding_dim:
            raise ValueError(f"the new embedding has {embedding.embedding_dim} channels, the model "
                             f"{self.txt_embedding.embedding_dim}: only the number of tokens can change")
        self.txt_embedding = embedding
        self.vocab_size = embedding.num_embeddings

    def forward(self, x: torch.Tensor, abs_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embeddings (B, N, C) of token ids x (B, N) at positions ``abs_pos`` (B, N) (default 0..N-1)."""
        n = x.shape[1]
        if n > self.max_seq_len:
            raise ValueError(f"input length {n} exceeds max_seq_len={self.max_seq_len}")
        emb = self.txt_embedding(x)
        if self.pos_embedding is None:
            return emb
        if abs_pos is None:
            return emb + self.pos_embedding.weight[:n]
        return emb + self.pos_embedding(abs_pos)


class TiedTokenOutputAdapter(OutputAdapter):
    """Logits (B, N, V) = x (B, N, C) @ embeddingᵀ (+ bias), with the weight of the input token embedding.

    The embedding is referenced, not registered, so its weight has one owner and one state-dict key.
    """

    def __init__(self, embedding: nn.Embedding, bias: bool = True):
        super().__init__()
        self._embedding = (embedding,)
        self.bias = nn.Parameter(torch.zeros(embedding.num_embeddings)) if bias else None

    def tie(self, embedding: nn.Embedding) -> None:
        """Tie to ``embedding`` (e.g. a resized one); the bias keeps the entries of the tokens both have, new tokens
        get zeros."""
        self._embedding = (embedding,)
        if self.bias is not None and self.bias.shape[0] != embedding.num_embeddings:
            bias = self.bias.new_zeros(embedding.num_embeddings)
            n = min(bias.shape[0], self.bias.shape[0])
            bias[:n] = self.bias.detach()[:n]
            self.bias = nn.Parameter(bias, requires_grad=self.bias.requires_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self._embedding[0].weight, self.bias)


class TokenOutputAdapter(OutputAdapter):
    """Untied linear projection (B, N, F) -> logits (B, N, V)."""

    def __init__(self, vocab_size: int, num_output_query_channels: int):
        super().__init__()
        self.linear = Linear(num_output_query_channels, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)
