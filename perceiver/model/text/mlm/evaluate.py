"""Evaluation of a masked language model over whole data splits: masked-token accuracy and cross-entropy.

    from perceiver.model.text.mlm.evaluate import masked_accuracy
    data.setup(); score = masked_accuracy(model, data.val_dataloader())
    score.accuracy, score.loss          # over every masked token of the split (validation masks are fixed)

Dimensions: B batch size, M input positions, V vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F

from perceiver.model.text.mlm.backend import MaskedLanguageModel

IGNORE_INDEX = -100


@dataclass(frozen=True)
class MaskedScore:
    """``correct`` of ``num_targets`` masked tokens predicted (argmax), and their summed cross-entropy ``nats``."""

    correct: int
    num_targets: int
    nats: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.num_targets if self.num_targets else float("nan")

    @property
    def loss(self) -> float:
        """Mean cross-entropy (nats) per masked token."""
        return self.nats / self.num_targets if self.num_targets else float("nan")


@torch.no_grad()
def masked_accuracy(model: MaskedLanguageModel, batches: Iterable[dict]) -> MaskedScore:
    """:class:`MaskedScore` of ``model`` (in eval mode) over ``batches`` of the data module's format
    (``input_ids`` with masks applied, ``labels`` with -100 at unmasked positions, optional ``pad_mask``). Every masked
    token counts once, so the result is not a mean of batch means."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = total = 0
    nats = torch.zeros((), dtype=torch.float64)
    try:
        for batch in batches:
            pad_mask = batch.get("pad_mask")
            logits = model(batch["input_ids"].to(device), pad_mask=None if pad_mask is None else pad_mask.to(device))
            labels = batch["labels"].to(device)  # (B, M)
            targets = labels != IGNORE_INDEX
            logits, labels = logits[targets], labels[targets]  # (T, V), (T,)
            correct += int((logits.argmax(dim=-1) == labels).sum())
            total += int(targets.sum())
            nats += F.cross_entropy(logits.float(), labels, reduction="sum").double().cpu()
    finally:
        model.train(was_training)
    return MaskedScore(correct, total, float(nats))


__all__ = ["MaskedScore", "masked_accuracy"]
