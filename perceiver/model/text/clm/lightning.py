"""Lightning module of the causal language model: loss, bits per byte, perplexity and generated samples."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional

import torch
import torch.nn.functional as F

from perceiver.model.core.config import ConfigError
from perceiver.model.text.predecessor import load_params  # core load_params + perceiver-io 0.11 formats
from perceiver.model.text.clm.backend import CausalLanguageModel, CausalLanguageModelConfig
from perceiver.model.text.clm.text import generate_text
from perceiver.model.text.tokenizer import BYTE_TOKENIZER
from perceiver.training.module import LitModel


# (parameter name pattern, config field behind its shape, config field behind its presence), first match wins
FIELD_HINTS = [
    (r"txt_embedding", "vocab_size / num_channels", "vocab_size"),
    (r"pos_embedding", "max_seq_len / num_channels", "abs_pos_emb"),
    (r"^output_adapter\.bias", "vocab_size", "output_bias"),
    (r"^out_norm", "num_channels", "output_norm"),
    (r"^cross_attn\.mlp", "cross_attention_widening_factor / num_channels", "num_channels / num_heads"),
    (r"^self_attn\.layers\.\d+\.mlp", "self_attention_widening_factor / num_channels", "num_self_attention_layers"),
    (r"^self_attn\.layers\.", "num_channels / num_heads", "num_self_attention_layers"),
]


def field_hint(name: str, problem: str = "shape") -> str:
    """The config field behind parameter ``name`` for a ``problem`` of ``load_params`` (shape, missing,
    unexpected)."""
    for pattern, shape_field, presence_field in FIELD_HINTS:
        if re.search(pattern, name):
            return shape_field if problem == "shape" else presence_field
    return "num_channels / num_heads" if problem == "shape" else "the model type (is it a causal language model?)"


MAX_LATENTS_DEFAULT = next(f.default for f in dataclasses.fields(CausalLanguageModelConfig) if f.name == "max_latents")


def resolve_num_latents(num_latents: Optional[int], fields: dict) -> None:
    """Resolve the alias ``num_latents`` into ``fields["max_latents"]`` (in place: the Lightning CLI reads the
    model's arguments from ``CausalLanguageModelConfig(**kwargs)`` in ``__init__``)."""
    if num_latents is None:
        return
    max_latents = fields.get("max_latents", MAX_LATENTS_DEFAULT)
    if max_latents != num_latents and max_latents != MAX_LATENTS_DEFAULT:
        raise ConfigError(
            "LitCausalLanguageModel", "num_latents",
            f"({num_latents}) is an alias of max_latents, which is set to {max_latents}: set only one of "
            f"--model.num_latents and --model.max_latents (or give both the same value)",
        )
    fields["max_latents"] = num_latents


class LitCausalLanguageModel(LitModel):
    """Lightning wrapper of :class:`CausalLanguageModel`. Takes the :class:`CausalLanguageModelConfig` fields as
    keyword arguments. Training uses ``prefix_len = N - max_latents`` (all positions are latents for inputs not
    longer than ``max_latents``).

    Args:
        num_latents: alias of ``max_latents`` (the name perceiver-io's documented training script sets with
            ``parser.set_defaults({"model.num_latents": 512, ...})``). ``None``: use ``max_latents``. Setting both to
            different values is an error, unless ``max_latents`` has its default (then ``num_latents`` wins).
        params: pretrained weights (see :class:`perceiver.training.LitModel`).
        params_strict: refuse weights that do not match the model exactly (see :class:`perceiver.training.LitModel`).
        tokenizer: tokenizer for validation samples.
        validation_sample_prompt: prompt of the text sample generated (kv-cached) after each validation.
        validation_sample_length: number of tokens of that sample.
        compile: wrap the model's forward in ``torch.compile``.
    """

    field_hint = staticmethod(field_hint)

    def __init__(
        self,
        *,
        num_latents: Optional[int] = None,
        params: Optional[str] = None,
        params_strict: bool = True,
        tokenizer: str = BYTE_TOKENIZER,
        validation_sample_prompt: Optional[str] = "A man",
        validation_sample_length: int = 64,
        compile: bool = False,
        **kwargs,
    ):
        super().__init__(params=params, params_strict=params_strict, tokenizer=tokenizer, compile=compile)
        resolve_num_latents(num_latents, kwargs)
        self.config = CausalLanguageModelConfig(**kwargs)
        self.validation_sample_prompt = validation_sample_prompt
        self.validation_sample_length = validation_sample_length
        self.save_hyperparameters(
            # weights come from the checkpoint itself, so loading it must not fetch ``params`` again
            {**dataclasses.asdict(self.config), "params": None, "tokenizer": tokenizer,
             "validation_sample_prompt": validation_sample_prompt,
             "validation_sample_length": validation_sample_length, "compile": compile}
        )
        self.model = CausalLanguageModel(self.config)
        self.bits_per_token = 1.0 / math.log(2)  # bits per byte for the byte tokenizer
        if params is not None:
            load_params(self.model, params, field_hint, strict=params_strict)

    @classmethod
    def create(cls, config: CausalLanguageModelConfig, **kwargs) -> "LitCausalLanguageModel":
        return cls(**dataclasses.asdict(config), **kwargs)

    def forward_batch(self, batch: dict) -> torch.Tensor:
        """Logits (B, L, V) of the latent positions, the last ``min(N, max_latents)`` of the N inputs."""
        x = batch["input_ids"]
        return self.model(x, prefix_len=max(0, x.shape[1] - self.config.max_latents), pad_mask=batch.get("pad_mask"))

    def loss_and_metrics(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, labels, pad_mask = batch["input_ids"], batch["labels"], batch.get("pad_mask")
        prefix_len = max(0, x.shape[1] - self.config.max_latents)
        logits = self.forward_batch(batch)  # (B, L, V)
        labels = labels[:, prefix_len:]
        if pad_mask is not None:
            labels = labels.masked_fill(pad_mask[:, prefix_len:], -100)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return loss, {"bpb": loss.detach() * self.bits_per_token, "ppl": loss.detach().exp()}

    def sample(self) -> Optional[str]:
        if not self.validation_sample_prompt:
            return None
        generator = torch.Generator(device=self.device).manual_seed(0)
        text = generate_text(
            self.model, self.tokenizer, self.validation_sample_prompt, self.validation_sample_length,
            do_sample=True, top_k=10, generator=generator,
        )
        return self.validation_sample_prompt + text
