"""Lightning module of the symbolic audio model: next-event loss and accuracy, and a generated piece after each
validation (as event text, which the workbench draws as a piano roll and plays)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F

from perceiver.model.audio.symbolic.backend import SymbolicAudioModel, SymbolicAudioModelConfig
from perceiver.model.audio.symbolic.events import to_text
from perceiver.model.audio.symbolic.midi import MidiTokenizer
from perceiver.model.text.clm.lightning import field_hint
from perceiver.model.text.predecessor import load_params  # core load_params + perceiver-io 0.11 formats
from perceiver.training.module import LitModel


class LitSymbolicAudioModel(LitModel):
    """Lightning wrapper of :class:`SymbolicAudioModel`. Takes the :class:`SymbolicAudioModelConfig` fields as
    keyword arguments. Training uses ``prefix_len = N - max_latents`` (all positions are latents for inputs not
    longer than ``max_latents``).

    Args:
        params: pretrained weights: a checkpoint or model directory of this library or of perceiver-io 0.11.
        validation_sample_prompt: prompt of the piece generated after each validation: event text, a MIDI file,
            or ``chorale:<name>`` (see ``perceiver.model.audio.symbolic.music.prompt_ids``); None: no sample.
        validation_sample_length: number of events generated for that piece.
        compile: wrap the model's forward in ``torch.compile``.
    """

    def __init__(
        self,
        *,
        params: Optional[str] = None,
        validation_sample_prompt: Optional[str] = "v22",
        validation_sample_length: int = 256,
        compile: bool = False,
        **kwargs,
    ):
        super().__init__(params=params, tokenizer="midi-events", compile=compile)
        self.config = SymbolicAudioModelConfig(**kwargs)
        self.validation_sample_prompt = validation_sample_prompt
        self.validation_sample_length = validation_sample_length
        self.save_hyperparameters(
            # weights come from the checkpoint itself, so loading it must not fetch ``params`` again
            {**dataclasses.asdict(self.config), "params": None, "validation_sample_prompt": validation_sample_prompt,
             "validation_sample_length": validation_sample_length, "compile": compile}
        )
        self.model = SymbolicAudioModel(self.config)
        if params is not None:
            load_params(self.model, params, field_hint)

    @classmethod
    def create(cls, config: SymbolicAudioModelConfig, **kwargs) -> "LitSymbolicAudioModel":
        return cls(**dataclasses.asdict(config), **kwargs)

    @property
    def tokenizer(self) -> MidiTokenizer:
        return MidiTokenizer()

    def token_labels(self, ids: list[int]) -> list[str]:
        return to_text(ids).split()

    def forward_batch(self, batch: dict) -> torch.Tensor:
        """Logits (B, L, V) of the latent positions, the last ``min(N, max_latents)`` of the N inputs."""
        x = batch["input_ids"]
        return self.model(x, prefix_len=max(0, x.shape[1] - self.config.max_latents), pad_mask=batch.get("pad_mask"))

    def loss_and_metrics(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy per event (nats) of the latent positions, and next-event accuracy."""
        x, labels, pad_mask = batch["input_ids"], batch["labels"], batch.get("pad_mask")
        prefix_len = max(0, x.shape[1] - self.config.max_latents)
        logits = self.forward_batch(batch)  # (B, L, V)
        labels = labels[:, prefix_len:]
        if pad_mask is not None:
            labels = labels.masked_fill(pad_mask[:, prefix_len:], -100)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        target = labels != -100
        acc = (logits.argmax(-1) == labels)[target].float().mean() if bool(target.any()) else loss.new_zeros(())
        return loss, {"acc": acc.detach()}

    def sample(self) -> Optional[str]:
        """Event text of the prompt and ``validation_sample_length`` sampled events (seeded: the same at every
        validation for the same weights)."""
        if not self.validation_sample_prompt:
            return None
        from perceiver.model.audio.symbolic.music import generate_music

        piece = generate_music(self.model, self.validation_sample_prompt, self.validation_sample_length,
                               prompt_events=self.config.max_seq_len // 2, seed=0)[0]
        return piece.text
