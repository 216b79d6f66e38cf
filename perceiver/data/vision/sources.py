"""Where images come from: scikit-learn's 8x8 digits (offline sample), a local folder with one subfolder per class,
or a Hugging Face Hub dataset. Each source gives splits of ``(images, labels)``: images (N, H, W, C) uint8 with their
``scale`` (value of full intensity), labels (N,) int64.

scikit-learn and Pillow are the optional extra ``perceiver[vision]``; they are imported when a source needs them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from perceiver.hub import require_hub

SPLITS = ("train", "validation", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F", "P"}  # P: palette images of MNIST-style folders are gray in practice


def require(module: str, package: str):
    """Import ``module`` of the optional extra ``perceiver[vision]`` or fail saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{package} is needed for image data but is not installed: pip install 'perceiver[vision]' "
                          f"(or pip install {package})") from e


@dataclass
class ImageSplits:
    """Images (N, H, W, C) uint8 and labels (N,) of each split; pixel value ``scale`` is full intensity."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    scale: float
    class_names: list[str]


def fixed_split(n: int) -> dict[str, np.ndarray]:
    """The fixed split of ``n`` ordered items without a split of their own: item i goes to test if
    u_i = frac(i * (sqrt(5) - 1) / 2) < 0.2, to validation if 0.2 <= u_i < 0.3, to training otherwise. The golden
    ratio sequence spreads every part of the list evenly over the splits (70 / 10 / 20 %), also when the items cycle
    through the classes, as scikit-learn's digits do; it needs no random generator, so it never changes."""
    i = np.arange(n)
    u = (i * ((5**0.5 - 1) / 2)) % 1.0
    test, valid = u < 0.2, (u >= 0.2) & (u < 0.3)
    return {"train": i[~test & ~valid], "validation": i[valid], "test": i[test]}


# --- scikit-learn's digits ------------------------------------------------------------------------------------------


def load_digits_sample() -> ImageSplits:
    """The 1,797 8x8 handwritten digits that scikit-learn ships (``sklearn.datasets.load_digits``; pixel values
    0..16), split by :func:`fixed_split` into 1,258 training, 178 validation and 361 test images."""
    datasets = require("sklearn.datasets", "scikit-learn")
    digits = datasets.load_digits()
    images = digits.images.astype(np.uint8)[..., None]  # (1797, 8, 8, 1), values 0..16
    labels = digits.target.astype(np.int64)
    parts = {k: (images[idx], labels[idx]) for k, idx in fixed_split(len(labels)).items()}
    return ImageSplits(parts, scale=16.0, class_names=[str(d) for d in range(10)])


# --- local folders --------------------------------------------------------------------------------------------------


def class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_roots(root: Path) -> Optional[dict[str, Path]]:
    """``{split: folder}`` if ``root`` has ``train/`` (and optionally ``validation/``, ``test/``), else None."""
    if not (root / "train").is_dir():
        return None
    return {s: root / s for s in SPLITS if (root / s).is_dir()}


def folder_classes(root: str | Path) -> list[str]:
    """Class names of an image folder: its subfolders (those of ``train/`` if it has one), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist; pass --data.source=sample, hub or a "
                                f"directory with one subfolder of images per class")
    roots = split_roots(root)
    names = [p.name for p in class_folders(roots["train"] if roots else root)]
    if not names:
        raise ValueError(f"image folder {str(root)!r} has no class subfolders (expected <class>/<image> files)")
    return names


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def first_image(root: str | Path) -> Path:
    root = Path(root)
    for folder in class_folders(root / "train" if (root / "train").is_dir() else root):
        files = image_files(folder)
        if files:
            return files[0]
    raise ValueError(f"image folder {str(root)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")


def folder_image_shape(root: str | Path, image_size: Optional[tuple[int, int]] = None) -> tuple[int, int, int]:
    """(H, W, C) of the images of a folder: the size of its first image (or ``image_size``), 1 channel if that image
    is grayscale, else 3."""
    Image = require("PIL.Image", "Pillow")
    with Image.open(first_image(root)) as img:
        channels = 1 if img.mode in GRAY_MODES else 3
        h, w = image_size or (img.height, img.width)
    return int(h), int(w), channels


def read_image(path: Path, shape: tuple[int, int, int], resize: bool) -> np.ndarray:
    """The image at ``path`` as (H, W, C) uint8 in the mode of ``shape`` (grayscale or RGB), resized to it if
    ``resize``; otherwise an image of another size is an error naming the file."""
    Image = require("PIL.Image", "Pillow")
    h, w, c = shape
    with Image.open(path) as img:
        img = img.convert("L" if c == 1 else "RGB")
        if img.size != (w, h):
            if not resize:
                raise ValueError(f"{path} is {img.height}x{img.width} pixels but the first image {h}x{w}: pass "
                                 f"--data.image_size=[height, width] to resize every image")
            img = img.resize((w, h), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8).reshape(h, w, c)


def load_folder(root: str | Path, image_size: Optional[tuple[int, int]] = None) -> ImageSplits:
    """Images of ``root/<class>/...`` (split by :func:`fixed_split` within each class) or of
    ``root/{train,validation,test}/<class>/...``. Images are converted to the mode of the first image (grayscale or
    RGB) and, given ``image_size``, resized to it; otherwise they must all have the size of the first one."""
    root = Path(root)
    names = folder_classes(root)
    shape = folder_image_shape(root, image_size)
    roots = split_roots(root)
    files: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
    for label, name in enumerate(names):
        if roots:
            for split, split_root in roots.items():
                folder = split_root / name
                files[split] += [(f, label) for f in image_files(folder)] if folder.is_dir() else []
        else:
            found = image_files(root / name)
            for split, idx in fixed_split(len(found)).items():
                files[split] += [(found[i], label) for i in idx]
    out = {}
    for split, items in files.items():
        images = [read_image(f, shape, resize=image_size is not None) for f, _ in items]
        labels = np.array([label for _, label in items], dtype=np.int64)
        out[split] = (np.stack(images) if images else np.zeros((0, *shape), np.uint8), labels)
    return ImageSplits(out, scale=255.0, class_names=names)


# --- Hugging Face Hub -----------------------------------------------------------------------------------------------


def load_hub(dataset: str, cache_dir: str, num_validation: int) -> ImageSplits:
    """A Hub dataset with ``image`` and ``label`` columns and ``train``/``test`` splits; the last ``num_validation``
    training images are the validation split."""
    require_hub(f"dataset {dataset!r}", "Pass --data.source=sample (scikit-learn's 8x8 digits, offline) or a local "
                                        "directory of images, one subfolder per class.")
    from datasets import load_dataset

    dsd = load_dataset(dataset, cache_dir=cache_dir)

    def arrays(ds):
        images = np.stack([np.asarray(img, dtype=np.uint8) for img in ds["image"]])
        return (images[..., None] if images.ndim == 3 else images), np.asarray(ds["label"], dtype=np.int64)

    train_images, train_labels = arrays(dsd["train"])
    n = len(train_labels) - num_validation
    splits = {"train": (train_images[:n], train_labels[:n]), "validation": (train_images[n:], train_labels[n:]),
              "test": arrays(dsd["test"])}
    names = dsd["train"].features["label"].names if hasattr(dsd["train"].features["label"], "names") else None
    return ImageSplits(splits, scale=255.0, class_names=names or [str(i) for i in range(int(train_labels.max()) + 1)])
