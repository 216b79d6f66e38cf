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


def positions(b: int, n: int, shift: Optional[torch.Tensor] = None, device=None) -> torch.Tensor:
    """Absolute positions (B, N). ``shift`` (B, 1), the number of left pads, moves each row's first real token to
    position 0; pad positions are clamped to 0."""
    pos = torch.arange(n, device=device).expand(b, n)  # (B, N)
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
    spatial_shape: Sequence[int], num_frequency_bands: int, max_resolution: Optional[Sequence[int]] = None,
    include_positions: bool = True,
) -> torch.Tensor:
    """Fourier features of a grid of shape ``spatial_shape`` with positions x in [-1, 1] (Perceiver paper, 3.2).

    Dimension i uses K = ``num_frequency_bands`` frequencies f linearly spaced in [1, r_i / 2], the Nyquist frequency
    of ``max_resolution`` r (default: ``spatial_shape``; DeepMind's ImageNet models use (224, 224) whatever the
    image size). Channels are ordered as in DeepMind's Perceiver, Hugging Face and perceiver-io 0.11, so their
    weights apply unchanged: [x_1..x_d, sin(pi f x_i) for i, f, cos(pi f x_i) for i, f].

    Returns (prod(spatial_shape), C) with C = d * (2 * K + include_positions), d = len(spatial_shape).
    """
    coords = [torch.linspace(-1.0, 1.0, steps=s) for s in spatial_shape]
    pos = torch.stack(torch.meshgrid(*coords, indexing="ij"), dim=-1).reshape(-1, len(spatial_shape))  # (N, d)
    resolution = spatial_shape if max_resolution is None else max_resolution
    if len(resolution) != len(spatial_shape):
        raise ValueError(f"max_resolution {tuple(resolution)} must have one entry per spatial dimension of "
                         f"{tuple(spatial_shape)}")
    freqs = torch.stack([torch.linspace(1.0, r / 2.0, steps=num_frequency_bands) for r in resolution])  # (d, K)
    grid = (pos[:, :, None] * freqs).flatten(1)  # (N, d * K)
    features = [torch.sin(math.pi * grid), torch.cos(math.pi * grid)]
    return torch.cat([pos, *features] if include_positions else features, dim=-1)


class FourierPositionEncoding(nn.Module):
    """Fixed Fourier position encoding of a grid (see :func:`fourier_position_encodings`), broadcast over the
    batch: (B, N, C). Not saved in the state dict (it is computed)."""

    def __init__(
        self, spatial_shape: Sequence[int], num_frequency_bands: int, max_resolution: Optional[Sequence[int]] = None
    ):
        super().__init__()
        self.spatial_shape, self.num_frequency_bands = tuple(spatial_shape), num_frequency_bands
        self.max_resolution = None if max_resolution is None else tuple(max_resolution)
        encoding = fourier_position_encodings(spatial_shape, num_frequency_bands, max_resolution)
        self.register_buffer("encoding", encoding, persistent=False)

    @torch.no_grad()
    def reset_encoding(self) -> None:
        """Compute the encoding again (e.g. after a loader left this non-persistent buffer uninitialized)."""
        encoding = fourier_position_encodings(self.spatial_shape, self.num_frequency_bands, self.max_resolution)
        self.encoding = encoding.to(self.encoding.device)

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
