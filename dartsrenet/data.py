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

Not supported: datasets other than the above; images other than 32×32 at the
network input.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout
from PIL import Image
from torch import Tensor
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from torchvision import datasets as tv_datasets
from torchvision import transforms as T

from dartsrenet.dataset_names import DATASET_NAMES, IMAGEFOLDER_PREFIX
from dartsrenet.images import IMAGE_SIZE, ImageFileError, check_regular_file, max_image_pixels, read_image
from dartsrenet.registry import lookup

logger = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "FASHION_MNIST_SYSTEM_DIR",
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

#: Where the Debian package ``dataset-fashion-mnist`` installs the gzip IDX files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
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


# --------------------------------------------------------------------------- transforms


class Cutout:
    """Cutout (DeVries & Taylor, 2017) on a normalised (C, H, W) tensor (docs/architecture.md §6).

    A centre (y, x) is drawn uniformly over the image with torch's RNG; the
    ``size``×``size`` square around it, clipped at the borders, is set to 0 in
    every channel. ``size=0`` disables it. The input is not modified.

    Args:
        size: side of the square in pixels (12 in docs/architecture.md §6); 0 disables.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"Cutout size must be >= 0, got {size}")
        self.size = size

    def __call__(self, image: Tensor) -> Tensor:
        if self.size == 0:
            return image
        height, width = image.shape[-2:]
        y = int(torch.randint(height, ()).item())
        x = int(torch.randint(width, ()).item())
        half = self.size // 2
        y0, y1 = max(0, y - half), min(height, y - half + self.size)
        x0, x1 = max(0, x - half), min(width, x - half + self.size)
        image = image.clone()
        image[..., y0:y1, x0:x1] = 0.0
        return image

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


def build_transform(info: DatasetInfo, *, augment: bool, cutout: int = 12) -> T.Compose:
    """The per-example transform from a 32×32 RGB PIL image to a normalised tensor.

    Args:
        info: the dataset (normalisation constants, whether to flip).
        augment: docs/architecture.md §6 augmentation (crop, flip where allowed, Cutout); ``False``
            gives the plain ``ToTensor`` + ``Normalize`` used for evaluation.
        cutout: Cutout square size, applied after normalisation when ``augment``;
            0 disables.

    Returns:
        A ``Compose`` mapping a PIL image to a (3, 32, 32) float tensor.
    """
    steps: list[Callable[[Any], Any]] = []
    if augment:
        steps.append(T.RandomCrop(info.image_size, padding=4, fill=0, padding_mode="constant"))
        if info.flip:
            steps.append(T.RandomHorizontalFlip(0.5))
    steps += [T.ToTensor(), T.Normalize(info.mean, info.std)]
    if augment and cutout > 0:
        steps.append(Cutout(cutout))
    return T.Compose(steps)


def _to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


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


# --------------------------------------------------------------------------- sources


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


class _Cifar10Source:
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


class _SvhnSource:
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


class _FashionMnistSource:
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


def _fixed_split(labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified 80/20 (train, test) split of ``digits`` and single-tree folders."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(labels))
    train, test = train_test_split(
        positions, test_size=FIXED_TEST_FRACTION, stratify=np.asarray(labels), random_state=FIXED_SPLIT_SEED
    )
    return np.sort(train), np.sort(test)


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
    train, test = _fixed_split(labels)
    return rgb[train], labels[train], rgb[test], labels[test]


class _DigitsSource:
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


class _ImageFolderSource:
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
        train_positions, test_positions = _fixed_split(whole.targets)
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


# Fashion-MNIST / digits constants (see the sources above).
_FASHION_MEAN = 0.2190  # = 0.2860 (unpadded mean) × 784 / 1024
_FASHION_STD = 0.3318
_DIGITS_MEAN = 0.3054
_DIGITS_STD = 0.3237

#: The registry of datasets with fixed names (:data:`dartsrenet.dataset_names.FIXED_DATASETS`);
#: ``imagefolder:PATH`` is resolved apart.
DATASETS: dict[str, Any] = {
    "cifar10": _Cifar10Source(),
    "svhn": _SvhnSource(),
    "fashion_mnist": _FashionMnistSource(),
    "digits": _DigitsSource(),
}


def _source(name: str) -> Any:
    if name.startswith(IMAGEFOLDER_PREFIX):
        return _ImageFolderSource(name[len(IMAGEFOLDER_PREFIX) :])
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
