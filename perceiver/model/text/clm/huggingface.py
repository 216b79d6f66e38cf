"""Hugging Face wrapper of the causal language model (``text-generation`` pipeline, ``generate``, ``Trainer``, PEFT).

``generate`` keeps the Hugging Face calling convention (a ``GenerationConfig`` and/or keyword arguments:
``max_new_tokens``/``max_length``, ``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``eos_token_id``,
``use_cache``) plus ``num_latents``, and runs our kv-cached decoding loop
(:func:`perceiver.model.core.generation.generate`). Perceiver AR's window rule (the latent window grows, then the
prefix, then the window slides) does not fit the Hugging Face loop's append-only cache, so the loop is ours and greedy
output equals :meth:`CausalLanguageModel.generate` token for token. Beam search and other strategies are refused.

Dimensions:
    B: batch size
    N: input positions,  L: latent positions (N - prefix_len)
    V: vocabulary size
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from transformers import GenerationConfig, GenerationMixin
from transformers.generation.utils import GenerateDecoderOnlyOutput
from transformers.modeling_outputs import CausalLMOutputWithPast

from perceiver.model.core.perceiver_ar import KVCache
from perceiver.model.text.clm.backend import CausalLanguageModel, CausalLanguageModelConfig
from perceiver.model.core.presets import config_from_dict
from perceiver.model.text.huggingface import PerceiverBackendConfig, PerceiverPreTrainedModel

UNSUPPORTED = {"num_beams": 1, "num_return_sequences": 1, "num_beam_groups": 1, "penalty_alpha": None}


class PerceiverCausalLanguageModelConfig(PerceiverBackendConfig):
    """``model_config``: a :class:`CausalLanguageModelConfig` (or its dict)."""

    model_type = "perceiver-clm"

    @classmethod
    def default_backend_config(cls) -> CausalLanguageModelConfig:
        return CausalLanguageModelConfig.from_preset("clm-30.6m")

    @property
    def backend_config(self) -> CausalLanguageModelConfig:
        return config_from_dict(CausalLanguageModelConfig, self.model_config)


def left_pad_mask(attention_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Pad mask (B, N), True = pad, of a Hugging Face ``attention_mask``; padding must be on the left."""
    if attention_mask is None:
        return None
    pad_mask = attention_mask == 0
    if bool((pad_mask[:, 1:] & ~pad_mask[:, :-1]).any()):
        raise ValueError("Perceiver AR needs left padding: set tokenizer.padding_side = 'left'")
    return pad_mask


class PerceiverCausalLanguageModel(PerceiverPreTrainedModel, GenerationMixin):
    """Hugging Face ``PreTrainedModel`` around :class:`CausalLanguageModel`."""

    config_class = PerceiverCausalLanguageModelConfig
    backend_class = CausalLanguageModel
    padding_side = "left"  # Perceiver AR's latents sit at the end: batched prompts are padded on the left

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        prefix_len: Optional[int] = None,
        cache: Optional[KVCache] = None,
        use_cache: Optional[bool] = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Logits (B, L, V) of the latent positions of ``input_ids`` (B, N), left-padded where ``attention_mask`` is 0.

        ``prefix_len`` defaults to ``max(0, N - max_latents)``, the training split. ``labels`` (B, N) follow the
        Hugging Face convention (usually ``input_ids``; shifted inside, -100 is ignored, pads are ignored): the loss
        is that of predicting each latent position's next token. With ``use_cache`` a new :class:`KVCache` is
        returned as ``cache``; passing it back (as ``cache`` or ``past_key_values``) with only the new ids continues
        incrementally."""
        n = input_ids.shape[1]
        cache = kwargs.get("past_key_values") if cache is None else cache
        pad_mask = left_pad_mask(attention_mask)
        if cache is None and use_cache:
            cache = self.backend_model.init_cache()
        if prefix_len is None:
            prefix_len = max(0, n - self.backend_model.max_latents)
        out = self.backend_model(input_ids, prefix_len, pad_mask, cache)
        logits, cache = out if cache is not None else (out, None)  # (B, L, V)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if pad_mask is not None:
                labels = labels.masked_fill(pad_mask, -100)
            targets = labels[:, n - logits.shape[1] + 1 :]  # next tokens of the latent positions
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        generation_config: Optional[GenerationConfig] = None,
        num_latents: int = 1,
        generator: Optional[torch.Generator] = None,
        **kwargs,
    ):
        """Prompt ``input_ids`` (B, n0) followed by the generated tokens; see the module docstring. ``num_latents``
        is the number of prompt positions that start as latents (the rest is the prefix)."""
        for name in ("logits_processor", "stopping_criteria", "streamer", "assistant_model"):
            if kwargs.pop(name, None) is not None:
                raise ValueError(f"generate() of {type(self).__name__} does not support {name}")
        config, _ = self._prepare_generation_config(generation_config, **kwargs)
        for name, supported in UNSUPPORTED.items():
            if getattr(config, name, supported) not in (None, supported):
                raise ValueError(f"generate() of {type(self).__name__} supports greedy decoding and sampling only, "
                                 f"not {name}={getattr(config, name)}")
        n0 = input_ids.shape[1]
        max_new_tokens = config.max_new_tokens
        if max_new_tokens is None:
            max_new_tokens = max(0, (config.max_length or n0 + 20) - n0)
        eos = config.eos_token_id
        if isinstance(eos, (list, tuple)) or (torch.is_tensor(eos) and eos.dim() > 0):
            eos = [int(e) for e in eos]
            if len(eos) > 1:
                raise ValueError("generate() supports one eos_token_id")
            eos = eos[0] if eos else None
        sequences = self.backend_model.generate(
            input_ids, max_new_tokens, num_latents=num_latents, pad_mask=left_pad_mask(attention_mask),
            do_sample=bool(config.do_sample), temperature=config.temperature or 1.0, top_k=config.top_k,
            top_p=config.top_p, eos_token_id=None if eos is None else int(eos),
            use_cache=config.use_cache is not False, generator=generator,
        )
        return GenerateDecoderOnlyOutput(sequences=sequences) if config.return_dict_in_generate else sequences
