"""The names of the datasets, and the image size every dataset is brought to — without
torch or torchvision, so that configs can be checked where the data code is not
loaded (docs/architecture.md §6.2).

:mod:`dartsrenet.data` implements one source per name of :data:`FIXED_DATASETS`;
``imagefolder:PATH`` names a folder of image files.
"""

from __future__ import annotations

IMAGEFOLDER_PREFIX = "imagefolder:"
"""``imagefolder:PATH``: the images under the directory PATH (one folder per class)."""

FIXED_DATASETS: tuple[str, ...] = ("cifar10", "svhn", "fashion_mnist", "digits")
"""The datasets with fixed names (:data:`dartsrenet.data.DATASETS`)."""

DATASET_NAMES: tuple[str, ...] = (*FIXED_DATASETS, f"{IMAGEFOLDER_PREFIX}PATH")
"""Every accepted dataset name (``PATH`` stands for a directory)."""

IMAGE_SIZE = 32
"""Height and width of every image at the network's input (docs/architecture.md §2)."""


def is_dataset_name(name: str) -> bool:
    """Whether ``name`` names a dataset: a fixed name, or ``imagefolder:`` with a path."""
    if name.startswith(IMAGEFOLDER_PREFIX):
        return bool(name[len(IMAGEFOLDER_PREFIX) :].strip())
    return name in FIXED_DATASETS
