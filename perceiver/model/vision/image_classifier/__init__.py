"""Perceiver IO image classifier."""

from perceiver.model.core.classifier import ClassificationDecoderConfig
from perceiver.model.vision.image_classifier.backend import (
    ImageClassifier,
    ImageClassifierConfig,
    ImageEncoderConfig,
    ImageInputAdapter,
)


def __getattr__(name):
    # the Lightning wrapper is imported on first use, so the backend model needs no Lightning import
    if name == "LitImageClassifier":
        from perceiver.model.vision.image_classifier.lightning import LitImageClassifier

        return LitImageClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ClassificationDecoderConfig", "ImageClassifier", "ImageClassifierConfig", "ImageEncoderConfig",
           "ImageInputAdapter", "LitImageClassifier"]
