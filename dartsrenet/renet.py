"""The ReNet layer (Visin et al. 2015; paper §2.1 eq. 1–2, Fig. 1; docs/architecture.md §2).

A ReNet layer halves the spatial size with two bidirectional sweeps:

1. *horizontal* over non-overlapping 2×2 patches: each patch is flattened
   channel-major to 4C values, every patch row is one sequence along the width and
   the rows go into the batch dimension (B·H/2 sequences of length W/2);
2. *vertical* over the 1×1 "patches" of the result: sequences along the height,
   columns in the batch (B·W/2 sequences of length H/2).

Each sweep outputs ``[forward h ‖ backward h]`` per position, the backward direction
re-aligned to spatial order. The cell is any :class:`~dartsrenet.cells.BidirectionalCell`.

The patch size and the sequence ordering are parameters (docs/network-design.md): the
paper's are 2×2 patches and ``rowcol``; another ordering of :mod:`dartsrenet.orderings`
reads the patch grid in its own sequences, and puts the outputs back in spatial order.
"""

from __future__ import annotations

from torch import Tensor, nn

from dartsrenet.cells import BidirectionalCell, CellFactory
from dartsrenet.orderings import PAPER_ORDERING, get_ordering, ordered_sweep

PATCH_SIZE = 2


def patch_rows(x: Tensor, patch_size: int = PATCH_SIZE) -> Tensor:
    """Cut a map into flattened patches, one sequence per patch row.

    Args:
        x: (B, C, H, W) with H and W divisible by ``patch_size``.

    Returns:
        (W/p, B·H/p, C·p·p), time-major; each patch flattened channel-major (c, dy, dx).
    """
    batch, channels, height, width = x.shape
    p = patch_size
    if height % p or width % p:
        raise ValueError(
            f"a ReNet layer with {p}×{p} patches needs a spatial size divisible by {p}, "
            f"got {height}×{width}"
        )
    rows, cols = height // p, width // p
    patches = x.reshape(batch, channels, rows, p, cols, p).permute(4, 0, 2, 1, 3, 5)  # (W/p, B, H/p, C, p, p)
    return patches.reshape(cols, batch * rows, channels * p * p)


class ReNetLayer(nn.Module):
    """Horizontal sweep over p×p patches, then vertical sweep over 1×1 patches.

    Args:
        channels: C, channels in; the output has ``2 * hidden_size`` channels.
        hidden_size: h per direction.
        make_cell: builds a cell from (input_size, hidden_size).
        patch_size: p (the paper's: 2).
        ordering: an :data:`~dartsrenet.orderings.ORDERINGS` name (the paper's: ``rowcol``).
    """

    def __init__(
        self,
        channels: int,
        hidden_size: int,
        make_cell: CellFactory,
        patch_size: int = PATCH_SIZE,
        ordering: str = PAPER_ORDERING,
    ):
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"a ReNet layer's patch size must be at least 1, got {patch_size}")
        self.patch_size = patch_size
        self.ordering = get_ordering(ordering).name
        self.horizontal: BidirectionalCell = make_cell(channels * patch_size * patch_size, hidden_size)
        self.vertical: BidirectionalCell = make_cell(2 * hidden_size, hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, 2h, H/p, W/p)."""
        if self.ordering != PAPER_ORDERING:
            return self._ordered_forward(x)
        batch, _, height, width = x.shape
        rows, cols = height // self.patch_size, width // self.patch_size
        horizontal = self.horizontal.sweep(patch_rows(x, self.patch_size))  # (W/2, B·H/2, 2h)
        features = horizontal.shape[-1]
        columns = (
            horizontal.reshape(cols, batch, rows, features).permute(2, 1, 0, 3).reshape(rows, batch * cols, features)
        )  # (H/2, B·W/2, 2h): sequences along the height
        vertical = self.vertical.sweep(columns)  # (H/2, B·W/2, 2h)
        return vertical.reshape(rows, batch, cols, features).permute(1, 3, 0, 2)  # (B, 2h, H/2, W/2)

    def _ordered_forward(self, x: Tensor) -> Tensor:
        """:meth:`forward` for an ordering other than the paper's, through :func:`ordered_sweep`."""
        batch, _, height, width = x.shape
        rows, cols = height // self.patch_size, width // self.patch_size
        grid = patch_rows(x, self.patch_size).reshape(cols, batch, rows, -1).permute(1, 2, 0, 3)  # (B, H/p, W/p, C·p·p)
        horizontal = ordered_sweep(self.horizontal, grid, self.ordering, "horizontal")  # (B, H/p, W/p, 2h)
        vertical = ordered_sweep(self.vertical, horizontal, self.ordering, "vertical")  # (B, H/p, W/p, 2h)
        return vertical.permute(0, 3, 1, 2)  # (B, 2h, H/p, W/p)
