"""The built-in datasets' sources — CIFAR-10, SVHN, Fashion-MNIST and scikit-learn's
digits — each turning its files into (train, test) sets of 32×32 RGB PIL images and
describing itself as a :class:`~dartsrenet.dataset_base.DatasetInfo`. The conversions
and the statistics are listed in :mod:`dartsrenet.data`'s docstring; that module
registers these sources by name.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset
from torchvision import datasets as tv_datasets
from torchvision import transforms as T

from dartsrenet.dataset_base import DatasetInfo, DatasetNotFoundError, dataset_lock, fixed_split
from dartsrenet.images import IMAGE_SIZE

logger = logging.getLogger(__name__)

#: Where the Debian package ``dataset-fashion-mnist`` installs the gzip IDX files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def _to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def _missing_files(paths: Sequence[Path]) -> list[Path]:
    return [p for p in paths if not p.is_file()]


def _not_found(dataset: str, missing: Sequence[Path], remedy: str) -> DatasetNotFoundError:
    listed = ", ".join(str(p) for p in missing)
    return DatasetNotFoundError(f"{dataset} not found; missing files: {listed}. {remedy}")


def _torchvision_load(factory: Callable[[], Dataset], dataset: str, remedy: str) -> Dataset:
    """Run a torchvision constructor, turning its md5 failure into DatasetNotFoundError."""
    try:
        return factory()
    except RuntimeError as error:
        if "not found or corrupted" not in str(error):
            raise
        raise DatasetNotFoundError(
            f"{dataset}: files present but torchvision's integrity (md5) check failed "
            f"(corrupted or incomplete); delete them and fetch them again. {remedy}"
        ) from error


class Cifar10Source:
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]

    def info(self, root: Path) -> DatasetInfo:
        return DatasetInfo(
            name="cifar10",
            num_classes=10,
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
            flip=True,
            head_init_range=0.5,
        )

    def load(self, root: Path, *, download: bool, svhn_extra: bool) -> tuple[Dataset, Dataset]:
        folder = root / tv_datasets.CIFAR10.base_folder
        remedy = (
            f"Put the extracted cifar-10-python.tar.gz (folder cifar-10-batches-py/) under "
            f"{root}, or pass download=True (--download) on a machine with internet."
        )
        missing = _missing_files([folder / name for name in self.files])
        if missing and not download:
            raise _not_found("CIFAR-10", missing, remedy)
        with dataset_lock(root, "cifar10") if download else contextlib.nullcontext():
            train = _torchvision_load(
                lambda: tv_datasets.CIFAR10(str(root), train=True, download=download), "CIFAR-10", remedy
            )
            test = _torchvision_load(
                lambda: tv_datasets.CIFAR10(str(root), train=False, download=download), "CIFAR-10", remedy
            )
        return train, test


class SvhnSource:
    def info(self, root: Path) -> DatasetInfo:
        return DatasetInfo(
            name="svhn",
            num_classes=10,
            mean=(0.4377, 0.4438, 0.4728),
            std=(0.1980, 0.2010, 0.1970),
            flip=False,
            head_init_range=0.05,
        )

    def load(self, root: Path, *, download: bool, svhn_extra: bool) -> tuple[Dataset, Dataset]:
        splits = ["train", "test"] + (["extra"] if svhn_extra else [])
        remedy = (
            f"Put {', '.join(f'{s}_32x32.mat' for s in splits)} (from "
            f"http://ufldl.stanford.edu/housenumbers/) directly under {root}, or pass "
            f"download=True (--download) on a machine with internet."
        )
        missing = _missing_files([root / f"{split}_32x32.mat" for split in splits])
        if missing and not download:
            raise _not_found("SVHN", missing, remedy)
        with dataset_lock(root, "svhn") if download else contextlib.nullcontext():
            loaded = {
                split: _torchvision_load(
                    functools.partial(tv_datasets.SVHN, str(root), split=split, download=download),
                    "SVHN",
                    remedy,
                )
                for split in splits
            }
        train: Dataset = loaded["train"]
        if svhn_extra:
            train = ConcatDataset([loaded["train"], loaded["extra"]])
        return train, loaded["test"]


def prepare_fashion_mnist(root: Path, system_dir: Path | None = None) -> bool:
    """Gunzip the Debian package's Fashion-MNIST into ``root/FashionMNIST/raw`` if needed.

    Files already in ``raw`` are kept. Nothing happens when ``system_dir`` lacks
    the gzip IDX files. The unpacking holds :func:`dataset_lock`, so concurrent
    runs unpack once.

    Args:
        root: dataset root (torchvision's ``root``).
        system_dir: where the gzip IDX files are; default
            :data:`FASHION_MNIST_SYSTEM_DIR` (the Debian package's location).

    Returns:
        Whether any file was written (by this call).
    """
    system_dir = FASHION_MNIST_SYSTEM_DIR if system_dir is None else Path(system_dir)
    root = Path(root)
    if not _fashion_mnist_to_unpack(root, system_dir):
        return False
    with dataset_lock(root, "fashion_mnist"):
        return _unpack_fashion_mnist(root, system_dir)


def _fashion_mnist_to_unpack(root: Path, system_dir: Path) -> list[tuple[Path, Path]]:
    """(gzip source, raw target) of every file missing in ``root`` that ``system_dir`` has."""
    raw = root / "FashionMNIST" / "raw"
    pairs = []
    for url, _md5 in tv_datasets.FashionMNIST.resources:
        gz_name = os.path.basename(url)
        target = raw / gz_name.removesuffix(".gz")
        source = system_dir / gz_name
        if source.is_file() and not target.is_file():
            pairs.append((source, target))
    return pairs


def _unpack_fashion_mnist(root: Path, system_dir: Path) -> bool:
    """Gunzip what :func:`_fashion_mnist_to_unpack` lists (the caller holds the lock)."""
    raw = root / "FashionMNIST" / "raw"
    wrote = False
    for source, target in _fashion_mnist_to_unpack(root, system_dir):
        raw.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.replace(target)
        wrote = True
    if wrote:
        logger.info("Fashion-MNIST: unpacked %s into %s", system_dir, raw)
    return wrote


class FashionMnistSource:
    def info(self, root: Path) -> DatasetInfo:
        # Exact statistics of the 60,000 training images after the 2 px zero pad
        # (all three channels are the same grey); recomputed in tests/test_data.py.
        return DatasetInfo(
            name="fashion_mnist",
            num_classes=10,
            mean=(_FASHION_MEAN,) * 3,
            std=(_FASHION_STD,) * 3,
            flip=True,
            head_init_range=0.5,
        )

    def load(self, root: Path, *, download: bool, svhn_extra: bool) -> tuple[Dataset, Dataset]:
        if download:
            with dataset_lock(root, "fashion_mnist"):
                _unpack_fashion_mnist(root, FASHION_MNIST_SYSTEM_DIR)
                return self._load(root, download=True)
        prepare_fashion_mnist(root)
        return self._load(root, download=False)

    def _load(self, root: Path, *, download: bool) -> tuple[Dataset, Dataset]:
        raw = root / "FashionMNIST" / "raw"
        files = [
            raw / os.path.basename(url).removesuffix(".gz") for url, _ in tv_datasets.FashionMNIST.resources
        ]
        missing = _missing_files(files)
        remedy = (
            f"Put the four unzipped IDX files in {raw}, or install the Debian package "
            f"(apt-get install dataset-fashion-mnist; its files in {FASHION_MNIST_SYSTEM_DIR} "
            f"are unpacked there automatically), or pass download=True (--download) on a "
            f"machine with internet."
        )
        if missing and not download:
            raise _not_found("Fashion-MNIST", missing, remedy)
        to_rgb32 = T.Compose([T.Pad(2, fill=0), _to_rgb])
        train, test = (
            _torchvision_load(
                functools.partial(
                    tv_datasets.FashionMNIST, str(root), train=is_train, transform=to_rgb32, download=download
                ),
                "Fashion-MNIST",
                remedy,
            )
            for is_train in (True, False)
        )
        return train, test


class _ArrayImageDataset(Dataset):
    """(N, H, W, 3) uint8 images and int labels → (PIL RGB image, label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images
        self.targets = [int(label) for label in labels]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index]), self.targets[index]


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``load_digits`` as 32×32×3 uint8 images, split 80/20 (see the module docstring).

    Returns:
        ``(train_images, train_labels, test_images, test_labels)``; images
        (N, 32, 32, 3) uint8, labels (N,) int64.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float64) * (255.0 / 16.0))  # (N, 8, 8), 0..255
    large = torch.nn.functional.interpolate(
        small[:, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
    )[:, 0]  # (N, 32, 32)
    grey = large.round().clamp(0, 255).to(torch.uint8).numpy()
    rgb = np.repeat(grey[..., None], 3, axis=-1)  # (N, 32, 32, 3)
    labels = digits.target.astype(np.int64)
    train, test = fixed_split(labels)
    return rgb[train], labels[train], rgb[test], labels[test]


class DigitsSource:
    def info(self, root: Path) -> DatasetInfo:
        # Exact statistics of the 1,437 training images after the 8 → 32 bilinear
        # upsampling; recomputed in tests/test_data.py.
        return DatasetInfo(
            name="digits",
            num_classes=10,
            mean=(_DIGITS_MEAN,) * 3,
            std=(_DIGITS_STD,) * 3,
            flip=False,
            head_init_range=0.5,
        )

    def load(self, root: Path, *, download: bool, svhn_extra: bool) -> tuple[Dataset, Dataset]:
        train_images, train_labels, test_images, test_labels = digits_arrays()
        return _ArrayImageDataset(train_images, train_labels), _ArrayImageDataset(test_images, test_labels)


# Fashion-MNIST / digits constants (see the sources above).
_FASHION_MEAN = 0.2190  # = 0.2860 (unpadded mean) × 784 / 1024
_FASHION_STD = 0.3318
_DIGITS_MEAN = 0.3054
_DIGITS_STD = 0.3237
