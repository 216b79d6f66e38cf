"""Hugging Face wrapper of the masked language model (``fill-mask`` pipeline, ``Trainer``, PEFT).

Dimensions:
    B: batch size
    M: input positions
    V: vocabulary size
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import MaskedLMOutput

from perceiver.model.core.presets import config_from_dict
from perceiver.model.text.huggingface import PerceiverBackendConfig, PerceiverPreTrainedModel
from perceiver.model.text.mlm.backend import (
    MaskedLanguageModel,
    MaskedLanguageModelConfig,
)


class PerceiverMaskedLanguageModelConfig(PerceiverBackendConfig):
    """``model_config``: a :class:`MaskedLanguageModelConfig` (or its nested dict)."""

    model_type = "perceiver-mlm"

    @classmethod
    def default_backend_config(cls) -> MaskedLanguageModelConfig:
        return MaskedLanguageModelConfig.from_preset("deepmind-201m")

    @property
    def backend_config(self) -> MaskedLanguageModelConfig:
        return config_from_dict(MaskedLanguageModelConfig, self.model_config)


class PerceiverMaskedLanguageModel(PerceiverPreTrainedModel):
    """Hugging Face ``PreTrainedModel`` around :class:`MaskedLanguageModel`."""

    config_class = PerceiverMaskedLanguageModelConfig
    backend_class = MaskedLanguageModel

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> MaskedLMOutput:
        """Logits (B, M, V) of ``input_ids`` (B, M); ``attention_mask`` (B, M) is 0 at padding. With ``labels``
        (B, M; -100 at positions not to predict), also the cross-entropy ``loss``."""
        pad_mask = None if attention_mask is None else attention_mask == 0
        logits = self.backend_model(input_ids, pad_mask=pad_mask)  # (B, M, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten().to(logits.device), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits)
