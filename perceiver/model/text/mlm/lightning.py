"""Lightning module of the masked language model: loss, masked-token accuracy and fill-mask samples."""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

import torch
import torch.nn.functional as F

from perceiver.model.text.predecessor import load_params  # core load_params + perceiver-io 0.11 formats
from perceiver.model.text.mlm.backend import (
    MaskedLanguageModel,
    MaskedLanguageModelConfig,
    TextDecoderConfig,
    TextEncoderConfig,
)
from perceiver.model.text.mlm.fill import fill_masks
from perceiver.model.text.tokenizer import BYTE_TOKENIZER
from perceiver.training.module import LitModel

DEFAULT_MASKED_SAMPLES = ["The capital of France is [MASK][MASK][MASK][MASK][MASK] and it is a beautiful city."]


# (parameter name pattern, config field behind its shape, config field behind its presence), first match wins
FIELD_HINTS = [
    (r"txt_embedding", "encoder.vocab_size / encoder.num_input_channels", "encoder.vocab_size"),
    (r"pos_embedding", "encoder.max_seq_len / encoder.num_input_channels", "encoder.max_seq_len"),
    (r"^encoder\.latents", "num_latents / num_latent_channels", "num_latents"),
    (r"output_query_provider", "decoder.max_seq_len / decoder.num_output_query_channels", "decoder.max_seq_len"),
    (r"^decoder\.output_adapter", "decoder.vocab_size / decoder.num_output_query_channels",
     "decoder.num_output_query_channels (None ties the output to the input embedding)"),
    (r"^encoder\.cross_attn_n", "encoder.num_cross_attention_qk_channels / num_cross_attention_v_channels",
     "encoder.num_cross_attention_layers / encoder.first_cross_attention_layer_shared"),
    (r"^encoder\.self_attn_n", "encoder.num_self_attention_qk_channels / num_self_attention_v_channels",
     "encoder.num_self_attention_blocks / encoder.first_self_attention_block_shared"),
    (r"^encoder\.cross_attn.*mlp", "encoder.cross_attention_widening_factor / num_latent_channels", "the model type"),
    (r"^encoder\.self_attn.*mlp", "encoder.self_attention_widening_factor / num_latent_channels",
     "encoder.num_self_attention_layers_per_block"),
    (r"^encoder\.cross_attn", "encoder.num_cross_attention_qk_channels / num_cross_attention_v_channels",
     "the model type"),
    (r"^encoder\.self_attn", "encoder.num_self_attention_qk_channels / num_self_attention_v_channels",
     "encoder.num_self_attention_layers_per_block"),
    (r"^decoder\.cross_attn.*mlp", "decoder.cross_attention_widening_factor", "the model type"),
    (r"^decoder\.cross_attn", "decoder.num_cross_attention_qk_channels / num_cross_attention_v_channels",
     "the model type"),
]


def field_hint(name: str, problem: str = "shape") -> str:
    """The config field behind parameter ``name`` for a ``problem`` of ``load_params`` (shape, missing,
    unexpected)."""
    for pattern, shape_field, presence_field in FIELD_HINTS:
        if re.search(pattern, name):
            return shape_field if problem == "shape" else presence_field
    return "the model config" if problem == "shape" else "the model type (is it a masked language model?)"


def as_config(cls, value):
    return value if isinstance(value, cls) else cls(**value)


class LitMaskedLanguageModel(LitModel):
    """Lightning wrapper of :class:`MaskedLanguageModel`. Takes the encoder and decoder configs and the remaining
    :class:`MaskedLanguageModelConfig` fields (``num_latents``, ``num_latent_channels``, ...) as keyword arguments.

    Args:
        encoder: encoder config.
        decoder: decoder config.
        params: pretrained weights (see :class:`perceiver.training.LitModel`).
        params_strict: refuse weights that do not match the model exactly (see :class:`perceiver.training.LitModel`).
        tokenizer: tokenizer for validation samples.
        masked_samples: texts with ``[MASK]`` bytes filled after each validation and logged.
        unmasked_loss_weight: weight of a second loss term, cross-entropy at the input positions that are not
            targets (the model reconstructs what it was given). 0 (default) is plain masked language modelling.
            A small weight gives the latents a dense signal for carrying every position through the bottleneck:
            small models trained for minutes otherwise stay at the unigram solution (``docs/demo-tuning.md``). The
            logged ``loss`` is the sum; ``masked_loss`` is the masked term alone.
        compile: wrap the model's forward in ``torch.compile``.
    """

    field_hint = staticmethod(field_hint)

    def __init__(
        self,
        encoder: TextEncoderConfig,
        decoder: TextDecoderConfig,
        *,
        params: Optional[str] = None,
        params_strict: bool = True,
        tokenizer: str = BYTE_TOKENIZER,
        masked_samples: Optional[list[str]] = None,
        unmasked_loss_weight: float = 0.0,
        compile: bool = False,
        **kwargs,
    ):
        if not unmasked_loss_weight >= 0.0:
            raise ValueError(f"unmasked_loss_weight must be >= 0 (0: masked language modelling only), "
                             f"got {unmasked_loss_weight}")
        super().__init__(params=params, params_strict=params_strict, tokenizer=tokenizer, compile=compile)
        self.config = MaskedLanguageModelConfig(
            as_config(TextEncoderConfig, encoder), as_config(TextDecoderConfig, decoder), **kwargs
        )
        self.masked_samples = DEFAULT_MASKED_SAMPLES if masked_samples is None else masked_samples
        self.unmasked_loss_weight = float(unmasked_loss_weight)
        hparams_config = dataclasses.asdict(self.config)
        hparams_config["encoder"]["params"] = None
        self.save_hyperparameters(
            # weights come from the checkpoint itself, so loading it must not fetch ``params`` again
            {**hparams_config, "params": None, "tokenizer": tokenizer,
             "masked_samples": masked_samples, "unmasked_loss_weight": unmasked_loss_weight, "compile": compile}
        )
        self.model = MaskedLanguageModel(self.config)
        if self.config.encoder.params is not None:
            load_params(self.model.encoder, self.config.encoder.params, field_hint, prefix="encoder.",
                        strict=params_strict)
        if params is not None:
            load_params(self.model, params, field_hint, strict=params_strict)

    @classmethod
    def create(cls, config: MaskedLanguageModelConfig, **kwargs) -> "LitMaskedLanguageModel":
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        return cls(**fields, **kwargs)

    def forward_batch(self, batch: dict) -> torch.Tensor:
        """Logits (B, N, V) for every input position."""
        return self.model(batch["input_ids"], pad_mask=batch.get("pad_mask"))

    def loss_and_metrics(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.forward_batch(batch)  # (B, N, V)
        labels = batch["labels"]
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        targets = labels != -100
        accuracy = (logits.argmax(dim=-1)[targets] == labels[targets]).float().mean()
        if not self.unmasked_loss_weight:
            return loss, {"masked_accuracy": accuracy}
        given = batch["input_ids"].masked_fill(targets, -100)  # (B, N): the inputs that are not targets
        if batch.get("pad_mask") is not None:
            given = given.masked_fill(batch["pad_mask"], -100)
        unmasked = F.cross_entropy(logits.flatten(0, 1), given.flatten(), ignore_index=-100)
        return loss + self.unmasked_loss_weight * unmasked, {"masked_accuracy": accuracy, "masked_loss": loss}

    def sample(self) -> Optional[str]:
        if not self.masked_samples:
            return None
        filled = fill_masks(self.model, self.tokenizer, self.masked_samples)
        return "\n".join(f"{src}\n-> {out}" for src, out in zip(self.masked_samples, filled))
