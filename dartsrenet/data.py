"""Datasets by name → data loaders with the docs/architecture.md §6 augmentation and splits.

Every dataset reaches the network as 3×32×32 float tensors (docs/architecture.md §2 needs a
spatial size divisible by 2 three times):

==================  ==============================================================
name                source and conversion to 32×32 RGB
==================  ==============================================================
``cifar10``         ``torchvision.datasets.CIFAR10``; already 32×32 RGB.
``svhn``            ``torchvision.datasets.SVHN`` (label 10 → digit 0, done by
                    torchvision); already 32×32 RGB. ``svhn_extra=True``
                    concatenates train + extra (604,388 images) as the original.
``fashion_mnist``   ``torchvision.datasets.FashionMNIST``; 28×28 grey, zero-padded
                    by 2 px on each side to 32×32, grey copied to 3 channels.
``digits``          ``sklearn.datasets.load_digits``: 1,797 real 8×8 grey images,
                    values 0..16 scaled to 0..255, upsampled 8 → 32 with *bilinear*
                    interpolation (``align_corners=False``, rounded to uint8; smooth
                    strokes rather than 4×4 blocks), grey copied to 3 channels.
                    There is no official test set: a fixed stratified 80/20 split
                    (``train_test_split(..., test_size=0.2, stratify=y,
                    random_state=0)``) gives 1,437 training and 360 test images.
``imagefolder:P``   ``torchvision.datasets.ImageFolder`` over directory ``P``:
                    either ``P/train/<class>/*`` and ``P/test/<class>/*`` (same
                    classes), or a single tree ``P/<class>/*`` split 80/20 like
                    ``digits``. Any size, mode or bit depth: converted to 8-bit
                    RGB and resized to 32×32 (bilinear) by
                    :func:`dartsrenet.images.read_image`, once per process when
                    the folder is opened (a 32×32 copy is kept). Mean/std are
                    computed on the fly from the training split (cached).
==================  ==============================================================

Normalisation constants: CIFAR-10 and SVHN from docs/architecture.md §6; Fashion-MNIST and
digits are the exact per-channel mean/std (population std over all pixels) of
their full training split *after* the padding / resizing above
(``tests/test_data.py`` recomputes them).

Augmentation (docs/architecture.md §6, as the DARTS code): ``RandomCrop(32, padding=4)`` with
zero padding, ``RandomHorizontalFlip(0.5)`` unless ``DatasetInfo.flip`` is false
(SVHN, digits), ``ToTensor``, ``Normalize``, then :class:`Cutout` of 12×12 *after*
normalisation (so the cut square is 0, the dataset mean). All randomness comes
from torch's global RNG (torchvision v1 transforms and :class:`Cutout`), and the
shuffling from the loader's own ``generator``; reseeding both makes an epoch's
batches and augmentations exactly reproducible.

Splits: search uses train_cs/val_cs = 50/50 of the training set
(:func:`search_split`, both augmented, as DARTS); evaluation training carves a
validation split from the training set (:func:`validation_split`) and keeps the
test set apart; validation and test use the plain (non-augmented) transform
(docs/architecture.md §6.3). Each split is a :class:`TransformedSubset` with its own
transform over one shared, once-loaded base dataset, so the augmented and the
plain views never share a transform object.

Checks when a dataset is opened: it has at least 2 classes; every file of an image
folder is a regular file (a FIFO, socket or device is refused, never opened), has
at most :func:`dartsrenet.images.max_image_pixels` pixels and fully decodes (a
truncated or non-image file is named at once, not after hours of training); a download or an unpacking into ``root`` happens
under a file lock (``root/.<dataset>.lock``), so concurrent runs — e.g. Ray trials
sharing one ``data_root`` — download and unpack a dataset once and never read a
half-written file.

Where each part lives: the built-in sources in :mod:`dartsrenet.builtin_datasets`, image
folders in :mod:`dartsrenet.image_folders`, the transforms in :mod:`dartsrenet.transforms`,
what they share (:class:`DatasetInfo`, the errors, the lock, :class:`TransformedSubset`)
in :mod:`dartsrenet.dataset_base`; this module registers the sources by name and turns a
name into split data loaders. Every public name is importable from here.

Not supported: datasets other than the above; images other than 32×32 at the
network input.
"""

from __future__ import annotations

import os
from collections.abc import Sized
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from dartsrenet.builtin_datasets import (
    FASHION_MNIST_SYSTEM_DIR,
    Cifar10Source,
    DigitsSource,
    FashionMnistSource,
    SvhnSource,
    digits_arrays,
    prepare_fashion_mnist,
)
from dartsrenet.dataset_base import (
    DatasetFileError,
    DatasetInfo,
    DatasetNotFoundError,
    TransformedSubset,
    channel_stats,
    dataset_lock,
)
from dartsrenet.dataset_names import DATASET_NAMES, IMAGEFOLDER_PREFIX
from dartsrenet.image_folders import DecodedImageFolder, ImageFolderSource, check_image_folder
from dartsrenet.images import IMAGE_SIZE
from dartsrenet.registry import lookup
from dartsrenet.transforms import Cutout, build_transform

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "FASHION_MNIST_SYSTEM_DIR",
    "IMAGE_SIZE",
    "IMAGEFOLDER_PREFIX",
    "Cutout",
    "DatasetFileError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DecodedImageFolder",
    "TransformedSubset",
    "build_transform",
    "channel_stats",
    "check_image_folder",
    "dataset_lock",
    "digits_arrays",
    "get_dataset_info",
    "load_datasets",
    "make_search_loaders",
    "make_train_loaders",
    "prepare_fashion_mnist",
    "search_split",
    "validation_split",
]

#: The registry of datasets with fixed names (:data:`dartsrenet.dataset_names.FIXED_DATASETS`);
#: ``imagefolder:PATH`` is resolved apart.
DATASETS: dict[str, Any] = {
    "cifar10": Cifar10Source(),
    "svhn": SvhnSource(),
    "fashion_mnist": FashionMnistSource(),
    "digits": DigitsSource(),
}


def _source(name: str) -> Any:
    if name.startswith(IMAGEFOLDER_PREFIX):
        return ImageFolderSource(name[len(IMAGEFOLDER_PREFIX) :])
    return lookup({**DATASETS, f"{IMAGEFOLDER_PREFIX}PATH": None}, name, "dataset")


# --------------------------------------------------------------------------- public API


def get_dataset_info(name: str, root: str | os.PathLike[str] = "data") -> DatasetInfo:
    """The :class:`DatasetInfo` of a dataset name.

    Args:
        name: one of :data:`DATASET_NAMES` (``imagefolder:PATH`` with a directory).
        root: dataset root (only ``imagefolder`` reads files here: its mean/std are
            computed from its training split, which is resolved from ``PATH``).

    Raises:
        UnknownNameError: for an unknown name; the message lists the valid ones.
    """
    return _source(name).info(Path(root))


def load_datasets(
    name: str,
    root: str | os.PathLike[str] = "data",
    *,
    download: bool = False,
    svhn_extra: bool = False,
) -> tuple[Dataset, Dataset, DatasetInfo]:
    """The full training and test sets of a dataset, yielding (32×32 RGB PIL image, label).

    Args:
        name: dataset name (see :data:`DATASET_NAMES`).
        root: directory torchvision reads (and, with ``download``, writes) the files in.
        download: let torchvision download missing files (needs internet).
        svhn_extra: SVHN only: training set = train + extra (docs/architecture.md §6).

    Returns:
        ``(train_set, test_set, info)``.

    Raises:
        DatasetNotFoundError: files missing (the message says where they go and
            how to get them).
        DatasetFileError: an image file that does not decode (named), or fewer than 2 classes.
        UnknownNameError: unknown name.
    """
    source = _source(name)
    if svhn_extra and name != "svhn":
        raise ValueError(f"svhn_extra only applies to 'svhn', not {name!r}")
    train, test = source.load(Path(root), download=download, svhn_extra=svhn_extra)
    info = source.info(Path(root))
    if info.num_classes < 2:
        raise DatasetFileError(f"dataset {name!r} has {info.num_classes} class(es); a classifier needs at least 2")
    return train, test, info


def _permutation(length: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(length, generator=generator).tolist()


def search_split(train_set: Sized, seed: int) -> tuple[list[int], list[int]]:
    """Split a training set 50/50 into train_cs and val_cs for the search (docs/architecture.md §3.7, DARTS).

    Args:
        train_set: anything with a length (a dataset, or a list of indices).
        seed: the split is a deterministic function of ``(len(train_set), seed)``.

    Returns:
        ``(train_cs, val_cs)``: disjoint positions in ``train_set`` covering it;
        train_cs gets ``len // 2`` of them.
    """
    length = len(train_set)
    if length < 2:
        raise ValueError(f"cannot split {length} example(s) into train_cs and val_cs")
    order = _permutation(length, seed)
    half = length // 2
    return order[:half], order[half:]


def validation_split(
    train_set: Sized,
    val_fraction: float | None = None,
    *,
    val_size: int | None = None,
    seed: int = 0,
) -> tuple[list[int], list[int]]:
    """Carve a validation split out of a training set (docs/architecture.md §6.3).

    Give exactly one of ``val_fraction`` and ``val_size``.

    Args:
        train_set: anything with a length (a dataset, or a list of indices).
        val_fraction: fraction of the examples held out (rounded, at least 1).
        val_size: number of examples held out.
        seed: the split is a deterministic function of the length, size and seed.

    Returns:
        ``(train, val)``: disjoint positions in ``train_set`` covering it.
    """
    length = len(train_set)
    if (val_fraction is None) == (val_size is None):
        raise ValueError("give exactly one of val_fraction and val_size")
    if val_fraction is not None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        val_size = max(1, round(length * val_fraction))
    assert val_size is not None
    if not 1 <= val_size <= length - 1:
        raise ValueError(f"val_size must be in [1, {length - 1}] for {length} examples, got {val_size}")
    order = _permutation(length, seed)
    return order[val_size:], order[:val_size]


def _training_pool(train_set: Sized, seed: int, limit: int | None) -> list[int]:
    """Training-set positions shuffled by ``seed``, cut to the first ``limit``."""
    order = _permutation(len(train_set), seed)
    if limit is not None:
        if limit < 2:
            raise ValueError(f"limit must be >= 2, got {limit}")
        order = order[:limit]
    return order


def _training_loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    """Shuffled loader with its own generator (reseeded by the engine each epoch).

    ``drop_last`` avoids a final batch of 1, which BatchNorm cannot train on; a
    split smaller than one batch keeps its single short batch instead of none.
    """
    length = len(dataset)  # type: ignore[arg-type]
    if length < 2:
        raise ValueError(f"a training split needs at least 2 examples, got {length}")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=length >= batch_size,
        generator=torch.Generator(),
        num_workers=num_workers,
    )


def _evaluation_loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False, num_workers=num_workers)


def make_search_loaders(
    name: str,
    root: str | os.PathLike[str] = "data",
    *,
    batch_size: int = 64,
    seed: int = 0,
    augment: bool = True,
    cutout: int = 12,
    download: bool = False,
    svhn_extra: bool = False,
    limit: int | None = None,
    num_workers: int = 0,
) -> tuple[DataLoader, DataLoader, DatasetInfo]:
    """Loaders of the search: train_cs (weights) and val_cs (α), 50/50 of the training set.

    Both halves use the augmented transform, as DARTS does; the test set is not used.
    Both loaders shuffle with their own ``generator`` and drop a last partial batch.

    Args:
        name: dataset name (see :data:`DATASET_NAMES`).
        root: dataset root.
        batch_size: examples per batch.
        seed: seeds the subset chosen by ``limit`` and the 50/50 split.
        augment: docs/architecture.md §6 augmentation on both halves.
        cutout: Cutout size when ``augment`` (0 disables).
        download: let torchvision download missing files.
        svhn_extra: SVHN only: use train + extra.
        limit: use only the first ``limit`` examples of the training set shuffled by ``seed``.
        num_workers: DataLoader worker processes.

    Returns:
        ``(train_cs_loader, val_cs_loader, info)``.
    """
    train_set, _, info = load_datasets(name, root, download=download, svhn_extra=svhn_extra)
    pool = _training_pool(train_set, seed, limit)
    train_positions, val_positions = search_split(pool, seed)
    transform = build_transform(info, augment=augment, cutout=cutout)
    train_cs = TransformedSubset(train_set, [pool[p] for p in train_positions], transform)
    val_cs = TransformedSubset(train_set, [pool[p] for p in val_positions], transform)
    return (
        _training_loader(train_cs, batch_size, num_workers),
        _training_loader(val_cs, batch_size, num_workers),
        info,
    )


def make_train_loaders(
    name: str,
    root: str | os.PathLike[str] = "data",
    *,
    batch_size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.1,
    augment: bool = True,
    cutout: int = 12,
    download: bool = False,
    svhn_extra: bool = False,
    limit: int | None = None,
    num_workers: int = 0,
) -> tuple[DataLoader, DataLoader, DataLoader, DatasetInfo]:
    """Loaders of evaluation training: train (augmented), validation and test (plain).

    The validation split is carved from the training set (docs/architecture.md §6.3);
    the test set is kept apart. Only the training loader shuffles (own
    ``generator``, last partial batch dropped).

    Args:
        name: dataset name (see :data:`DATASET_NAMES`).
        root: dataset root.
        batch_size: examples per batch (all three loaders).
        seed: seeds the subset chosen by ``limit`` and the validation split.
        val_fraction: fraction of the (limited) training set held out for validation.
        augment: docs/architecture.md §6 augmentation on the training split.
        cutout: Cutout size when ``augment`` (0 disables).
        download: let torchvision download missing files.
        svhn_extra: SVHN only: use train + extra.
        limit: use only the first ``limit`` examples of the training set shuffled
            by ``seed``, and the first ``limit`` of the test set.
        num_workers: DataLoader worker processes.

    Returns:
        ``(train_loader, val_loader, test_loader, info)``.
    """
    train_set, test_set, info = load_datasets(name, root, download=download, svhn_extra=svhn_extra)
    pool = _training_pool(train_set, seed, limit)
    train_positions, val_positions = validation_split(pool, val_fraction, seed=seed)
    augmented = build_transform(info, augment=augment, cutout=cutout)
    plain = build_transform(info, augment=False)
    train = TransformedSubset(train_set, [pool[p] for p in train_positions], augmented)
    val = TransformedSubset(train_set, [pool[p] for p in val_positions], plain)
    test_length = len(test_set)  # type: ignore[arg-type]
    test = TransformedSubset(test_set, range(min(test_length, limit) if limit else test_length), plain)
    return (
        _training_loader(train, batch_size, num_workers),
        _evaluation_loader(val, batch_size, num_workers),
        _evaluation_loader(test, batch_size, num_workers),
        info,
    )
