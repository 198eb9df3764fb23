"""The interface every fused kernel backend implements, and the one input check they all run.

A DARTS node and its BatchNorm, ``y = BN(s + σ(c) ⊙ (f(ĥ) − s))`` with [c, ĥ] = s·W
(paper eq. 5), and the search cell's mixed node (eq. 8) are each one kernel forward and
one backward. :class:`KernelBackend` declares them with their exact signatures;
:mod:`dartsrenet.kernels.native` (C, CPU) and :mod:`dartsrenet.kernels.triton_backend` (CUDA)
implement them, and the fused sweeps (:mod:`dartsrenet.cells.fused_sweep`) call nothing
else. ``dartsrenet/csrc/node_kernels_body.h`` spells out the maths both implement.

:class:`CheckedKernels` is the base both implementations derive from: its public methods
check every argument — shape, dtype, device, a contiguous last axis (and whole contiguity
where a kernel reads a tensor flat) — and raise :class:`KernelInputError`, one line naming
the argument, before a kernel sees a pointer; then they call the backend's ``_``-prefixed
method of the same name.

Layouts: node states (2, B, h) direction-major, projections (2, B, 2h) ``[c ‖ ĥ]``; a
search node's i sources (2, i, B, h) and projections (2, i, B, 2h); any strides but a
contiguous last axis. Statistics (3, 2h): the mean, biased variance and 1/√(var + ε) the
forward pass used, which the backward pass reads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

ACTIVATION_CODES = {"tanh": 0, "relu": 1, "sigmoid": 2, "identity": 3}
"""The activations the kernels know, by name, with their codes in ``csrc/node_kernels.c``."""

SEARCH_PRIMITIVES = tuple(ACTIVATION_CODES)
"""The non-``none`` primitives the mixed-node kernels know, in the order of their mixing weights' columns."""

DTYPES = (torch.float32, torch.float64)
"""The dtypes the kernels compute in (all tensors of one call share one)."""


class KernelInputError(ValueError):
    """A tensor a kernel cannot take. The message is one line naming the argument."""


@dataclass
class NormArguments:
    """What the kernels need of one node BatchNorm at one statistics slot."""

    weight: Tensor | None  # γ, (2h,), or None without affine parameters
    bias: Tensor | None  # β, (2h,)
    batch_stats: bool  # normalise with the batch's statistics (training mode)
    running_mean: Tensor | None  # the slot's statistics, eval mode only
    running_var: Tensor | None
    eps: float


class KernelBackend(Protocol):
    """The kernels of one fused backend: what :mod:`dartsrenet.cells.fused_sweep` calls."""

    name: str
    """The backend's name (:data:`dartsrenet.cells.backends.BACKENDS`)."""

    def device_problem(self, device: torch.device) -> str | None:
        """Why tensors on ``device`` cannot be computed here, or None."""
        ...

    def node_forward(
        self, source: Tensor, projection: Tensor, code: int, norm: NormArguments, statistics: Tensor,
        out: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        """y = BN(s + σ(c) ⊙ (f(ĥ) − s)), into ``out`` or a new (2, B, h) tensor; ``statistics``
        (3, 2h) receives the mean, biased variance and 1/√(var + ε) used."""
        ...

    def node_backward(
        self, grad: Tensor | None, grad_scale: float, extra: Tensor | None, source: Tensor, projection: Tensor,
        code: int, weight: Tensor | None, batch_stats: bool, statistics: Tensor, grad_state: Tensor,
        accumulate: bool, grad_projection: Tensor, affine_grads: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Backward of :meth:`node_forward` for dy = grad_scale·grad + extra (either may be ``None``):
        writes (or, with ``accumulate``, adds to) ``grad_state``, writes ``grad_projection``;
        returns (dγ, dβ) — or, with ``affine_grads`` (two (2h,) tensors), adds them there and
        returns ``affine_grads``."""
        ...

    def mixed_forward(
        self, sources: Tensor, projection: Tensor, weights: Tensor, norm: NormArguments, statistics: Tensor,
        out: Tensor,
    ) -> None:  # fmt: skip
        """out = BN(Σ_j Σ_f w_jf · node_update(s_j, σ(c_j), f(ĥ_j))) (eq. 8), the BatchNorm without
        affine parameters (the norm's γ, β are not used); ``weights`` (i, 4) contiguous, columns
        in :data:`SEARCH_PRIMITIVES` order."""
        ...

    def mixed_backward(
        self, grad: Tensor, out: Tensor, sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool,
        statistics: Tensor, scratch: Tensor | None, grad_sources: Tensor, grad_projection: Tensor,
        weight_grads: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        """Backward of :meth:`mixed_forward`: adds to ``grad_sources``, writes ``grad_projection``;
        returns the mixing weights' gradient (i, 4) — or, with ``weight_grads`` (node i's rows
        ``[..., first_edge : first_edge + i, :]`` of a :meth:`mixing_gradients` accumulator),
        adds it there and returns ``weight_grads``. ``scratch``: (2·B·h,) contiguous working
        memory, or None (allocated where needed)."""
        ...

    def mixing_gradients(self, rows: int, hidden: int, edges: int, like: Tensor) -> Tensor:
        """A zeroed accumulator of the mixing weights' gradient over many :meth:`mixed_backward`
        calls on (2, ``rows``, ``hidden``) states: (…, edges, 4)."""
        ...

    def total_mixing_gradient(self, accumulator: Tensor) -> Tensor:
        """The (edges, 4) gradient a :meth:`mixing_gradients` accumulator holds."""
        ...


def inner_contiguous(tensor: Tensor | None) -> Tensor | None:
    """``tensor`` with a contiguous last axis (a copy only where it has none)."""
    return tensor if tensor is None or tensor.stride(-1) == 1 else tensor.contiguous()


def strides(tensor: Tensor | None, axes: int = 2) -> tuple[int, ...]:
    """The first ``axes`` strides of ``tensor`` (zeros for an absent one), as the kernels take them."""
    return (0,) * axes if tensor is None else tuple(tensor.stride()[:axes])


class CheckedKernels(ABC):
    """The public side of :class:`KernelBackend`: every argument checked, then the backend's
    ``_node_forward``, ``_node_backward``, ``_mixed_forward``, ``_mixed_backward`` called with
    the same arguments (``out`` allocated where not given)."""

    name = "kernels"

    @abstractmethod
    def device_problem(self, device: torch.device) -> str | None:
        """Why tensors on ``device`` cannot be computed here, or None."""

    def _accumulator_prefix(self, rows: int, hidden: int) -> tuple[int, ...]:
        """The leading axes of a :meth:`mixing_gradients` accumulator (partial sums), if any."""
        return ()

    # --- the checks -----------------------------------------------------------------------
    def _refuse(self, message: str) -> KernelInputError:
        return KernelInputError(f"{self.name} kernels: {message}")

    def _check(self, what: str, tensor: Tensor, shape: tuple[int, ...], like: Tensor, whole: bool = False) -> None:
        """``tensor`` must have ``shape``, ``like``'s dtype and device and a contiguous last axis
        (with ``whole``: be contiguous)."""
        laid_out = tensor.is_contiguous() if whole else tensor.stride(-1) == 1
        if tuple(tensor.shape) != shape or tensor.dtype != like.dtype or tensor.device != like.device or not laid_out:
            layout = "contiguous" if whole else "with last stride 1"
            raise self._refuse(
                f"{what} is {tuple(tensor.shape)} {tensor.dtype} on {tensor.device} with last stride "
                f"{tensor.stride(-1)}{'' if tensor.is_contiguous() else ' (not contiguous)'}; "
                f"expected {shape} {like.dtype} on {like.device} {layout}"
            )

    def _check_source(self, source: Tensor, dims: int) -> tuple[int, int]:
        """The states' (rows, hidden) after checking their shape, dtype, device and last axis."""
        if source.dim() != dims or source.shape[0] != 2:
            expected = "(2, i, B, h)" if dims == 4 else "(2, B, h)"
            raise self._refuse(f"states must be {expected}, got {tuple(source.shape)}")
        if source.dtype not in DTYPES:
            raise self._refuse(f"dtype {source.dtype} is not supported; valid: float32, float64")
        if source.stride(-1) != 1:
            raise self._refuse(f"states need a contiguous last axis, got strides {source.stride()}")
        problem = self.device_problem(source.device)
        if problem is not None:
            raise self._refuse(problem)
        return source.shape[-2], source.shape[-1]

    def _check_code(self, code: int) -> None:
        if code not in ACTIVATION_CODES.values():
            raise self._refuse(f"activation code {code} is unknown; valid: {ACTIVATION_CODES}")

    def _check_norm(self, norm: NormArguments, like: Tensor, affine: bool = True) -> None:
        features = 2 * like.shape[-1]
        tensors = [("running mean", norm.running_mean), ("running variance", norm.running_var)]
        tensors += [("γ", norm.weight), ("β", norm.bias)] if affine else []
        for what, tensor in tensors:
            if tensor is not None:
                self._check(what, tensor, (features,), like)
        if not norm.batch_stats and (norm.running_mean is None or norm.running_var is None):
            raise self._refuse("eval mode (batch_stats False) needs the running mean and variance")

    # --- the kernels ----------------------------------------------------------------------
    def node_forward(
        self, source: Tensor, projection: Tensor, code: int, norm: NormArguments, statistics: Tensor,
        out: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        """:meth:`KernelBackend.node_forward`, checked."""
        rows, hidden = self._check_source(source, 3)
        self._check_code(code)
        self._check("projection", projection, (2, rows, 2 * hidden), source)
        self._check("statistics", statistics, (3, 2 * hidden), source)
        self._check_norm(norm, source)
        out = source.new_empty(2, rows, hidden) if out is None else out
        self._check("out", out, (2, rows, hidden), source)
        self._node_forward(source, projection, code, norm, statistics, out)
        return out

    def node_backward(
        self, grad: Tensor | None, grad_scale: float, extra: Tensor | None, source: Tensor, projection: Tensor,
        code: int, weight: Tensor | None, batch_stats: bool, statistics: Tensor, grad_state: Tensor,
        accumulate: bool, grad_projection: Tensor, affine_grads: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """:meth:`KernelBackend.node_backward`, checked (``grad`` and ``extra`` made inner-contiguous)."""
        rows, hidden = self._check_source(source, 3)
        self._check_code(code)
        if grad is None and extra is None:
            raise self._refuse("node_backward needs grad or extra (both are None)")
        grad, extra = inner_contiguous(grad), inner_contiguous(extra)
        state, projected, features = (2, rows, hidden), (2, rows, 2 * hidden), (2 * hidden,)
        for what, tensor, shape in (
            ("grad", grad, state), ("extra", extra, state), ("projection", projection, projected),
            ("statistics", statistics, (3, 2 * hidden)), ("γ", weight, features), ("grad_state", grad_state, state),
            ("grad_projection", grad_projection, projected),
            *(() if affine_grads is None else (("dγ", affine_grads[0], features), ("dβ", affine_grads[1], features))),
        ):  # fmt: skip
            if tensor is not None:
                self._check(what, tensor, shape, source)
        return self._node_backward(
            grad, float(grad_scale), extra, source, projection, code, weight, bool(batch_stats), statistics,
            grad_state, bool(accumulate), grad_projection, affine_grads,
        )  # fmt: skip

    def mixed_forward(
        self, sources: Tensor, projection: Tensor, weights: Tensor, norm: NormArguments, statistics: Tensor,
        out: Tensor,
    ) -> None:  # fmt: skip
        """:meth:`KernelBackend.mixed_forward`, checked."""
        rows, hidden = self._check_source(sources, 4)
        count = sources.shape[1]
        self._check("projection", projection, (2, count, rows, 2 * hidden), sources)
        self._check("weights", weights, (count, len(SEARCH_PRIMITIVES)), sources, whole=True)
        self._check("statistics", statistics, (3, 2 * hidden), sources)
        self._check("out", out, (2, rows, hidden), sources)
        self._check_norm(norm, sources, affine=False)
        self._mixed_forward(sources, projection, weights, norm, statistics, out)

    def mixed_backward(
        self, grad: Tensor, out: Tensor, sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool,
        statistics: Tensor, scratch: Tensor | None, grad_sources: Tensor, grad_projection: Tensor,
        weight_grads: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        """:meth:`KernelBackend.mixed_backward`, checked (``grad`` made inner-contiguous)."""
        rows, hidden = self._check_source(sources, 4)
        count = sources.shape[1]
        grad = inner_contiguous(grad)
        for what, tensor, shape, whole in (
            ("grad", grad, (2, rows, hidden), False), ("out", out, (2, rows, hidden), False),
            ("projection", projection, (2, count, rows, 2 * hidden), False),
            ("weights", weights, (count, len(SEARCH_PRIMITIVES)), True),
            ("statistics", statistics, (3, 2 * hidden), False), ("grad_sources", grad_sources, tuple(sources.shape), False),
            ("grad_projection", grad_projection, (2, count, rows, 2 * hidden), False),
            ("scratch", scratch, (2 * rows * hidden,), True),
        ):  # fmt: skip
            if tensor is not None:
                self._check(what, tensor, shape, sources, whole)
        if weight_grads is not None:
            shape = (*self._accumulator_prefix(rows, hidden), count, len(SEARCH_PRIMITIVES))
            self._check("weight_grads", weight_grads, shape, sources)
            if weight_grads.stride(-2) != len(SEARCH_PRIMITIVES):
                raise self._refuse(f"weight_grads needs rows of 4 contiguous values, got strides {weight_grads.stride()}")
        return self._mixed_backward(
            grad, out, sources, projection, weights, bool(batch_stats), statistics, scratch, grad_sources,
            grad_projection, weight_grads,
        )  # fmt: skip

    def mixing_gradients(self, rows: int, hidden: int, edges: int, like: Tensor) -> Tensor:
        """:meth:`KernelBackend.mixing_gradients`."""
        return like.new_zeros(*self._accumulator_prefix(rows, hidden), edges, len(SEARCH_PRIMITIVES))

    def total_mixing_gradient(self, accumulator: Tensor) -> Tensor:
        """:meth:`KernelBackend.total_mixing_gradient`: the partial sums added, if there are any."""
        return accumulator.sum(0) if accumulator.dim() == 3 else accumulator

    # --- what each backend implements: the kernels on checked arguments --------------------
    @abstractmethod
    def _node_forward(self, source, projection, code, norm, statistics, out) -> None:
        """Run the forward kernel of a node (arguments as :meth:`node_forward`, ``out`` given)."""

    @abstractmethod
    def _node_backward(self, grad, grad_scale, extra, source, projection, code, weight, batch_stats, statistics,
                       grad_state, accumulate, grad_projection, affine_grads) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Run the backward kernel of a node (arguments and result as :meth:`node_backward`)."""

    @abstractmethod
    def _mixed_forward(self, sources, projection, weights, norm, statistics, out) -> None:
        """Run the forward kernel of a search node (arguments as :meth:`mixed_forward`)."""

    @abstractmethod
    def _mixed_backward(self, grad, out, sources, projection, weights, batch_stats, statistics, scratch, grad_sources,
                        grad_projection, weight_grads) -> Tensor:  # fmt: skip
        """Run the backward kernel of a search node (arguments and result as :meth:`mixed_backward`)."""
