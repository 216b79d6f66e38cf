"""Image classifier: Perceiver IO over the pixels of an image, each with a Fourier or learned position encoding, and a
classification decoder (one learned query).

Dimensions:
    B: batch size
    H, W: image height and width,  C: image channels
    M: input positions (pixels, H * W),  P: position encoding channels
    N: latents,  D: latent channels
    K: classes
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Mapping, Optional

import torch
import torch.nn as nn

from perceiver.model.core.adapter import InputAdapter
from perceiver.model.core.classifier import ClassificationDecoder, ClassificationDecoderConfig
from perceiver.model.core.config import ConfigError, EncoderConfig, PerceiverIOConfig, check_positive
from perceiver.model.core.flops import Flops, linear, perceiver_io
from perceiver.model.core.ops import Linear
from perceiver.model.core.perceiver_io import PerceiverEncoder, PerceiverIO
from perceiver.model.core.position import FourierPositionEncoding, TrainablePositionEncoding
from perceiver.model.core.presets import Preset


def positive_ints(config, name: str, value, n: int, meaning: str) -> tuple[int, ...]:
    """``value`` as a tuple of ``n`` positive integers (JSON and YAML give lists), else a ``ConfigError``."""
    value = tuple(value) if isinstance(value, list) else value
    if not isinstance(value, tuple) or len(value) != n or any(not isinstance(v, int) or v <= 0 for v in value):
        raise ConfigError(config, name, f"must be {n} positive integers {meaning}, got {value!r}")
    return value


@dataclass
class ImageEncoderConfig(EncoderConfig):
    image_shape: tuple[int, int, int] = (224, 224, 3)
    """Shape of an input image, channels last: (height, width, channels). The CLI takes it from the data."""
    position_encoding: Literal["fourier", "learned"] = "fourier"
    """Position encoding concatenated to each pixel: fixed Fourier features or a learned embedding per pixel."""
    num_frequency_bands: int = 32
    """Fourier encoding: frequency bands per spatial dimension (P = 2 * (2 * bands + 1) channels)."""
    max_resolution: Optional[tuple[int, int]] = None
    """Fourier encoding: resolution whose Nyquist frequency is the highest band, per spatial dimension. None: the
    image's height and width (perceiver-io 0.11); DeepMind's and Hugging Face's ImageNet models use (224, 224)."""
    num_position_channels: int = 256
    """Learned encoding: channels of the embedding (P)."""
    num_pixel_channels: Optional[int] = None
    """Project each pixel's channels linearly (a 1x1 convolution) to this many channels; None: raw pixel values."""
    params: Optional[str] = None
    """Pretrained weights to initialize the encoder from: a checkpoint, a saved model directory or a Hugging Face
    Hub id (the decoder, e.g. for other classes, starts from scratch)."""

    def __post_init__(self):
        super().__post_init__()
        self.image_shape = positive_ints(self, "image_shape", self.image_shape, 3, "(height, width, channels)")
        if self.position_encoding not in ("fourier", "learned"):
            raise ConfigError(self, "position_encoding",
                              f"must be 'fourier' or 'learned', got {self.position_encoding!r}")
        check_positive(self, "num_frequency_bands", "num_position_channels", "num_pixel_channels")
        if self.max_resolution is not None:
            self.max_resolution = positive_ints(self, "max_resolution", self.max_resolution, 2, "(height, width)")

    @property
    def num_input_channels(self) -> int:
        """Channels of each adapted pixel: pixel channels plus position encoding channels."""
        pixel = self.num_pixel_channels or self.image_shape[-1]
        if self.position_encoding == "learned":
            return pixel + self.num_position_channels
        return pixel + 2 * (2 * self.num_frequency_bands + 1)  # 2 spatial dimensions


@dataclass
class ImageClassifierConfig(PerceiverIOConfig[ImageEncoderConfig, ClassificationDecoderConfig]):
    presets: ClassVar[Mapping[str, Preset]] = {
        "mnist-907k": Preset(
            "perceiver-io 0.11's MNIST classifier (907K parameters, 98.16% on MNIST): Fourier encoding of 28x28 "
            "pixels, 2 cross-attention layers, 3 self-attention blocks of 3 layers",
            dict(
                encoder=dict(image_shape=(28, 28, 1), num_frequency_bands=32, num_cross_attention_heads=1,
                             num_cross_attention_layers=2, first_cross_attention_layer_shared=False,
                             num_self_attention_heads=8, num_self_attention_blocks=3,
                             num_self_attention_layers_per_block=3, first_self_attention_block_shared=False,
                             dropout=0.1, init_scale=0.1),
                decoder=dict(num_output_query_channels=128, num_cross_attention_heads=1, num_classes=10,
                             dropout=0.1, init_scale=0.1),
                num_latents=32, num_latent_channels=128,
            ),
        ),
        "deepmind-fourier": Preset(
            "DeepMind's ImageNet Perceiver with Fourier features (deepmind/vision-perceiver-fourier): 48.4M",
            dict(
                encoder=dict(image_shape=(224, 224, 3), num_frequency_bands=64, max_resolution=(224, 224),
                             num_cross_attention_heads=1, num_self_attention_heads=8,
                             num_self_attention_layers_per_block=6, num_self_attention_blocks=8, dropout=0.1),
                decoder=dict(num_output_query_channels=1024, num_cross_attention_heads=1, num_classes=1000,
                             dropout=0.1),
                num_latents=512, num_latent_channels=1024,
            ),
        ),
        "tiny": Preset(
            "0.1M parameters for scikit-learn's 8x8 digits: over 95% test accuracy in minutes of CPU training",
            dict(
                encoder=dict(image_shape=(8, 8, 1), num_frequency_bands=8, num_cross_attention_heads=1,
                             num_cross_attention_layers=2, first_cross_attention_layer_shared=False,
                             num_self_attention_heads=4, num_self_attention_blocks=2,
                             num_self_attention_layers_per_block=2, dropout=0.1, init_scale=0.1),
                decoder=dict(num_output_query_channels=64, num_cross_attention_heads=1, num_classes=10,
                             dropout=0.1, init_scale=0.1),
                num_latents=16, num_latent_channels=64,
            ),
        ),
    }

    def __post_init__(self):
        super().__post_init__()
        enc, dec = self.encoder, self.decoder
        qk = enc.num_cross_attention_qk_channels or enc.num_input_channels
        if qk % enc.num_cross_attention_heads:
            raise ConfigError(
                self, "encoder.num_cross_attention_heads",
                f"({enc.num_cross_attention_heads}) must divide the cross-attention query/key channels ({qk}; "
                f"None means the input channels: pixel plus position encoding channels)",
            )
        query_channels = dec.num_output_query_channels
        if dec.num_cross_attention_qk_channels is None and query_channels % dec.num_cross_attention_heads:
            raise ConfigError(
                self, "decoder.num_cross_attention_heads",
                f"({dec.num_cross_attention_heads}) must divide decoder.num_output_query_channels "
                f"({dec.num_output_query_channels}) when decoder.num_cross_attention_qk_channels is None",
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.encoder.image_shape

    @property
    def num_classes(self) -> int:
        return self.decoder.num_classes

    def flops(self, train: bool = True) -> Flops:
        """Analytic FLOPs of one image (its M = H * W pixels are the input positions) and its classification query,
        with the optional pixel projection (``train`` changes nothing here). See ``perceiver.model.core.flops``."""
        enc, dec = self.encoder, self.decoder
        h, w, c = enc.image_shape
        # the model's cross-attention query/key channels default to the input channels (see ImageClassifier)
        qk = enc.num_cross_attention_qk_channels or enc.num_input_channels
        config = dataclasses.replace(self, encoder=dataclasses.replace(enc, num_cross_attention_qk_channels=qk))
        flops = perceiver_io(config, h * w, enc.num_input_channels, num_queries=1,
                             query_channels=dec.num_output_query_channels, output_channels=self.num_classes)
        if enc.num_pixel_channels:
            flops = flops.add(input_layer=True, pixel_projection=linear(h * w, c, enc.num_pixel_channels))
        return flops


class ImageInputAdapter(InputAdapter):
    """Pixels (B, H, W, C) -> (B, M, C' + P): each pixel's channels (optionally projected to C' channels), followed
    by its position encoding (P channels)."""

    def __init__(self, config: ImageEncoderConfig):
        super().__init__(config.num_input_channels)
        *spatial_shape, channels = config.image_shape
        self.image_shape = config.image_shape
        self.pixel_projection = Linear(channels, config.num_pixel_channels) if config.num_pixel_channels else None
        if config.position_encoding == "fourier":
            self.position_encoding = FourierPositionEncoding(
                spatial_shape, config.num_frequency_bands, config.max_resolution)
        else:
            self.position_encoding = TrainablePositionEncoding(
                math.prod(spatial_shape), config.num_position_channels, config.init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"image shape {tuple(x.shape[1:])} differs from the model's image_shape "
                             f"{self.image_shape} (height, width, channels; channels last)")
        x = x.flatten(1, -2)  # (B, M, C)
        if self.pixel_projection is not None:
            x = self.pixel_projection(x)  # (B, M, C')
        return torch.cat([x, self.position_encoding(x.shape[0]).to(x)], dim=-1)  # (B, M, C' + P)


class ImageClassifier(PerceiverIO):
    """Perceiver IO image classifier. ``forward(x)`` maps images (B, H, W, C) to class logits (B, K)."""

    plotted_attention = "encoder.cross_attn_1.attention"
    """The attention module the workbench plots: the first cross-attention of the latents over the pixels."""
    plotted_attention_title = "encoder cross-attention: latents over pixels"

    def __init__(self, config: ImageClassifierConfig):
        enc = config.encoder
        input_adapter = ImageInputAdapter(enc)
        # query/key channels default to the input channels (as DeepMind's, Hugging Face's and 0.11's models)
        qk = enc.num_cross_attention_qk_channels or input_adapter.num_input_channels
        encoder = PerceiverEncoder(
            dataclasses.replace(enc, num_cross_attention_qk_channels=qk), input_adapter, config.num_latents,
            config.num_latent_channels, activation_checkpointing=config.activation_checkpointing,
            activation_offloading=config.activation_offloading,
        )
        decoder = ClassificationDecoder(
            config.decoder, config.num_latent_channels, activation_checkpointing=config.activation_checkpointing,
            activation_offloading=config.activation_offloading,
        )
        super().__init__(encoder, decoder)
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of images x (B, H, W, C)."""
        return super().forward(x)
