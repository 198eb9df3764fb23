"""Record what really ran: the dtypes of every matrix product, and the fused C kernels called.

Tests use these to check a claim about the computation itself — "the matmuls ran in bf16",
"the native backend computed the cells" — rather than a recorded setting or a result that
a broken path would also produce.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dartsrenet.kernels import native as native_kernels

MATRIX_PRODUCTS = {
    torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default,
    torch.ops.aten.baddbmm.default, torch.ops.aten.convolution.default,
    torch.ops.aten.convolution_backward.default,
}
"""The ATen ops that a linear layer, ``torch.matmul`` or a convolution (and their gradients) end in."""


class MatrixProductDtypes(TorchDispatchMode):
    """While active, counts every matrix product by op name and the dtypes of its tensor inputs.

    It sees the ops as they run, after autocast has cast their inputs (autocast dispatches
    before Python modes do), in the forward and the backward pass.
    """

    def __init__(self):
        super().__init__()
        self.seen: Counter[tuple[str, tuple[torch.dtype, ...]]] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in MATRIX_PRODUCTS or func.overloadpacket in {op.overloadpacket for op in MATRIX_PRODUCTS}:
            dtypes = tuple(arg.dtype for arg in args if isinstance(arg, torch.Tensor))
            self.seen[(str(func), dtypes)] += 1
        return func(*args, **(kwargs or {}))

    def dtypes(self) -> set[torch.dtype]:
        """Every dtype an input of a matrix product had."""
        return {dtype for _, dtypes in self.seen for dtype in dtypes}


def native_kernel_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """From now on (for the test), count the fused C kernels called, by name.

    Every call into ``dartsrenet/csrc`` looks its kernel up through
    ``dartsrenet.kernels.native._kernel``; this wraps it (the real kernel still runs).
    """
    calls: Counter[str] = Counter()
    look_up = native_kernels._kernel

    def counting(name: str, dtype: torch.dtype):
        calls[name] += 1
        return look_up(name, dtype)

    monkeypatch.setattr(native_kernels, "_kernel", counting)
    return calls
