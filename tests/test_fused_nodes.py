"""The fused CPU kernels (dartsrenet/csrc, dartsrenet/fused_nodes.py) equal eager PyTorch.

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

from dartsrenet import native
from dartsrenet.cells import ArchitectureWeights, DartsCell, DartsSearchCell, DirectionalBatchNorm, gated_node
from dartsrenet.fused_nodes import ACTIVATION_CODES, kernels_apply, mean_of_states, normalised_node
from dartsrenet.genotypes import PAPER_GENOTYPES, Genotype
from dartsrenet.activations import get_activation

HIDDEN, BATCH = 6, 5
TOLERANCE = {torch.float64: {"rtol": 1e-9, "atol": 1e-11}, torch.float32: {"rtol": 2e-4, "atol": 2e-5}}

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CC") or "cc") is None, reason="no C compiler: the cells run eager PyTorch"
)


@pytest.fixture(autouse=True)
def kernels_on():
    """Each test starts with the kernels switched on."""
    native.set_native(True)
    yield
    native.set_native(True)


@needs_compiler
def test_the_kernels_build_and_load():
    """CI has a C compiler: the fused path must be the one that runs there."""
    assert native.library() is not None
    assert native.cache_dir().is_dir()


def make_norm(affine, dtype, slots_seen=0):
    norm = DirectionalBatchNorm(HIDDEN, affine=affine).to(dtype)
    if affine:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    norm.train()
    for slot in range(slots_seen):  # give the slots running statistics of their own
        norm(torch.randn(2, BATCH, HIDDEN, dtype=dtype) * 2 + 1, slot)
    return norm


def run_node(fused, activation, affine, training, dtype, layout):
    torch.manual_seed(0)
    native.set_native(fused)
    norm = make_norm(affine, dtype, slots_seen=2)
    norm.train(training)
    if layout == "batch-major":  # states as the eager cells keep them: (B, 2, h) memory
        source = torch.randn(BATCH, 2, HIDDEN, dtype=dtype).transpose(0, 1)
    else:
        source = torch.randn(2, BATCH, HIDDEN, dtype=dtype)
    projection = torch.randn(2, BATCH, 3 * HIDDEN, dtype=dtype)[..., HIDDEN:]  # a non-contiguous view
    source.requires_grad_()
    projection.requires_grad_()
    function = get_activation(activation)
    assert kernels_apply(source, projection, [activation], [norm]) == fused
    out = normalised_node(source, projection, activation, norm, 1, lambda s, p: gated_node(s, p, function))
    out.backward(torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out))
    grads = [source.grad, projection.grad] + ([norm.weight.grad, norm.bias.grad] if affine else [])
    return out.detach(), grads, norm.running_mean.clone(), norm.running_var.clone(), int(norm.num_batches_tracked)


@needs_compiler
@pytest.mark.parametrize("layout", ["direction-major", "batch-major"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("activation", sorted(ACTIVATION_CODES))
def test_fused_node_equals_eager(activation, affine, training, dtype, layout):
    fused = run_node(True, activation, affine, training, dtype, layout)
    eager = run_node(False, activation, affine, training, dtype, layout)
    tolerance = TOLERANCE[dtype]
    torch.testing.assert_close(fused[0], eager[0], **tolerance)
    for ours, theirs in zip(fused[1], eager[1], strict=True):
        torch.testing.assert_close(ours, theirs, **tolerance)
    torch.testing.assert_close(fused[2], eager[2], **tolerance)  # running mean, every slot
    torch.testing.assert_close(fused[3], eager[3], **tolerance)  # running variance
    assert fused[4] == eager[4]


GENOTYPES = {
    **PAPER_GENOTYPES,
    # nodes 1, 3, 4, 6 are not averaged and 6 feeds nothing: zero gradients, and a node
    # whose gradient comes only from its successors
    "partial": Genotype.from_string("relu:0,tanh:1,identity:1,sigmoid:3,relu:2,tanh:4,sigmoid:5,identity:7@2,5,7,8"),
}


def run_cell(fused, genotype, variant, dtype, steps=3):
    torch.manual_seed(1)
    native.set_native(fused)
    cell = DartsCell(7, HIDDEN, GENOTYPES[genotype], variant).to(dtype)
    with torch.no_grad():
        for norm in [cell.input_norm, *cell.node_norms]:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    results = []
    for training in [True] * steps + [False]:
        cell.train(training)
        cell.zero_grad(set_to_none=True)
        x = torch.randn(4, BATCH, 7, dtype=dtype, requires_grad=True)
        out = cell.sweep(x)
        out.backward(torch.randn_like(out))
        results.append((out.detach(), x.grad, {name: p.grad for name, p in cell.named_parameters()}))
    return results, {name: value.clone() for name, value in cell.state_dict().items()}


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", ["vanilla", "sigmoid_weighting", "directional_weight_sharing"])
@pytest.mark.parametrize("genotype", sorted(GENOTYPES))
def test_fused_derived_cell_equals_eager(genotype, variant, dtype):
    """Whole sweeps, training (three, so running statistics build up) then eval mode."""
    fused_results, fused_state = run_cell(True, genotype, variant, dtype)
    eager_results, eager_state = run_cell(False, genotype, variant, dtype)
    # float32: the first step's h_{−1} = 0 has zero batch variance, so BatchNorm's 1/√ε ≈ 316
    # amplifies rounding differences (hence the float64 run for the maths)
    tolerance = TOLERANCE[dtype] if dtype == torch.float64 else {"rtol": 2e-3, "atol": 2e-3}
    for (out, x_grad, grads), (expected, x_expected, expected_grads) in zip(fused_results, eager_results, strict=True):
        torch.testing.assert_close(out, expected, **tolerance)
        torch.testing.assert_close(x_grad, x_expected, **tolerance)
        assert grads.keys() == expected_grads.keys()
        for name, grad in expected_grads.items():
            if grad is None:  # the eager path leaves unused nodes' parameters without gradients
                assert grads[name] is None or not grads[name].any(), name
            else:
                torch.testing.assert_close(grads[name], grad, **tolerance, msg=lambda m, name=name: f"{name}: {m}")
    assert fused_state.keys() == eager_state.keys()
    for name, value in eager_state.items():
        torch.testing.assert_close(fused_state[name], value, **tolerance, msg=lambda m, name=name: f"{name}: {m}")


def test_mean_of_states_equals_torch_mean():
    if native.library() is None:
        pytest.skip("kernels unavailable")
    states = [torch.randn(2, 33, 7) for _ in range(5)]
    torch.testing.assert_close(mean_of_states(states), torch.stack(states).mean(0))


def test_kernels_do_not_apply_outside_their_domain():
    norm = make_norm(True, torch.float32)
    source, projection = torch.randn(2, BATCH, HIDDEN), torch.randn(2, BATCH, 2 * HIDDEN)
    assert not kernels_apply(source.bfloat16(), projection.bfloat16(), ["tanh"], [norm])  # autocast dtypes
    assert not kernels_apply(source, projection, ["softplus"], [norm])  # activations the kernels lack
    assert not kernels_apply(source[:, :1], projection[:, :1], ["tanh"], [norm])  # a batch of one, training
    native.set_native(False)
    assert not kernels_apply(source, projection, ["tanh"], [norm])


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
    cell = DartsCell(7, HIDDEN, PAPER_GENOTYPES["vanilla"])
    out = cell.sweep(torch.randn(4, BATCH, 7))
    assert out.shape == (4, BATCH, 2 * HIDDEN) and torch.isfinite(out).all()


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


def run_search_cell(fused, variant, dtype, steps=3):
    torch.manual_seed(2)
    native.set_native(fused)
    architecture = ArchitectureWeights()
    with torch.no_grad():
        architecture.alpha.normal_()  # far from uniform, so every primitive's weight matters
    cell = DartsSearchCell(7, HIDDEN, architecture, variant).to(dtype)
    results = []
    for training in [True] * steps + [False]:
        cell.train(training)
        cell.zero_grad(set_to_none=True)
        x = torch.randn(4, BATCH, 7, dtype=dtype, requires_grad=True)
        out = cell.sweep(x)
        out.backward(torch.randn_like(out))
        results.append((out.detach(), x.grad, {name: p.grad for name, p in cell.named_parameters()}))
    return results, {name: value.clone() for name, value in cell.state_dict().items()}


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", ["vanilla", "sigmoid_weighting", "directional_weight_sharing"])
def test_fused_search_cell_equals_eager(variant, dtype):
    """Whole sweeps of the search cell, α's gradient included."""
    fused_results, fused_state = run_search_cell(True, variant, dtype)
    eager_results, eager_state = run_search_cell(False, variant, dtype)
    tolerance = TOLERANCE[dtype] if dtype == torch.float64 else {"rtol": 2e-3, "atol": 2e-3}
    for (out, x_grad, grads), (expected, x_expected, expected_grads) in zip(fused_results, eager_results, strict=True):
        torch.testing.assert_close(out, expected, **tolerance)
        torch.testing.assert_close(x_grad, x_expected, **tolerance)
        assert grads.keys() == expected_grads.keys()
        for name, grad in expected_grads.items():
            torch.testing.assert_close(grads[name], grad, **tolerance, msg=lambda m, name=name: f"{name}: {m}")
    for name, value in eager_state.items():
        torch.testing.assert_close(fused_state[name], value, **tolerance, msg=lambda m, name=name: f"{name}: {m}")


def test_search_cell_with_other_primitives_runs_eagerly():
    """The mixed-node kernel knows tanh, relu, sigmoid, identity in that order; other sets run eagerly."""
    architecture = ArchitectureWeights(primitives=("none", "relu", "tanh"))
    cell = DartsSearchCell(7, HIDDEN, architecture)
    out = cell.sweep(torch.randn(4, BATCH, 7))
    assert out.shape == (4, BATCH, 2 * HIDDEN) and torch.isfinite(out).all()
