"""GDAS's Gumbel-softmax sampling of one (predecessor, activation) per node (Dong & Yang 2019).

For node i the candidates are the pairs (j, f), j < i, f ≠ none, with logits α[j→i, f].
A sample draws g_k = −log(−log u_k), u_k ~ U(0, 1), and forms

    y = softmax((α + g) / τ),    k* = argmax_k y_k,    h = onehot(k*) − sg(y) + y,

(sg: stop-gradient). h is exactly one-hot in the forward pass and has the gradient of y:
∂h_k/∂α_j = y_k (δ_kj − y_j) / τ — the straight-through estimator. By the Gumbel-max
trick k* is distributed as softmax(α) whatever τ. τ falls linearly from τ_max = 10 to
τ_min = 0.1 over the search, as GDAS (docs/search-strategies.md).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dartsrenet.activations import NONE, PRIMITIVES
from dartsrenet.cells.darts import ArchitectureWeights
from dartsrenet.genotypes import NUM_NODES, Genotype, derive_genotype, edge_index, num_edges
from dartsrenet.strategies.protocol import SearchStrategy

GDAS_TAU_MAX = 10.0
GDAS_TAU_MIN = 0.1
"""GDAS's temperature schedule ends (Dong & Yang 2019, §4: τ from 10 to 0.1)."""


def gdas_temperature(epoch: int, epochs: int, tau_max: float = GDAS_TAU_MAX, tau_min: float = GDAS_TAU_MIN) -> float:
    """τ of ``epoch`` (1-based): τ_max − (τ_max − τ_min)·(epoch − 1)/(epochs − 1), as GDAS's code
    (τ_max at the first epoch, τ_min at the last; τ_max throughout a one-epoch search)."""
    if epochs <= 1 or epoch <= 1:
        return tau_max
    return tau_min + (tau_max - tau_min) * (epochs - epoch) / (epochs - 1)


def gumbel_noise(shape: Sequence[int], generator: torch.Generator) -> Tensor:
    """g = −log(−log u), u ~ U(0, 1) drawn on the CPU from ``generator`` (float64; u kept off 0 and 1)."""
    u = torch.rand(tuple(shape), generator=generator, dtype=torch.float64)
    tiny = torch.finfo(torch.float64).tiny
    return -torch.log(-torch.log(u.clamp(tiny, 1.0 - 2**-53)))


def straight_through_sample(logits: Tensor, tau: float, noise: Tensor) -> tuple[Tensor, Tensor]:
    """(h, y) over the last dimension: y = softmax((logits + noise)/τ), h = onehot(argmax y) − sg(y) + y.

    Args:
        logits: (…, K), with or without a gradient.
        tau: the temperature τ > 0.
        noise: Gumbel noise of ``logits``' shape (:func:`gumbel_noise`).
    """
    soft = F.softmax((logits + noise.to(logits.dtype).to(logits.device)) / tau, dim=-1)
    index = soft.argmax(dim=-1, keepdim=True)
    one_hot = torch.zeros_like(soft).scatter_(-1, index, 1.0)
    return one_hot - soft.detach() + soft, soft


def node_candidates(node: int, primitives: Sequence[str] = PRIMITIVES) -> list[tuple[int, int]]:
    """(α row, α column) of node ``node``'s candidates, in (predecessor, primitive) order, none excluded."""
    columns = [k for k, name in enumerate(primitives) if name != NONE]
    return [(edge_index(node, predecessor), column) for predecessor in range(node) for column in columns]


@functools.cache
def _candidate_layout(primitives: tuple[str, ...]) -> tuple[list[int], list[int], list[int], list[int]]:
    """Every node's candidates at once: (α rows, α columns, node − 1, position within the node)."""
    rows, columns, nodes, positions = [], [], [], []
    for node in range(1, NUM_NODES + 1):
        for position, (row, column) in enumerate(node_candidates(node, primitives)):
            rows.append(row)
            columns.append(column)
            nodes.append(node - 1)
            positions.append(position)
    return rows, columns, nodes, positions


def sample_mixing(
    alpha: Tensor, tau: float, generator: torch.Generator, primitives: Sequence[str] = PRIMITIVES
) -> tuple[Tensor, Genotype]:
    """One GDAS sample for the whole cell: mixing weights of α's shape (h on each node's candidates,
    0 elsewhere, the gradient of y flowing to α) and the sampled genotype.

    One (predecessor, activation) pair per node, each node from its own noise: the nodes'
    logits are laid out as the rows of an (8, 4·8) matrix, padded with −∞ (probability 0).
    """
    primitives = tuple(primitives)
    if alpha.shape != (num_edges(), len(primitives)):
        raise ValueError(f"alpha must have shape {(num_edges(), len(primitives))}, got {tuple(alpha.shape)}")
    rows, columns, nodes, positions = _candidate_layout(primitives)
    width = max(positions) + 1
    logits = alpha.new_full((NUM_NODES, width), float("-inf")).index_put((
        torch.tensor(nodes, device=alpha.device), torch.tensor(positions, device=alpha.device)
    ), alpha[rows, columns])
    hard, _ = straight_through_sample(logits, tau, gumbel_noise((NUM_NODES, width), generator))
    mixing = torch.zeros_like(alpha).index_put((
        torch.tensor(rows, device=alpha.device), torch.tensor(columns, device=alpha.device)
    ), hard[nodes, positions])
    chosen = hard.detach().argmax(dim=-1).tolist()
    recurrent = []
    for node, position in enumerate(chosen, 1):
        row, column = node_candidates(node, primitives)[position]
        recurrent.append((primitives[column], row - edge_index(node, 0)))
    return mixing, Genotype(recurrent=tuple(recurrent))


class GdasStrategy(SearchStrategy):
    """GDAS: a Gumbel sample per step and node; the weight step computes only the sampled path.

    α step: the cells mix with the straight-through sample h (:func:`sample_mixing`), so the
    forward pass is the sampled cell and α gets the gradient of y. Weight step: a fresh
    sample, computed as a path (:meth:`~dartsrenet.cells.darts.ArchitectureWeights.mixing_with`):
    with one-hot weights only the sampled predecessor's projection and activation matter,
    so the other edges are not computed at all (the same values and weight gradients).
    Validation: the cell derived from α (eq. 9–10) as a path — the cell GDAS returns.
    """

    name = "gdas"
    capturable = False

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        self.tau = gdas_temperature(max(epoch, 1), self.config.epochs, self.config.gdas_tau_max, self.config.gdas_tau_min)

    def arch_step(self, architecture: ArchitectureWeights) -> AbstractContextManager[Any]:
        mixing, _ = sample_mixing(architecture.alpha, self.tau, self.generator, architecture.primitives)
        return architecture.mixing_with(weights=mixing)

    def weight_step(self, architecture: ArchitectureWeights) -> AbstractContextManager[Any]:
        with torch.no_grad():
            _, path = sample_mixing(architecture.alpha, self.tau, self.generator, architecture.primitives)
        return architecture.mixing_with(path=path)

    def validation(self, architecture: ArchitectureWeights) -> AbstractContextManager[Any]:
        return architecture.mixing_with(path=derive_genotype(architecture.alpha, architecture.primitives))

    def epoch_record(self) -> dict[str, Any]:
        return {"gdas_tau": self.tau}
