"""Snapshots of a network's buffers (BatchNorm running statistics, their slots, ``num_batches_tracked``).

Passes that must leave the network as they found it take a snapshot first and put it back
afterwards: second-order DARTS's virtual step and finite difference
(:mod:`dartsrenet.second_order`, DARTS eq. 7–8) and the scoring of architectures with the
supernet's shared weights (:mod:`dartsrenet.strategies.supernet`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

BufferSnapshot = list[tuple[nn.Module, str, torch.Tensor]]
"""A copy of every buffer, with its module and name."""


def snapshot_buffers(model: nn.Module) -> BufferSnapshot:
    """A copy of every buffer of ``model``, with its module and name."""
    return [
        (module, name, buffer.detach().clone())
        for module in model.modules()
        for name, buffer in module.named_buffers(recurse=False)
    ]


def restore_buffers(snapshot: BufferSnapshot) -> None:
    """Put every buffer back as :func:`snapshot_buffers` saw it (a buffer that grew slots is replaced)."""
    with torch.no_grad():
        for module, name, saved in snapshot:
            current = getattr(module, name)
            if current is not None and current.shape == saved.shape and current.dtype == saved.dtype:
                current.copy_(saved)
            else:
                setattr(module, name, saved)


@contextmanager
def preserved_buffers(model: nn.Module) -> Iterator[None]:
    """Every buffer of ``model`` is as before when the block ends, however it ends."""
    snapshot = snapshot_buffers(model)
    try:
        yield
    finally:
        restore_buffers(snapshot)
