"""The fused C kernels equal eager PyTorch over the whole float32 range.

Gate and activation inputs of ±1e4, ±700, the edges of exp's range (±88.7, ±89, ±104),
denormals, ±0 and ±inf, in the derived-node kernels (``node_forward``/``node_backward``)
and the search-node kernels (``mixed_forward``/``mixed_backward``, α's gradient
included), in training mode (batch statistics) and eval mode (running statistics, where
the states of an early network reach |s| ≈ 700), with 1 and 2 threads (the reductions
are split by thread). Then whole cells fed inputs of that size, fused against eager.

Tolerances are relative to each tensor's own magnitude: at |x| = 1e4 one float32 ulp is
about 1e-3, so an absolute tolerance fit for O(1) values would fail on round-off alone,
and one fit for 1e4 would hide errors in the small entries. Where eager PyTorch gives
inf or NaN (an identity node fed inf), the kernels must give the same at the same places.
"""

import os
import shutil

import pytest
import torch

from dartsrenet.activations import get_activation
from dartsrenet.cells import ArchitectureWeights, DartsCell, DartsSearchCell, mixed_node
from dartsrenet.genotypes import PAPER_GENOTYPES
from dartsrenet.kernels.native import NATIVE
from dartsrenet.kernels.protocol import ACTIVATION_CODES, SEARCH_PRIMITIVES, NormArguments

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("CC") or "cc") is None and not os.environ.get("CI"),
    reason="no C compiler: no native backend (in CI a missing compiler fails these tests instead)",
)

HIDDEN, BATCH, EPS = 8, 6, 1e-5
MAGNITUDES = [0.0, 1e-45, 1e-40, 1e-30, 1e-7, 0.5, 1.0, 5.0, 20.0, 50.0, 87.0, 88.7, 89.0, 104.0, 700.0, 1e3, 1e4]
EXTREMES = torch.tensor(
    sorted({sign * m for m in MAGNITUDES for sign in (1.0, -1.0)}) + [float("inf"), float("-inf")],
    dtype=torch.float32,
)
"""Every float32 regime of σ, tanh, relu and identity: zeros, denormals, exp's overflow
and underflow edges (|x| ≈ 88.7 and 104), large and infinite values."""

BOUNDED = {"tanh", "sigmoid"}  # activations whose output stays finite for any input


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    """The kernels split rows between threads (per-thread partial sums): run with 1 and 2."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def extreme_values(shape, seed, finite=False):
    """A tensor of ``shape`` whose entries cycle through :data:`EXTREMES` in random order."""
    values = EXTREMES[torch.isfinite(EXTREMES)] if finite else EXTREMES
    generator = torch.Generator().manual_seed(seed)
    count = torch.Size(shape).numel()
    picks = torch.randperm(count, generator=generator) % len(values)
    return values[picks].reshape(shape).clone()


def assert_close_relative(actual, expected, rtol=1e-4, scale_tol=2e-6, what=""):
    """Equal to round-off: |a − e| ≤ rtol·|e| + scale_tol·max|e| on the finite entries, and
    non-finite exactly where eager is non-finite. (Where eager has inf or NaN its value is
    not compared: ``torch.lerp`` computes an inf candidate as inf − inf = NaN for gates
    ≥ ½, the kernels' s + g·(f − s) gives inf; both say the same: not a number to use.)"""
    actual, expected = actual.detach().float(), expected.detach().float()
    assert actual.shape == expected.shape, what
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(actual), finite), (
        f"{what}: kernel non-finite at {(~torch.isfinite(actual) & finite).sum().item()} places where eager is finite, "
        f"finite at {(torch.isfinite(actual) & ~finite).sum().item()} where eager is not"
    )
    if finite.any():
        scale = expected[finite].abs().max().item()
        error = (actual[finite] - expected[finite]).abs()
        bound = rtol * expected[finite].abs() + scale_tol * max(scale, 1e-30)
        worst = (error - bound).argmax()
        assert (error <= bound).all(), (
            f"{what}: off by {error[worst].item():.3g} at {expected[finite][worst].item():.6g} "
            f"(kernel {actual[finite][worst].item():.6g}; tensor scale {scale:.3g})"
        )


def eager_node(source, projection, activation, weight, bias, running, batch_stats):
    """Node + BatchNorm in plain PyTorch (the cells' formula: lerp), with autograd."""
    gate, candidate = projection.chunk(2, dim=-1)
    update = torch.lerp(source, get_activation(activation)(candidate), torch.sigmoid(gate))
    flat = update.transpose(0, 1).reshape(update.shape[1], -1)  # (B, 2h)
    running_mean, running_var = running if not batch_stats else (None, None)
    out = torch.nn.functional.batch_norm(flat, running_mean, running_var, weight, bias, batch_stats, 0.0, EPS)
    return out.view(update.shape[1], 2, -1).transpose(0, 1)


def node_inputs(activation, batch_stats, seed):
    """States like an early network's (|s| up to ~1e3), projections over the whole range."""
    generator = torch.Generator().manual_seed(seed)
    source = torch.randn(2, BATCH, HIDDEN, generator=generator) * 300.0
    gate = extreme_values((2, BATCH, HIDDEN), seed)
    # unbounded activations fed ±inf give inf states, which a batch-statistics BatchNorm turns
    # into NaN for the whole feature in eager PyTorch too: test those in eval mode only
    candidate = extreme_values((2, BATCH, HIDDEN), seed + 1, finite=activation not in BOUNDED and batch_stats)
    projection = torch.cat([gate, candidate], dim=-1)
    weight = torch.empty(2 * HIDDEN).uniform_(0.5, 1.5, generator=generator)
    bias = torch.empty(2 * HIDDEN).uniform_(-0.5, 0.5, generator=generator)
    running = (torch.randn(2 * HIDDEN, generator=generator) * 100.0, torch.rand(2 * HIDDEN, generator=generator) * 1e4 + 1.0)
    return source, projection, weight, bias, running


@pytest.mark.parametrize("batch_stats", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("activation", sorted(ACTIVATION_CODES))
def test_node_kernels_equal_eager_at_extremes(activation, batch_stats, threads):
    """node_forward/node_backward against autograd on inputs over the whole float32 range."""
    source, projection, weight, bias, running = node_inputs(activation, batch_stats, seed=10)
    norm = NormArguments(weight, bias, batch_stats, None if batch_stats else running[0], None if batch_stats else running[1], EPS)
    statistics = source.new_empty(3, 2 * HIDDEN)
    out = NATIVE.node_forward(source, projection, ACTIVATION_CODES[activation], norm, statistics)

    leaves = [tensor.clone().requires_grad_() for tensor in (source, projection, weight, bias)]
    expected = eager_node(*leaves[:2], activation, *leaves[2:], running, batch_stats)
    assert_close_relative(out, expected, what="output")
    if not torch.isfinite(expected).all():  # eval mode with inf states: the gradients are NaN/inf soup
        return
    upstream = torch.randn(2, BATCH, HIDDEN, generator=torch.Generator().manual_seed(11))
    expected.backward(upstream)
    grad_state, grad_projection = torch.empty_like(source), torch.empty_like(projection)
    grad_weight, grad_bias = NATIVE.node_backward(
        upstream, 1.0, None, source, projection, ACTIVATION_CODES[activation], weight, batch_stats, statistics,
        grad_state, False, grad_projection,
    )
    for name, actual, leaf in [
        ("grad state", grad_state, leaves[0]),
        ("grad projection", grad_projection, leaves[1]),
        ("grad γ", grad_weight, leaves[2]),
        ("grad β", grad_bias, leaves[3]),
    ]:
        assert_close_relative(actual, leaf.grad, rtol=1e-3, scale_tol=1e-5, what=name)


def eager_mixed(sources, projection, probabilities, running, batch_stats):
    """A search node + affine-free BatchNorm with the cells' own :func:`mixed_node` (eq. 8)."""
    weights = probabilities.t()[:, None, :, None, None]  # (F, 1, i, 1, 1)
    kept = probabilities.sum(dim=1)[None, :, None, None]
    update = mixed_node(sources, projection, weights, kept, [get_activation(f) for f in SEARCH_PRIMITIVES])
    flat = update.transpose(0, 1).reshape(update.shape[1], -1)
    running_mean, running_var = running if not batch_stats else (None, None)
    out = torch.nn.functional.batch_norm(flat, running_mean, running_var, None, None, batch_stats, 0.0, EPS)
    return out.view(update.shape[1], 2, -1).transpose(0, 1)


@pytest.mark.parametrize("batch_stats", [True, False], ids=["train", "eval"])
def test_mixed_kernels_equal_eager_at_extremes(batch_stats, threads):
    """mixed_forward/mixed_backward (eq. 8 over 3 predecessors and 4 primitives) and α's
    gradient through softmax, on projections over the whole float32 range."""
    count = 3
    generator = torch.Generator().manual_seed(20)
    sources = torch.randn(2, count, BATCH, HIDDEN, generator=generator) * 300.0
    # relu and identity are mixed in with a nonzero weight: an inf candidate gives an inf
    # state, so in training mode keep the candidates finite (see node_inputs)
    gate = extreme_values((2, count, BATCH, HIDDEN), 21)
    candidate = extreme_values((2, count, BATCH, HIDDEN), 22, finite=True)
    projection = torch.cat([gate, candidate], dim=-1)
    alpha = torch.randn(count, len(SEARCH_PRIMITIVES) + 1, generator=generator)  # with the 'none' column
    running = (torch.randn(2 * HIDDEN, generator=generator) * 100.0, torch.rand(2 * HIDDEN, generator=generator) * 1e4 + 1.0)

    leaves = [tensor.clone().requires_grad_() for tensor in (sources, projection, alpha)]
    probabilities = torch.softmax(leaves[2], dim=-1)[:, 1:]  # (i, 4) without 'none'
    expected = eager_mixed(leaves[0], leaves[1], probabilities, running, batch_stats)

    weights = torch.softmax(alpha, dim=-1)[:, 1:].contiguous()
    norm = NormArguments(None, None, batch_stats, None if batch_stats else running[0], None if batch_stats else running[1], EPS)
    statistics, out = sources.new_empty(3, 2 * HIDDEN), sources.new_empty(2, BATCH, HIDDEN)
    NATIVE.mixed_forward(sources, projection, weights, norm, statistics, out)
    assert_close_relative(out, expected, what="output")

    upstream = torch.randn(2, BATCH, HIDDEN, generator=generator)
    expected.backward(upstream)
    grad_sources, grad_projection = torch.zeros_like(sources), torch.empty_like(projection)
    scratch = sources.new_empty(BATCH * 2 * HIDDEN)
    grad_weights = NATIVE.mixed_backward(
        upstream, out, sources, projection, weights, batch_stats, statistics, scratch, grad_sources, grad_projection
    )
    assert_close_relative(grad_sources, leaves[0].grad, rtol=1e-3, scale_tol=1e-5, what="grad sources")
    assert_close_relative(grad_projection, leaves[1].grad, rtol=1e-3, scale_tol=1e-5, what="grad projection")
    # α's gradient: the kernel's gradient of the mixing weights through softmax
    alpha_leaf = alpha.clone().requires_grad_()
    torch.softmax(alpha_leaf, dim=-1)[:, 1:].backward(grad_weights)
    assert_close_relative(alpha_leaf.grad, leaves[2].grad, rtol=1e-3, scale_tol=1e-5, what="grad α")


def large_input_sweeps(make_cell, fused, dtype, scale=1e3):
    """Two training sweeps (running statistics from large states), then eval mode, on x ~ scale:
    outputs, input and parameter gradients of each."""
    cell = make_cell().to(dtype)
    cell.use_backend("native" if fused else "eager")
    generator = torch.Generator().manual_seed(30)
    results = []
    for training in (True, True, False):
        cell.train(training)
        cell.zero_grad(set_to_none=True)
        x = (torch.randn(4, BATCH, 7, generator=generator, dtype=torch.float64) * scale).to(dtype).requires_grad_()
        out = cell.sweep(x)
        out.backward(torch.randn(out.shape, generator=generator, dtype=torch.float64).to(dtype))
        grads = {"x": x.grad, **{name: p.grad for name, p in cell.named_parameters() if p.grad is not None}}
        results.append((out.detach(), grads))
    return results


def make_derived_cell():
    torch.manual_seed(31)
    cell = DartsCell(7, HIDDEN, PAPER_GENOTYPES["vanilla"], "vanilla")
    with torch.no_grad():
        for parameter in cell.parameters():
            if parameter.dim() > 1:
                parameter.mul_(30.0)  # projections far outside σ's and tanh's linear range
    return cell


def make_search_cell():
    torch.manual_seed(32)
    architecture = ArchitectureWeights()
    with torch.no_grad():
        architecture.alpha.normal_()
    cell = DartsSearchCell(7, HIDDEN, architecture, "vanilla")
    with torch.no_grad():
        for name, parameter in cell.named_parameters():
            if parameter.dim() > 1 and "alpha" not in name:
                parameter.mul_(30.0)
    return cell


def relative_error(actual, truth):
    return ((actual.double() - truth).norm() / truth.norm().clamp_min(1e-300)).item()


@pytest.mark.parametrize("make_cell", [make_derived_cell, make_search_cell], ids=["derived", "search"])
def test_cells_fed_large_inputs_equal_eager_and_stay_finite(make_cell, threads):
    """Whole cells with inputs of |x| ~ 1e3 and projections far into the saturated range (as in
    an early network's eval mode): nothing becomes NaN, and against the float64 maths the
    kernels' float32 error is of the eager float32 error's size. Saturated gates and BatchNorm
    over a batch of 6 amplify round-off ~1e4-fold here (both paths end up ~1e-4 off in the
    gradients), so each is compared with the float64 truth instead of with the other, and
    the kernels, which recompute σ, f and x̂ in the backward pass rather than store them,
    may be up to 10× eager's error."""
    truth = large_input_sweeps(make_cell, False, torch.float64)
    eager = large_input_sweeps(make_cell, False, torch.float32)
    fused = large_input_sweeps(make_cell, True, torch.float32)
    for (out, grads), (eager_out, eager_grads), (true_out, true_grads) in zip(fused, eager, truth, strict=True):
        assert torch.isfinite(true_out).all() and torch.isfinite(eager_out).all()
        assert torch.isfinite(out).all(), "the kernels gave non-finite outputs where the maths is finite"
        assert relative_error(out, true_out) <= 10 * relative_error(eager_out, true_out) + 1e-5
        assert grads.keys() == eager_grads.keys()
        for name, true_grad in true_grads.items():
            assert torch.isfinite(grads[name]).all(), name
            fused_error, eager_error = relative_error(grads[name], true_grad), relative_error(eager_grads[name], true_grad)
            assert fused_error <= 10 * eager_error + 1e-5, f"grad {name}: {fused_error:.3g} vs eager {eager_error:.3g}"
