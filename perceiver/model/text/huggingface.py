"""Hugging Face interface of the text models: the shared base of the ``PreTrainedModel`` wrappers and the explicit
registration with the ``Auto*`` classes.

A wrapper holds the backend model as ``backend_model``, so its weights are saved as ``backend_model.<backend key>``
(``model.safetensors``) next to a ``config.json`` whose ``model_config`` is the backend config as a nested dict, and
the tokenizer (``config.tokenizer_name``, the byte tokenizer by default): a saved directory is self-contained, so
``pipeline("fill-mask", model=<dir>)`` needs nothing else. Such a directory is also what ``--model.params`` and
:func:`perceiver.model.core.params.load_params` read.

Nothing is registered on import. :func:`register_auto_classes` registers the wrappers with ``AutoConfig``,
``AutoModelForMaskedLM``, ``AutoModelForCausalLM``, ``AutoModelForSequenceClassification`` and the pipelines; creating
a wrapper calls it (idempotent), so a wrapper object goes into ``pipeline(...)`` as it is. Call it yourself to load a
directory by name before any wrapper exists.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch.nn as nn
from transformers import PretrainedConfig, PreTrainedModel

from perceiver.model.core.layers import set_activation_checkpointing
from perceiver.model.text.tokenizer import BYTE_TOKENIZER, load_tokenizer


class PerceiverBackendConfig(PretrainedConfig):
    """A ``PretrainedConfig`` that carries a backend config dataclass as the nested dict ``model_config`` (a dataclass
    instance is accepted too). Subclasses define ``default_backend_config`` and ``backend_config``."""

    model_config: Optional[dict] = None
    tokenizer_name: Optional[str] = BYTE_TOKENIZER
    """The tokenizer of the model (a Hub id or a local directory), saved beside it by ``save_pretrained``; None for a
    model without a Hugging Face tokenizer (images, MIDI events)."""

    def __post_init__(self, **kwargs):
        if self.model_config is None:
            self.model_config = self.default_backend_config()
        if dataclasses.is_dataclass(self.model_config):
            self.model_config = dataclasses.asdict(self.model_config)
        super().__post_init__(**kwargs)
        self.backend_config  # noqa: B018  (validates now, naming the offending field)

    @classmethod
    def default_backend_config(cls):
        raise NotImplementedError

    @property
    def backend_config(self):
        """The backend config dataclass."""
        raise NotImplementedError


class PerceiverPreTrainedModel(PreTrainedModel):
    """Base of the wrappers: the backend model initializes its own weights (``init_scale``), so Hugging Face's
    initialization is a no-op, and :meth:`from_backend` wraps an existing backend model.

    The token embedding is the backend's (``get_input_embeddings``/``set_input_embeddings``), so transformers'
    ``resize_token_embeddings`` (the output projection, tied or not, and its bias follow; ``config.model_config``
    gets the new ``vocab_size``) and ``enable_input_require_grads`` work, and ``gradient_checkpointing_enable``
    switches on the backend's per-layer activation checkpointing (for PEFT with gradient checkpointing).
    """

    base_model_prefix = "backend_model"
    backend_class: type[nn.Module]
    supports_gradient_checkpointing = True
    padding_side: Optional[str] = None
    """Padding side of the saved tokenizer, if the model needs one."""

    def __init__(self, config: PerceiverBackendConfig, backend_model: nn.Module | None = None):
        register_auto_classes()  # so that pipelines take this object (and AutoModel* its saved directory)
        super().__init__(config)
        self.backend_model = backend_model if backend_model is not None else self.backend_class(config.backend_config)
        self.post_init()

    def load_tokenizer(self):
        """The model's tokenizer (``config.tokenizer_name``; None if it has none)."""
        if not self.config.tokenizer_name:
            return None
        kwargs = {"padding_side": self.padding_side} if self.padding_side else {}  # init kwargs are what it saves
        return load_tokenizer(self.config.tokenizer_name, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Hugging Face's ``save_pretrained``, plus the tokenizer: the directory is all a pipeline needs."""
        super().save_pretrained(save_directory, *args, **kwargs)
        tokenizer = self.load_tokenizer() if kwargs.get("is_main_process", True) else None
        if tokenizer is not None:
            tokenizer.save_pretrained(save_directory)

    def _init_weights(self, module: nn.Module) -> None:
        pass

    @classmethod
    def from_backend(cls, backend_model: nn.Module, **config_kwargs):
        """Wrap ``backend_model`` (its weights are shared, not copied)."""
        return cls(cls.config_class(model_config=backend_model.config, **config_kwargs), backend_model)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.backend_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.backend_model.set_input_embeddings(value)
        self.config.model_config = dataclasses.asdict(self.backend_model.config)  # saved with the new vocab_size

    def get_output_embeddings(self) -> Optional[nn.Module]:
        """The untied output projection, if the backend has one (a tied one follows the input embedding)."""
        getter = getattr(self.backend_model, "get_output_embeddings", None)
        return getter() if getter is not None else None

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.backend_model.set_output_embeddings(value)

    def _set_gradient_checkpointing(self, enable: bool = True, gradient_checkpointing_func=None, every_n_layers=1):
        # the backend checkpoints each layer with torch's non-reentrant checkpoint; the function passed is not used
        set_activation_checkpointing(self.backend_model, enable)


def register_auto_classes() -> None:
    """Register the wrappers with ``AutoConfig``, ``AutoModelForMaskedLM``, ``AutoModelForCausalLM`` and
    ``AutoModelForSequenceClassification`` (idempotent).

    Afterwards ``AutoModelForMaskedLM.from_pretrained(dir)`` and ``pipeline("fill-mask", model=dir)`` (and the
    causal and text-classification counterparts) work on directories saved by the wrappers. The text-generation
    pipeline checks a model's class name against transformers' static table of causal language models (not against
    the registered classes) and otherwise logs "not supported for text-generation" with ~200 names; the causal wrapper
    is added to that table too."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from perceiver.model.text.classifier.huggingface import PerceiverTextClassifier, PerceiverTextClassifierConfig
    from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModel, PerceiverCausalLanguageModelConfig
    from perceiver.model.text.mlm.huggingface import PerceiverMaskedLanguageModel, PerceiverMaskedLanguageModelConfig

    for config, model, auto in (
        (PerceiverMaskedLanguageModelConfig, PerceiverMaskedLanguageModel, AutoModelForMaskedLM),
        (PerceiverCausalLanguageModelConfig, PerceiverCausalLanguageModel, AutoModelForCausalLM),
        (PerceiverTextClassifierConfig, PerceiverTextClassifier, AutoModelForSequenceClassification),
    ):
        AutoConfig.register(config.model_type, config, exist_ok=True)
        auto.register(config, model, exist_ok=True)
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.setdefault(PerceiverCausalLanguageModelConfig.model_type,
                                                 PerceiverCausalLanguageModel.__name__)
