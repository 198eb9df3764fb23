"""DARTS-PT: perturbation-based selection on a trained DARTS supernet (Wang et al. 2021).

DARTS derives the cell by the largest α (eq. 9–10); DARTS-PT keeps instead the operation
whose removal hurts the supernet most. Here a node i chooses one (predecessor j,
activation f): with the supernet mixing with weights A (softmax(α), nodes already decided
made one-hot), the score of (j, f) is

    Δ(j, f) = acc(A) − acc(A with A[j→i, f] = 0),

the drop of the supernet's validation accuracy when that candidate is masked out (the
others keep their weights). The node keeps the candidate of largest Δ (ties: the lower j,
then the earlier activation), is made one-hot on it, and, optionally, the supernet's
weights are fine-tuned for a few steps before the next node is decided. Nodes are decided
in a random order, as DARTS-PT takes its edges (docs/search-strategies.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dartsrenet.activations import PRIMITIVES
from dartsrenet.genotypes import NUM_NODES, Genotype, derive_genotype, edge_index
from dartsrenet.networks import SearchNetwork
from dartsrenet.runs import NonFiniteLossError
from dartsrenet.strategies.gdas import node_candidates
from dartsrenet.strategies.protocol import SELECTION_EPOCH, SearchStrategy, SelectionContext
from dartsrenet.strategies.supernet import supernet_metrics


Evaluate = Callable[[Tensor], tuple[float, float]]
"""(accuracy, loss) of the supernet with given mixing weights."""


def perturbation_scores(
    node: int, mixing: Tensor, evaluate: Evaluate, primitives: Sequence[str] = PRIMITIVES,
    base: tuple[float, float] | None = None,
) -> list[tuple[int, str, float, float]]:
    """Δ for every candidate of ``node``: (predecessor, activation, accuracy drop, loss rise), in candidate order.

    Args:
        node: 1 … 8.
        mixing: the supernet's current mixing weights (α's shape).
        evaluate: the supernet's validation (accuracy, loss) with given mixing weights.
        primitives: α's column names.
        base: ``evaluate(mixing)`` if already known.
    """
    base_accuracy, base_loss = evaluate(mixing) if base is None else base
    scores = []
    for row, column in node_candidates(node, primitives):
        masked = mixing.clone()
        masked[row, column] = 0.0
        accuracy, loss = evaluate(masked)
        scores.append((row - edge_index(node, 0), primitives[column], base_accuracy - accuracy, loss - base_loss))
    return scores


def discretise_node(mixing: Tensor, node: int, predecessor: int, activation: str, primitives: Sequence[str] = PRIMITIVES) -> Tensor:
    """``mixing`` with node ``node``'s edges one-hot on (predecessor, activation)."""
    mixing = mixing.clone()
    for j in range(node):
        mixing[edge_index(node, j)] = 0.0
    mixing[edge_index(node, predecessor), list(primitives).index(activation)] = 1.0
    return mixing


def select_by_perturbation(
    probabilities: Tensor,
    evaluate: Evaluate,
    order: Sequence[int],
    fine_tune: Callable[[Tensor], None] | None = None,
    primitives: Sequence[str] = PRIMITIVES,
) -> tuple[Genotype, list[dict[str, Any]]]:
    """Decide every node by perturbation (see the module docstring).

    The largest accuracy drop wins; equal drops (a small validation set has few distinct
    accuracies) go to the larger loss rise, then to the earlier candidate.

    Args:
        probabilities: softmax(α) of the trained supernet, (36, 5).
        evaluate: validation (accuracy, loss) of the supernet with given mixing weights.
        order: the nodes 1 … 8 in the order they are decided.
        fine_tune: called with the mixing weights after each decision (short weight training).
        primitives: α's column names.

    Returns:
        The genotype and, per decision, the node, its scores and its choice.
    """
    if sorted(order) != list(range(1, NUM_NODES + 1)):
        raise ValueError(f"order must hold the nodes 1 … {NUM_NODES} once each, got {list(order)}")
    mixing = probabilities.detach().clone()
    chosen: dict[int, tuple[str, int]] = {}
    decisions = []
    for node in order:
        base = evaluate(mixing)
        scores = perturbation_scores(node, mixing, evaluate, primitives, base=base)
        best = max(range(len(scores)), key=lambda k: (scores[k][2], scores[k][3], -k))
        predecessor, activation = scores[best][:2]
        chosen[node] = (activation, predecessor)
        decisions.append({
            "node": node, "base_accuracy": base[0], "base_loss": base[1], "chosen": [activation, predecessor],
            "scores": [{"predecessor": j, "activation": f, "accuracy_drop": drop, "loss_rise": rise}
                       for j, f, drop, rise in scores],
        })
        mixing = discretise_node(mixing, node, predecessor, activation, primitives)
        if fine_tune is not None:
            fine_tune(mixing)
    return Genotype(recurrent=tuple(chosen[node] for node in range(1, NUM_NODES + 1))), decisions


def decision_order(generator: torch.Generator) -> list[int]:
    """The nodes 1 … 8 in a random order drawn from ``generator``."""
    return [int(k) + 1 for k in torch.randperm(NUM_NODES, generator=generator)]


def fine_tune_weights(model: SearchNetwork, mixing: Tensor, context: SelectionContext, steps: int, grad_clip: float) -> None:
    """``steps`` weight steps of the search's weight optimiser on train_cs batches, the cells
    mixing with ``mixing`` (α is not trained)."""
    model.train()
    weights = model.weight_parameters()
    batches = iter(context.train_cs)
    for _ in range(steps):
        try:
            images, labels = next(batches)
        except StopIteration:
            batches = iter(context.train_cs)
            images, labels = next(batches)
        images, labels = images.to(context.device), labels.to(context.device)
        context.weight_optimizer.zero_grad(set_to_none=True)
        with model.architecture.mixing_with(weights=mixing):
            loss = F.cross_entropy(model(images).float(), labels)
        if not bool(torch.isfinite(loss)):
            raise NonFiniteLossError(f"loss became {float(loss)} in a DARTS-PT fine-tune step; lower lr_min or the fine-tune steps")
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(weights, grad_clip)
        context.weight_optimizer.step()
    context.weight_optimizer.zero_grad(set_to_none=True)


class DartsPtStrategy(SearchStrategy):
    """DARTS-PT: a DARTS search, then the genotype chosen by perturbation on the trained supernet."""

    name = "darts_pt"
    selects = True

    def select(self, model: SearchNetwork, context: SelectionContext) -> tuple[Genotype, dict[str, Any]]:
        self.start_epoch(SELECTION_EPOCH)
        order = decision_order(self.generator)
        steps = self.config.pt_finetune_steps
        log = context.log
        log and log(f"[darts_pt] perturbation selection, nodes in order {order}, {steps} fine-tune steps between decisions")

        def evaluate(mixing: Tensor) -> tuple[float, float]:
            return supernet_metrics(model, context.val_batches, mixing=mixing)

        def fine_tune(mixing: Tensor) -> None:
            fine_tune_weights(model, mixing, context, steps, self.config.grad_clip)

        probabilities = model.architecture.probabilities().detach()
        genotype, decisions = select_by_perturbation(
            probabilities, evaluate, order, fine_tune if steps > 0 else None, model.architecture.primitives
        )
        record = {
            "method": "darts_pt", "order": order, "fine_tune_steps": steps, "val_batches": len(context.val_batches),
            "argmax_genotype": derive_genotype(probabilities, model.architecture.primitives).to_string(),
            "decisions": decisions,
        }
        return genotype, record
