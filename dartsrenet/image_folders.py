"""``imagefolder:PATH`` datasets: a torchvision ``ImageFolder`` tree checked (layout,
classes, only regular files) without decoding, then every image decoded once per
process into a 32×32 RGB copy (:class:`DecodedImageFolder`); a single tree is split
80/20 by the fixed stratified split. See :mod:`dartsrenet.data`'s docstring.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets as tv_datasets

from dartsrenet.dataset_base import (
    DatasetFileError,
    DatasetInfo,
    DatasetNotFoundError,
    TransformedSubset,
    channel_stats,
    fixed_split,
)
from dartsrenet.dataset_names import IMAGEFOLDER_PREFIX
from dartsrenet.images import IMAGE_SIZE, ImageFileError, check_regular_file, max_image_pixels, read_image


class ImageFolderSource:
    def __init__(self, path: str) -> None:
        if not path:
            raise ValueError(
                f"{IMAGEFOLDER_PREFIX}PATH needs a directory, e.g. {IMAGEFOLDER_PREFIX}./my_images"
            )
        self.path = Path(path)
        self.name = f"{IMAGEFOLDER_PREFIX}{path}"

    def info(self, root: Path) -> DatasetInfo:
        return _imagefolder_info(str(self.path.resolve()), self.name, max_image_pixels())

    def load(self, root: Path, *, download: bool, svhn_extra: bool) -> tuple[Dataset, Dataset]:
        return _imagefolder_load(str(self.path.resolve()), max_image_pixels())


class DecodedImageFolder(Dataset):
    """An ``ImageFolder`` tree read once: every file decoded, converted to 8-bit RGB and
    resized to 32×32 when the folder is opened (:func:`dartsrenet.images.read_image`),
    and kept as that copy (3 KiB an image) — a large image is decoded once, not on every
    access. Yields ``(32×32 RGB PIL image, label)``.

    Attributes:
        classes, class_to_idx, samples, targets: as ``torchvision.datasets.ImageFolder``'s.
        images: ``(N, 32, 32, 3)`` uint8, in ``samples`` order.
    """

    def __init__(self, tree: tv_datasets.ImageFolder, max_pixels: int) -> None:
        self.classes, self.class_to_idx = tree.classes, tree.class_to_idx
        self.samples, self.targets = tree.samples, tree.targets
        try:
            decoded = [np.asarray(read_image(path, max_pixels)) for path, _ in self.samples]
        except ImageFileError as error:
            raise DatasetFileError(str(error)) from None
        self.images = np.stack(decoded) if decoded else np.empty((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index]), self.targets[index]


def _imagefolder_remedy(directory: Path) -> str:
    return (
        f"Expected {directory}/train/<class>/<image> and {directory}/test/<class>/<image>, "
        f"or {directory}/<class>/<image> (split 80/20 by a fixed seed)."
    )


def _imagefolder_trees(directory: Path) -> tuple[tv_datasets.ImageFolder, tv_datasets.ImageFolder | None]:
    """The listed (train, test) trees of an image folder (test ``None``: one tree to split),
    its layout and classes checked and every file a regular file — nothing decoded."""
    remedy = _imagefolder_remedy(directory)
    if not directory.is_dir():
        raise DatasetNotFoundError(f"image folder {directory} does not exist. {remedy}")
    try:
        if (directory / "train").is_dir():
            if not (directory / "test").is_dir():
                raise DatasetNotFoundError(f"image folder {directory}/test does not exist. {remedy}")
            train = tv_datasets.ImageFolder(str(directory / "train"))
            test = tv_datasets.ImageFolder(str(directory / "test"))
            if train.classes != test.classes:
                raise ValueError(
                    f"{directory}: train classes {train.classes} differ from test classes {test.classes}"
                )
            _check_classes(train.classes, directory / "train")
        else:
            train, test = tv_datasets.ImageFolder(str(directory)), None
            _check_classes(train.classes, directory)
    except FileNotFoundError as error:  # ImageFolder: no class folders / no images
        if isinstance(error, DatasetNotFoundError):
            raise
        raise DatasetNotFoundError(f"image folder {directory}: {error}. {remedy}") from error
    for path, _ in train.samples + (test.samples if test is not None else []):
        try:
            check_regular_file(path)  # a FIFO named x.png would block the reader forever
        except ImageFileError as error:
            raise DatasetFileError(str(error)) from None
    return train, test


def check_image_folder(path: str | os.PathLike[str]) -> None:
    """Check an image folder's layout without decoding an image: the folder exists, has
    ``train/`` and ``test/`` with the same classes or one tree, at least 2 classes, and
    only regular files (what the sweeps check while they plan; every image is decoded
    when the folder is opened, :func:`load_datasets`).

    Raises:
        DatasetNotFoundError: no such folder, or no class folders / images in it.
        DatasetFileError: fewer than 2 classes, or a file that is not a regular file.
    """
    _imagefolder_trees(Path(path))


@functools.lru_cache(maxsize=16)
def _imagefolder_load(path: str, max_pixels: int) -> tuple[Dataset, Dataset]:
    """The (train, test) sets of an image folder, every image decoded once (per process)."""
    directory = Path(path)
    train_tree, test_tree = _imagefolder_trees(directory)
    if test_tree is not None:
        return DecodedImageFolder(train_tree, max_pixels), DecodedImageFolder(test_tree, max_pixels)
    whole = DecodedImageFolder(train_tree, max_pixels)
    try:
        train_positions, test_positions = fixed_split(whole.targets)
    except ValueError as error:  # too few images in a class for a stratified 80/20 split
        raise DatasetFileError(
            f"image folder {directory}: cannot split it 80/20 stratified by class ({error}); give every class "
            f"at least 5 images, or use {directory}/train/<class> and {directory}/test/<class>"
        ) from None
    return TransformedSubset(whole, train_positions, None), TransformedSubset(whole, test_positions, None)


def _check_classes(classes: Sequence[str], directory: Path) -> None:
    if len(classes) < 2:
        raise DatasetFileError(
            f"image folder {directory} has {len(classes)} class folder(s) ({', '.join(classes)}); "
            "a classifier needs at least 2"
        )


@functools.lru_cache(maxsize=16)
def _imagefolder_info(path: str, name: str, max_pixels: int) -> DatasetInfo:
    train, _ = _imagefolder_load(path, max_pixels)
    mean, std = channel_stats(train)
    classes = train.classes if isinstance(train, DecodedImageFolder) else train.base.classes
    return DatasetInfo(
        name=name, num_classes=len(classes), mean=mean, std=std, flip=True, head_init_range=0.5
    )
