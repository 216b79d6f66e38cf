"""Hugging Face wrapper of the text classifier (``text-classification`` pipeline, ``Trainer``, PEFT).

Dimensions:
    B: batch size
    M: input positions
    K: classes
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

from perceiver.model.core.presets import config_from_dict
from perceiver.model.text.classifier.backend import TextClassifier, TextClassifierConfig
from perceiver.model.text.huggingface import PerceiverBackendConfig, PerceiverPreTrainedModel


class PerceiverTextClassifierConfig(PerceiverBackendConfig):
    """``model_config``: a :class:`TextClassifierConfig` (or its nested dict). ``id2label``/``label2id`` follow the
    backend config's ``class_names`` (``LABEL_<i>`` without names), so pipelines name the classes."""

    model_type = "perceiver-text-classifier"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        config = self.backend_config
        names = config.class_names or [f"LABEL_{i}" for i in range(config.num_classes)]
        self.id2label = dict(enumerate(names))
        self.label2id = {name: i for i, name in enumerate(names)}

    @classmethod
    def default_backend_config(cls) -> TextClassifierConfig:
        return TextClassifierConfig.from_preset("deepmind-encoder")

    @property
    def backend_config(self) -> TextClassifierConfig:
        return config_from_dict(TextClassifierConfig, self.model_config)


class PerceiverTextClassifier(PerceiverPreTrainedModel):
    """Hugging Face ``PreTrainedModel`` around :class:`TextClassifier`."""

    config_class = PerceiverTextClassifierConfig
    backend_class = TextClassifier

    def get_input_embeddings(self) -> nn.Embedding:
        return self.backend_model.encoder.input_adapter.txt_embedding

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """Logits (B, K) of ``input_ids`` (B, M); ``attention_mask`` (B, M) is 0 at padding. With ``labels`` (B,),
        also the cross-entropy ``loss``."""
        pad_mask = None if attention_mask is None else attention_mask == 0
        logits = self.backend_model(input_ids, pad_mask=pad_mask)  # (B, K)
        loss = None if labels is None else F.cross_entropy(logits, labels.to(logits.device))
        return SequenceClassifierOutput(loss=loss, logits=logits)
