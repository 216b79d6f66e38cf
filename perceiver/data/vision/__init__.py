"""Lightning data modules for images (optional extra ``perceiver[vision]``: scikit-learn for the offline digits,
Pillow for image folders).

Example (offline, with the 8x8 digits scikit-learn ships)::

    from perceiver.data.vision import MNISTDataModule

    dm = MNISTDataModule(source="sample", batch_size=64)
    dm.image_shape, dm.num_classes   # (8, 8, 1), 10: known right after __init__ (the CLI links them to the model)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    batch["image"], batch["label"]   # (B, 8, 8, 1) float in [-1, 1], (B,) long
"""

from perceiver.data.vision.common import ImageDataModule, ImageDataset
from perceiver.data.vision.mnist import MNISTDataModule

__all__ = ["ImageDataModule", "ImageDataset", "MNISTDataModule"]
