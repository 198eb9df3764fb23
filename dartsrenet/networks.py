"""The evaluation and search networks of DartsReNet (paper Fig. 2; docs/architecture.md §2–§3).

Both are: a convolutional stem (3 × Conv → ReLU → BatchNorm2d, 32×32 → 16×16), three
ReNet layers (16 → 8 → 4 → 2) and a linear head. The evaluation network (N = 256)
puts a BatchNorm1d before its head and runs a derived DARTS cell, a GRU or an LSTM;
the search network (N = 128) runs DARTS search cells that share one α.

The evaluation network also takes any :class:`~dartsrenet.network_spec.NetworkSpec`
(layers, patch sizes, widths, orderings; docs/network-design.md); the paper's design is
the default.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from torch import Tensor, nn

from dartsrenet.cells import ArchitectureWeights, CellFactory, DartsCell, DartsSearchCell, GRUCell, LSTMCell
from dartsrenet.genotypes import PAPER_GENOTYPES, Genotype, derive_genotype, parse_genotype
from dartsrenet.network_spec import NetworkSpec, paper_network, parse_network
from dartsrenet.registry import UnknownNameError
from dartsrenet.renet import ReNetLayer
from dartsrenet.variants import Variant, get_variant

NUM_RENET_LAYERS = 3  # the paper's (dartsrenet.network_spec.PAPER_NUM_LAYERS)
EVAL_CHANNELS = 256
SEARCH_CHANNELS = 128
BASELINE_CELLS = {"gru": GRUCell, "lstm": LSTMCell}


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class Stem(nn.Sequential):
    """Conv 7×7/2 → ReLU → BN, then twice Conv 3×3 → ReLU → BN (docs/architecture.md §2: BN after the activation)."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__(
            nn.Conv2d(in_channels, channels, kernel_size=7, stride=2, padding=3),
            nn.ReLU(),
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(channels),
        )


class ReNetBackbone(nn.Module):
    """Stem and ReNet layers: (B, 3, H, W) → (B, N, H/16, W/16) in the paper's design.

    Args:
        make_cell: builds the cell of every sweep from (input_size, hidden_size).
        channels: N; each direction has N/2 hidden units (ignored when ``network`` is given).
        image_size: (H, W) of the input; H/2 must be divisible by 2 at every ReNet layer.
        in_channels: image channels.
        num_layers: ReNet layers (ignored when ``network`` is given).
        network: the layers' patch sizes, widths and orderings (default: the paper's
            design, :func:`~dartsrenet.network_spec.paper_network`).
    """

    def __init__(
        self,
        make_cell: CellFactory,
        channels: int,
        image_size: int | tuple[int, int] = 32,
        in_channels: int = 3,
        num_layers: int = NUM_RENET_LAYERS,
        network: NetworkSpec | None = None,
    ):
        super().__init__()
        self.network = network if network is not None else paper_network(channels, num_layers)
        self.image_size = _pair(image_size)
        self.output_size = self.network.output_size(self.image_size)
        self.channels = self.network.output_channels
        self.stem = Stem(in_channels, self.network.stem_channels)
        layers, inputs = [], self.network.stem_channels
        for layer in self.network.layers:
            layers.append(ReNetLayer(inputs, layer.width // 2, make_cell, layer.patch_size, layer.ordering))
            inputs = layer.width
        self.layers = nn.Sequential(*layers)

    @property
    def num_features(self) -> int:
        """Features of the flattened output: N · H/16 · W/16."""
        return self.channels * self.output_size[0] * self.output_size[1]

    def forward(self, images: Tensor) -> Tensor:
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(
                f"this network was built for {self.image_size[0]}×{self.image_size[1]} images, "
                f"got {images.shape[-2]}×{images.shape[-1]}"
            )
        return self.layers(self.stem(images))


class EvalNetwork(nn.Module):
    """The evaluation network (docs/architecture.md §2): backbone → flatten → BatchNorm1d → Linear.

    Args:
        make_cell: the cell of every sweep.
        num_classes: outputs of the head.
        channels: N (256 in the paper).
        image_size: input size (32).
        head_init_range: the head's weights are U(−r, r): 0.5 for CIFAR-10, 0.05 for SVHN.
        network: the ReNet layers (default: the paper's design with N = ``channels``).
    """

    def __init__(
        self,
        make_cell: CellFactory,
        num_classes: int = 10,
        channels: int = EVAL_CHANNELS,
        image_size: int | tuple[int, int] = 32,
        head_init_range: float = 0.5,
        network: NetworkSpec | None = None,
    ):
        super().__init__()
        self.backbone = ReNetBackbone(make_cell, channels, image_size, network=network)
        self.head_norm = nn.BatchNorm1d(self.backbone.num_features)
        self.classifier = nn.Linear(self.backbone.num_features, num_classes)
        nn.init.uniform_(self.classifier.weight, -head_init_range, head_init_range)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) → logits (B, classes)."""
        features = self.backbone(images).flatten(1)  # (B, N·2·2), channel-major
        return self.classifier(self.head_norm(features))


class SearchNetwork(nn.Module):
    """The DARTS search network (docs/architecture.md §3): N = 128, plain linear head, one α for all cells.

    Args:
        variant: a :data:`~dartsrenet.variants.VARIANTS` name.
        num_classes: outputs of the head.
        channels: N (128 in the paper).
        image_size: input size (32).
        head_init_range: the head's weights are U(−r, r).
        backend: the DARTS cells' compute backend (:mod:`dartsrenet.cells.backends`).
    """

    def __init__(
        self,
        variant: str | Variant = "vanilla",
        num_classes: int = 10,
        channels: int = SEARCH_CHANNELS,
        image_size: int | tuple[int, int] = 32,
        head_init_range: float = 0.5,
        backend: str = "auto",
    ):
        super().__init__()
        self.variant = get_variant(variant)
        self.architecture = ArchitectureWeights()
        make_cell = partial(DartsSearchCell, architecture=self.architecture, variant=self.variant, backend=backend)
        self.backbone = ReNetBackbone(make_cell, channels, image_size)
        self.classifier = nn.Linear(self.backbone.num_features, num_classes)
        nn.init.uniform_(self.classifier.weight, -head_init_range, head_init_range)

    @property
    def alpha(self) -> nn.Parameter:
        """α, shape (36, 5): one row per edge j→i, one column per primitive."""
        return self.architecture.alpha

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters: [α]."""
        return [self.architecture.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except α (disjoint from :meth:`arch_parameters`)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def genotype(self) -> Genotype:
        """The genotype derived from the current α (eq. 9–10)."""
        return derive_genotype(self.architecture.alpha)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) → logits (B, classes)."""
        return self.classifier(self.backbone(images).flatten(1))


def resolve_cell(cell: str | Genotype | os.PathLike[str], variant: str | None = None) -> tuple[str, Genotype | None, str]:
    """Resolve what :func:`build_eval_model` accepts into (kind, genotype, variant name).

    ``kind`` is ``gru``, ``lstm`` or ``darts``. A paper variant name means that
    variant's paper genotype and implies the variant unless one is given.
    """
    if isinstance(cell, str) and cell in BASELINE_CELLS:
        if variant not in (None, "vanilla"):
            raise ValueError(f"variants apply to DARTS cells only; the {cell} baseline takes no variant {variant!r}")
        return cell, None, "vanilla"
    if isinstance(cell, str) and cell in PAPER_GENOTYPES:
        genotype, implied = PAPER_GENOTYPES[cell], cell
    elif isinstance(cell, str) and ":" not in cell and not Path(cell).is_file():
        valid = ", ".join(["gru", "lstm", *sorted(PAPER_GENOTYPES)])
        raise UnknownNameError(
            f"unknown cell {cell!r}; valid cells: {valid}, a genotype JSON file or a genotype string 'relu:0,…'"
        )
    else:
        genotype, implied = parse_genotype(cell), "vanilla"  # file/string errors name the problem
    variant_name = get_variant(variant if variant is not None else implied).name
    return "darts", genotype, variant_name


def build_eval_model(
    cell: str | Genotype | os.PathLike[str],
    variant: str | None = None,
    num_classes: int = 10,
    *,
    channels: int = EVAL_CHANNELS,
    image_size: int | tuple[int, int] = 32,
    head_init_range: float = 0.5,
    fused_baselines: bool = True,
    backend: str = "auto",
    network: str | NetworkSpec | None = None,
) -> EvalNetwork:
    """Build the evaluation network for a cell (docs/architecture.md §2).

    Args:
        cell: ``"gru"``, ``"lstm"``, a :class:`Genotype`, a paper variant name (its
            genotype, and its variant unless ``variant`` is given), a genotype JSON file
            or a genotype string.
        variant: a :data:`~dartsrenet.variants.VARIANTS` name for DARTS cells.
        num_classes: classes of the head.
        channels: N (256).
        image_size: input size (32).
        head_init_range: head weights U(−r, r).
        fused_baselines: run GRU/LSTM sweeps with torch's fused kernels.
        backend: the DARTS cells' compute backend (:mod:`dartsrenet.cells.backends`); chosen
            again for the device when the model is moved.
        network: the ReNet layers as a :class:`~dartsrenet.network_spec.NetworkSpec` or its
            string form (docs/network-design.md); replaces ``channels``. Default: the paper's.
    """
    kind, genotype, variant_name = resolve_cell(cell, variant)
    if kind == "darts":
        make_cell: CellFactory = partial(DartsCell, genotype=genotype, variant=variant_name, backend=backend)
    else:
        make_cell = partial(BASELINE_CELLS[kind], fused=fused_baselines)
    spec = parse_network(network) if network is not None else None
    return EvalNetwork(make_cell, num_classes, channels, image_size, head_init_range, spec)


def build_search_model(
    variant: str = "vanilla",
    num_classes: int = 10,
    *,
    channels: int = SEARCH_CHANNELS,
    image_size: int | tuple[int, int] = 32,
    head_init_range: float = 0.5,
    backend: str = "auto",
) -> SearchNetwork:
    """Build the search network for a variant (docs/architecture.md §3); ``backend`` as :func:`build_eval_model`."""
    return SearchNetwork(variant, num_classes, channels, image_size, head_init_range, backend)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
