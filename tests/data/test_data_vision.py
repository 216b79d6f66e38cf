"""Image data: scikit-learn's digits with their fixed split, local image folders, the Hub source offline, and the
optional extra's error."""

from __future__ import annotations

import builtins
import time

import numpy as np
import pytest
import torch

from perceiver.data.vision import MNISTDataModule
from perceiver.data.vision.common import shift
from perceiver.data.vision.sources import fixed_split, load_digits_sample
from perceiver.hub import HubUnavailableError
from perceiver.model.core import ConfigError


def test_fixed_split_is_a_disjoint_cover_balanced_over_cycles():
    parts = fixed_split(1797)
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [1258, 178, 361]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(1797))
    # items that cycle through 10 classes (as the digits do) land in every split about evenly
    for idx in parts.values():
        counts = np.bincount(idx % 10, minlength=10)
        assert counts.min() >= 0.6 * counts.mean()


def test_digits_sample_batches():
    dm = MNISTDataModule(source="sample", batch_size=32)
    assert dm.image_shape == (8, 8, 1) and dm.num_classes == 10  # before setup: the CLI links them
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (32, 8, 8, 1) and batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64
    assert batch["image"].min() == -1.0 and batch["image"].max() == 1.0  # 0..16 mapped to [-1, 1]
    assert (len(dm.ds_train), len(dm.ds_valid), len(dm.ds_test)) == (1258, 178, 361)
    digits = load_digits_sample()
    test_images, test_labels = digits.splits["test"]
    first = next(iter(dm.test_dataloader()))
    assert torch.equal(first["label"], torch.from_numpy(test_labels[:32]))
    assert torch.equal(first["image"][0], torch.from_numpy(test_images[0]).float() / 8 - 1)


def test_training_order_depends_on_the_seed_only():
    def labels(seed):
        dm = MNISTDataModule(source="sample", batch_size=16, seed=seed)
        dm.setup()
        return next(iter(dm.train_dataloader()))["label"]

    assert torch.equal(labels(0), labels(0)) and not torch.equal(labels(0), labels(1))


def test_shift_moves_the_image_and_fills_black():
    x = torch.arange(1.0, 13.0).reshape(3, 4, 1)
    y = shift(x, 1, -1)
    assert torch.equal(y[1:, :3], x[:2, 1:]) and y[0].sum() == 0 and y[:, 3].sum() == 0
    assert torch.equal(shift(x, 0, 0), x)


def write_images(root, classes, n, size=(6, 5), mode="L"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")


def test_image_folder_one_subfolder_per_class(tmp_path):
    write_images(tmp_path, ["cat", "dog", "emu"], 10)
    dm = MNISTDataModule(source=str(tmp_path), batch_size=4)
    assert dm.image_shape == (5, 6, 1) and dm.num_classes == 3
    dm.setup()
    assert dm.class_names == ["cat", "dog", "emu"]
    assert (len(dm.ds_train), len(dm.ds_valid), len(dm.ds_test)) == (21, 3, 6)  # the fixed split per class
    assert sorted(set(dm.ds_test.labels.tolist())) == [0, 1, 2]
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (3, 5, 6, 1)


def test_image_folder_with_splits_rgb_and_resizing(tmp_path):
    write_images(tmp_path / "train", ["a", "b"], 3, mode="RGB")
    write_images(tmp_path / "validation", ["a", "b"], 1, size=(9, 9), mode="RGB")
    with pytest.raises(ValueError, match="image_size"):
        MNISTDataModule(source=str(tmp_path)).setup()
    dm = MNISTDataModule(source=str(tmp_path), image_size=(4, 4))
    assert dm.image_shape == (4, 4, 3)
    dm.setup()
    assert (len(dm.ds_train), len(dm.ds_valid), len(dm.ds_test)) == (6, 2, 0)


def test_missing_folder_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="sample, hub or a directory"):
        MNISTDataModule(source=str(tmp_path / "nothing")).num_classes
    with pytest.raises(ConfigError) as e:
        MNISTDataModule(source="sample", batch_size=0)
    assert e.value.field == "batch_size"


def test_hub_source_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    dm = MNISTDataModule()  # ylecun/mnist
    assert dm.image_shape == (28, 28, 1) and dm.num_classes == 10
    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="source=sample"):
        dm.setup()
    assert time.monotonic() - start < 5


def test_missing_extra_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    monkeypatch.delitem(__import__("sys").modules, "sklearn.datasets", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'perceiver\[vision\]'"):
        MNISTDataModule(source="sample").setup()


def test_importing_perceiver_needs_no_vision_extra():
    import subprocess
    import sys

    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import perceiver, perceiver.data.vision, perceiver.model.vision.image_classifier, perceiver.tasks\n"
            "perceiver.tasks.tasks()")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
