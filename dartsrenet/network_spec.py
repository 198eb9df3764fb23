"""The shape of a ReNet network as a value: layers, patch sizes, widths, orderings (docs/network-design.md).

The paper fixes one design (Fig. 2; docs/architecture.md §2): a stem of N channels and
three ReNet layers of 2×2 patches and width N (N/2 units per direction), read in rows
then columns. Its §5 names the overall network design and the ordering within a
sequence as future work; a :class:`NetworkSpec` makes both configurable while the
paper's networks stay its default (:func:`paper_network`).

A spec has a compact string form, used in configs and sweeps::

    2x256,2x256,2x256              # the paper's evaluation network (N = 256)
    4x64/hilbert,2x32/serpentine   # two layers: 4×4 patches, width 64, Hilbert order; …

Each layer is ``PATCHxWIDTH`` with an optional ``/ORDERING`` (default ``rowcol``). The
width is a layer's output channels, two directions of width/2; the stem has the first
layer's width.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dartsrenet.orderings import ORDERINGS, PAPER_ORDERING

PAPER_PATCH_SIZE = 2
PAPER_NUM_LAYERS = 3

_LAYER = re.compile(r"(\d+)x(\d+)(?:/([a-z_]+))?")


@dataclass(frozen=True)
class LayerSpec:
    """One ReNet layer.

    Attributes:
        patch_size: p: the layer reads p×p patches and divides the spatial size by p.
        width: output channels (2 directions × width/2 hidden units); even.
        ordering: an :data:`~dartsrenet.orderings.ORDERINGS` name.
    """

    patch_size: int = PAPER_PATCH_SIZE
    width: int = 256
    ordering: str = PAPER_ORDERING

    def __post_init__(self) -> None:
        if self.patch_size < 1:
            raise ValueError(f"a layer's patch size must be at least 1, got {self.patch_size}")
        if self.width < 2 or self.width % 2:
            raise ValueError(f"a layer's width must be even and at least 2 (two directions of width/2), got {self.width}")
        if self.ordering not in ORDERINGS:
            raise ValueError(f"unknown ordering {self.ordering!r}; valid orderings: {', '.join(sorted(ORDERINGS))}")

    def to_string(self) -> str:
        suffix = "" if self.ordering == PAPER_ORDERING else f"/{self.ordering}"
        return f"{self.patch_size}x{self.width}{suffix}"


@dataclass(frozen=True)
class NetworkSpec:
    """The ReNet layers of a network, in order (at least one)."""

    layers: tuple[LayerSpec, ...]

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one ReNet layer")

    @property
    def stem_channels(self) -> int:
        """Channels of the stem: the first layer's width."""
        return self.layers[0].width

    @property
    def output_channels(self) -> int:
        """Channels of the last layer's output."""
        return self.layers[-1].width

    def output_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Spatial size after the stem (stride 2) and every layer, or a clear error.

        Raises:
            ValueError: if some layer's patch size does not divide its input's size.
        """
        height, width = (image_size[0] + 1) // 2, (image_size[1] + 1) // 2  # conv 7×7, stride 2, pad 3
        for index, layer in enumerate(self.layers, start=1):
            p = layer.patch_size
            if height % p or width % p:
                raise ValueError(
                    f"image size {image_size[0]}×{image_size[1]} gives a {height}×{width} map at ReNet layer "
                    f"{index}, not divisible by {p}; use sizes divisible by {2 * self.size_divisor} (e.g. 32)"
                )
            height, width = height // p, width // p
        return height, width

    @property
    def size_divisor(self) -> int:
        """The product of the patch sizes: what the stem's output size must be divisible by."""
        product = 1
        for layer in self.layers:
            product *= layer.patch_size
        return product

    def to_string(self) -> str:
        """The compact form, e.g. ``2x256,2x256,2x256``."""
        return ",".join(layer.to_string() for layer in self.layers)

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str) -> NetworkSpec:
        """Parse the compact form.

        Raises:
            ValueError: naming the malformed part and the expected form.
        """
        layers = []
        for part in text.replace(" ", "").split(","):
            match = _LAYER.fullmatch(part)
            if match is None:
                raise ValueError(
                    f"malformed network layer {part!r} in {text!r}; a network is comma-separated "
                    f"PATCHxWIDTH[/ORDERING] layers, e.g. 2x256,2x256/hilbert (orderings: {', '.join(sorted(ORDERINGS))})"
                )
            patch, width, ordering = match.groups()
            layers.append(LayerSpec(int(patch), int(width), ordering or PAPER_ORDERING))
        return cls(tuple(layers))


def paper_network(channels: int, num_layers: int = PAPER_NUM_LAYERS, ordering: str = PAPER_ORDERING) -> NetworkSpec:
    """The paper's design for ``channels`` N: ``num_layers`` layers of 2×2 patches and width N."""
    if channels < 2 or channels % 2:
        raise ValueError(f"channels must be even (two directions of channels/2), got {channels}")
    return NetworkSpec(tuple(LayerSpec(PAPER_PATCH_SIZE, channels, ordering) for _ in range(num_layers)))


def parse_network(network: str | NetworkSpec) -> NetworkSpec:
    """A spec as is, or parsed from its compact form."""
    return network if isinstance(network, NetworkSpec) else NetworkSpec.from_string(network)
