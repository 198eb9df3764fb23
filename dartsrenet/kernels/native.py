"""The ``native`` backend: the C kernels of ``dartsrenet/csrc`` behind :class:`~dartsrenet.kernels.protocol.KernelBackend` (paper eq. 5–8).

A node and its BatchNorm, ``norm(s + σ(c) ⊙ (f(ĥ) − s), slot)`` with [c, ĥ] = s·W, is one
kernel forward and one backward (``csrc/node_kernels.c``, built and loaded by
:mod:`dartsrenet.kernels.native_build`): two passes over memory each way where eager
PyTorch makes a dozen forward and two dozen backward, and nothing is saved for the
backward pass but the projection, from which it recomputes g, f(ĥ) and the normalised
state. The search node's kernel computes its whole mixture over predecessors and
primitives, and α's gradient.

The calls below hand the tensors' memory to C through ``ctypes``; every argument has been
checked first (:class:`~dartsrenet.kernels.protocol.CheckedKernels`: shape, dtype, CPU,
strides), so C never sees a pointer it would read out of bounds.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from dartsrenet.kernels import native_build
from dartsrenet.kernels.protocol import CheckedKernels, NormArguments, strides


def _pointer(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _kernel(name: str, dtype: torch.dtype) -> ctypes._CFuncPtr:
    """The C function ``name`` for ``dtype`` (float32: ``name_f32``, float64: ``name_f64``)."""
    return getattr(native_build.library(), name + ("_f32" if dtype == torch.float32 else "_f64"))


def _call(name: str, dtype: torch.dtype, *arguments) -> None:
    """Call C kernel ``name``; its non-zero status (a failed allocation) becomes a MemoryError."""
    if _kernel(name, dtype)(*arguments, torch.get_num_threads()) != 0:
        raise MemoryError(f"{name}: out of memory")


class NativeKernels(CheckedKernels):
    """The C kernels, for CPU tensors."""

    name = "native"

    def device_problem(self, device: torch.device) -> str | None:
        if device.type != "cpu":
            return f"backend 'native' runs on the CPU, not {device.type}; use eager or triton (CUDA)"
        if native_build.library() is None:
            return f"backend 'native' is unavailable: {native_build.unavailable_reason()}"
        return None

    def _node_forward(self, source: Tensor, projection: Tensor, code: int, norm: NormArguments, statistics: Tensor,
                      out: Tensor) -> None:  # fmt: skip
        _, rows, hidden = source.shape
        mean, var, invstd = statistics.unbind(0)
        _call(
            "node_forward", source.dtype,
            projection.data_ptr(), *strides(projection), source.data_ptr(), *strides(source), rows, hidden, code,
            _pointer(norm.weight), _pointer(norm.bias),
            int(norm.batch_stats), _pointer(norm.running_mean), _pointer(norm.running_var), norm.eps,
            out.data_ptr(), *strides(out), mean.data_ptr(), var.data_ptr(), invstd.data_ptr(),
        )  # fmt: skip

    def _node_backward(
        self, grad: Tensor | None, grad_scale: float, extra: Tensor | None, source: Tensor, projection: Tensor,
        code: int, weight: Tensor | None, batch_stats: bool, statistics: Tensor, grad_state: Tensor,
        accumulate: bool, grad_projection: Tensor, affine_grads: tuple[Tensor, Tensor] | None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        _, rows, hidden = source.shape
        grad_weight, grad_bias = source.new_empty(2 * hidden), source.new_empty(2 * hidden)
        mean, _, invstd = statistics.unbind(0)
        _call(
            "node_backward", source.dtype,
            _pointer(grad), *strides(grad), grad_scale, _pointer(extra), *strides(extra),
            projection.data_ptr(), *strides(projection), source.data_ptr(), *strides(source), rows, hidden, code,
            _pointer(weight), mean.data_ptr(), invstd.data_ptr(), int(batch_stats),
            grad_state.data_ptr(), *strides(grad_state), int(accumulate),
            grad_projection.data_ptr(), *strides(grad_projection), grad_weight.data_ptr(), grad_bias.data_ptr(),
        )  # fmt: skip
        if affine_grads is None:
            return grad_weight, grad_bias
        affine_grads[0].add_(grad_weight)
        affine_grads[1].add_(grad_bias)
        return affine_grads

    def _mixed_forward(self, sources: Tensor, projection: Tensor, weights: Tensor, norm: NormArguments,
                       statistics: Tensor, out: Tensor) -> None:  # fmt: skip
        _, count, rows, hidden = sources.shape
        mean, var, invstd = statistics.unbind(0)
        _call(
            "mixed_forward", sources.dtype,
            projection.data_ptr(), *strides(projection, 3), sources.data_ptr(), *strides(sources, 3),
            count, rows, hidden, weights.data_ptr(),
            int(norm.batch_stats), _pointer(norm.running_mean), _pointer(norm.running_var), norm.eps,
            out.data_ptr(), *strides(out), mean.data_ptr(), var.data_ptr(), invstd.data_ptr(),
        )  # fmt: skip

    def _mixed_backward(
        self, grad: Tensor, out: Tensor, sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool,
        statistics: Tensor, scratch: Tensor | None, grad_sources: Tensor, grad_projection: Tensor,
        weight_grads: Tensor | None,
    ) -> Tensor:  # fmt: skip
        _, count, rows, hidden = sources.shape
        scratch = sources.new_empty(2 * rows * hidden) if scratch is None else scratch
        grad_weights = torch.empty_like(weights)
        _call(
            "mixed_backward", sources.dtype,
            grad.data_ptr(), *strides(grad), out.data_ptr(), *strides(out),
            projection.data_ptr(), *strides(projection, 3), sources.data_ptr(), *strides(sources, 3),
            count, rows, hidden, weights.data_ptr(), statistics[2].data_ptr(), int(batch_stats), scratch.data_ptr(),
            grad_sources.data_ptr(), *strides(grad_sources, 3), grad_projection.data_ptr(),
            *strides(grad_projection, 3), grad_weights.data_ptr(),
        )  # fmt: skip
        return grad_weights if weight_grads is None else weight_grads.add_(grad_weights)


NATIVE = NativeKernels()
"""The ``native`` backend's kernels."""
