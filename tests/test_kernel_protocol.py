"""The kernel backends implement one declared interface and run one input check (dartsrenet/kernels/protocol.py).

The C kernels take raw pointers: a tensor of the wrong shape, dtype, device or layout must
be refused in Python, in one line naming the argument, before anything is written — as
the Triton kernels' checks are (tests/test_triton_kernels.py runs them there).
"""

import inspect
import os
import subprocess
import sys

import pytest
import torch

from dartsrenet.cells import backends
from dartsrenet.kernels import native_build
from dartsrenet.kernels.native import NATIVE
from dartsrenet.kernels.protocol import CheckedKernels, KernelBackend, KernelInputError, NormArguments
from dartsrenet.kernels.triton_backend import TRITON

HIDDEN, BATCH, EPS = 6, 5, 1e-5
KERNEL_METHODS = [
    name for name, member in vars(KernelBackend).items() if inspect.isfunction(member) and not name.startswith("_")
]


def test_the_protocol_declares_the_kernels_and_both_backends_implement_it_with_its_signatures():
    assert sorted(KERNEL_METHODS) == sorted([
        "device_problem", "node_forward", "node_backward", "mixed_forward", "mixed_backward", "mixing_gradients",
        "total_mixing_gradient",
    ])  # fmt: skip
    for backend in (NATIVE, TRITON):
        assert isinstance(backend, CheckedKernels)
        for name in KERNEL_METHODS:
            declared = inspect.signature(getattr(KernelBackend, name))
            assert inspect.signature(getattr(type(backend), name)) == declared, (backend.name, name)


def test_the_cells_get_backend_objects_by_name_once():
    assert backends.kernels("native") is NATIVE and backends.kernels("triton") is TRITON
    assert backends.kernels("eager") is None
    with pytest.raises(backends.BackendError, match="has no kernels"):
        backends.kernels("auto")


def one_line_error(call) -> str:
    with pytest.raises(KernelInputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message.startswith("native kernels: ")
    return message


@pytest.fixture
def node():
    if native_build.library() is None:
        pytest.skip(f"native kernels unavailable: {native_build.unavailable_reason()}")
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(BATCH, 2, HIDDEN, generator=generator).transpose(0, 1)  # (2, B, h), batch-major
    projection = torch.randn(2, BATCH, 2 * HIDDEN, generator=generator)
    weight, bias = torch.ones(2 * HIDDEN), torch.zeros(2 * HIDDEN)
    return source, projection, NormArguments(weight, bias, True, None, None, EPS)


def test_native_bad_node_inputs_are_refused_in_one_line_before_any_work(node):
    source, projection, norm = node
    statistics, out = source.new_zeros(3, 2 * HIDDEN), source.new_zeros(2, BATCH, HIDDEN)

    def forward(source=source, projection=projection, code=0, norm=norm, out=out, statistics=statistics):
        return lambda: NATIVE.node_forward(source, projection, code, norm, statistics, out)

    assert "bfloat16" in one_line_error(forward(source=source.bfloat16(), projection=projection.bfloat16()))
    assert "states must be (2, B, h)" in one_line_error(forward(source=source[0]))
    assert "projection" in one_line_error(forward(projection=projection[..., :HIDDEN]))
    assert "last stride 2" in one_line_error(forward(projection=torch.randn(2, BATCH, 4 * HIDDEN)[..., ::2]))
    assert "statistics" in one_line_error(forward(statistics=statistics[:2]))
    assert "activation code 7" in one_line_error(forward(code=7))
    assert "running mean" in one_line_error(forward(norm=NormArguments(None, None, False, None, None, EPS)))
    assert "γ" in one_line_error(forward(norm=NormArguments(torch.ones(HIDDEN), None, True, None, None, EPS)))
    assert "float64" in one_line_error(forward(out=out.double()))
    assert "out" in one_line_error(forward(out=out[:, :2]))
    if torch.cuda.is_available():
        assert "runs on the CPU" in one_line_error(forward(source=source.cuda()))
    assert not out.any() and not statistics.any()  # nothing written
    grad_state, grad_projection = torch.zeros_like(source), torch.zeros_like(projection)

    def backward(grad=None, extra=None, grad_state=grad_state, affine_grads=None):
        return lambda: NATIVE.node_backward(
            grad, 1.0, extra, source, projection, 0, None, True, statistics, grad_state, False, grad_projection,
            affine_grads=affine_grads,
        )  # fmt: skip

    assert "grad or extra" in one_line_error(backward())
    assert "grad_state" in one_line_error(backward(grad=out, grad_state=grad_state[:, :1]))
    assert "extra" in one_line_error(backward(extra=out.double()))
    assert "dβ" in one_line_error(backward(grad=out, affine_grads=(torch.zeros(2 * HIDDEN), torch.zeros(HIDDEN))))
    assert not grad_state.any() and not grad_projection.any()


def test_native_bad_mixed_inputs_are_refused_in_one_line_before_any_work(node):
    _, _, norm = node
    count = 2
    sources, projection = torch.randn(2, count, BATCH, HIDDEN), torch.randn(2, count, BATCH, 2 * HIDDEN)
    weights = torch.rand(count, 4)
    statistics, out = torch.zeros(3, 2 * HIDDEN), torch.zeros(2, BATCH, HIDDEN)

    def forward(weights=weights, sources=sources):
        return lambda: NATIVE.mixed_forward(sources, projection, weights, norm, statistics, out)

    assert "weights" in one_line_error(forward(weights=torch.rand(count, 5)))
    assert "not contiguous" in one_line_error(forward(weights=torch.rand(4, count).t()))
    assert "states must be (2, i, B, h)" in one_line_error(forward(sources=sources[:, 0]))
    assert not out.any() and not statistics.any()
    grad_sources, grad_projection = torch.zeros_like(sources), torch.zeros_like(projection)

    def backward(scratch=None, weight_grads=None):
        return lambda: NATIVE.mixed_backward(
            out, out, sources, projection, weights, True, statistics, scratch, grad_sources, grad_projection,
            weight_grads=weight_grads,
        )  # fmt: skip

    assert "scratch" in one_line_error(backward(scratch=torch.zeros(BATCH * HIDDEN)))
    assert "weight_grads" in one_line_error(backward(weight_grads=torch.zeros(count + 1, 4)))
    assert not grad_sources.any() and not grad_projection.any()


def test_kernels_imported_in_another_triton_mode_are_one_clear_error():
    """The device code is jitted when imported: changing TRITON_INTERPRET afterwards is named
    at the first kernel call, not left to fail inside Triton."""
    pytest.importorskip("triton", reason="triton is not installed: the triton backend is optional")
    script = (
        "import os\n"
        "import dartsrenet.kernels.triton_device\n"
        "os.environ['TRITON_INTERPRET'] = '1'\n"
        "from dartsrenet.kernels import triton_backend\n"
        "triton_backend.interpreted()\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode != 0
    assert ("RuntimeError: dartsrenet.kernels.triton_device was imported with TRITON_INTERPRET=0 but the first "
            "kernel call has TRITON_INTERPRET=1") in result.stderr
