"""Learning-rate schedules stepped per optimizer step: constant and cosine, each with linear warmup."""

from __future__ import annotations

import math
from typing import Optional

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from perceiver.model.core.config import ConfigError


class ConstantWithWarmupLR(LRScheduler):
    """Linear warmup from 0 over ``warmup_steps``, then the optimizer's learning rate."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int = 0, last_epoch: int = -1):
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ConfigError(self, "warmup_steps", f"must be an integer >= 0, got {warmup_steps!r}")
        self.warmup_steps = warmup_steps
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        return min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0

    def get_lr(self):
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]


class CosineWithWarmupLR(ConstantWithWarmupLR):
    """Linear warmup over ``warmup_steps``, then cosine decay to ``min_fraction`` of the learning rate at
    ``training_steps``. ``training_steps=None`` takes the trainer's ``max_steps`` (the CLI links it)."""

    def __init__(
        self,
        optimizer: Optimizer,
        training_steps: Optional[int] = None,
        warmup_steps: int = 0,
        min_fraction: float = 0.0,
        last_epoch: int = -1,
    ):
        if training_steps is not None and training_steps <= warmup_steps:
            raise ConfigError(self, "training_steps", f"({training_steps}) must exceed warmup_steps ({warmup_steps})")
        if not 0.0 <= min_fraction <= 1.0:
            raise ConfigError(self, "min_fraction", f"must be in [0, 1], got {min_fraction}")
        self.training_steps = training_steps
        self.min_fraction = min_fraction
        super().__init__(optimizer, warmup_steps, last_epoch)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return super().factor(step)
        if step == self.warmup_steps:  # the start of the decay: the total is not needed yet (the CLI links it later)
            return 1.0
        if self.training_steps is None or self.training_steps <= 0:
            raise ConfigError(self, "training_steps", "is needed (or --trainer.max_steps on the command line)")
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.training_steps - self.warmup_steps))
        return self.min_fraction + (1.0 - self.min_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))
