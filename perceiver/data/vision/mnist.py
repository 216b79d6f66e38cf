"""MNIST: 70,000 28x28 handwritten digits from the Hugging Face Hub (``ylecun/mnist``), or offline the 8x8 digits
scikit-learn ships (``source="sample"``), or a local folder of images (one subfolder per class)."""

from __future__ import annotations

from perceiver.data.vision.common import ImageDataModule


class MNISTDataModule(ImageDataModule):
    """MNIST digits (see :class:`ImageDataModule` for the arguments). From the Hub, the last 5,000 of the 60,000
    training images are the validation split and the 10,000 test images the test split."""

    hub_dataset = "ylecun/mnist"
    hub_image_shape = (28, 28, 1)
    hub_num_classes = 10
