"""The ``triton`` backend: the node kernels of paper eq. 5–8 in Triton, for CUDA GPUs.

The same operations as the C kernels (:mod:`dartsrenet.kernels.native`), behind the same
:class:`~dartsrenet.kernels.protocol.KernelBackend` interface and input check; the device
code is :mod:`dartsrenet.kernels.triton_device`, the custom ops that launch it
:mod:`dartsrenet.kernels.triton_ops`, the grids :mod:`dartsrenet.kernels.triton_layout`.

* ``node_forward`` / ``node_backward`` — one node of a derived cell (eq. 5) and its
  BatchNorm, y = BN(s + σ(c) ⊙ (f(ĥ) − s)), and the gradients;
* ``mixed_forward`` / ``mixed_backward`` — one node of the search cell (eq. 8): the
  mixture over its i predecessors and the primitives tanh, relu, sigmoid, identity, then
  an affine-free BatchNorm; the backward pass also gives the mixing weights' gradient.

A fused sweep (:mod:`dartsrenet.cells.fused_sweep`) runs every time step in one autograd
node, so the backward kernels add dγ, dβ and the mixing weights' gradient to one buffer
for the whole sweep (``affine_grads``, ``weight_grads``; ``mixing_gradients``) instead
of returning them step by step.

How the work is laid out (:mod:`~dartsrenet.kernels.triton_layout`): a program owns a
block of feature columns of one direction for all B rows, so a node's BatchNorm
statistics are local and every node is ONE launch each way. The forward pass loops over
blocks of rows twice: pass 1 computes the node's update u, writes it to ``out`` and folds
each block's column means and sums of squared deviations into running ones (Chan, Golub
and LeVeque's pairwise update: no E[u²] − E[u]² cancellation, so float32 sums match
PyTorch to round-off even for states of size 1e3 with a small spread); pass 2 normalises
``out`` in place. The backward pass likewise: pass 1 the reductions Σdy and Σdy·x̂, pass 2
the gradients, recomputing σ(c), f(ĥ) and x̂ from the projection and the state as the C
kernels do (nothing else is saved). The search node's backward pass runs one program per
predecessor too and writes (or adds to) the mixing weights' gradient as partial sums per
program and predecessor that one ``torch.sum`` adds up — once per step, or once per sweep
when accumulated (deterministic: no atomics).

Maths. σ(x) = 1/(1 + e) for x ≥ 0 and e/(1 + e) below, with e = exp(−|x|) ≤ 1: it never
overflows, is exact at ±inf and keeps NaN. tanh(x) = ±(1 − 2/(exp(2|x|) + 1)) for
|x| ≥ 0.4 (exactly ±1 once exp overflows) and its Taylor series to x²⁷ below (truncation
error < 2·10⁻¹⁷ relative, so float64 is as exact as float32). relu is x < 0 ? 0 : x,
which keeps NaN. Divisions and the BatchNorm's square root are IEEE-rounded. On a GPU,
``tl.exp`` is the hardware's approximate exp2 (a few ulp, growing to ~10⁻⁵ relative for σ
at |x| ≈ 88; the C kernels use libm): Triton's libdevice ``exp``/``tanh`` would be more
accurate but cannot run under Triton's interpreter, and this backend runs the code its
tests check.

Triton is optional: importing this module never imports it; the first kernel call does
(:func:`triton_stack_problem` says whether the installed torch and triton have what the
kernels need). The kernels are compiled for CUDA tensors, or run on the CPU by Triton's
interpreter when ``TRITON_INTERPRET=1`` is set before the first call (how
``tests/test_triton_kernels.py`` checks them against eager PyTorch); which of the two is
fixed by that first call.

Supported: float32 and float64 (all tensors of a call in one dtype); states (2, B, h) and
projections (2, B, 2h) (search nodes: (2, i, B, ·)) with any strides but a contiguous
last axis. A batch of one with batch statistics gives zero variance (PyTorch refuses it;
the fused sweeps never ask for it).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import threading

import torch
from torch import Tensor

from dartsrenet.kernels.protocol import CheckedKernels, NormArguments
from dartsrenet.kernels.triton_layout import layout, programs

TRITON_NEEDS = "torch >= 2.6 (torch.library.triton_op, torch.library.wrap_triton) and triton >= 3.4 (triton.knobs)"
"""What the Triton kernels use from the installed torch and triton."""

_TRITON_STACK: dict[str, str | None] = {}


def triton_available() -> bool:
    """Whether the triton package is installed (it ships with PyTorch's CUDA wheels)."""
    return importlib.util.find_spec("triton") is not None


def triton_stack_problem() -> str | None:
    """Why the installed torch and triton cannot run the Triton kernels, or None when they can.

    Checked once per process (the result logged on the ``dartsrenet`` logger): Triton
    installed and importable, ``torch.library.triton_op`` and ``wrap_triton`` (the kernels
    are registered as PyTorch ops with them), ``triton.knobs`` (the interpreter setting is
    read there). Importing triton happens here, so only where the triton backend is asked for.
    """
    if "problem" not in _TRITON_STACK:
        _TRITON_STACK["problem"] = _check_triton_stack()
        logging.getLogger("dartsrenet").info(
            "triton backend: %s", _TRITON_STACK["problem"] or "torch and triton have what the kernels need"
        )
    return _TRITON_STACK["problem"]


def _check_triton_stack() -> str | None:
    if not triton_available():
        return "the triton package is not installed (pip install triton)"
    try:
        import triton
    except Exception as error:  # noqa: BLE001 — any import failure makes the backend unusable
        return f"importing triton failed ({type(error).__name__}: {error})"
    missing = [f"torch.library.{name}" for name in ("triton_op", "wrap_triton") if not hasattr(torch.library, name)]
    missing += [] if hasattr(triton, "knobs") else ["triton.knobs"]
    if missing:
        return (
            f"torch {torch.__version__} with triton {getattr(triton, '__version__', '?')} lacks {', '.join(missing)}; "
            f"the kernels need {TRITON_NEEDS}"
        )
    return None


_STATE: dict = {"loaded": False, "interpret": False}
_LOCK = threading.Lock()


def _load() -> None:
    """On the first call: import Triton and the kernels (jitted as they are imported), register the ops."""
    if _STATE["loaded"]:
        return
    with _LOCK:
        if _STATE["loaded"]:
            return
        if not triton_available():
            raise RuntimeError("dartsrenet.kernels.triton_backend: Triton is not installed (pip install triton)")
        import triton

        interpret = bool(triton.knobs.runtime.interpret)
        importlib.import_module("dartsrenet.kernels.triton_ops")  # registers torch.ops.dartsrenet.triton_*
        _check_jit_mode(interpret)
        _STATE.update(loaded=True, interpret=interpret)


def _check_jit_mode(interpret: bool) -> None:
    """The device code is jitted when its module is imported, in the mode then in force: a
    process that imported it before changing ``TRITON_INTERPRET`` gets one clear error here,
    not a failure inside Triton (compiled kernels on the CPU: "0 active drivers")."""
    from triton.runtime.interpreter import InterpretedFunction

    from dartsrenet.kernels import triton_device

    jitted_interpreted = isinstance(triton_device.node_forward_kernel, InterpretedFunction)
    if jitted_interpreted != interpret:
        raise RuntimeError(
            f"dartsrenet.kernels.triton_device was imported with TRITON_INTERPRET={int(jitted_interpreted)} but the "
            f"first kernel call has TRITON_INTERPRET={int(interpret)}: set TRITON_INTERPRET before importing the kernels"
        )


def interpreted() -> bool:
    """Whether the kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` at the first call); loads them."""
    _load()
    return _STATE["interpret"]


class TritonKernels(CheckedKernels):
    """The Triton kernels, for CUDA tensors (CPU tensors under ``TRITON_INTERPRET=1``)."""

    name = "triton"

    def device_problem(self, device: torch.device) -> str | None:
        interpret = _STATE["interpret"] if _STATE["loaded"] else os.environ.get("TRITON_INTERPRET") == "1"
        if device.type != "cuda" and not (device.type == "cpu" and interpret):
            return (
                f"backend 'triton' runs on CUDA devices, not {device.type} (TRITON_INTERPRET=1, set before the "
                f"first kernel call, runs it on the CPU)"
            )
        problem = triton_stack_problem()
        return None if problem is None else f"backend 'triton' cannot run here: {problem}"

    def _accumulator_prefix(self, rows: int, hidden: int) -> tuple[int, ...]:
        return (programs(rows, hidden),)  # each program's partial sums (no atomics: deterministic)

    def _node_forward(self, source: Tensor, projection: Tensor, code: int, norm: NormArguments, statistics: Tensor,
                      out: Tensor) -> None:  # fmt: skip
        _load()
        _, rows, hidden = source.shape
        torch.ops.dartsrenet.triton_node_forward(
            source, projection, code, norm.weight, norm.bias, norm.batch_stats, norm.running_mean, norm.running_var,
            norm.eps, statistics, out, *layout(rows, hidden, splits=not norm.batch_stats),
        )  # fmt: skip

    def _node_backward(
        self, grad: Tensor | None, grad_scale: float, extra: Tensor | None, source: Tensor, projection: Tensor,
        code: int, weight: Tensor | None, batch_stats: bool, statistics: Tensor, grad_state: Tensor,
        accumulate: bool, grad_projection: Tensor, affine_grads: tuple[Tensor, Tensor] | None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        _load()
        _, rows, hidden = source.shape
        arguments = (grad, grad_scale, extra, source, projection, code, weight, batch_stats, statistics, grad_state,
                     accumulate, grad_projection)  # fmt: skip
        if affine_grads is None:
            return torch.ops.dartsrenet.triton_node_backward(*arguments, *layout(rows, hidden))
        torch.ops.dartsrenet.triton_node_backward_accumulate(*arguments, *affine_grads, True, *layout(rows, hidden))
        return affine_grads

    def _mixed_forward(self, sources: Tensor, projection: Tensor, weights: Tensor, norm: NormArguments,
                       statistics: Tensor, out: Tensor) -> None:  # fmt: skip
        _load()
        _, _, rows, hidden = sources.shape
        torch.ops.dartsrenet.triton_mixed_forward(
            sources, projection, weights, norm.batch_stats, norm.running_mean, norm.running_var, norm.eps,
            statistics, out, *layout(rows, hidden, splits=not norm.batch_stats),
        )  # fmt: skip

    def _mixed_backward(
        self, grad: Tensor, out: Tensor, sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool,
        statistics: Tensor, scratch: Tensor | None, grad_sources: Tensor, grad_projection: Tensor,
        weight_grads: Tensor | None,
    ) -> Tensor:  # fmt: skip
        _load()  # (scratch is not needed)
        _, _, rows, hidden = sources.shape
        arguments = (grad, out, sources, projection, weights, batch_stats, statistics, grad_sources, grad_projection)
        if weight_grads is None:
            return torch.ops.dartsrenet.triton_mixed_backward(*arguments, *layout(rows, hidden))
        torch.ops.dartsrenet.triton_mixed_backward_accumulate(*arguments, weight_grads, True, *layout(rows, hidden))
        return weight_grads


TRITON = TritonKernels()
"""The ``triton`` backend's kernels."""
