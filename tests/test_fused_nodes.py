"""The fused CPU kernels (dartsrenet/csrc, dartsrenet/kernels/native.py, dartsrenet/cells/fused_sweep.py) equal eager PyTorch.

Every check runs the same computation twice — kernels on, kernels off — and compares
values, gradients (inputs, weights, BatchNorm affine parameters) and running
statistics, in float64 (tight tolerance: the maths) and float32 (the dtype that runs).
``tests/test_reference_oracle.py`` compares both paths with the straightforward oracle.
"""

import os
import shutil
import warnings

import pytest
import torch

from dartsrenet.cells import ArchitectureWeights, BackendError, DartsCell, DartsSearchCell, DirectionalBatchNorm
from dartsrenet.cells.backends import resolve_backend
from dartsrenet.cells.fused_sweep import check_kernel_inputs
from dartsrenet.genotypes import PAPER_GENOTYPES, Genotype
from dartsrenet.activations import get_activation
from dartsrenet.kernels import native_build as native
from dartsrenet.kernels.native import NATIVE
from dartsrenet.kernels.protocol import ACTIVATION_CODES, NormArguments
from tests.cell_comparison import assert_same_cell_results

HIDDEN, BATCH = 6, 5
TOLERANCE = {torch.float64: {"rtol": 1e-9, "atol": 1e-11}, torch.float32: {"rtol": 2e-4, "atol": 2e-5}}

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CC") or "cc") is None and not os.environ.get("CI"),
    reason="no C compiler: no native backend (in CI a missing compiler fails these tests instead)",
)


@needs_compiler
def test_the_kernels_build_and_load():
    """CI has a C compiler: the fused path must be the one that runs there."""
    assert native.library() is not None
    assert native.cache_dir().is_dir()


@needs_compiler
def test_loading_the_kernels_keeps_denormals():
    """Loading the kernels must not set flush-to-zero for the process (as a -ffast-math link would)."""
    assert native.library() is not None
    tiny = torch.tensor([1e-40], dtype=torch.float32)  # a float32 denormal
    assert (tiny * 1.0).item() != 0.0


def eager_node(source, projection, activation, weight, bias, running, batch_stats, eps=1e-5):
    """The node + BatchNorm in plain PyTorch, with autograd."""
    gate, candidate = projection.chunk(2, dim=-1)
    update = source + torch.sigmoid(gate) * (get_activation(activation)(candidate) - source)  # (2, B, h)
    flat = update.transpose(0, 1).reshape(update.shape[1], -1)  # (B, 2h): [fwd ‖ bwd] features
    if batch_stats:
        out = torch.nn.functional.batch_norm(flat, None, None, weight, bias, True, 0.0, eps)
    else:
        out = torch.nn.functional.batch_norm(flat, running[0], running[1], weight, bias, False, 0.0, eps)
    return out.view(update.shape[1], 2, -1).transpose(0, 1)


@needs_compiler
@pytest.mark.parametrize("layout", ["direction-major", "batch-major"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch_stats", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("activation", sorted(ACTIVATION_CODES))
def test_node_kernels_equal_eager(activation, affine, batch_stats, dtype, layout):
    """node_forward/node_backward against autograd, for strided (views, batch-major) inputs."""
    torch.manual_seed(0)
    if layout == "batch-major":  # states as the eager cells keep them: (B, 2, h) memory
        source = torch.randn(BATCH, 2, HIDDEN, dtype=dtype).transpose(0, 1)
    else:
        source = torch.randn(2, BATCH, HIDDEN, dtype=dtype)
    projection = torch.randn(2, BATCH, 3 * HIDDEN, dtype=dtype)[..., HIDDEN:]  # a non-contiguous view
    weight = torch.empty(2 * HIDDEN, dtype=dtype).uniform_(0.5, 1.5) if affine else None
    bias = torch.empty(2 * HIDDEN, dtype=dtype).uniform_(-0.5, 0.5) if affine else None
    running = (torch.randn(2 * HIDDEN, dtype=dtype), torch.rand(2 * HIDDEN, dtype=dtype) + 0.5)
    norm = NormArguments(weight, bias, batch_stats, None if batch_stats else running[0], None if batch_stats else running[1], 1e-5)
    statistics = source.new_empty(3, 2 * HIDDEN)
    out = NATIVE.node_forward(source, projection, ACTIVATION_CODES[activation], norm, statistics)

    leaves = [tensor.detach().clone().requires_grad_() for tensor in (source, projection)]
    affine_leaves = [tensor.detach().clone().requires_grad_() for tensor in (weight, bias)] if affine else [None, None]
    expected = eager_node(*leaves, activation, *affine_leaves, running, batch_stats)
    tolerance = TOLERANCE[dtype]
    torch.testing.assert_close(out, expected.detach(), **tolerance)
    if batch_stats:
        # the statistics the kernel reports: the batch mean and biased variance
        gate, candidate = projection.chunk(2, dim=-1)
        update = source + torch.sigmoid(gate) * (get_activation(activation)(candidate) - source)
        flat = update.transpose(0, 1).reshape(BATCH, -1)
        torch.testing.assert_close(statistics[0], flat.mean(0), **tolerance)
        torch.testing.assert_close(statistics[1], flat.var(0, unbiased=False), **tolerance)

    upstream = torch.randn(2, BATCH, HIDDEN, dtype=dtype)
    expected.backward(upstream)
    grad_state, grad_projection = torch.empty_like(source), torch.empty_like(projection)
    grad_weight, grad_bias = NATIVE.node_backward(
        upstream, 1.0, None, source, projection, ACTIVATION_CODES[activation], weight, batch_stats, statistics,
        grad_state, False, grad_projection,
    )
    torch.testing.assert_close(grad_state, leaves[0].grad, **tolerance)
    torch.testing.assert_close(grad_projection, leaves[1].grad, **tolerance)
    if affine:
        torch.testing.assert_close(grad_weight, affine_leaves[0].grad, **tolerance)
        torch.testing.assert_close(grad_bias, affine_leaves[1].grad, **tolerance)
    # dy given as 0.5·grad + extra, and accumulating into an existing state gradient
    grad_again = grad_state.clone()
    NATIVE.node_backward(
        upstream, 0.5, 0.5 * upstream, source, projection, ACTIVATION_CODES[activation], weight, batch_stats,
        statistics, grad_again, True, torch.empty_like(projection),
    )
    torch.testing.assert_close(grad_again, 2 * grad_state, **tolerance)


GENOTYPES = {
    **PAPER_GENOTYPES,
    # nodes 1, 3, 4, 6 are not averaged and 6 feeds nothing: zero gradients, and a node
    # whose gradient comes only from its successors
    "partial": Genotype.from_string("relu:0,tanh:1,identity:1,sigmoid:3,relu:2,tanh:4,sigmoid:5,identity:7@2,5,7,8"),
}


def derived_cell(genotype, variant, dtype):
    torch.manual_seed(1)
    cell = DartsCell(7, HIDDEN, GENOTYPES[genotype], variant).to(dtype)
    with torch.no_grad():
        for norm in [cell.input_norm, *cell.node_norms]:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    return cell


def search_cell(variant, dtype):
    torch.manual_seed(2)
    architecture = ArchitectureWeights()
    with torch.no_grad():
        architecture.alpha.normal_()  # far from uniform, so every primitive's weight matters
    return DartsSearchCell(7, HIDDEN, architecture, variant).to(dtype)


def run_sweeps(fused, make_cell, dtype, steps=3):
    """Training sweeps (``steps``, so running statistics build up), then one in eval mode:
    outputs, gradients of x and every parameter, and the final state dict."""
    cell = make_cell()
    cell.use_backend("native" if fused else "eager")
    torch.manual_seed(3)
    results = []
    for training in [True] * steps + [False]:
        cell.train(training)
        cell.zero_grad(set_to_none=True)
        x = torch.randn(4, BATCH, 7, dtype=dtype, requires_grad=True)
        out = cell.sweep(x)
        out.backward(torch.randn_like(out))
        results.append((out.detach(), x.grad, {name: p.grad for name, p in cell.named_parameters()}))
    return results, {name: value.clone() for name, value in cell.state_dict().items()}


def assert_same_sweeps(make_cell, dtype):
    """run_sweeps with the kernels and without agree: values, gradients, running statistics."""
    fused_results, fused_state = run_sweeps(True, make_cell, dtype)
    eager_results, eager_state = run_sweeps(False, make_cell, dtype)
    # float32: the first step's h_{−1} = 0 has zero batch variance, so BatchNorm's 1/√ε ≈ 316
    # amplifies rounding differences (hence the float64 run for the maths)
    tolerance = TOLERANCE[dtype] if dtype == torch.float64 else {"rtol": 2e-3, "atol": 2e-3}
    assert_same_cell_results(fused_results, fused_state, eager_results, eager_state, tolerance)


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", ["vanilla", "sigmoid_weighting", "directional_weight_sharing"])
@pytest.mark.parametrize("genotype", sorted(GENOTYPES))
def test_fused_derived_cell_equals_eager(genotype, variant, dtype):
    """Whole sweeps, training (three, so running statistics build up) then eval mode."""
    assert_same_sweeps(lambda: derived_cell(genotype, variant, dtype), dtype)


@needs_compiler
def test_the_native_backend_refuses_what_it_cannot_compute(monkeypatch):
    """Asked for by name, the kernels never fall back: other dtypes, activations they lack, a
    batch of one in training mode, no kernels — each an error. ``auto`` picks eager instead."""
    norm = DirectionalBatchNorm(HIDDEN).train()
    source, projection = torch.randn(2, BATCH, HIDDEN), torch.randn(2, BATCH, 2 * HIDDEN)
    with pytest.raises(BackendError, match="float32 or float64"):
        check_kernel_inputs("native", source.bfloat16(), projection.bfloat16(), [norm])
    with pytest.raises(BackendError, match="no kernel for activation 'softplus'"):
        resolve_backend("native", "cpu", ["tanh", "softplus"])
    with pytest.warns(UserWarning, match="softplus"):
        assert resolve_backend("auto", "cpu", ["tanh", "softplus"]) == "eager"
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        check_kernel_inputs("native", source[:, :1], projection[:, :1], [norm])
    assert resolve_backend("auto", "cpu", ["tanh"]) == "native"
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    with pytest.raises(BackendError, match="DARTSRENET_NATIVE=0"):
        resolve_backend("native", "cpu", ["tanh"])
    with pytest.warns(UserWarning, match="DARTSRENET_NATIVE=0"):
        assert resolve_backend("auto", "cpu", ["tanh"]) == "eager"


def test_no_compiler_warns_once_and_falls_back(monkeypatch, tmp_path):
    """Without a working compiler the cells warn once and compute the same results eagerly."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv(native.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setitem(native._STATE, "library", None)
    monkeypatch.setitem(native._STATE, "failed", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert native.library() is None
        assert native.library() is None
    assert len([w for w in caught if "fused CPU kernels unavailable" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cell = DartsCell(7, HIDDEN, PAPER_GENOTYPES["vanilla"])  # auto: eager, since native cannot run
    assert cell.backend == "eager"
    out = cell.sweep(torch.randn(4, BATCH, 7))
    assert out.shape == (4, BATCH, 2 * HIDDEN) and torch.isfinite(out).all()
    with pytest.raises(BackendError, match="no-such-compiler"):
        DartsCell(7, HIDDEN, PAPER_GENOTYPES["vanilla"], backend="native")


@needs_compiler
def test_build_goes_to_the_cache_and_is_reused(monkeypatch, tmp_path):
    monkeypatch.setenv(native.ENV_CACHE, str(tmp_path))
    monkeypatch.setitem(native._STATE, "library", None)
    monkeypatch.setitem(native._STATE, "failed", False)
    assert native.library() is not None
    built = list(tmp_path.glob("*/node_kernels.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setitem(native._STATE, "library", None)
    assert native.library() is not None
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", ["vanilla", "sigmoid_weighting", "directional_weight_sharing"])
def test_fused_search_cell_equals_eager(variant, dtype):
    """Whole sweeps of the search cell, α's gradient included."""
    assert_same_sweeps(lambda: search_cell(variant, dtype), dtype)


@needs_compiler
def test_search_cell_with_a_subset_of_the_primitives_runs_on_the_kernels():
    """The mixed-node kernel mixes tanh, relu, sigmoid, identity; a search space with a subset of
    them, in any order, gets zero weights for the others — the same results as eager."""

    def make_cell():
        torch.manual_seed(4)
        architecture = ArchitectureWeights(primitives=("none", "relu", "tanh"))
        with torch.no_grad():
            architecture.alpha.normal_()
        return DartsSearchCell(7, HIDDEN, architecture).double()

    assert make_cell().backend == "native"
    assert_same_sweeps(make_cell, torch.float64)


@needs_compiler
@pytest.mark.parametrize("variant", ["vanilla", "sigmoid_weighting", "directional_weight_sharing"])
@pytest.mark.parametrize("kind", ["derived", "search"])
def test_bf16_autocast_runs_the_matmuls_in_bf16_and_stays_close_to_float32(kind, variant):
    """Under CPU bf16 autocast the fused steps do the matmuls in bf16 and the rest in float32:
    closer to float32 than eager autocast (measured: mean error 0.002–0.003 vs 0.004–0.006)."""
    torch.manual_seed(0)
    if kind == "derived":
        cell = DartsCell(24, 16, PAPER_GENOTYPES["vanilla"], variant)
    else:
        cell = DartsSearchCell(24, 16, ArchitectureWeights(), variant)
    x = torch.randn(6, 64, 24, requires_grad=True)
    expected = cell.sweep(x)
    expected_grad = torch.autograd.grad(expected.sum(), x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        projection = torch.matmul(torch.randn(2, 64, 16), torch.randn(16, 32))
        assert projection.dtype == torch.bfloat16
        assert cell.backend == "native"
        check_kernel_inputs("native", torch.randn(2, 64, 16), projection, [DirectionalBatchNorm(16).train()])
        out = cell.sweep(x)
    grad = torch.autograd.grad(out.float().sum(), x)[0]
    error = (out.float() - expected).abs()
    assert error.mean() < 0.01 and error.max() < 0.2
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, expected_grad, rtol=0.1, atol=0.1)
