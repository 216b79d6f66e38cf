"""Lightning-level pieces shared by the task modules: the LitModel base, LR schedules and text logging."""

from perceiver.training.module import LitModel
from perceiver.training.schedulers import ConstantWithWarmupLR, CosineWithWarmupLR

__all__ = ["ConstantWithWarmupLR", "CosineWithWarmupLR", "LitModel"]
