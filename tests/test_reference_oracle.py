"""The optimised library cells equal the straightforward oracle (dartsrenet/testing/reference_cells.py).

For every paper genotype × variant (derived cells) and every variant of the search
cell with random α, in training and in eval mode: the sweep's outputs, the gradients
w.r.t. the inputs and every weight (and α), and the BatchNorm running statistics.
``step`` is checked against the oracle's step too, and the search mixture's algebra
against the term-by-term sum of node updates.

Every check runs twice, with the fused CPU kernels and in eager PyTorch.
Everything runs in float64, so that the comparison checks the maths and not the
rounding (BatchNorm over small batches amplifies rounding: h_{−1} = 0 has zero
variance). Runs on the CPU; ``DARTSRENET_TEST_DEVICE=cuda`` runs the same checks on a GPU.
"""

import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from dartsrenet import cells
from dartsrenet.kernels import native_build as native
from dartsrenet.cells import backends
from dartsrenet.activations import get_activation
from dartsrenet.cells import ArchitectureWeights, DartsCell, DartsSearchCell, mixed_node, node_update
from dartsrenet.genotypes import PAPER_GENOTYPES
from dartsrenet.testing import reference_cells
from dartsrenet.variants import VARIANTS
from tests.recorders import MatrixProductDtypes


DEVICE = torch.device(os.environ.get("DARTSRENET_TEST_DEVICE", "cpu"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy shared machine OpenMP threads that
    wait for a descheduled peer made this file 25× slower (3 s → 80 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
FUSED_BACKEND = "native" if DEVICE.type == "cpu" else "triton"
BACKEND = {"name": FUSED_BACKEND}  # what make_library_cell builds with


@pytest.fixture(autouse=True, params=["fused", "eager"])
def backend(request):
    """Every check twice: with the fused backend (C kernels on the CPU, Triton on CUDA) and the eager one."""
    BACKEND["name"] = FUSED_BACKEND if request.param == "fused" else "eager"
    if request.param == "fused" and DEVICE.type == "cpu" and (shutil.which(os.environ.get("CC") or "cc") or os.environ.get("CI")):
        assert native.library() is not None, native.unavailable_reason()
    yield BACKEND["name"]
    BACKEND["name"] = FUSED_BACKEND


INPUT, HIDDEN, BATCH, LENGTH = 7, 5, 6, 4
DTYPE = torch.float64
TOLERANCE = {"rtol": 1e-7, "atol": 1e-9}


def randomise_norms(cell):
    """Non-trivial BatchNorm affine parameters (the defaults 1 and 0 would hide mix-ups)."""
    with torch.no_grad():
        for module in cell.modules():
            if isinstance(module, torch.nn.BatchNorm1d) and module.affine:
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)


def make_library_cell(kind, name, variant):
    if kind == "derived":
        cell = DartsCell(INPUT, HIDDEN, PAPER_GENOTYPES[name], variant, backend="eager")
    else:
        architecture = ArchitectureWeights()
        with torch.no_grad():
            architecture.alpha.normal_()  # far from uniform, so every primitive's weight matters
        cell = DartsSearchCell(INPUT, HIDDEN, architecture, variant, backend="eager")
    randomise_norms(cell)
    cell = cell.to(DEVICE, DTYPE)
    cell.use_backend(BACKEND["name"])
    return cell


def oracle_alpha(cell):
    """The oracle's own leaf copy of the library cell's α (None for derived cells)."""
    if not isinstance(cell, DartsSearchCell):
        return None
    return cell.architecture.alpha.detach().clone().requires_grad_()


def library_gradients(cell):
    return {name: p.grad for name, p in cell.named_parameters() if not name.startswith("architecture")}


def check_buffers_equal(cell, reference):
    expected = reference_cells.library_state_from_reference(reference, cell)
    state = cell.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(state[name].to(value.dtype), value, **TOLERANCE, msg=lambda m, name=name: f"buffer {name}: {m}")


def compare_sweeps(cell, reference, training):
    """One sweep of each: outputs, input/weight/α gradients and running statistics agree."""
    cell.train(training)
    reference.train(training)
    cell.zero_grad(set_to_none=True)
    reference.zero_grad(set_to_none=True)
    x = torch.randn(LENGTH, BATCH, INPUT, device=DEVICE, dtype=DTYPE, requires_grad=True)
    x_reference = x.detach().clone().requires_grad_()
    alpha = oracle_alpha(cell)
    out = cell.sweep(x)
    expected = reference.sweep(x_reference, alpha)
    torch.testing.assert_close(out, expected, **TOLERANCE)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    expected.backward(upstream)
    torch.testing.assert_close(x.grad, x_reference.grad, **TOLERANCE, msg=lambda m: f"input gradient: {m}")
    ours = library_gradients(cell)
    theirs = reference_cells.reference_gradients(reference)
    assert set(ours) == set(theirs)
    for name, grad in theirs.items():
        torch.testing.assert_close(ours[name], grad, **TOLERANCE, msg=lambda m, name=name: f"gradient of {name}: {m}")
    if alpha is not None:
        torch.testing.assert_close(cell.architecture.alpha.grad, alpha.grad, **TOLERANCE, msg=lambda m: f"gradient of alpha: {m}")
    check_buffers_equal(cell, reference)


def run_case(kind, name, variant):
    torch.manual_seed(0)
    cell = make_library_cell(kind, name, variant)
    reference = reference_cells.reference_from_library(cell).to(DEVICE, DTYPE)
    compare_sweeps(cell, reference, training=True)
    compare_sweeps(cell, reference, training=True)  # running statistics now differ from their init
    compare_sweeps(cell, reference, training=False)  # eval mode uses them


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("genotype_name", sorted(PAPER_GENOTYPES))
def test_derived_cell_equals_oracle(genotype_name, variant):
    run_case("derived", genotype_name, variant)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_search_cell_equals_oracle(variant):
    run_case("search", None, variant)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kind", ["derived", "search"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_single_step_equals_oracle_step(variant, kind, training):
    """``step`` stays a correct single step, from an arbitrary state."""
    torch.manual_seed(1)
    cell = make_library_cell(kind, variant, variant)
    reference = reference_cells.reference_from_library(cell).to(DEVICE, DTYPE)
    cell.train(training)
    reference.train(training)
    x = torch.randn(2, BATCH, INPUT, device=DEVICE, dtype=DTYPE)
    state = torch.randn(2, BATCH, HIDDEN, device=DEVICE, dtype=DTYPE)
    output, new_state = cell.step(x, state)
    expected = reference.step(x[0], x[1], state[0], state[1], oracle_alpha(cell))
    torch.testing.assert_close(output, torch.stack(expected), **TOLERANCE)
    torch.testing.assert_close(new_state, output)


def test_the_oracle_is_independent_of_the_library_maths():
    source = Path(reference_cells.__file__).read_text()
    assert "dartsrenet" not in source.replace("dartsrenet.cells'", "").split('"""', 2)[2]


def test_mixed_node_equals_the_sum_of_node_updates():
    """The search mixture's algebra: Σ_j Σ_f p_f·node_update(s_j, g_j, f(ĥ_j)) term by term."""
    torch.manual_seed(2)
    nodes, names = 3, ["tanh", "relu", "sigmoid", "identity"]
    sources = torch.randn(2, nodes, BATCH, HIDDEN, dtype=torch.float64)
    projection = torch.randn(2, nodes, BATCH, 2 * HIDDEN, dtype=torch.float64)
    probabilities = torch.softmax(torch.randn(nodes, 1 + len(names), dtype=torch.float64), dim=-1)[:, 1:]
    gate, candidate = projection.chunk(2, dim=-1)
    expected = sum(
        probabilities[j, k] * node_update(sources[:, j], torch.sigmoid(gate[:, j]), get_activation(name)(candidate[:, j]))
        for j in range(nodes)
        for k, name in enumerate(names)
    )
    weights = probabilities.t().reshape(len(names), 1, nodes, 1, 1)
    kept = probabilities.sum(-1).view(1, nodes, 1, 1)
    activations = [get_activation(name) for name in names]
    torch.testing.assert_close(mixed_node(sources, projection, weights, kept, activations), expected)


def test_compile_option_falls_back_to_eager_mode(monkeypatch):
    """``set_compile(True)``: a compiler failure warns once and the results stay exact."""

    def failing_compile(function, **kwargs):
        def compiled(*args):
            raise RuntimeError("no compiler here")

        return compiled

    monkeypatch.setattr(torch, "compile", failing_compile)
    monkeypatch.setitem(backends._COMPILE, "functions", {})
    torch.manual_seed(3)
    cell = make_library_cell("derived", "vanilla", "vanilla")
    cell.use_backend("eager")  # compiling is an option of the eager backend
    x = torch.randn(LENGTH, BATCH, INPUT, device=DEVICE, dtype=DTYPE)
    expected = cell.eval().sweep(x)
    cells.set_compile(True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = cell.sweep(x)
        assert any("torch.compile failed" in str(w.message) for w in caught)
        assert not cells.compile_enabled()
    finally:
        cells.set_compile(False)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("kind", ["derived", "search"])
def test_cells_run_under_bf16_autocast(kind):
    """The bf16 option (a GPU option; autocast works on the CPU too): every matrix product of
    the sweep takes bf16 inputs, the sweeps run, states stay finite."""
    torch.manual_seed(4)
    cell = make_library_cell(kind, "sigmoid_weighting", "sigmoid_weighting").float()
    x = torch.randn(LENGTH, BATCH, INPUT, device=DEVICE, requires_grad=True)
    for training in (True, False):
        cell.train(training)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16), MatrixProductDtypes() as products:
            out = cell.sweep(x)
        assert products.seen and products.dtypes() == {torch.bfloat16}, products.seen
        out.float().sum().backward()
        assert out.shape == (LENGTH, BATCH, 2 * HIDDEN) and torch.isfinite(out).all()
        assert cell.input_norm.running_mean.dtype == torch.float32
