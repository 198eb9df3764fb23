"""Sequence orderings of a ReNet layer's sweeps over its patch grid (paper §5; docs/network-design.md).

The paper sweeps each patch row left↔right, then each column top↕bottom (eq. 1–2;
Visin et al. 2015). Its closing section names "different ordering within a sequence" as
future work; an :class:`Ordering` says, for each of a layer's two sweeps, which grid
cells form a sequence and in which order:

* ``rowcol`` — the paper's: the horizontal sweep has one sequence per patch row (length
  W/p), the vertical sweep one per column (length H/p);
* ``serpentine`` — one sequence over the whole grid, boustrophedon: row 0 left→right,
  row 1 right→left, … for the horizontal sweep; column 0 top→bottom, column 1
  bottom→top, … for the vertical sweep;
* ``hilbert`` — one sequence along a generalized Hilbert curve ("gilbert", J. Červený's
  construction), defined for any rectangle, not only square powers of two: the
  horizontal sweep's curve travels along the width, the vertical sweep's is the
  transposed curve, travelling along the height. Neighbours along the curve are
  neighbours in the grid (on grids with an odd side one diagonal step may occur).

An ordering is a permutation of the grid: :func:`ordered_sweep` gathers the grid into
sequences before a cell's bidirectional sweep and scatters the outputs back to spatial
order after it, so the cells and their compute backends never know which ordering runs.
Each sweep stays bidirectional: both directions read the same sequence, one from each end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from dartsrenet.cells import BidirectionalCell
from dartsrenet.registry import lookup

SWEEPS = ("horizontal", "vertical")
"""A ReNet layer's two sweeps, in the order they run."""

Sequences = list[list[tuple[int, int]]]
"""Sequences of (row, column) grid cells, each in reading order."""


@dataclass(frozen=True)
class Ordering:
    """A way to read a patch grid as sequences, for each of a layer's two sweeps.

    Attributes:
        name: the registry name.
        description: one line for docs and errors.
        sequences: (rows, columns, sweep) → the sequences of (row, column) cells, all of
            one length, together covering every cell once.
    """

    name: str
    description: str
    sequences: Callable[[int, int, str], Sequences]


def _row_column(rows: int, cols: int, sweep: str) -> Sequences:
    if sweep == "horizontal":
        return [[(r, c) for c in range(cols)] for r in range(rows)]
    return [[(r, c) for r in range(rows)] for c in range(cols)]


def _serpentine(rows: int, cols: int, sweep: str) -> Sequences:
    if sweep == "horizontal":
        return [[(r, c) for r in range(rows) for c in (range(cols) if r % 2 == 0 else reversed(range(cols)))]]
    return [[(r, c) for c in range(cols) for r in (range(rows) if c % 2 == 0 else reversed(range(rows)))]]


def _hilbert(rows: int, cols: int, sweep: str) -> Sequences:
    if sweep == "horizontal":
        return [[(y, x) for x, y in gilbert_curve(cols, rows)]]
    return [[(r, c) for r, c in gilbert_curve(rows, cols)]]


def gilbert_curve(width: int, height: int) -> list[tuple[int, int]]:
    """The generalized Hilbert curve over a width × height rectangle, as (x, y) points.

    Travels along the longer side (x when they are equal): from (0, 0) to (width − 1, 0),
    or to (0, height − 1) when the rectangle is taller than wide. For a square
    power-of-two side this is the Hilbert curve.

    Raises:
        ValueError: for a side below 1.
    """
    if width < 1 or height < 1:
        raise ValueError(f"a grid needs sides of at least 1, got {width}×{height}")
    if width >= height:
        return list(_gilbert(0, 0, width, 0, 0, height))
    return list(_gilbert(0, 0, 0, height, width, 0))


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def _gilbert(x: int, y: int, ax: int, ay: int, bx: int, by: int) -> Iterator[tuple[int, int]]:
    """Fill the rectangle spanned by major axis (ax, ay) and minor axis (bx, by) from (x, y)."""
    width, height = abs(ax + ay), abs(bx + by)
    dax, day = _sign(ax), _sign(ay)  # unit step along the major axis
    dbx, dby = _sign(bx), _sign(by)  # unit step along the minor axis
    if height == 1:
        for _ in range(width):
            yield x, y
            x, y = x + dax, y + day
        return
    if width == 1:
        for _ in range(height):
            yield x, y
            x, y = x + dbx, y + dby
        return
    ax2, ay2, bx2, by2 = ax // 2, ay // 2, bx // 2, by // 2
    width2, height2 = abs(ax2 + ay2), abs(bx2 + by2)
    if 2 * width > 3 * height:  # long rectangle: two halves along the major axis
        if width2 % 2 and width > 2:  # prefer even halves
            ax2, ay2 = ax2 + dax, ay2 + day
        yield from _gilbert(x, y, ax2, ay2, bx, by)
        yield from _gilbert(x + ax2, y + ay2, ax - ax2, ay - ay2, bx, by)
        return
    if height2 % 2 and height > 2:  # prefer even halves
        bx2, by2 = bx2 + dbx, by2 + dby
    # up the first half of the minor axis, along the whole major axis, back down
    yield from _gilbert(x, y, bx2, by2, ax2, ay2)
    yield from _gilbert(x + bx2, y + by2, ax, ay, bx - bx2, by - by2)
    yield from _gilbert(
        x + (ax - dax) + (bx2 - dbx), y + (ay - day) + (by2 - dby), -bx2, -by2, -(ax - ax2), -(ay - ay2)
    )


ORDERINGS: dict[str, Ordering] = {
    ordering.name: ordering
    for ordering in (
        Ordering("rowcol", "the paper's: rows, then columns, each a sequence", _row_column),
        Ordering("serpentine", "the whole grid as one boustrophedon sequence (rows, then columns)", _serpentine),
        Ordering("hilbert", "the whole grid as one generalized Hilbert curve (and its transpose)", _hilbert),
    )
}
"""Every ordering by name; ``rowcol`` is the paper's."""

PAPER_ORDERING = "rowcol"


def get_ordering(name: str) -> Ordering:
    """The ordering called ``name``; an unknown name lists the valid ones."""
    return lookup(ORDERINGS, name, "ordering")


@lru_cache(maxsize=256)
def sequence_indices(name: str, rows: int, cols: int, sweep: str) -> tuple[Tensor, Tensor]:
    """The flat grid indices (row·cols + column) of a sweep's sequences, and their inverse.

    Returns:
        ``order`` (S, L): sequence s reads cells ``order[s, 0], order[s, 1], …``;
        ``inverse`` (S·L,): where each flat grid cell sits in ``order.flatten()``.

    Raises:
        ValueError: if the ordering's sequences are not a permutation of the grid in
            sequences of one length (a broken ordering, never silently used).
    """
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; valid sweeps: {', '.join(SWEEPS)}")
    sequences = get_ordering(name).sequences(rows, cols, sweep)
    lengths = {len(sequence) for sequence in sequences}
    flat = [r * cols + c for sequence in sequences for r, c in sequence]
    if len(lengths) != 1 or sorted(flat) != list(range(rows * cols)):
        raise ValueError(f"ordering {name!r} does not cover the {rows}×{cols} grid once in equal-length sequences")
    order = torch.tensor(flat, dtype=torch.long).reshape(len(sequences), lengths.pop())
    inverse = torch.empty_like(order.flatten())
    inverse[order.flatten()] = torch.arange(order.numel())
    return order, inverse


def ordered_sweep(cell: BidirectionalCell, grid: Tensor, ordering: str, sweep: str) -> Tensor:
    """A cell's bidirectional sweep over a grid read in ``ordering``, outputs back in spatial order.

    Args:
        cell: any bidirectional cell.
        grid: (B, R, C, F): a feature vector per grid cell.
        ordering: an :data:`ORDERINGS` name.
        sweep: ``horizontal`` or ``vertical`` (which of the ordering's two readings).

    Returns:
        (B, R, C, 2h): at each cell ``[forward ‖ backward]``, the forward state after
        reading its sequence up to that cell, the backward state after reading it from
        the end down to that cell.
    """
    batch, rows, cols, features = grid.shape
    order, inverse = sequence_indices(ordering, rows, cols, sweep)
    order, inverse = order.to(grid.device), inverse.to(grid.device)
    count, length = order.shape
    sequences = grid.reshape(batch, rows * cols, features)[:, order.flatten()]  # (B, S·L, F)
    sequences = sequences.reshape(batch, count, length, features).permute(2, 0, 1, 3).reshape(length, batch * count, features)
    outputs = cell.sweep(sequences)  # (L, B·S, 2h)
    outputs = outputs.reshape(length, batch, count, -1).permute(1, 2, 0, 3).reshape(batch, count * length, -1)
    return outputs[:, inverse].reshape(batch, rows, cols, -1)
