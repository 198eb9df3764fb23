"""How the Triton kernels lay out their work: block shapes and grids (no Triton needed).

A node's BatchNorm normalises each of its 2h features [forward ‖ backward] over the whole
batch, so a program owns a block of feature columns of one direction for *all* B rows:
its statistics are local, and every node is ONE launch each way, on a grid of
2 × ⌈h / columns⌉ × r programs (:func:`layout`, :func:`grid`). Where no batch-wide
reduction has to come first, the rows are split into r ranges side by side
(:func:`row_splits`). ``benchmarks/README.md`` ("Filling the GPU") gives the reasoning and
the grid at the paper's sizes.
"""

from __future__ import annotations

# Block sizes and grid axes, chosen by reasoning (benchmarks/README.md, "Filling the GPU"): not
# yet timed on a GPU.
MAX_TILE = 1024
"""Most elements of the (rows × columns) block one program holds at a time: with 4 warps, 8
per thread for each of the ~15 block-sized values the search node's backward pass keeps live."""

MAX_COLUMNS = 8
"""Most feature columns per program: 8 float32 values are one 32-byte memory sector, the
narrowest block that still reads whole sectors; narrower blocks make more programs
(2·⌈h/columns⌉: 16 for the search cell's h = 64, 32 for the evaluation cell's h = 128)."""

MIN_ROWS_PER_SPLIT = 128
"""A kernel whose rows need no batch-wide reduction before they are written splits them over
programs (:func:`row_splits`), each range at least this many rows."""

MAX_ROW_SPLITS = 4
"""Most row ranges per column block (4 × 128 = the 512 rows of a paper-size first layer)."""


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def tile_shape(rows: int, hidden: int) -> tuple[int, int]:
    """(rows, columns) of the block a program holds: powers of two, at most :data:`MAX_TILE` elements."""
    columns = min(_next_power_of_2(hidden), MAX_COLUMNS)
    return min(_next_power_of_2(rows), max(1, MAX_TILE // columns)), columns


def row_splits(rows: int) -> int:
    """How many row ranges (a grid axis) a kernel splits ``rows`` into where it may: the backward
    passes' second pass (every program redoes the cheap first pass over all rows, so the
    reductions stay local and in one fixed order) and the forward passes with running statistics.
    A forward pass with batch statistics never splits: its BatchNorm needs every row first."""
    return max(1, min(MAX_ROW_SPLITS, rows // MIN_ROWS_PER_SPLIT))


def layout(rows: int, hidden: int, splits: bool = True) -> tuple[int, int, int]:
    """(block rows, block columns, row splits) of a node kernel on (2, ``rows``, ``hidden``) states."""
    return (*tile_shape(rows, hidden), row_splits(rows) if splits else 1)


def grid(hidden: int, block_columns: int, third: int = 1) -> tuple[int, int, int]:
    """(directions, column blocks, ``third``: row ranges, or predecessors × row ranges)."""
    return 2, -(-hidden // block_columns), third


def programs(rows: int, hidden: int) -> int:
    """How many (direction, column block, row range) programs a node's backward kernel on
    (2, ``rows``, ``hidden``) states runs per predecessor."""
    _, block_columns, splits = layout(rows, hidden)
    directions, blocks, _ = grid(hidden, block_columns)
    return directions * blocks * splits
