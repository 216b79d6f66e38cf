"""Lightning module of the image classifier: cross-entropy loss, accuracy, the latents' attention over the pixels and
the misclassified validation images (for the workbench's figures).

Batches are ``{"image": (B, H, W, C) float, "label": (B,) long}`` (``perceiver.data.vision``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch
import torch.nn.functional as F

from perceiver.model.core.classifier import ClassificationDecoderConfig
from perceiver.model.vision.image_classifier.backend import ImageClassifier, ImageClassifierConfig, ImageEncoderConfig
from perceiver.model.vision.image_classifier.predecessor import load_params  # core load_params + 0.11 formats
from perceiver.training.module import LitModel


def field_hint(name: str, problem: str = "shape") -> str:
    """The config field behind parameter ``name`` for a ``problem`` of ``load_params`` (shape, missing,
    unexpected)."""
    hints = [
        ("pixel_projection", "encoder.image_shape / encoder.num_pixel_channels"),
        ("position_encoding", "encoder.image_shape / encoder.num_position_channels"),
        ("latents", "num_latents / num_latent_channels"),
        ("output_query_provider", "decoder.num_output_query_channels"),
        ("output_adapter", "decoder.num_classes / decoder.num_output_query_channels"),
        ("encoder.cross_attn", "encoder.image_shape / num_frequency_bands / num_cross_attention_qk_channels"),
        ("encoder.self_attn", "encoder.num_self_attention_qk_channels / num_self_attention_v_channels"),
        ("decoder.cross_attn", "decoder.num_cross_attention_qk_channels / num_cross_attention_v_channels"),
    ]
    return next((field for key, field in hints if key in name), "the model config")


def as_config(cls, value):
    return value if isinstance(value, cls) else cls(**value)


class LitImageClassifier(LitModel):
    """Lightning wrapper of :class:`ImageClassifier`. Takes the encoder and decoder configs and the remaining
    :class:`ImageClassifierConfig` fields (``num_latents``, ``num_latent_channels``, ...) as keyword arguments.

    Args:
        encoder: image encoder config.
        decoder: classification decoder config.
        params: pretrained weights (see :class:`perceiver.training.LitModel`), also perceiver-io 0.11 image
            classifier directories and checkpoints.
        params_strict: refuse weights that do not match the model exactly (see :class:`perceiver.training.LitModel`).
        num_misclassified: misclassified validation images kept for the workbench's figure.
        compile: wrap the model's forward in ``torch.compile``.
    """

    field_hint = staticmethod(field_hint)

    def __init__(
        self,
        encoder: ImageEncoderConfig,
        decoder: ClassificationDecoderConfig,
        *,
        params: Optional[str] = None,
        params_strict: bool = True,
        num_misclassified: int = 32,
        compile: bool = False,
        **kwargs,
    ):
        super().__init__(params=params, params_strict=params_strict, compile=compile)
        self.config = ImageClassifierConfig(
            as_config(ImageEncoderConfig, encoder), as_config(ClassificationDecoderConfig, decoder), **kwargs
        )
        self.num_misclassified = num_misclassified
        hparams_config = dataclasses.asdict(self.config)
        hparams_config["encoder"]["params"] = None
        # weights come from the checkpoint itself, so loading it must not fetch ``params`` again
        self.save_hyperparameters({**hparams_config, "params": None, "num_misclassified": num_misclassified,
                                   "compile": compile})
        self.model = ImageClassifier(self.config)
        if self.config.encoder.params is not None:
            load_params(self.model.encoder, self.config.encoder.params, field_hint, prefix="encoder.",
                        strict=params_strict)
        if params is not None:
            load_params(self.model, params, field_hint, strict=params_strict)
        self._errors: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._num_errors = self._num_seen = 0

    @classmethod
    def create(cls, config: ImageClassifierConfig, **kwargs) -> "LitImageClassifier":
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        return cls(**fields, **kwargs)

    # --- batches ----------------------------------------------------------------------------------------------------

    def forward_batch(self, batch: dict) -> torch.Tensor:
        """Logits (B, K)."""
        return self.model(batch["image"])

    def loss_and_metrics(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.forward_batch(batch)  # (B, K)
        labels = batch["label"]
        loss = F.cross_entropy(logits, labels)
        predictions = logits.argmax(dim=-1)
        if self._trainer is not None and self.trainer.validating:
            self._collect_errors(batch["image"], labels, predictions)
        return loss, {"accuracy": (predictions == labels).float().mean()}

    def batch_size(self, batch: dict) -> int:
        return batch["image"].shape[0]

    def batch_tokens(self, batch: dict) -> int:
        """Input positions: pixels."""
        return batch["image"][..., 0].numel()

    def step_cost(self, batch: dict) -> tuple[int, int]:
        """(pixels, FLOPs) of a training step on ``batch``: every image has the config's shape."""
        b = batch["image"].shape[0]
        return b * math.prod(self.config.image_shape[:2]), self.config.flops(train=self.training).step(b)

    def attention_keys(self, batch: dict) -> dict:
        """The keys are the pixels of the image: the journal saves the image (H, W, C) beside the weights."""
        return {"labels": [], "image": batch["image"][0].float().cpu().numpy()}

    # --- misclassified validation images ------------------------------------------------------------------------

    def on_validation_epoch_start(self) -> None:
        self._errors, self._num_errors, self._num_seen = [], 0, 0

    def _collect_errors(self, images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor) -> None:
        wrong = predictions != labels
        self._num_seen += len(labels)
        self._num_errors += int(wrong.sum())
        room = self.num_misclassified - sum(len(e[1]) for e in self._errors)
        if room > 0 and wrong.any():
            idx = wrong.nonzero()[:room, 0]
            self._errors.append((images[idx].detach().cpu(), labels[idx].cpu(), predictions[idx].cpu()))

    def validation_records(self) -> dict[str, dict]:
        if not self._num_seen:
            return {}
        if self._errors:
            images, labels, predictions = (torch.cat(t) for t in zip(*self._errors))
        else:
            images, labels = torch.empty(0, *self.config.image_shape), torch.empty(0, dtype=torch.long)
            predictions = labels
        return {"misclassified": {"images": images.half(), "labels": labels, "predictions": predictions,
                                  "num_errors": self._num_errors, "num_seen": self._num_seen}}

    def sample(self) -> Optional[str]:
        if not self._num_seen:
            return None
        pairs = [f"{int(t)}->{int(p)}" for _, ts, ps in self._errors for t, p in zip(ts, ps)][:12]
        return (f"{self._num_errors} of {self._num_seen} validation images misclassified"
                + (f" (true->predicted: {', '.join(pairs)})" if pairs else ""))
