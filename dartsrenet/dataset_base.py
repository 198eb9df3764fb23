"""What every dataset source shares: its description (:class:`DatasetInfo`), its errors,
the lock under which files are fetched, the view a split is made of
(:class:`TransformedSubset`), the fixed 80/20 split and per-channel statistics.

The sources themselves are in :mod:`dartsrenet.data` (built-in datasets) and
:mod:`dartsrenet.image_folders` (``imagefolder:PATH``); see :mod:`dartsrenet.data`'s
docstring for the datasets and docs/architecture.md §6 for the splits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from torch.utils.data import Dataset

from dartsrenet.images import IMAGE_SIZE

logger = logging.getLogger(__name__)

#: ``random_state`` of the fixed stratified 80/20 train/test split of ``digits``
#: and of single-tree image folders.
FIXED_SPLIT_SEED = 0
FIXED_TEST_FRACTION = 0.2


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing; the message says where they go and how to get them."""


class DatasetFileError(ValueError):
    """A dataset that cannot be trained on as it is: an unreadable image (named), or fewer than 2 classes."""


@contextlib.contextmanager
def dataset_lock(root: Path, dataset: str) -> Iterator[None]:
    """Hold ``root/.<dataset>.lock`` while a dataset is downloaded or unpacked into ``root``.

    Concurrent runs sharing ``root`` (Ray trials, several terminals) then fetch the
    files once: the first holder does the work, the others wait and find it done.
    """
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / f".{dataset}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("%s: waiting for another process preparing it in %s", dataset, root)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """What the network and the training loop need to know about a dataset.

    Attributes:
        name: registry name (``"cifar10"``, ``"imagefolder:PATH"``, ...).
        num_classes: number of classes (the head's output size).
        image_size: side of the square images reaching the network (always 32).
        mean: per-channel (R, G, B) mean used by ``Normalize``.
        std: per-channel (R, G, B) standard deviation used by ``Normalize``.
        flip: whether random horizontal flips are part of the augmentation.
        head_init_range: the classifier's Linear weights are drawn from
            U(−r, r) (docs/architecture.md §2: 0.5 for CIFAR-10, 0.05 for SVHN).
    """

    name: str
    num_classes: int
    image_size: int = IMAGE_SIZE
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    flip: bool
    head_init_range: float


class TransformedSubset(Dataset):
    """A view of ``base`` at ``indices`` with its own ``transform`` on the image.

    Unlike ``torch.utils.data.Subset``, two views of one base dataset can carry
    different transforms (augmented training split, plain validation split)
    without loading the data twice.

    Args:
        base: dataset of ``(image, label)`` pairs.
        indices: positions in ``base``.
        transform: applied to the image; ``None`` leaves it unchanged.
    """

    def __init__(self, base: Dataset, indices: Sequence[int], transform: Callable[[Any], Any] | None) -> None:
        self.base = base
        self.indices = [int(i) for i in indices]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[Any, int]:
        image, label = self.base[self.indices[position]]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(label)


def fixed_split(labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified 80/20 (train, test) split of ``digits`` and single-tree folders."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(labels))
    train, test = train_test_split(
        positions, test_size=FIXED_TEST_FRACTION, stratify=np.asarray(labels), random_state=FIXED_SPLIT_SEED
    )
    return np.sort(train), np.sort(test)


def channel_stats(dataset: Dataset) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and population std over all pixels of a dataset of RGB PIL images.

    Args:
        dataset: yields ``(PIL image, label)`` with values 0..255.

    Returns:
        ``(mean, std)`` on the 0..1 scale of ``ToTensor``.
    """
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for index in range(len(dataset)):  # type: ignore[arg-type]
        image, _ = dataset[index]
        pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3) / 255.0
        total += pixels.sum(axis=0)
        total_sq += (pixels**2).sum(axis=0)
        count += pixels.shape[0]
    if count == 0:
        raise ValueError("cannot compute statistics of an empty dataset")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)  # type: ignore[return-value]
