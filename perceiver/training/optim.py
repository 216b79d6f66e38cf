"""Optimizers beyond ``torch.optim`` that the CLI resolves by name (``--optimizer=Lamb``)."""

from pytorch_optimizer import Lamb

__all__ = ["Lamb"]
