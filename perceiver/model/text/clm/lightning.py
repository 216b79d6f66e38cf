"""Lightning module of the causal language model: loss, bits per byte, perplexity and generated samples."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch
import torch.nn.functional as F

from perceiver.model.text.predecessor import load_params  # core load_params + perceiver-io 0.11 formats
from perceiver.model.text.clm.backend import CausalLanguageModel, CausalLanguageModelConfig
from perceiver.model.text.clm.text import generate_text
from perceiver.model.text.tokenizer import BYTE_TOKENIZER
from perceiver.training.module import LitModel


def field_hint(name: str) -> str:
    hints = [
        ("txt_embedding", "vocab_size / num_channels"),
        ("pos_embedding", "max_seq_len / abs_pos_emb"),
        ("output_adapter", "vocab_size / output_bias"),
        ("out_norm", "output_norm"),
        ("mlp", "cross_attention_widening_factor / self_attention_widening_factor"),
    ]
    return next((field for key, field in hints if key in name), "num_channels / num_heads / num_self_attention_layers")


class LitCausalLanguageModel(LitModel):
    """Lightning wrapper of :class:`CausalLanguageModel`. Takes the :class:`CausalLanguageModelConfig` fields as
    keyword arguments. Training uses ``prefix_len = N - max_latents`` (all positions are latents for inputs not
    longer than ``max_latents``).

    Args:
        params: pretrained weights (see :class:`perceiver.training.LitModel`).
        tokenizer: tokenizer for validation samples.
        validation_sample_prompt: prompt of the text sample generated (kv-cached) after each validation.
        validation_sample_length: number of tokens of that sample.
        compile: wrap the model's forward in ``torch.compile``.
    """

    def __init__(
        self,
        *,
        params: Optional[str] = None,
        tokenizer: str = BYTE_TOKENIZER,
        validation_sample_prompt: Optional[str] = "A man",
        validation_sample_length: int = 64,
        compile: bool = False,
        **kwargs,
    ):
        super().__init__(params=params, tokenizer=tokenizer, compile=compile)
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
            load_params(self.model, params, field_hint)

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
        prompt, so_far = self.validation_sample_prompt, [self.validation_sample_prompt]

        def on_text(piece: str) -> None:  # streamed: the callback sees the text so far
            so_far.append(piece)
            self.sample_callback("".join(so_far))

        text = generate_text(
            self.model, self.tokenizer, prompt, self.validation_sample_length,
            on_text=None if self.sample_callback is None else on_text,
            do_sample=True, top_k=10, generator=generator,
        )
        return prompt + text
