"""Position encodings: absolute positions with left padding, rotary embeddings, Fourier and learned encodings.

Dimensions:
    B: batch size
    N: sequence length (positions)
    H: attention heads
    R: rotated channels per head (even)
    C: channels
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn


def positions(
    b: int, n: int, shift: Optional[torch.Tensor] = None, start: int = 0, device=None
) -> torch.Tensor:
    """Absolute positions (B, N) of the N positions from ``start`` on. ``shift`` (B, 1), the number of left pads,
    moves each row's first real token to position 0; pad positions are clamped to 0."""
    pos = torch.arange(start, start + n, device=device).expand(b, n)  # (B, N)
    if shift is not None:
        pos = (pos - shift).clamp(min=0)
    return pos


def left_pad_shift(pad_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Number of left pads (B, 1) of a left-padded pad mask (B, N) with True = pad."""
    return None if pad_mask is None else pad_mask.sum(dim=1, keepdim=True)


# --- rotary -------------------------------------------------------------------------------------------------------


def rotary_frequencies(pos: torch.Tensor, num_rotated_channels: int, base: float = 10000.0) -> torch.Tensor:
    """Rotation angles (B, 1, N, R) for positions (B, N). Each frequency is repeated for the two channels of a pair
    (interleaved layout, as in perceiver-io 0.11)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, num_rotated_channels, 2, device=pos.device).float() / num_rotated_channels))
    angles = pos.float().unsqueeze(-1) * inv_freq  # (B, N, R/2)
    return angles.repeat_interleave(2, dim=-1).unsqueeze(1)  # (B, 1, N, R)


class RotaryEmbedding:
    """Rotary position embedding (arXiv:2104.09864) of the first R channels of each head, for given positions.

    Holds cos/sin of the angles once, so every layer that rotates at the same positions shares them.
    """

    def __init__(self, angles: torch.Tensor):
        self.cos = angles.cos()  # (B, 1, N, R)
        self.sin = angles.sin()
        self.num_channels = angles.shape[-1]

    @classmethod
    def at(cls, pos: torch.Tensor, num_rotated_channels: int) -> "RotaryEmbedding":
        return cls(rotary_frequencies(pos, num_rotated_channels))

    def __getitem__(self, idx) -> "RotaryEmbedding":
        """Select positions, e.g. ``rot[..., -n:, :]`` or with a gather index."""
        sliced = RotaryEmbedding.__new__(RotaryEmbedding)
        sliced.cos, sliced.sin, sliced.num_channels = self.cos[idx], self.sin[idx], self.num_channels
        return sliced

    def gather(self, index: torch.Tensor) -> "RotaryEmbedding":
        """Keep positions ``index`` (B, K) per example (used by prefix dropout)."""
        idx = index[:, None, :, None].expand(-1, 1, -1, self.num_channels)
        sliced = RotaryEmbedding.__new__(RotaryEmbedding)
        sliced.cos, sliced.sin = self.cos.gather(2, idx), self.sin.gather(2, idx)
        sliced.num_channels = self.num_channels
        return sliced

    def rotate(self, t: torch.Tensor) -> torch.Tensor:
        """Rotate t (B, H, N, D) at this embedding's N positions (right-aligned if t is shorter)."""
        n, r = t.shape[-2], self.num_channels
        cos, sin = self.cos[..., -n:, :].to(t.dtype), self.sin[..., -n:, :].to(t.dtype)
        t_rot, t_pass = t[..., :r], t[..., r:]
        t_rot = t_rot * cos + rotate_pairs(t_rot) * sin
        return torch.cat((t_rot, t_pass), dim=-1) if t_pass.shape[-1] else t_rot


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2, x3, x4, ...] -> [-x2, x1, -x4, x3, ...] over the last dimension."""
    x = x.unflatten(-1, (-1, 2))
    return torch.stack((-x[..., 1], x[..., 0]), dim=-1).flatten(-2)


# --- Fourier and learned encodings --------------------------------------------------------------------------------


def fourier_position_encodings(
    spatial_shape: Sequence[int], num_frequency_bands: int, max_frequencies: Optional[Sequence[int]] = None,
    include_positions: bool = True,
) -> torch.Tensor:
    """Fourier features of a grid of shape ``spatial_shape`` with positions in [-1, 1] (Perceiver IO paper).

    Returns (prod(spatial_shape), C) with C = len(spatial_shape) * (2 * num_frequency_bands + include_positions).
    """
    coords = [torch.linspace(-1.0, 1.0, steps=s) for s in spatial_shape]
    pos = torch.stack(torch.meshgrid(*coords, indexing="ij"), dim=-1).reshape(-1, len(spatial_shape))  # (N, d)
    max_frequencies = max_frequencies or spatial_shape
    encodings = [pos] if include_positions else []
    for i, max_freq in enumerate(max_frequencies):
        freqs = torch.linspace(1.0, max_freq / 2.0, steps=num_frequency_bands)  # (F,)
        grid = pos[:, i : i + 1] * freqs * math.pi  # (N, F)
        encodings += [grid.sin(), grid.cos()]
    return torch.cat(encodings, dim=-1)


class FourierPositionEncoding(nn.Module):
    """Fixed Fourier position encoding of a grid, broadcast over the batch: (B, N, C)."""

    def __init__(self, spatial_shape: Sequence[int], num_frequency_bands: int):
        super().__init__()
        self.register_buffer("encoding", fourier_position_encodings(spatial_shape, num_frequency_bands), persistent=False)

    @property
    def num_channels(self) -> int:
        return self.encoding.shape[-1]

    def forward(self, b: int) -> torch.Tensor:
        return self.encoding.expand(b, -1, -1)


class TrainablePositionEncoding(nn.Module):
    """Learned position encoding (N, C), optionally cropped to the first n positions and broadcast to (B, n, C)."""

    def __init__(self, max_seq_len: int, num_channels: int, init_scale: float = 0.02):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(max_seq_len, num_channels))
        nn.init.normal_(self.embedding, std=init_scale)

    def forward(self, b: int, n: Optional[int] = None) -> torch.Tensor:
        return self.embedding[:n].expand(b, -1, -1)
