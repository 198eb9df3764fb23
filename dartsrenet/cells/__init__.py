"""Bidirectional recurrent cells behind one step interface (paper §2.2, eq. 1–8).

Every cell steps *both directions of a bidirectional sweep at once*: tensors carry a
leading direction axis of size 2, ``[forward, backward]``. At step t the forward
direction reads position t and the backward direction position T−1−t.
:meth:`BidirectionalCell.sweep` runs the loop and re-aligns the backward direction to
spatial order (paper eq. 2), so a ReNet layer never needs to know which cell it runs.

Where to read what:

* :mod:`~dartsrenet.cells.maths` — the paper's maths of a node (eq. 5), a search node's
  mixture (eq. 8), the average h_t (eq. 6): short, and the reference of every backend;
* :mod:`~dartsrenet.cells.norms` — the BatchNorm over both directions, per time step;
* :mod:`~dartsrenet.cells.darts` — :class:`DartsCell` (a derived cell from a
  :class:`~dartsrenet.genotypes.Genotype`) and :class:`DartsSearchCell` (the continuous
  relaxation: every node mixes all predecessors and primitives by softmax(α));
* :mod:`~dartsrenet.cells.baselines` — :class:`GRUCell`, :class:`LSTMCell`;
* :mod:`~dartsrenet.cells.backends` — which code computes the DARTS nodes: ``eager``
  (the maths as written), ``native`` (fused C kernels, CPU), ``triton`` (CUDA), chosen
  once per model (``auto`` by device);
* :mod:`~dartsrenet.cells.fused_sweep` — a whole sweep as one autograd node over the
  kernels of :mod:`dartsrenet.kernels` (the ``native`` and ``triton`` backends).

``docs/architecture.md`` describes the cells; ``benchmarks/README.md`` has the speed
figures of each backend.
"""

from __future__ import annotations

from dartsrenet.cells.backends import (
    BACKENDS,
    BackendError,
    compile_enabled,
    model_backend,
    resolve_backend,
    set_backend,
    set_compile,
)
from dartsrenet.cells.base import NUM_DIRECTIONS, BidirectionalCell, CellFactory, State, batch_major_zeros
from dartsrenet.cells.baselines import GRUCell, LSTMCell
from dartsrenet.cells.darts import DARTS_INIT_RANGE, ArchitectureWeights, DartsCell, DartsSearchCell
from dartsrenet.cells.maths import (
    align_directions,
    average_states,
    directional_matmul,
    gated_node,
    mixed_node,
    node_update,
)
from dartsrenet.cells.norms import DirectionalBatchNorm
from dartsrenet.registry import lookup

CELLS: dict[str, type[BidirectionalCell]] = {
    "darts": DartsCell,
    "darts_search": DartsSearchCell,
    "gru": GRUCell,
    "lstm": LSTMCell,
}
"""Every cell type by name. ``darts`` needs a genotype, ``darts_search`` an α."""


def get_cell_class(name: str) -> type[BidirectionalCell]:
    """The cell class called ``name``; unknown names list the valid ones."""
    return lookup(CELLS, name, "cell")


__all__ = [
    "BACKENDS", "CELLS", "DARTS_INIT_RANGE", "NUM_DIRECTIONS", "ArchitectureWeights", "BackendError",
    "BidirectionalCell", "CellFactory", "DartsCell", "DartsSearchCell", "DirectionalBatchNorm", "GRUCell",
    "LSTMCell", "State", "align_directions", "average_states", "batch_major_zeros", "compile_enabled",
    "directional_matmul", "gated_node", "get_cell_class", "mixed_node", "model_backend", "node_update",
    "resolve_backend", "set_backend", "set_compile",
]
