"""The fused kernels of a DARTS node and its BatchNorm (paper eq. 5–8), one module per backend.

* :mod:`~dartsrenet.kernels.protocol` — the interface (:class:`KernelBackend`), the BatchNorm
  arguments (:class:`NormArguments`), the activation codes and the input check every
  backend runs (:class:`CheckedKernels`);
* :mod:`~dartsrenet.kernels.native` — the C kernels for the CPU (``dartsrenet/csrc``), built
  and loaded by :mod:`~dartsrenet.kernels.native_build`;
* :mod:`~dartsrenet.kernels.triton_backend` — the Triton kernels for CUDA, with their device code
  (:mod:`~dartsrenet.kernels.triton_device`), custom ops (:mod:`~dartsrenet.kernels.triton_ops`)
  and grids (:mod:`~dartsrenet.kernels.triton_layout`).

This package is the lowest layer of the fused backends: it imports torch and nothing else
of dartsrenet. The sweeps that run the kernels over a sequence are in the cells layer
(:mod:`dartsrenet.cells.fused_sweep`); which backend a cell uses is chosen once
(:mod:`dartsrenet.cells.backends`).
"""

from __future__ import annotations

from dartsrenet.kernels.protocol import (
    ACTIVATION_CODES,
    DTYPES,
    SEARCH_PRIMITIVES,
    CheckedKernels,
    KernelBackend,
    KernelInputError,
    NormArguments,
)

__all__ = [
    "ACTIVATION_CODES", "DTYPES", "SEARCH_PRIMITIVES", "CheckedKernels", "KernelBackend", "KernelInputError",
    "NormArguments",
]
