"""Scoring architectures with the supernet's shared weights (RSWS ranking, DARTS-PT, Kendall τ).

An architecture — mixing weights of α's shape or one path (a genotype) — is scored by the
search network's accuracy on a fixed list of validation batches, with the shared weights
as trained. BatchNorm uses each batch's own statistics (training mode, no gradient): the
running statistics were gathered over many paths and fit none of them, so every
architecture is normalised for itself, as one-shot methods re-estimate BatchNorm per
path. Every buffer is put back afterwards: scoring changes nothing in the network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from dartsrenet.buffers import preserved_buffers
from dartsrenet.genotypes import Genotype
from dartsrenet.networks import SearchNetwork
from dartsrenet.runs import NonFiniteOutputError

Batches = Sequence[tuple[Tensor, Tensor]]


def fixed_batches(loader: DataLoader, limit: int | None, device: torch.device) -> list[tuple[Tensor, Tensor]]:
    """The first ``limit`` batches of ``loader`` (all when None), on ``device``: every
    architecture is scored on the same images."""
    batches = []
    for images, labels in loader:
        if limit is not None and len(batches) >= limit:
            break
        batches.append((images.to(device), labels.to(device)))
    if not batches:
        raise ValueError("no validation batches to score architectures on")
    return batches


def supernet_metrics(
    model: SearchNetwork, batches: Batches, *, mixing: Tensor | None = None, path: Genotype | None = None
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the supernet on ``batches``, mixing with ``mixing`` or
    computing only ``path`` (neither: softmax(α)).

    Raises:
        NonFiniteOutputError: some logits are NaN or infinite.
    """
    was_training = model.training
    model.train()
    correct = seen = 0
    loss_sum = 0.0
    try:
        with torch.no_grad(), preserved_buffers(model), model.architecture.mixing_with(mixing, path):
            for images, labels in batches:
                logits = model(images).float()
                if not bool(torch.isfinite(logits).all()):
                    raise NonFiniteOutputError("the supernet's outputs are not finite (NaN or infinite) while scoring")
                correct += int((logits.argmax(dim=1) == labels).sum())
                loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
                seen += labels.numel()
    finally:
        model.train(was_training)
    return correct / seen, loss_sum / seen

