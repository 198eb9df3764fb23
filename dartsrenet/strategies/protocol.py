"""What a search strategy changes in the DARTS search loop, and DARTS itself (docs/search-strategies.md).

:func:`dartsrenet.search.search_epoch` runs every strategy with the same loop: per step an
α step on a val_cs batch, then a weight step on a train_cs batch. A strategy says

* which mixing weights the cells use in each step (:meth:`SearchStrategy.arch_step`,
  :meth:`SearchStrategy.weight_step`: context managers around the forward and backward
  passes; softmax(α) unless they set :meth:`~dartsrenet.cells.darts.ArchitectureWeights.mixing_with`),
  and whether there is an α step at all;
* how an epoch is validated and which genotype it stands for;
* how the final genotype is chosen: the best val_cs epoch's (DARTS), or a selection on the
  trained supernet after the last epoch (:meth:`SearchStrategy.select`).

Random draws come from the strategy's own generator, reseeded from (seed, epoch) at the
start of every epoch (stream :data:`STRATEGY_STREAM`): a run resumed from an epoch's
checkpoint draws what the uninterrupted run drew, and the global RNG (augmentation, data
order) is untouched, so ``darts`` is bit for bit the search without strategies.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from dartsrenet.cells.darts import ArchitectureWeights
from dartsrenet.genotypes import Genotype
from dartsrenet.networks import SearchNetwork
from dartsrenet.strategies.supernet import Batches
from dartsrenet.training import Log, epoch_seed

if TYPE_CHECKING:
    from dartsrenet.config import SearchConfig

STRATEGY_STREAM = 7
"""Seed stream of the strategies' draws (streams 0–2 are the global RNG and the two loaders)."""

SELECTION_EPOCH = 0
"""The 'epoch' whose seed a selection after training draws from."""


@dataclass
class SelectionContext:
    """What a selection after training may use.

    Attributes:
        val_batches: the fixed val_cs batches architectures are scored on.
        train_cs: the weights' loader (DARTS-PT's fine-tunes).
        weight_optimizer: the search's weight optimiser, as the last epoch left it.
        device: where the network lives.
        log: where progress lines go (None: silent).
    """

    val_batches: Batches
    train_cs: DataLoader
    weight_optimizer: torch.optim.Optimizer
    device: torch.device
    log: Log | None = None


class SearchStrategy:
    """DARTS (Liu et al. 2019; paper §2.2): softmax(α) in both steps, the best val_cs epoch's
    derived genotype (eq. 9–10). The other strategies override what differs."""

    name = "darts"
    updates_alpha = True  # an α step before every weight step
    capturable = True  # steps may be replayed from a CUDA graph (no draws on the host)
    selects = False  # a selection after training chooses the genotype

    def __init__(self, config: SearchConfig):
        self.config = config
        self.generator = torch.Generator()
        self.start_epoch(1)

    def start_epoch(self, epoch: int) -> None:
        """Reseed the strategy's draws for ``epoch`` (1-based; :data:`SELECTION_EPOCH` for a selection)."""
        self.epoch = epoch
        self.generator.manual_seed(epoch_seed(self.config.seed, epoch, STRATEGY_STREAM))

    def arch_step(self, architecture: ArchitectureWeights) -> AbstractContextManager[Any]:
        """Around the α step's forward and backward passes."""
        return nullcontext()

    def weight_step(self, architecture: ArchitectureWeights) -> AbstractContextManager[Any]:
        """Around the weight step's forward and backward passes."""
        return nullcontext()

    def validation(self, architecture: ArchitectureWeights) -> AbstractContextManager[Any]:
        """Around an epoch's val_cs evaluation."""
        return nullcontext()

    def epoch_genotype(self, model: SearchNetwork) -> Genotype:
        """The genotype an epoch stands for (the best epoch's is the run's unless the strategy selects)."""
        return model.genotype()

    def epoch_record(self) -> dict[str, Any]:
        """Extra per-epoch metrics (a temperature, a noise level)."""
        return {}

    def select(self, model: SearchNetwork, context: SelectionContext) -> tuple[Genotype, dict[str, Any]]:
        """The genotype chosen on the trained supernet, and a record of how (``selects`` only)."""
        raise NotImplementedError(f"strategy {self.name!r} does not select after training")
