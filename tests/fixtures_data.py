"""Format-exact tiny dataset fixtures for tests (CIFAR-10, SVHN, Fashion-MNIST, image folders).

Each writer lays files out exactly as torchvision reads them (DATA_NOTES.md), with
a few images whose pixels encode their class: every pixel of channel c is
``10 * label + c + 1`` except a marker pixel at (row 3, column 5) equal to
:data:`MARKER` (grey images use channel 0 only). ``decode_label`` inverts it.

For the download tests, :func:`write_cifar10_archive` packs the CIFAR-10 fixture as the
real archive, :func:`serve_files` serves it over local HTTP counting the requests,
and :func:`prepare_datasets_at_once` is the body of each concurrent process.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import pickle
import struct
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

MARKER = (200, 100, 50)
MARKER_ROW, MARKER_COL = 3, 5
EXTRA_MARKER = (255, 255, 255)


def coded_image(label: int, marker: tuple[int, int, int] = MARKER) -> np.ndarray:
    """A (32, 32, 3) uint8 image whose pixels encode ``label``, with the marker pixel."""
    image = np.empty((32, 32, 3), dtype=np.uint8)
    image[...] = [10 * label + 1, 10 * label + 2, 10 * label + 3]
    image[MARKER_ROW, MARKER_COL] = marker
    return image


def decode_label(raw_value: float, channel: int = 0) -> int:
    """Invert ``coded_image``'s background value of one channel."""
    return int(round((raw_value - channel - 1) / 10))


def write_cifar10(root: Path, per_batch: int = 4, test_size: int = 6) -> dict[str, list[int]]:
    """Write ``root/cifar-10-batches-py`` (5 data batches, test batch, meta). Returns the labels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    labels: dict[str, list[int]] = {"train": [], "test": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for batch, name in enumerate(names):
        size = test_size if name == "test_batch" else per_batch
        batch_labels = [(batch * per_batch + i) % 10 for i in range(size)]
        images = np.stack([coded_image(label) for label in batch_labels])  # (N, H, W, C)
        rows = images.transpose(0, 3, 1, 2).reshape(size, 3072)  # R1024 | G1024 | B1024
        entry = {
            "batch_label": name,
            "labels": batch_labels,
            "data": rows,
            "filenames": [f"{name}_{i}.png" for i in range(size)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(entry, handle)
        labels["test" if name == "test_batch" else "train"].extend(batch_labels)
    meta = {
        "label_names": [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ],
        "num_cases_per_batch": per_batch,
        "num_vis": 3072,
    }
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle)
    return labels


def write_svhn(root: Path, sizes: dict[str, int] | None = None) -> dict[str, list[int]]:
    """Write ``root/{train,test,extra}_32x32.mat`` as SVHN's MAT v5 files.

    ``y`` stores 10 for digit 0, as the real files do. Extra images carry
    :data:`EXTRA_MARKER`. Returns the digit labels (0..9) per split.
    """
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    sizes = sizes or {"train": 12, "test": 6, "extra": 8}
    digits: dict[str, list[int]] = {}
    for offset, (split, size) in enumerate(sizes.items()):
        split_digits = [(offset + i) % 10 for i in range(size)]
        marker = EXTRA_MARKER if split == "extra" else MARKER
        images = np.stack([coded_image(d, marker) for d in split_digits], axis=-1)  # (H, W, C, N)
        stored = np.array([[10 if d == 0 else d] for d in split_digits], dtype=np.uint8)  # (N, 1)
        savemat(str(root / f"{split}_32x32.mat"), {"X": images, "y": stored})
        digits[split] = split_digits
    return digits


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 + array.ndim  # 0x08 = unsigned byte
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion_mnist(
    directory: Path, train_size: int = 10, test_size: int = 5, gz: bool = False
) -> dict[str, list[int]]:
    """Write the four Fashion-MNIST IDX files (28×28 grey, coded like ``coded_image``'s channel 0).

    Args:
        directory: e.g. ``ROOT/FashionMNIST/raw`` (raw files) or a stand-in for
            the Debian directory (``gz=True``).
        train_size: training images.
        test_size: test images.
        gz: gzip the files (the ``*.gz`` names of the Debian package).
    """
    directory.mkdir(parents=True, exist_ok=True)
    labels: dict[str, list[int]] = {}
    for prefix, split, size in (("train", "train", train_size), ("t10k", "test", test_size)):
        split_labels = [(i * 3) % 10 for i in range(size)]
        images = np.stack([coded_image(label)[2:30, 2:30, 0] for label in split_labels])  # (N, 28, 28)
        images[:, MARKER_ROW, MARKER_COL] = MARKER[0]
        for kind, array in (("images-idx3", images), ("labels-idx1", np.array(split_labels))):
            name = f"{prefix}-{kind}-ubyte"
            payload = _idx_bytes(array)
            if gz:
                with gzip.open(directory / f"{name}.gz", "wb") as handle:
                    handle.write(payload)
            else:
                (directory / name).write_bytes(payload)
        labels[split] = split_labels
    return labels


#: (mode, size, colour) of the images written per class by ``write_imagefolder``.
IMAGE_VARIANTS = (("L", (40, 30)), ("RGBA", (16, 16)), ("RGB", (64, 48)))
CLASS_COLOURS = {"cat": (200, 100, 50), "dog": (20, 40, 60)}


def _colour_in_mode(colour: tuple[int, int, int], mode: str) -> tuple[int, ...] | int:
    if mode == "L":
        return colour[0]
    if mode == "RGBA":
        return (*colour, 128)
    return colour


def expected_rgb(colour: tuple[int, int, int], mode: str) -> tuple[int, int, int]:
    """The RGB value a constant image of ``colour`` written in ``mode`` converts back to."""
    return (colour[0],) * 3 if mode == "L" else colour


def write_imagefolder(path: Path, split_dirs: bool = True, per_variant: int = 1) -> None:
    """Write an ImageFolder tree of constant-colour PNGs of different sizes and modes.

    ``split_dirs=True`` writes ``path/{train,test}/{cat,dog}/``; otherwise
    ``path/{cat,dog}/`` (the single-tree layout).
    """
    splits = ("train", "test") if split_dirs else ("",)
    for split in splits:
        for name, colour in CLASS_COLOURS.items():
            folder = path / split / name if split else path / name
            folder.mkdir(parents=True, exist_ok=True)
            for repeat in range(per_variant):
                for mode, size in IMAGE_VARIANTS:
                    image = Image.new(mode, size, _colour_in_mode(colour, mode))
                    image.save(folder / f"{mode}_{repeat}.png")


# --------------------------------------------------------------------------- concurrent downloads


def write_cifar10_archive(directory: Path) -> tuple[Path, dict[str, str]]:
    """``directory/cifar-10-python.tar.gz`` holding a ``write_cifar10`` fixture, as the real archive is laid out.

    Returns the archive and the md5 of the archive (key ``"archive"``) and of each file in it.
    """
    staging = directory / "staging"
    write_cifar10(staging)
    archive = directory / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    md5s = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in (staging / "cifar-10-batches-py").iterdir()}
    md5s["archive"] = hashlib.md5(archive.read_bytes()).hexdigest()
    return archive, md5s


@contextlib.contextmanager
def serve_files(directory: Path, delay_s: float = 0.0) -> Iterator[tuple[str, Counter]]:
    """A local HTTP server for ``directory`` that counts GET requests per path and answers each after ``delay_s``.

    Yields ``(base URL, counter of GET paths)``.
    """
    gets: Counter = Counter()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            gets[self.path] += 1
            time.sleep(delay_s)
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", gets
    finally:
        server.shutdown()
        server.server_close()


def prepare_datasets_at_once(
    root: str, fashion_system_dir: str, cifar_url: str, cifar_md5s: dict[str, str], barrier: Any, results: Any
) -> None:
    """Process target: after ``barrier``, unpack Fashion-MNIST and download CIFAR-10 into the shared ``root``.

    CIFAR-10 is fetched by the unmodified torchvision class from a local mirror: only its
    URL and checksums point at the fixture archive (as a mirror of the real files would).
    Puts ``(whether this process unpacked Fashion-MNIST, CIFAR-10 train size, test size)`` on ``results``.
    """
    from torchvision.datasets import CIFAR10

    from dartsrenet.data import load_datasets, prepare_fashion_mnist

    CIFAR10.url = cifar_url
    CIFAR10.tgz_md5 = cifar_md5s["archive"]
    CIFAR10.train_list = [[name, cifar_md5s[name]] for name, _ in CIFAR10.train_list]
    CIFAR10.test_list = [[name, cifar_md5s[name]] for name, _ in CIFAR10.test_list]
    CIFAR10.meta = {**CIFAR10.meta, "md5": cifar_md5s["batches.meta"]}
    barrier.wait()
    unpacked = prepare_fashion_mnist(Path(root), Path(fashion_system_dir))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # tqdm's bar
        train, test, _ = load_datasets("cifar10", root, download=True)
    results.put((unpacked, len(train), len(test)))
