"""The Triton kernels as PyTorch custom ops, ``torch.ops.dartsrenet.triton_*``, registered on import.

Each op is registered with :func:`torch.library.triton_op`, so ``torch.compile`` and
CUDA-graph capture see one op per kernel launch (the accumulating backward passes are
``triton_node_backward_accumulate`` and ``triton_mixed_backward_accumulate``). Their
arguments are tensors, numbers and flags (what an op schema holds); the block sizes are
arguments too, so that tests can run many small blocks. An absent optional tensor
reaches a kernel as None (never read: its HAS_* flag is off), not as a stand-in tensor:
a stand-in aliasing a written argument would confuse torch.compile's functionalisation.

Imported by :mod:`dartsrenet.kernels.triton_backend` at the first kernel call (it imports Triton).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dartsrenet.kernels import triton_device as device
from dartsrenet.kernels.protocol import strides
from dartsrenet.kernels.triton_layout import grid


def _check_splits(row_splits: int, batch_stats: bool) -> None:
    if row_splits < 1 or (batch_stats and row_splits != 1):
        raise ValueError(
            f"triton kernels: row_splits {row_splits} is not possible here; valid: 1 with batch statistics, "
            ">= 1 with running statistics"
        )


def _triton_node_forward(
    source: Tensor, projection: Tensor, code: int, weight: Tensor | None, bias: Tensor | None, batch_stats: bool,
    running_mean: Tensor | None, running_var: Tensor | None, eps: float, statistics: Tensor, out: Tensor,
    block_rows: int, block_columns: int, row_splits: int,
) -> None:  # fmt: skip
    _, rows, hidden = source.shape
    _check_splits(row_splits, batch_stats)
    torch.library.wrap_triton(device.node_forward_kernel)[grid(hidden, block_columns, row_splits)](
        projection, projection.stride(0), projection.stride(1), source, source.stride(0), source.stride(1),
        out, out.stride(0), out.stride(1),
        weight, bias, running_mean, running_var, statistics, statistics.stride(0), rows, hidden, row_splits, eps,
        ACTIVATION=code, HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None, BATCH_STATS=batch_stats,
        BLOCK_ROWS=block_rows, BLOCK_COLUMNS=block_columns,
    )  # fmt: skip


def _triton_node_backward(
    grad: Tensor | None, grad_scale: float, extra: Tensor | None, source: Tensor, projection: Tensor, code: int,
    weight: Tensor | None, batch_stats: bool, statistics: Tensor, grad_state: Tensor, accumulate: bool,
    grad_projection: Tensor, block_rows: int, block_columns: int, row_splits: int,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    _, rows, hidden = source.shape
    grad_weight, grad_bias = source.new_empty(2 * hidden), source.new_empty(2 * hidden)
    _triton_node_backward_accumulate(
        grad, grad_scale, extra, source, projection, code, weight, batch_stats, statistics, grad_state, accumulate,
        grad_projection, grad_weight, grad_bias, False, block_rows, block_columns, row_splits,
    )  # fmt: skip
    return grad_weight, grad_bias


def _triton_node_backward_accumulate(
    grad: Tensor | None, grad_scale: float, extra: Tensor | None, source: Tensor, projection: Tensor, code: int,
    weight: Tensor | None, batch_stats: bool, statistics: Tensor, grad_state: Tensor, accumulate: bool,
    grad_projection: Tensor, grad_weight: Tensor, grad_bias: Tensor, add_affine: bool, block_rows: int,
    block_columns: int, row_splits: int,
) -> None:  # fmt: skip
    _, rows, hidden = source.shape
    _check_splits(row_splits, False)
    torch.library.wrap_triton(device.node_backward_kernel)[grid(hidden, block_columns, row_splits)](
        grad, *strides(grad), grad_scale, extra, *strides(extra),
        projection, projection.stride(0), projection.stride(1), source, source.stride(0), source.stride(1),
        weight, statistics, statistics.stride(0),
        grad_state, grad_state.stride(0), grad_state.stride(1),
        grad_projection, grad_projection.stride(0), grad_projection.stride(1),
        grad_weight, grad_bias, int(add_affine), rows, hidden, row_splits,
        ACTIVATION=code, HAS_GRAD=grad is not None, HAS_EXTRA=extra is not None, HAS_WEIGHT=weight is not None,
        BATCH_STATS=batch_stats, ACCUMULATE=accumulate, BLOCK_ROWS=block_rows, BLOCK_COLUMNS=block_columns,
    )  # fmt: skip


def _triton_mixed_forward(
    sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool, running_mean: Tensor | None,
    running_var: Tensor | None, eps: float, statistics: Tensor, out: Tensor, block_rows: int, block_columns: int,
    row_splits: int,
) -> None:  # fmt: skip
    _, count, rows, hidden = sources.shape
    _check_splits(row_splits, batch_stats)
    torch.library.wrap_triton(device.mixed_forward_kernel)[grid(hidden, block_columns, row_splits)](
        projection, *projection.stride()[:3], sources, *sources.stride()[:3], weights, weights.stride(0), count,
        out, out.stride(0), out.stride(1), running_mean, running_var, statistics, statistics.stride(0), rows, hidden,
        row_splits, eps,
        BATCH_STATS=batch_stats, BLOCK_ROWS=block_rows, BLOCK_COLUMNS=block_columns,
    )  # fmt: skip


def _triton_mixed_backward(
    grad: Tensor, out: Tensor, sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool,
    statistics: Tensor, grad_sources: Tensor, grad_projection: Tensor, block_rows: int, block_columns: int,
    row_splits: int,
) -> Tensor:  # fmt: skip
    _, count, rows, hidden = sources.shape
    directions, blocks, ranges = grid(hidden, block_columns, row_splits)
    partial = sources.new_empty(directions * blocks * ranges, count, 4)  # dw_jf per program
    _triton_mixed_backward_accumulate(
        grad, out, sources, projection, weights, batch_stats, statistics, grad_sources, grad_projection, partial,
        False, block_rows, block_columns, row_splits,
    )  # fmt: skip
    return partial.sum(0)


def _triton_mixed_backward_accumulate(
    grad: Tensor, out: Tensor, sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool,
    statistics: Tensor, grad_sources: Tensor, grad_projection: Tensor, partial: Tensor, add_partial: bool,
    block_rows: int, block_columns: int, row_splits: int,
) -> None:  # fmt: skip
    _, count, rows, hidden = sources.shape
    _check_splits(row_splits, False)
    torch.library.wrap_triton(device.mixed_backward_kernel)[grid(hidden, block_columns, count * row_splits)](
        grad, grad.stride(0), grad.stride(1), out, out.stride(0), out.stride(1),
        projection, *projection.stride()[:3], sources, *sources.stride()[:3], weights, weights.stride(0), count,
        statistics, statistics.stride(0),
        grad_sources, *grad_sources.stride()[:3], grad_projection, *grad_projection.stride()[:3],
        partial, partial.stride(0), int(add_partial), rows, hidden, row_splits,
        BATCH_STATS=batch_stats, BLOCK_ROWS=block_rows, BLOCK_COLUMNS=block_columns,
    )  # fmt: skip


OPS = {  # op name: (implementation, the arguments it writes)
    "triton_node_forward": (_triton_node_forward, ("statistics", "out")),
    "triton_node_backward": (_triton_node_backward, ("grad_state", "grad_projection")),
    "triton_node_backward_accumulate": (
        _triton_node_backward_accumulate, ("grad_state", "grad_projection", "grad_weight", "grad_bias")
    ),
    "triton_mixed_forward": (_triton_mixed_forward, ("statistics", "out")),
    "triton_mixed_backward": (_triton_mixed_backward, ("grad_sources", "grad_projection")),
    "triton_mixed_backward_accumulate": (
        _triton_mixed_backward_accumulate, ("grad_sources", "grad_projection", "partial")
    ),
}
"""Every op this module registers."""

for _name, (_implementation, _written) in OPS.items():
    torch.library.triton_op(f"dartsrenet::{_name}", _implementation, mutates_args=_written)
