"""The network-design search space: cells, layer layouts, widths, orderings, learning rate
(paper §5's future work; docs/network-design.md).

A :class:`DesignSpace` is plain data plus two pure functions of it:

* :meth:`DesignSpace.parameters` — the exact parameter count of a configuration,
  computed from the parts of the evaluation network (stem, one ReNet layer at a time,
  head) without building the whole network, so a sampler can ask it for every
  configuration it proposes;
* :meth:`DesignSpace.sample` — one configuration drawn through an Optuna-style trial
  (``suggest_categorical``/``suggest_int``/``suggest_float``; duck-typed, so the
  library needs no Optuna). With ``max_params`` the widths are drawn layer by layer
  from ranges that keep the network within the budget whatever the later layers draw,
  so every sample is feasible by construction (:meth:`check_budget` refuses a space
  whose smallest network of some cell and layout is already over it).

The sweep ``sweeps/design_network.py`` runs it with Ray Tune and Optuna's
multi-objective samplers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from dartsrenet.cells import CellFactory, DartsCell
from dartsrenet.data import IMAGE_SIZE
from dartsrenet.genotypes import Genotype, parse_genotype
from dartsrenet.network_spec import LayerSpec, NetworkSpec
from dartsrenet.networks import BASELINE_CELLS, Stem
from dartsrenet.renet import ReNetLayer


class TrialLike(Protocol):
    """What :meth:`DesignSpace.sample` needs of an Optuna trial."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...

    def suggest_int(self, name: str, low: int, high: int) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


@dataclass(frozen=True)
class DesignCell:
    """A cell choice: a GRU/LSTM baseline (``genotype`` None) or a genotype with its variant.

    Attributes:
        name: the choice's name (``gru``, ``vanilla``, ``searched_vanilla``, …).
        genotype: the genotype's string form, or None for a baseline.
        variant: the DARTS variant, or None for a baseline.
    """

    name: str
    genotype: str | None = None
    variant: str | None = None

    def factory(self) -> CellFactory:
        """Builds the cell of a sweep from (input_size, hidden_size); eager backend (counting only)."""
        if self.genotype is None:
            return BASELINE_CELLS[self.name]
        genotype: Genotype = parse_genotype(self.genotype)
        return partial(DartsCell, genotype=genotype, variant=self.variant or "vanilla", backend="eager")


def layouts(max_layers: int, patch_sizes: Sequence[int], stem_output: int = (IMAGE_SIZE + 1) // 2) -> list[tuple[int, ...]]:
    """Every tuple of 1 … ``max_layers`` patch sizes whose product divides ``stem_output``
    (16 for 32×32 images): the layer layouts a network can have."""
    valid = []
    for count in range(1, max_layers + 1):
        for patches in itertools.product(sorted(set(patch_sizes)), repeat=count):
            if stem_output % math.prod(patches) == 0:
                valid.append(patches)
    return valid


def layout_name(patches: Sequence[int]) -> str:
    """``(2, 4)`` → ``"2-4"``."""
    return "-".join(map(str, patches))


@dataclass(frozen=True)
class DesignSpace:
    """Choices of the network-design search.

    Attributes:
        cells: the cell choices.
        layouts: the layer layouts (patch size per layer), see :func:`layouts`.
        widths: a layer's width choices (even), ascending.
        orderings: the sequence orderings (one per network: every layer uses it).
        lr: (low, high) of the log-uniform learning rate.
        num_classes: classes of the head.
        max_params: the parameter budget, or None.
    """

    cells: tuple[DesignCell, ...]
    layouts: tuple[tuple[int, ...], ...]
    widths: tuple[int, ...]
    orderings: tuple[str, ...]
    lr: tuple[float, float]
    num_classes: int = 10
    max_params: int | None = None
    _counts: dict[tuple[Any, ...], int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.cells and self.layouts and self.widths and self.orderings):
            raise ValueError("a design space needs at least one cell, layout, width and ordering")
        if list(self.widths) != sorted(set(self.widths)) or any(w < 2 or w % 2 for w in self.widths):
            raise ValueError(f"widths must be distinct even numbers >= 2 in ascending order, got {list(self.widths)}")
        if not 0 < self.lr[0] <= self.lr[1]:
            raise ValueError(f"the learning-rate range must satisfy 0 < low <= high, got {self.lr}")

    def cell(self, name: str) -> DesignCell:
        return next(cell for cell in self.cells if cell.name == name)

    def network(self, layout: Sequence[int], widths: Sequence[int], ordering: str) -> NetworkSpec:
        return NetworkSpec(tuple(LayerSpec(p, w, ordering) for p, w in zip(layout, widths, strict=True)))

    # --- parameter counts ---------------------------------------------------------------

    def _count(self, key: tuple[Any, ...], build: Any) -> int:
        if key not in self._counts:
            self._counts[key] = sum(p.numel() for p in build().parameters() if p.requires_grad)
        return self._counts[key]

    def parameters(self, cell: str, network: NetworkSpec) -> int:
        """Trainable parameters of the evaluation network with ``cell`` and ``network``
        (equal to :func:`~dartsrenet.networks.count_parameters` of the built network)."""
        choice = self.cell(cell)
        total = self._count(("stem", network.stem_channels), lambda: Stem(3, network.stem_channels))
        inputs = network.stem_channels
        for layer in network.layers:
            total += self._count(
                (cell, inputs, layer.width, layer.patch_size),
                lambda i=inputs, layer=layer: ReNetLayer(i, layer.width // 2, choice.factory(), layer.patch_size),
            )
            inputs = layer.width
        height, width = network.output_size((IMAGE_SIZE, IMAGE_SIZE))
        features = network.output_channels * height * width
        return total + 2 * features + features * self.num_classes + self.num_classes  # BatchNorm1d + Linear head

    def _smallest(self, cell: str, layout: Sequence[int], widths: Sequence[int], ordering: str) -> int:
        """Parameters with the given first widths and every later layer at the smallest width."""
        rest = [self.widths[0]] * (len(layout) - len(widths))
        return self.parameters(cell, self.network(layout, [*widths, *rest], ordering))

    def check_budget(self) -> None:
        """Refuse a budget that the smallest network of some cell and layout exceeds.

        Raises:
            ValueError: naming the cell, the layout and its smallest count.
        """
        if self.max_params is None:
            return
        for choice, layout in itertools.product(self.cells, self.layouts):
            smallest = self._smallest(choice.name, layout, [], self.orderings[0])
            if smallest > self.max_params:
                raise ValueError(
                    f"the smallest {choice.name} network with layout {layout_name(layout)} "
                    f"(widths {self.widths[0]}) has {smallest:,} parameters, over the budget of {self.max_params:,}; "
                    "raise the budget, or leave that cell or layout out of the space"
                )

    def width_limit(self, cell: str, layout: Sequence[int], chosen: Sequence[int], ordering: str) -> int:
        """The largest index into :attr:`widths` that layer ``len(chosen)`` may draw so the
        network stays within the budget with every later layer at the smallest width."""
        if self.max_params is None:
            return len(self.widths) - 1
        limit = 0
        for index, width in enumerate(self.widths):
            if self._smallest(cell, layout, [*chosen, width], ordering) <= self.max_params:
                limit = index
        return limit

    # --- sampling -------------------------------------------------------------------------

    def sample(self, trial: TrialLike) -> dict[str, Any]:
        """Draw one configuration through ``trial``.

        Returns:
            ``{"model", "genotype", "variant", "network", "lr"}``: the fields of an
            evaluation trial's config (``model`` is the cell choice's name).
        """
        cell = trial.suggest_categorical("cell", [choice.name for choice in self.cells])
        layout = tuple(int(p) for p in trial.suggest_categorical("layout", [layout_name(l) for l in self.layouts]).split("-"))
        ordering = trial.suggest_categorical("ordering", list(self.orderings))
        widths: list[int] = []
        for layer in range(len(layout)):
            index = trial.suggest_int(f"width_{layer}", 0, self.width_limit(cell, layout, widths, ordering))
            widths.append(self.widths[index])
        lr = trial.suggest_float("lr", self.lr[0], self.lr[1], log=True)
        choice = self.cell(cell)
        return {
            "model": cell, "genotype": choice.genotype, "variant": choice.variant,
            "network": self.network(layout, widths, ordering).to_string(), "lr": lr,
        }


def paper_cells(variants: Sequence[str]) -> list[DesignCell]:
    """The GRU and LSTM baselines and the paper's genotype of each variant."""
    from dartsrenet.genotypes import PAPER_GENOTYPES

    return [DesignCell("gru"), DesignCell("lstm")] + [
        DesignCell(variant, PAPER_GENOTYPES[variant].to_string(), variant) for variant in variants
    ]



def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points, maximising the first value and minimising the
    second, in ascending order of the second.

    A point is dominated when another is at least as good in both values and better in one;
    equal points are all kept.
    """
    front = [
        index for index, (gain, cost) in enumerate(points)
        if not any(g >= gain and c <= cost and (g > gain or c < cost) for g, c in points)
    ]
    return sorted(front, key=lambda index: (points[index][1], -points[index][0]))


def parse_count(text: str) -> int:
    """``"1.5M"`` → 1500000, ``"800k"`` → 800000, ``"2e6"``/``"12345"`` as numbers.

    Raises:
        ValueError: for anything else, or a count below 1.
    """
    multipliers = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    cleaned = text.strip().replace("_", "").replace(",", "")
    scale = multipliers.get(cleaned[-1:].lower(), 1)
    number = cleaned[:-1] if scale != 1 else cleaned
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"a parameter count is a number with an optional k/M/G suffix (e.g. 1.5M), got {text!r}") from None
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"a parameter count must be at least 1, got {text!r}")
    return int(value)
