"""Image folders with files of every kind (dartsrenet/images.py, dartsrenet/data.py).

Real files written with Pillow in the formats users have — 16-bit PNGs, 32-bit integer
and floating-point TIFFs, 1-bit, palette with transparency, CMYK, grey with alpha — go
through the unmodified ``imagefolder:`` loading path; a FIFO, a socket and a device
named ``*.png`` are refused without being opened; a large image is decoded once when
the folder is opened and a lowered pixel limit refuses it with one line.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dartsrenet import images
from dartsrenet.data import (
    DatasetFileError,
    check_image_folder,
    load_datasets,
    make_train_loaders,
)
from tests.fixtures_data import write_imagefolder


def decoded_pixels(folder: Path, file_name: str) -> np.ndarray:
    """The (32, 32, 3) uint8 pixels ``imagefolder:folder`` gives for the training file ``file_name``."""
    train, _, _ = load_datasets(f"imagefolder:{folder}")
    (index,) = [k for k, (path, _) in enumerate(train.samples) if Path(path).name == file_name]
    image, _ = train[index]
    assert image.mode == "RGB" and image.size == (32, 32)
    return np.asarray(image)


def folder_with(tmp_path: Path, file_name: str, image: Image.Image, **save: object) -> Path:
    """An image folder (cat/dog, train/test) with ``image`` saved as ``train/cat/<file_name>``."""
    folder = tmp_path / "images"
    write_imagefolder(folder)
    image.save(folder / "train" / "cat" / file_name, **save)
    return folder


# --------------------------------------------------------------------------- bit depths and modes


def test_16_bit_png_is_scaled_to_8_bits_not_clipped_white(tmp_path):
    values = np.full((40, 40), 20_000, dtype=np.uint16)  # 20000 × 255/65535 = 77.8 → 78
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    folder = folder_with(tmp_path, "grey16.png", image)
    assert Image.open(folder / "train" / "cat" / "grey16.png").mode.startswith("I")  # really 16-bit on disk
    assert (decoded_pixels(folder, "grey16.png") == 78).all()


def test_16_bit_gradient_keeps_its_range(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))  # black → white, left to right
    folder = folder_with(tmp_path, "ramp16.png", Image.fromarray(ramp))
    pixels = decoded_pixels(folder, "ramp16.png")[..., 0]
    expected = np.rint(ramp.astype(np.float64) * 255 / 65535)
    assert np.abs(pixels.astype(int) - expected).max() <= 1  # the bilinear resize 32 → 32 keeps values
    assert pixels[:, 0].max() <= 1 and pixels[:, -1].min() >= 254


def test_32_bit_integer_image_in_16_bit_range_is_scaled(tmp_path):
    image = Image.fromarray(np.full((20, 20), 65535, dtype=np.int32))
    assert image.mode == "I"
    folder = folder_with(tmp_path, "int32.tif", image)
    assert (decoded_pixels(folder, "int32.tif") == 255).all()


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (Image.fromarray(np.full((20, 20), 70_000, dtype=np.int32)), r"int32\.tif: 32-bit integer pixels in 70000"),
        (Image.fromarray(np.full((20, 20), -5, dtype=np.int32)), r"int32\.tif: 32-bit integer pixels in -5"),
        (Image.fromarray(np.full((20, 20), 0.5, dtype=np.float32)), r"int32\.tif: floating-point pixels \(Pillow mode F\)"),
    ],
    ids=["over-16-bit", "negative", "float"],
)
def test_images_without_a_known_range_are_refused_with_one_line(tmp_path, image, message):
    folder = folder_with(tmp_path, "int32.tif", image)
    with pytest.raises(DatasetFileError, match=message) as error:
        load_datasets(f"imagefolder:{folder}")
    assert "\n" not in str(error.value)


def test_1_bit_image_is_black_and_white(tmp_path):
    image = Image.new("1", (32, 32), 0)
    image.paste(1, (16, 0, 32, 32))  # right half white
    folder = folder_with(tmp_path, "bits.png", image)
    pixels = decoded_pixels(folder, "bits.png")
    assert (pixels[:, :15] == 0).all() and (pixels[:, 17:] == 255).all()


def test_palette_with_transparency_keeps_its_colours_without_a_warning(tmp_path):
    image = Image.new("P", (32, 32), 1)
    image.putpalette([0, 0, 0, 200, 100, 50] + [0, 0, 0] * 254)
    image.info["transparency"] = 0
    folder = folder_with(tmp_path, "palette.png", image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns when such an image goes straight to RGB
        pixels = decoded_pixels(folder, "palette.png")
    assert (pixels == [200, 100, 50]).all()


@pytest.mark.parametrize(
    ("mode", "value", "file_name", "expected"),
    [
        ("CMYK", (255, 0, 0, 0), "cmyk.tif", (0, 255, 255)),  # full cyan
        ("LA", (90, 10), "grey_alpha.png", (90, 90, 90)),  # alpha dropped
        ("I;16", 65535, "white16.png", (255, 255, 255)),
    ],
)
def test_other_modes_convert_to_8_bit_rgb(tmp_path, mode, value, file_name, expected):
    folder = folder_with(tmp_path, file_name, Image.new(mode, (24, 24), value))
    assert (decoded_pixels(folder, file_name) == expected).all()


# --------------------------------------------------------------------------- files that are not regular


def test_a_fifo_named_png_is_refused_without_blocking(tmp_path):
    folder = tmp_path / "images"
    write_imagefolder(folder)
    fifo = folder / "train" / "dog" / "x.png"
    os.mkfifo(fifo)
    done = threading.Event()

    def unblock() -> None:  # if the loader opened the FIFO, it would wait for a writer forever
        if not done.wait(30):
            with open(fifo, "wb"):
                pass

    threading.Thread(target=unblock, daemon=True).start()
    try:
        for check in (check_image_folder, lambda path: load_datasets(f"imagefolder:{path}")):
            with pytest.raises(DatasetFileError) as error:
                check(folder)
            assert str(error.value) == f"{fifo}: a FIFO (named pipe), not an image file; remove it from the image folder"
    finally:
        done.set()


def test_a_socket_and_a_device_are_refused(tmp_path):
    short = Path(tempfile.mkdtemp(prefix="img"))  # a socket's path must be short
    try:
        write_imagefolder(short)
        path = short / "train" / "cat" / "s.png"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        try:
            with pytest.raises(DatasetFileError, match=f"^{path}: a socket, not an image file"):
                check_image_folder(short)
        finally:
            server.close()
    finally:
        shutil.rmtree(short)
    folder = tmp_path / "images"
    write_imagefolder(folder)
    device = folder / "test" / "dog" / "zero.png"
    device.symlink_to("/dev/zero")  # a link to a device: os.stat follows it
    with pytest.raises(DatasetFileError, match=f"^{device}: a device, not an image file"):
        load_datasets(f"imagefolder:{folder}")


# --------------------------------------------------------------------------- large images


def test_a_large_image_is_decoded_once_when_the_folder_is_opened(tmp_path):
    big = Image.new("RGB", (3000, 2000), (10, 200, 30))
    folder = folder_with(tmp_path, "big.png", big)
    train, test, _ = load_datasets(f"imagefolder:{folder}")
    (index,) = [k for k, (path, _) in enumerate(train.samples) if Path(path).name == "big.png"]
    (folder / "train" / "cat" / "big.png").unlink()  # every later access reads the kept 32×32 copy
    assert (np.asarray(train[index][0]) == (10, 200, 30)).all()
    loaders = make_train_loaders(f"imagefolder:{folder}", batch_size=4, limit=None, val_fraction=0.25)
    assert sum(len(labels) for _, labels in loaders[0]) > 0  # training reads no file either
    assert train.images.shape == (len(train), 32, 32, 3) and train.images.dtype == np.uint8


def test_a_lowered_pixel_limit_refuses_a_large_image_with_one_line(tmp_path, monkeypatch):
    folder = folder_with(tmp_path, "big.png", Image.new("RGB", (1200, 1000), (1, 2, 3)))
    monkeypatch.setenv(images.MAX_PIXELS_VARIABLE, "1000000")
    big = folder / "train" / "cat" / "big.png"
    with pytest.raises(DatasetFileError) as error:
        load_datasets(f"imagefolder:{folder}")
    assert str(error.value) == (
        f"{big}: 1200 × 1000 = 1,200,000 pixels, over the limit of 1,000,000; shrink the image, or set "
        f"{images.MAX_PIXELS_VARIABLE} (at most {images.DEFAULT_MAX_IMAGE_PIXELS:,})"
    )
    monkeypatch.setenv(images.MAX_PIXELS_VARIABLE, "1200000")  # at the limit: read
    assert (decoded_pixels(folder, "big.png") == (1, 2, 3)).all()


@pytest.mark.parametrize("value", ["many", "0", str(images.DEFAULT_MAX_IMAGE_PIXELS + 1)])
def test_a_bad_pixel_limit_is_one_line(monkeypatch, value):
    monkeypatch.setenv(images.MAX_PIXELS_VARIABLE, value)
    with pytest.raises(ValueError, match=f"^{images.MAX_PIXELS_VARIABLE}='{value}': must be a whole number"):
        images.max_image_pixels()
