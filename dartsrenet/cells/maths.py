"""The paper's maths of a DARTS cell, in plain PyTorch (paper eq. 2–8).

Everything the cells compute is built from these functions; the ``eager`` backend runs
them as written, and the ``native`` and ``triton`` backends (:mod:`dartsrenet.cells.backends`)
are tested against them. ``docs/architecture.md`` describes the cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dartsrenet.activations import Activation


def node_update(state: Tensor, gate: Tensor, candidate: Tensor) -> Tensor:
    """One DARTS node (paper eq. 5): s_i = s_p + c_i ⊙ (f_i(ĥ_i) − s_p).

    Computed as ``torch.lerp`` (one fused kernel); the result has ``state``'s memory layout
    and dtype (under bf16 autocast the states, BatchNorm outputs, stay float32).

    Args:
        state: the predecessor's state s_p.
        gate: the update gate c_i = σ(c), in [0, 1].
        candidate: the candidate f_i(ĥ_i).
    """
    return torch.lerp(state, candidate.to(state.dtype), gate.to(state.dtype))


def gated_node(state: Tensor, projection: Tensor, activation: Activation) -> Tensor:
    """A derived node from its projection [c, ĥ] = s_p·W_i: node_update(s_p, σ(c), f(ĥ)).

    Args:
        state: s_p, (2, B, h).
        projection: [c, ĥ], (2, B, 2h).
        activation: f.
    """
    gate, candidate = projection.chunk(2, dim=-1)
    return node_update(state, torch.sigmoid(gate), activation(candidate))


def mixed_node(
    sources: Tensor, projection: Tensor, weights: Tensor, kept: Tensor, activations: Sequence[Activation]
) -> Tensor:
    """A search node: Σ_j Σ_{f≠none} p_f^{(j)} · node_update(s_j, σ(c_j), f(ĥ_j)) (eq. 8).

    Computed with fewer element-wise passes through the identity (P = Σ_{f≠none} p_f)

        Σ_f p_f · node_update(s, g, f(ĥ)) = Σ_f p_f·s + g ⊙ (Σ_f p_f f(ĥ) − Σ_f p_f·s)
                                          = node_update(P·s, g, Σ_f p_f f(ĥ)),

    which holds because node_update is affine in (s, f(ĥ)) for a fixed gate g.
    ``tests/test_reference_oracle.py`` checks it against the term-by-term sum.

    Args:
        sources: s_0 … s_{i−1} stacked, (2, i, B, h).
        projection: [c_j, ĥ_j] = s_j·W_i, (2, i, B, 2h).
        weights: p_f per primitive f ≠ none, (F, 1, i, 1, 1) in the order of ``activations``.
        kept: P = Σ_{f≠none} p_f per edge, (1, i, 1, 1).
        activations: the primitives' functions f.

    Returns:
        The node's state before its BatchNorm, (2, B, h), stored batch-major.
    """
    gate, candidate = projection.chunk(2, dim=-1)
    mixed = sum(weight * activation(candidate) for weight, activation in zip(weights, activations, strict=True))
    updates = node_update(kept * sources, torch.sigmoid(gate), mixed)  # (2, i, B, h)
    return updates.permute(2, 0, 1, 3).sum(dim=2).transpose(0, 1)  # Σ_j, stored batch-major as (B, 2, h)


# --- optional torch.compile of the element-wise work ---------------------------------


def directional_matmul(x: Tensor, weight: Tensor) -> Tensor:
    """Multiply each direction's inputs by its weight matrix.

    Args:
        x: (2, …, k) inputs, direction first (any memory layout with k innermost).
        weight: (D, k, m); D = 1 means one matrix shared by both directions.

    Returns:
        (2, …, m); with shared weights, in x's memory layout.
    """
    if weight.shape[0] == 1:
        # one mm over every row of x, taken in memory order: no copy for batch-major layouts
        order = sorted(range(x.dim() - 1), key=lambda dim: -x.stride(dim)) + [x.dim() - 1]
        in_memory_order = x.permute(*order)
        if in_memory_order.is_contiguous():
            return torch.matmul(in_memory_order, weight[0]).permute(*sorted(range(x.dim()), key=order.__getitem__))
        return torch.matmul(x, weight[0])
    directions = x.shape[0]
    flat = x.reshape(directions, -1, x.shape[-1])  # (2, N, k), a view for the layouts used here
    return torch.bmm(flat, weight).view(*x.shape[:-1], weight.shape[-1])



def align_directions(outputs: Sequence[Tensor]) -> Tensor:
    """Step outputs (2, B, h) → (T, B, 2h): ``[forward ‖ backward]`` in spatial order (eq. 2)."""
    forward, backward = torch.stack(outputs).unbind(1)  # (T, B, h) each; unbind: no per-step select backward
    return torch.cat([forward, backward.flip(0)], dim=-1)  # backward at position t: after reading T−1 … t


def average_states(states: Sequence[Tensor]) -> Tensor:
    """Mean of node states (2, B, h), stored batch-major."""
    stacked = torch.stack([state.transpose(0, 1) for state in states], dim=1)  # (B, n, 2, h)
    return stacked.mean(dim=1).transpose(0, 1)

