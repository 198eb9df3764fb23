"""Random search with weight sharing (Li & Talwalkar 2019).

The supernet's weights are trained on one path per step, drawn uniformly from the
search space (:func:`~dartsrenet.genotypes.sample_genotype`: each node a predecessor
and an activation uniformly); α is not used. Then N genotypes are drawn the same way,
each is scored by the supernet's validation accuracy on its path with the shared
weights, and the best is returned (docs/search-strategies.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from dartsrenet.cells.darts import ArchitectureWeights
from dartsrenet.genotypes import Genotype, sample_genotype
from dartsrenet.networks import SearchNetwork
from dartsrenet.strategies.protocol import SELECTION_EPOCH, STRATEGY_STREAM, SearchStrategy, SelectionContext
from dartsrenet.strategies.supernet import supernet_metrics
from dartsrenet.training import epoch_seed

if TYPE_CHECKING:
    from dartsrenet.config import SearchConfig

RSWS_CANDIDATES = 100
"""N, the genotypes ranked by the trained supernet (Li & Talwalkar rank a sample of
architectures by shared-weight validation accuracy; 100 keeps the ranking to minutes)."""


Score = tuple[float, float]
"""(accuracy, loss) of an architecture on the supernet."""


def rank_genotypes(genotypes: Sequence[Genotype], score: Callable[[Genotype], Score]) -> list[tuple[Genotype, Score]]:
    """(genotype, (accuracy, loss)) pairs, best first: highest accuracy, then lowest loss, then
    the earlier sampled.

    Raises:
        ValueError: no genotypes, or a score is not finite.
    """
    if not genotypes:
        raise ValueError("no genotypes to rank")
    scored = []
    for genotype in genotypes:
        accuracy, loss = (float(value) for value in score(genotype))
        if not (math.isfinite(accuracy) and math.isfinite(loss)):
            raise ValueError(f"the supernet scored genotype {genotype.to_string()} as {(accuracy, loss)}; scores must be finite")
        scored.append((genotype, (accuracy, loss)))
    order = sorted(range(len(scored)), key=lambda k: (-scored[k][1][0], scored[k][1][1], k))
    return [scored[k] for k in order]


class RswsStrategy(SearchStrategy):
    """RSWS: weight steps on uniformly sampled paths, no α; then the best of N sampled genotypes.

    Each epoch is validated on one fixed sampled path (drawn from the seed), a measure of how
    far the shared weights have trained; the run's genotype is the ranking's winner.
    """

    name = "rsws"
    updates_alpha = False
    capturable = False
    selects = True

    def __init__(self, config: SearchConfig):
        super().__init__(config)
        self.validation_path = sample_genotype(epoch_seed(config.seed, SELECTION_EPOCH, STRATEGY_STREAM + 1))

    def weight_step(self, architecture: ArchitectureWeights) -> AbstractContextManager[Any]:
        return architecture.mixing_with(path=sample_genotype(self.generator))

    def validation(self, architecture: ArchitectureWeights) -> AbstractContextManager[Any]:
        return architecture.mixing_with(path=self.validation_path)

    def epoch_genotype(self, model: SearchNetwork) -> Genotype:
        return self.validation_path

    def select(self, model: SearchNetwork, context: SelectionContext) -> tuple[Genotype, dict[str, Any]]:
        self.start_epoch(SELECTION_EPOCH)
        candidates = [sample_genotype(self.generator) for _ in range(self.config.rsws_candidates)]
        log = context.log
        log and log(f"[rsws] ranking {len(candidates)} sampled genotypes on the supernet ({len(context.val_batches)} val_cs batches)")
        ranking = rank_genotypes(candidates, lambda genotype: supernet_metrics(model, context.val_batches, path=genotype))
        record = {
            "method": "rsws", "candidates": len(candidates), "val_batches": len(context.val_batches),
            "ranking": [{"genotype": genotype.to_string(), "accuracy": accuracy, "loss": loss}
                        for genotype, (accuracy, loss) in ranking],
        }
        return ranking[0][0], record
