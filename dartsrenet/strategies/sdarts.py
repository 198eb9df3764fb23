"""SDARTS-RS: random smoothing of the architecture weights during the weight step (Chen & Hsieh 2020).

The weight step trains w on L_train(w, Ā + δ) with Ā = softmax(α) and δ ~ U(−ε, ε)
element-wise, so w is trained for a neighbourhood of the architecture rather than for one
point; the α step is DARTS's, on the unperturbed α. As SDARTS's code, the perturbed
weights are projected back onto the simplex per edge: clamped to [0, 1] and divided by
their sum (a row that clamps to all zeros keeps its largest entry at 1). α itself is never
changed: the noisy weights are a detached copy. SDARTS's code ramps ε linearly over the
search, ε_e = ε_start + (ε_end − ε_start)·(e − 1)/E for epoch e of E, from 0.03 to 0.3;
equal ends give a fixed ε (docs/search-strategies.md).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from dartsrenet.cells.darts import ArchitectureWeights
from dartsrenet.strategies.protocol import SearchStrategy

SDARTS_EPSILON_START = 0.03
SDARTS_EPSILON_END = 0.3
"""ε's ramp in SDARTS's search code (``epsilon_alpha``: 0.03 rising linearly to 0.3)."""


def sdarts_epsilon(epoch: int, epochs: int, start: float = SDARTS_EPSILON_START, end: float = SDARTS_EPSILON_END) -> float:
    """ε of ``epoch`` (1-based) of ``epochs``: start + (end − start)·(epoch − 1)/epochs."""
    return start + (end - start) * (epoch - 1) / epochs


def uniform_noise(shape: tuple[int, ...], epsilon: float, generator: torch.Generator) -> Tensor:
    """δ ~ U(−ε, ε) element-wise, drawn on the CPU from ``generator`` (float64)."""
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * epsilon


def project_to_simplex(weights: Tensor) -> Tensor:
    """SDARTS's ``clip`` per row: clamp to [0, 1], a row that became all zeros gets 1 at its
    largest entry, then divide by the row sum."""
    clamped = weights.clamp(0.0, 1.0)
    empty = clamped.sum(dim=-1, keepdim=True) == 0
    largest = torch.zeros_like(clamped).scatter_(-1, weights.argmax(dim=-1, keepdim=True), 1.0)
    clamped = torch.where(empty, largest, clamped)
    return clamped / clamped.sum(dim=-1, keepdim=True)


def perturbed_mixing(probabilities: Tensor, epsilon: float, generator: torch.Generator) -> Tensor:
    """project_to_simplex(sg(Ā) + δ): the weight step's mixing weights (no gradient to α)."""
    noise = uniform_noise(tuple(probabilities.shape), epsilon, generator).to(probabilities.device, probabilities.dtype)
    return project_to_simplex(probabilities.detach() + noise)


class SdartsStrategy(SearchStrategy):
    """SDARTS-RS: DARTS with the weight step on :func:`perturbed_mixing` of softmax(α)."""

    name = "sdarts_rs"
    capturable = False

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        config = self.config
        self.epsilon = sdarts_epsilon(max(epoch, 1), config.epochs, config.sdarts_epsilon_start, config.sdarts_epsilon_end)

    def weight_step(self, architecture: ArchitectureWeights) -> AbstractContextManager[Any]:
        return architecture.mixing_with(weights=perturbed_mixing(architecture.probabilities(), self.epsilon, self.generator))

    def epoch_record(self) -> dict[str, Any]:
        return {"sdarts_epsilon": self.epsilon}
