"""The interface every bidirectional cell implements, and the state layout they share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

NUM_DIRECTIONS = 2

State = Any  # a Tensor (2, B, h), or a tuple of them for the LSTM


def batch_major_zeros(batch_size: int, features: int, like: Tensor) -> Tensor:
    """Zeros (2, B, features) stored batch-major, as (B, 2, features)."""
    return like.new_zeros(batch_size, NUM_DIRECTIONS, features).transpose(0, 1)



class BidirectionalCell(nn.Module):
    """Interface of every cell: :meth:`initial_state`, :meth:`step`, :meth:`sweep`.

    Attributes:
        input_size: features of x_t.
        hidden_size: h, features of one direction's state.
    """

    input_size: int
    hidden_size: int

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        """Zero state for both directions (paper §2.1): (2, B, h)."""
        return like.new_zeros(NUM_DIRECTIONS, batch_size, self.hidden_size)

    def step(self, x: Tensor, state: State, t: int = 0) -> tuple[Tensor, State]:
        """Advance both directions by one step.

        Args:
            x: (2, B, input_size): the forward direction's input at t, the backward's at T−1−t.
            state: the previous state of both directions.
            t: the step's index in the sequence (selects per-step BatchNorm statistics).

        Returns:
            The output h_t (2, B, h) and the new state.
        """
        raise NotImplementedError

    def sweep(self, x: Tensor) -> Tensor:
        """Bidirectional sweep over sequences (paper eq. 1–2), step by step.

        Args:
            x: (T, B, input_size), time-major.

        Returns:
            (T, B, 2h): ``[forward ‖ backward]`` at every position, the backward
            direction re-aligned so that position t holds the state after reading
            positions T−1 … t.
        """
        steps = x.unbind(0)  # unbind, not x[t]: one backward node instead of T full-size zero tensors
        state = self.initial_state(x.shape[1], x)
        outputs = []
        for t in range(len(steps)):
            output, state = self.step(torch.stack([steps[t], steps[-1 - t]]), state, t)
            outputs.append(output)
        from dartsrenet.cells.maths import align_directions

        return align_directions(outputs)



CellFactory = Callable[[int, int], BidirectionalCell]
"""Builds a cell for a sweep from (input_size, hidden_size)."""
