"""Hugging Face wrapper of the image classifier (``image-classification`` pipeline, ``Trainer``), its image processor,
and the registration with ``AutoModelForImageClassification``.

The wrapper takes ``pixel_values`` (B, C, H, W) as image processors give them. A saved directory holds
``config.json`` (with ``model_config``, the backend config), ``model.safetensors`` and, from
:func:`save_pretrained`, the ``preprocessor_config.json`` of a stock ``transformers.PerceiverImageProcessor``
(resize to the model's image size, rescale, normalize with mean 0.5 and std 0.5), so pipelines need no custom code.

Dimensions:
    B: batch size
    C: image channels,  H, W: image height and width
    K: classes
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from transformers import PerceiverImageProcessor
from transformers.modeling_outputs import ImageClassifierOutput

from perceiver.model.core.position import FourierPositionEncoding
from perceiver.model.core.presets import config_from_dict
from perceiver.model.text.huggingface import PerceiverBackendConfig, PerceiverPreTrainedModel
from perceiver.model.vision.image_classifier.backend import ImageClassifier, ImageClassifierConfig

#: ITU-R 601-2 luma weights (as Pillow's ``convert("L")``): RGB pixel values of a grayscale model
LUMA = (0.299, 0.587, 0.114)


class PerceiverImageClassifierConfig(PerceiverBackendConfig):
    """``model_config``: an :class:`ImageClassifierConfig` (or its nested dict). ``id2label`` defaults to one label
    per class of the backend config."""

    model_type = "perceiver-image-classifier"
    tokenizer_name: Optional[str] = None  # pixels need an image processor (saved by save_pretrained below)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        num_classes = self.backend_config.num_classes
        if self.id2label is None or len(self.id2label) != num_classes:
            self.num_labels = num_classes

    @classmethod
    def default_backend_config(cls) -> ImageClassifierConfig:
        return ImageClassifierConfig.from_preset("deepmind-fourier")

    @property
    def backend_config(self) -> ImageClassifierConfig:
        return config_from_dict(ImageClassifierConfig, self.model_config)


class PerceiverImageClassifier(PerceiverPreTrainedModel):
    """Hugging Face ``PreTrainedModel`` around :class:`ImageClassifier`."""

    config_class = PerceiverImageClassifierConfig
    backend_class = ImageClassifier
    main_input_name = "pixel_values"

    def get_input_embeddings(self) -> None:  # pixels have no embedding table
        return None

    def _init_weights(self, module: torch.nn.Module) -> None:
        # from_pretrained fills parameters from the file but leaves computed (non-persistent) buffers empty
        if isinstance(module, FourierPositionEncoding):
            module.reset_encoding()

    def forward(
        self, pixel_values: torch.Tensor, labels: Optional[torch.Tensor] = None, **kwargs
    ) -> ImageClassifierOutput:
        """Logits (B, K) of ``pixel_values`` (B, C, H, W); RGB values for a grayscale model are turned into luma.
        With ``labels`` (B,), also the cross-entropy ``loss``."""
        x = pixel_values.permute(0, 2, 3, 1)  # (B, H, W, C), channels last like the backend
        if x.shape[-1] == 3 and self.backend_model.config.image_shape[-1] == 1:
            x = x @ x.new_tensor(LUMA)[:, None]  # (B, H, W, 1)
        logits = self.backend_model(x.to(self.dtype))  # (B, K)
        loss = None if labels is None else F.cross_entropy(logits, labels.to(logits.device))
        return ImageClassifierOutput(loss=loss, logits=logits)


def image_processor(config: ImageClassifierConfig, normalize: bool = True) -> PerceiverImageProcessor:
    """A stock image processor for ``config``: resize to its image size (no crop), rescale to [0, 1] and, with
    ``normalize``, to [-1, 1] as ``perceiver.data.vision`` does for training."""
    h, w, _ = config.image_shape
    mean, std = ([0.5] * 3, [0.5] * 3) if normalize else ([0.0] * 3, [1.0] * 3)
    return PerceiverImageProcessor(do_center_crop=False, size={"height": h, "width": w}, image_mean=mean,
                                   image_std=std)


def save_pretrained(
    model: ImageClassifier, directory: str | Path, class_names: Optional[Sequence[str]] = None,
    normalize: bool = True,
) -> PerceiverImageClassifier:
    """Save a backend model with its image processor, so ``pipeline("image-classification", model=directory)``
    works (after :func:`register_auto_classes`). Returns the wrapper (weights shared with ``model``)."""
    kwargs = {"id2label": dict(enumerate(class_names))} if class_names is not None else {}
    wrapped = PerceiverImageClassifier.from_backend(model, **kwargs)
    wrapped.save_pretrained(directory)
    image_processor(model.config, normalize).save_pretrained(directory)
    return wrapped


def register_auto_classes() -> None:
    """Register the wrapper with ``AutoConfig`` and ``AutoModelForImageClassification`` (idempotent), so
    ``AutoModelForImageClassification.from_pretrained(dir)`` and ``pipeline("image-classification", model=dir)``
    work on directories saved by :func:`save_pretrained`."""
    from transformers import AutoConfig, AutoModelForImageClassification

    AutoConfig.register(PerceiverImageClassifierConfig.model_type, PerceiverImageClassifierConfig, exist_ok=True)
    AutoModelForImageClassification.register(PerceiverImageClassifierConfig, PerceiverImageClassifier, exist_ok=True)
