"""Lightning module of the text classifier: loss, accuracy, the validation predictions (for the confusion matrix),
the classification query's attention over the input and classified sample texts."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from perceiver.model.core.classifier import ClassificationDecoderConfig
from perceiver.model.text.classifier.backend import TextClassifier, TextClassifierConfig, classify, query_attention
from perceiver.model.text.mlm.backend import TextEncoderConfig
from perceiver.model.text.classifier.predecessor import load_params  # + run dirs, 0.11 and Hugging Face formats
from perceiver.model.text.mlm.lightning import as_config
from perceiver.model.text.tokenizer import BYTE_TOKENIZER, token_labels
from perceiver.training.module import LitModel

DEFAULT_SAMPLES = [
    "What a wonderful film: the cast is superb and the story kept me smiling until the very end.",
    "Dull, predictable and far too long. I wanted to leave after twenty minutes.",
]


FIELD_HINTS = [  # parameter name (without or with "encoder.") -> the config fields that set its shape
    ("txt_embedding", "encoder.vocab_size / encoder.num_input_channels"),
    ("pos_embedding", "encoder.max_seq_len / encoder.num_input_channels"),
    ("latents", "num_latents / num_latent_channels"),
    ("decoder.output_query_provider", "decoder.num_output_query_channels"),
    ("decoder.output_adapter", "decoder.num_classes / decoder.num_output_query_channels"),
    ("decoder.cross_attn", "decoder.num_cross_attention_qk_channels / num_cross_attention_v_channels / "
                           "num_output_query_channels"),
    ("cross_attn_", "encoder.num_cross_attention_qk_channels / num_cross_attention_v_channels / num_latent_channels"),
    ("self_attn_", "encoder.num_self_attention_qk_channels / num_self_attention_v_channels / num_latent_channels"),
]


def field_hint(name: str, problem: str = "shape") -> str:
    """The config field behind a parameter name, for load errors (``problem``: shape, or a missing/unexpected
    parameter)."""
    if problem != "shape":
        return "the model type (a masked language model's encoder, or a text classifier?)"
    return next((field for key, field in FIELD_HINTS if key in name), "the model config")


def load_encoder_params(model: TextClassifier, source: str) -> None:
    """Initialize the encoder of ``model`` from ``source``: a checkpoint, saved directory or run directory of our
    masked language model (or classifier), a perceiver-io 0.11 MLM directory or checkpoint, or DeepMind's weights (a
    local ``PerceiverForMaskedLM`` directory, or the Hub id ``deepmind/language-perceiver`` when online)."""
    load_params(model.encoder, source, field_hint, prefix="encoder.")


class LitTextClassifier(LitModel):
    """Lightning wrapper of :class:`TextClassifier`. Takes the encoder and decoder configs and the remaining
    :class:`TextClassifierConfig` fields (``num_latents``, ``num_latent_channels``, ...) as keyword arguments.

    ``encoder.params`` initializes the encoder from a pretrained masked language model (see
    :func:`load_encoder_params`); with ``encoder.freeze`` only the decoder trains (the first stage of fine-tuning).

    Args:
        encoder: encoder config.
        decoder: classification decoder config.
        params: pretrained weights of the whole classifier (see :class:`perceiver.training.LitModel`).
        tokenizer: tokenizer of the sample texts.
        samples: texts classified after each validation and logged (None: two short movie reviews).
        compile: wrap the model's forward in ``torch.compile``.
    """

    def __init__(
        self,
        encoder: TextEncoderConfig,
        decoder: ClassificationDecoderConfig,
        *,
        params: Optional[str] = None,
        tokenizer: str = BYTE_TOKENIZER,
        samples: Optional[list[str]] = None,
        compile: bool = False,
        **kwargs,
    ):
        super().__init__(params=params, tokenizer=tokenizer, compile=compile)
        self.config = TextClassifierConfig(
            as_config(TextEncoderConfig, encoder), as_config(ClassificationDecoderConfig, decoder), **kwargs
        )
        self.samples = DEFAULT_SAMPLES if samples is None else samples
        hparams_config = dataclasses.asdict(self.config)
        hparams_config["encoder"]["params"] = None
        self.save_hyperparameters(
            # weights come from the checkpoint itself, so loading it must not fetch ``params`` again
            {**hparams_config, "params": None, "tokenizer": tokenizer, "samples": samples, "compile": compile}
        )
        self.model = TextClassifier(self.config)
        if self.config.encoder.params is not None:
            load_encoder_params(self.model, self.config.encoder.params)
        if params is not None:
            load_params(self.model, params, field_hint)
        self._val_predictions: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []
        self.last_validation: Optional[dict] = None

    @classmethod
    def create(cls, config: TextClassifierConfig, **kwargs) -> "LitTextClassifier":
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        return cls(**fields, **kwargs)

    @property
    def class_names(self) -> list[str]:
        return self.config.class_names or [str(i) for i in range(self.config.num_classes)]

    def forward_batch(self, batch: dict) -> torch.Tensor:
        """Logits (B, K)."""
        return self.model(batch["input_ids"], pad_mask=batch.get("pad_mask"))

    def loss_and_metrics(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.forward_batch(batch)  # (B, K)
        labels = batch["labels"]
        predictions = logits.argmax(dim=-1)
        self.last_predictions = predictions.detach()
        loss = F.cross_entropy(logits, labels)
        return loss, {"accuracy": (predictions == labels).float().mean()}

    # --- validation predictions (the confusion matrix of the run directory) ---------------------------------------

    def on_validation_epoch_start(self) -> None:
        self._val_predictions, self._val_labels = [], []

    def on_validation_batch_end(self, outputs, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._val_predictions.append(self.last_predictions)
        self._val_labels.append(batch["labels"].detach())

    def on_validation_epoch_end(self) -> None:
        if self._val_labels and not self.trainer.sanity_checking:
            # every rank's predictions (DistributedSampler gives each rank the same number of examples)
            predictions = self.all_gather(torch.cat(self._val_predictions)).reshape(-1)
            labels = self.all_gather(torch.cat(self._val_labels)).reshape(-1)
            self.last_validation = {"labels": labels.cpu().numpy(), "predictions": predictions.cpu().numpy(),
                                    "class_names": np.array(self.class_names)}
        super().on_validation_epoch_end()

    def validation_records(self) -> dict[str, dict]:
        """The labels and predictions (arrays over the validation examples) of the last validation and the class
        names, which the run journal saves as ``records/predictions/step-<k>.npz`` for the confusion matrix."""
        return {} if self.last_validation is None else {"predictions": self.last_validation}

    # --- what the workbench shows ---------------------------------------------------------------------------------

    @torch.no_grad()
    def attention_maps(self, batch: dict) -> Optional[dict]:
        """The classification query's attention over the input positions of a one-example ``batch`` (see
        :func:`perceiver.model.text.classifier.query_attention`): weights (H, O, M) with one label per position."""
        was_training = self.model.training
        self.model.eval()
        try:
            weights = query_attention(self.model, batch["input_ids"], batch.get("pad_mask"))[0]
        finally:
            self.model.train(was_training)
        labels = token_labels(self.tokenizer, batch["input_ids"][0].tolist())
        return {"weights": weights, "labels": labels, "title": self.model.plotted_attention_title}

    def sample(self) -> Optional[str]:
        if not self.samples:
            return None
        probs = classify(self.model, self.tokenizer, self.samples)
        names = self.class_names
        lines = [f"{names[int(p.argmax())]} ({float(p.max()):.2f}): {text}" for p, text in zip(probs, self.samples)]
        return "\n".join(lines)
