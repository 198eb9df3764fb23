"""The per-example transforms of docs/architecture.md §6: the augmentation (random crop,
horizontal flip where the dataset allows it, :class:`Cutout` after normalisation) and
the plain evaluation transform; see :mod:`dartsrenet.data`'s docstring for where the
randomness comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchvision import transforms as T

from dartsrenet.dataset_base import DatasetInfo


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
