"""Reading one image file of an image folder into the network's 32×32 8-bit RGB.

An image folder (``imagefolder:PATH``, :mod:`dartsrenet.data`) may hold any file a
user put there. Each file is read once, when the folder is opened, by :func:`read_image`:

* **Regular files only.** A FIFO named ``x.png`` would block the reader forever, a
  socket or a device (also through a link) is no image: refused by ``os.stat`` before
  the file is opened.
* **A pixel limit.** The image's size is read from its header first; an image with more
  than :func:`max_image_pixels` pixels is refused before it is decoded (default: Pillow's
  own hard limit, 2 × ``PIL.Image.MAX_IMAGE_PIXELS`` = 178,956,970 pixels; lower it with
  the environment variable :data:`MAX_PIXELS_VARIABLE`). Below the limit a large image is
  decoded once and kept only as its 32×32 copy.
* **Any bit depth to 8-bit RGB.** 16-bit grey (Pillow modes ``I;16``, ``I;16B``, …, and
  ``I`` with values in 0…65535, as 16-bit PNGs open) is scaled by 255/65535, not clipped
  at 255 (which made such images all white); 1-bit, grey, palette (with or without
  transparency), CMYK, YCbCr, LAB, HSV and the alpha modes are converted by Pillow;
  alpha is dropped. Floating-point images (mode ``F``) have no fixed range and are
  refused, as are modes Pillow cannot convert and ``I`` values outside 0…65535.
* Then resized to 32×32 (bilinear, antialiased), the network's input size (docs/architecture.md §2.1).

Every refusal is an :class:`ImageFileError`: one line naming the file and what to do.
"""

from __future__ import annotations

import os
import stat
import warnings

import numpy as np
from PIL import Image
from torchvision import transforms as T

from dartsrenet.dataset_names import IMAGE_SIZE

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "IMAGE_SIZE",
    "MAX_PIXELS_VARIABLE",
    "ImageFileError",
    "check_regular_file",
    "max_image_pixels",
    "read_image",
    "to_rgb8",
]


MAX_PIXELS_VARIABLE = "DARTSRENET_MAX_IMAGE_PIXELS"
"""Environment variable that lowers the pixel limit of :func:`max_image_pixels`."""

DEFAULT_MAX_IMAGE_PIXELS = 2 * int(Image.MAX_IMAGE_PIXELS or 89_478_485)
"""The default pixel limit: Pillow's own hard limit (it refuses larger images itself)."""

SIXTEEN_BIT_MODES: tuple[str, ...] = ("I;16", "I;16L", "I;16B", "I;16N")
"""Pillow's modes of 16-bit unsigned grey images."""

_RESIZE = T.Resize((IMAGE_SIZE, IMAGE_SIZE), interpolation=T.InterpolationMode.BILINEAR)


class ImageFileError(ValueError):
    """An image file that cannot be trained on as it is (the message names it, one line)."""


def max_image_pixels() -> int:
    """The pixel limit: :data:`MAX_PIXELS_VARIABLE` if set, else :data:`DEFAULT_MAX_IMAGE_PIXELS`.

    Raises:
        ValueError: the variable is not a whole number in 1 … the default.
    """
    text = os.environ.get(MAX_PIXELS_VARIABLE)
    if text is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= DEFAULT_MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{MAX_PIXELS_VARIABLE}={text!r}: must be a whole number of pixels in 1 … {DEFAULT_MAX_IMAGE_PIXELS:,} "
            "(Pillow's own limit)"
        )
    return limit


def check_regular_file(path: str | os.PathLike[str]) -> None:
    """Refuse anything but a regular file (links are followed), without opening it.

    Raises:
        ImageFileError: a FIFO, socket, device, or a file that cannot be looked at.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ImageFileError(f"{path}: cannot read it ({error.strerror}); repair or remove the file") from None
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
        )
        raise ImageFileError(f"{path}: {kind}, not an image file; remove it from the image folder")


def to_rgb8(image: Image.Image, path: str | os.PathLike[str]) -> Image.Image:
    """``image`` as 8-bit RGB (see the module docstring for each mode).

    Args:
        image: a decoded image of any Pillow mode.
        path: its file, for messages.

    Raises:
        ImageFileError: floating-point pixels, ``I`` values outside 0 … 65535, or a mode
            Pillow cannot convert.
    """
    mode = image.mode
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image).astype(np.int64)  # (H, W)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageFileError(
                f"{path}: 32-bit integer pixels in {values.min()} … {values.max()}, outside 16-bit 0 … 65535; "
                "save it as an 8- or 16-bit image"
            )
        grey = np.rint(values * (255 / 65535)).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "F":
        raise ImageFileError(
            f"{path}: floating-point pixels (Pillow mode F) have no fixed range; save it as an 8- or 16-bit image"
        )
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow's way for a palette with transparency
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ImageFileError(f"{path}: Pillow cannot convert mode {mode} to RGB ({error}); save it as RGB") from None


def read_image(path: str | os.PathLike[str], max_pixels: int | None = None) -> Image.Image:
    """The file at ``path`` as a 32×32 8-bit RGB image, decoded once.

    Args:
        path: an image file.
        max_pixels: the pixel limit (default: :func:`max_image_pixels`).

    Raises:
        ImageFileError: not a regular file, too many pixels, not a readable image, or a
            mode that cannot be converted (one line naming the file).
    """
    limit = max_image_pixels() if max_pixels is None else max_pixels
    check_regular_file(path)
    try:
        with warnings.catch_warnings():  # the limit below replaces Pillow's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > limit:
                    raise ImageFileError(
                        f"{path}: {width} × {height} = {width * height:,} pixels, over the limit of {limit:,}; "
                        f"shrink the image, or set {MAX_PIXELS_VARIABLE} (at most {DEFAULT_MAX_IMAGE_PIXELS:,})"
                    )
                image.load()
                rgb = to_rgb8(image, path)
    except ImageFileError:
        raise
    except Image.DecompressionBombError:
        raise ImageFileError(
            f"{path}: over Pillow's limit of {DEFAULT_MAX_IMAGE_PIXELS:,} pixels; shrink the image"
        ) from None
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, ...
        raise ImageFileError(
            f"{path}: not a readable image ({type(error).__name__}: {error}); repair or remove the file"
        ) from None
    return _RESIZE(rgb)

