"""``ImageDataModule``: the Lightning data module of the image classifier, for every image source.

Batches are ``{"image": (B, H, W, C) float32, "label": (B,) int64}``, channels last (perceiver-io 0.11's format).
Pixel values are scaled to [0, 1] and, with ``normalize``, to [-1, 1] (mean 0.5, std 0.5, as 0.11).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from perceiver.data.text.loader import ResumableDataLoader
from perceiver.data.vision import sources
from perceiver.model.core.config import ConfigError


class ImageDataset(Dataset):
    """Images (N, H, W, C) uint8 of full intensity ``scale`` and labels (N,) as examples ``{"image", "label"}``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, scale: float, normalize: bool = True,
                 random_shift: int = 0):
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels)
        self.scale, self.normalize, self.random_shift = scale, normalize, random_shift

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        image = self.images[i].float() / self.scale  # (H, W, C) in [0, 1]
        if self.random_shift:
            dy, dx = torch.randint(-self.random_shift, self.random_shift + 1, (2,)).tolist()
            image = shift(image, dy, dx)
        return {"image": (image - 0.5) / 0.5 if self.normalize else image, "label": self.labels[i]}


def shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``image`` (H, W, C) moved down by ``dy`` and right by ``dx`` pixels (negative: up, left), filled with 0."""
    h, w = image.shape[:2]
    out = torch.zeros_like(image)
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[max(-dy, 0) : h - max(dy, 0),
                                                                          max(-dx, 0) : w - max(dx, 0)]
    return out


class ImageDataModule(pl.LightningDataModule):
    """Images and class labels in training, validation and test splits.

    Args:
        source: ``"hub"`` (the Hugging Face Hub dataset of the subclass), ``"sample"`` (the 1,797 8x8 handwritten
            digits scikit-learn ships, offline: 1,258 training, 178 validation and 361 test images, see
            ``perceiver.data.vision.sources.fixed_split``), or a local directory with one subfolder of images per
            class (``<class>/*.png``, split by the same rule within each class), or with ``train/``,
            ``validation/`` and ``test/`` folders of such subfolders.
        dataset_dir: Cache directory of Hub downloads.
        image_size: Resize the images of a local directory to (height, width); None: they must all have one size.
        normalize: Map pixel values from [0, 1] to [-1, 1].
        random_shift: Augment training images by moving them up to this many pixels in each direction (a random
            offset per image and epoch, drawn from the global RNG; the vacated border is black).
        seed: Seed of the training order.
        batch_size: Training batch size.
        valid_batch_size: Validation and test batch size (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        pin_memory: Pin batches in page-locked memory.
    """

    hub_dataset: Optional[str] = None
    """Hub dataset of the subclass (``image`` and ``label`` columns, ``train`` and ``test`` splits)."""
    hub_image_shape: tuple[int, int, int] = (0, 0, 0)
    hub_num_classes: int = 0
    hub_num_validation: int = 5000
    """Training images held out for validation (the last ones of the Hub's train split)."""

    sample_image_shape = (8, 8, 1)
    sample_num_classes = 10

    def __init__(
        self,
        source: str = "hub",
        dataset_dir: str = ".cache/perceiver/datasets",
        image_size: Optional[tuple[int, int]] = None,
        normalize: bool = True,
        random_shift: int = 0,
        seed: int = 0,
        batch_size: int = 64,
        valid_batch_size: Optional[int] = None,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(type(self).__name__, "batch_size", f"must be a positive integer, got {batch_size!r}")
        if source == "hub" and self.hub_dataset is None:
            raise ConfigError(type(self).__name__, "source",
                              "has no Hub dataset: pass 'sample' or a directory of images, one subfolder per class")
        if not isinstance(random_shift, int) or random_shift < 0:
            raise ConfigError(type(self).__name__, "random_shift",
                              f"must be a non-negative integer, got {random_shift!r}")
        if image_size is not None and (len(image_size) != 2 or any(int(s) <= 0 for s in image_size)):
            raise ConfigError(type(self).__name__, "image_size", f"must be None or (height, width), got {image_size!r}")
        self.source = source
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.ds_train: Optional[ImageDataset] = None
        self.ds_valid: Optional[ImageDataset] = None
        self.ds_test: Optional[ImageDataset] = None
        self.class_names: Optional[list[str]] = None
        self._local_shape: Optional[tuple[int, int, int]] = None

    # -- what the CLI links to the model (known without reading the data) -----------------------------------------

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the images."""
        if self.source == "hub":
            return tuple(self.hub_image_shape)
        if self.source == "sample":
            return tuple(self.sample_image_shape)
        if self._local_shape is None:
            self._local_shape = sources.folder_image_shape(self.source, self.image_size)
        return self._local_shape

    @property
    def num_classes(self) -> int:
        if self.source == "hub":
            return self.hub_num_classes
        if self.source == "sample":
            return self.sample_num_classes
        return len(sources.folder_classes(self.source))

    # -- data ------------------------------------------------------------------------------------------------------

    def load_source(self) -> sources.ImageSplits:
        if self.source == "hub":
            return sources.load_hub(self.hub_dataset, self.hparams.dataset_dir, self.hub_num_validation)
        if self.source == "sample":
            return sources.load_digits_sample()
        return sources.load_folder(self.source, self.image_size)

    def prepare_data(self) -> None:
        if self.source == "hub":  # downloads once, on one process
            self.load_source()

    def setup(self, stage: Optional[str] = None) -> None:
        if self.ds_train is not None:
            return
        data = self.load_source()
        self.class_names = data.class_names
        datasets = {k: ImageDataset(*data.splits[k], data.scale, self.hparams.normalize,
                                    self.hparams.random_shift if k == "train" else 0) for k in sources.SPLITS}
        self.ds_train, self.ds_valid, self.ds_test = datasets["train"], datasets["validation"], datasets["test"]
        if len(self.ds_train) == 0:
            raise ValueError(f"source {self.source!r} has no training images")

    def train_dataloader(self) -> DataLoader:
        """Training batches in an order given by ``seed`` and the epoch, resumable mid-epoch; under DDP each rank
        gets its share."""
        if self.ds_train is None:
            raise RuntimeError("call setup() before requesting a dataloader")
        trainer = self.trainer
        return ResumableDataLoader(
            self.ds_train, batch_size=self.hparams.batch_size, collate_fn=default_collate, seed=self.hparams.seed,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            num_workers=self.hparams.num_workers, pin_memory=self.hparams.pin_memory,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.ds_valid)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.ds_test)

    def _loader(self, ds: Optional[ImageDataset]) -> DataLoader:
        if ds is None:
            raise RuntimeError("call setup() before requesting a dataloader")
        workers = self.hparams.num_workers
        return DataLoader(ds, batch_size=self.hparams.valid_batch_size or self.hparams.batch_size, shuffle=False,
                          num_workers=workers, persistent_workers=workers > 0, pin_memory=self.hparams.pin_memory)
