"""Perceiver IO text classifier."""

from perceiver.model.core.classifier import ClassificationDecoderConfig
from perceiver.model.text.classifier.backend import (
    TextClassifier,
    TextClassifierConfig,
    classify,
    query_attention,
)
from perceiver.model.text.mlm.backend import TextEncoderConfig


def __getattr__(name):
    # the Lightning wrapper is imported on first use, so the backend model needs no Lightning import
    if name == "LitTextClassifier":
        from perceiver.model.text.classifier.lightning import LitTextClassifier

        return LitTextClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ClassificationDecoderConfig", "LitTextClassifier", "TextClassifier", "TextClassifierConfig",
           "TextEncoderConfig", "classify", "query_attention"]
