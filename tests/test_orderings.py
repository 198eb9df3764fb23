"""Sequence orderings and configurable networks: permutations, spatial alignment, causality
along the order, every backend equal to eager, the paper's design as the default."""

from __future__ import annotations

import pytest
import torch

from dartsrenet import build_eval_model, count_parameters
from dartsrenet.cells import DartsCell, GRUCell, LSTMCell
from dartsrenet.genotypes import PAPER_GENOTYPES
from dartsrenet.network_spec import LayerSpec, NetworkSpec, paper_network, parse_network
from dartsrenet.orderings import ORDERINGS, SWEEPS, gilbert_curve, ordered_sweep, sequence_indices
from dartsrenet.registry import UnknownNameError
from dartsrenet.renet import ReNetLayer

GRIDS = [(1, 1), (1, 5), (4, 4), (3, 5), (6, 4), (8, 8), (5, 7)]


@pytest.mark.parametrize("sweep", SWEEPS)
@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g[0]}x{g[1]}")
@pytest.mark.parametrize("ordering", sorted(ORDERINGS))
def test_every_ordering_is_a_permutation_of_the_grid(ordering, grid, sweep):
    rows, cols = grid
    order, inverse = sequence_indices(ordering, rows, cols, sweep)
    assert sorted(order.flatten().tolist()) == list(range(rows * cols))
    assert torch.equal(order.flatten()[inverse], torch.arange(rows * cols))


@pytest.mark.parametrize("grid", [(4, 4), (8, 8), (2, 6), (6, 10), (16, 16)], ids=lambda g: f"{g[0]}x{g[1]}")
@pytest.mark.parametrize("ordering", ["serpentine", "hilbert"])
def test_whole_grid_orderings_step_to_a_neighbour(ordering, grid):
    """On grids with even sides every step of one sequence moves to an adjacent cell."""
    rows, cols = grid
    for sweep in SWEEPS:
        order, _ = sequence_indices(ordering, rows, cols, sweep)
        cells = [divmod(int(i), cols) for i in order.flatten()]
        steps = [abs(r1 - r0) + abs(c1 - c0) for (r0, c0), (r1, c1) in zip(cells, cells[1:])]
        assert steps == [1] * (rows * cols - 1), (sweep, steps)


def test_gilbert_curve_is_hilbert_on_powers_of_two_and_travels_along_the_long_side():
    assert gilbert_curve(2, 2) == [(0, 0), (0, 1), (1, 1), (1, 0)]
    assert gilbert_curve(4, 4) == [
        (0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (0, 3), (1, 3), (1, 2),
        (2, 2), (2, 3), (3, 3), (3, 2), (3, 1), (2, 1), (2, 0), (3, 0),
    ]
    for width, height in [(5, 3), (8, 2), (6, 10), (3, 7)]:
        curve = gilbert_curve(width, height)
        assert len(set(curve)) == width * height and curve[0] == (0, 0)
        assert curve[-1] == ((width - 1, 0) if width >= height else (0, height - 1))
    with pytest.raises(ValueError, match="at least 1"):
        gilbert_curve(0, 3)


def test_row_column_is_the_paper_reading():
    order, _ = sequence_indices("rowcol", 2, 3, "horizontal")
    assert order.tolist() == [[0, 1, 2], [3, 4, 5]]
    order, _ = sequence_indices("rowcol", 2, 3, "vertical")
    assert order.tolist() == [[0, 3], [1, 4], [2, 5]]


def test_unknown_ordering_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid orderings: hilbert, rowcol, serpentine"):
        ReNetLayer(2, 3, lambda i, h: GRUCell(i, h), ordering="zigzag")


def make_darts(input_size, hidden_size, backend="eager", variant="vanilla"):
    return DartsCell(input_size, hidden_size, PAPER_GENOTYPES[variant], variant, backend=backend)


CELLS = {
    "gru": lambda i, h: GRUCell(i, h),
    "lstm": lambda i, h: LSTMCell(i, h, fused=False),
    "darts": make_darts,
}


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("ordering", sorted(ORDERINGS))
def test_outputs_are_put_back_in_spatial_order(ordering, cell):
    """The output at a cell is the sweep's state at that cell: reading the gathered sequence
    directly with the cell gives the same numbers at the same grid positions, both directions."""
    torch.manual_seed(0)
    rows, cols, features, hidden = 3, 4, 5, 3
    sweeper = CELLS[cell](features, hidden).double().eval()
    grid = torch.randn(2, rows, cols, features, dtype=torch.float64)
    for sweep in SWEEPS:
        out = ordered_sweep(sweeper, grid, ordering, sweep)
        order, _ = sequence_indices(ordering, rows, cols, sweep)
        flat_in, flat_out = grid.reshape(2, rows * cols, features), out.reshape(2, rows * cols, 2 * hidden)
        for sequence in order:
            expected = sweeper.sweep(flat_in[:, sequence].transpose(0, 1))  # (L, B, 2h) in reading order
            torch.testing.assert_close(flat_out[:, sequence].transpose(0, 1), expected)


@pytest.mark.parametrize("cell", ["gru", "darts"])
@pytest.mark.parametrize("ordering", sorted(ORDERINGS))
def test_gradients_are_causal_along_the_order(ordering, cell):
    """The forward direction's output at step t of a sequence depends on that sequence's inputs
    at steps ≤ t only, the backward direction's on steps ≥ t only, and never on another sequence."""
    torch.manual_seed(1)
    rows, cols, features, hidden = 3, 4, 2, 3
    sweeper = CELLS[cell](features, hidden).double().eval()
    for sweep in SWEEPS:
        order, _ = sequence_indices(ordering, rows, cols, sweep)
        grid = torch.randn(1, rows, cols, features, dtype=torch.float64, requires_grad=True)
        out = ordered_sweep(sweeper, grid, ordering, sweep).reshape(rows * cols, 2, hidden)
        for s, sequence in enumerate(order.tolist()):
            for t, position in enumerate(sequence):
                for direction, allowed in ((0, sequence[: t + 1]), (1, sequence[t:])):
                    (gradient,) = torch.autograd.grad(out[position, direction].sum(), grid, retain_graph=True)
                    touched = {i for i in range(rows * cols) if gradient.reshape(rows * cols, -1)[i].abs().sum() > 0}
                    assert touched <= set(allowed), (sweep, s, t, direction, sorted(touched), allowed)
                    assert position in touched


def layer_results(ordering, backend, variant, height=6, hidden=4):
    torch.manual_seed(3)
    layer = ReNetLayer(3, hidden, lambda i, h: make_darts(i, h, backend, variant), patch_size=2, ordering=ordering).double()
    x = torch.randn(2, 3, height, 4, dtype=torch.float64, requires_grad=True)  # a (height/2)×2 patch grid
    out = layer(x)
    out.pow(2).sum().backward()
    return out.detach(), x.grad, {name: p.grad for name, p in layer.named_parameters()}, layer.state_dict()


def assert_backend_equals_eager(ordering, backend, variant, **shape):
    out, x_grad, grads, state = layer_results(ordering, backend, variant, **shape)
    expected, x_expected, expected_grads, expected_state = layer_results(ordering, "eager", variant, **shape)
    tolerance = {"rtol": 1e-9, "atol": 1e-10}
    torch.testing.assert_close(out, expected, **tolerance)
    torch.testing.assert_close(x_grad, x_expected, **tolerance)
    for name, grad in expected_grads.items():
        if grad is None:
            assert grads[name] is None or not grads[name].any(), name
        else:
            torch.testing.assert_close(grads[name], grad, **tolerance, msg=lambda m, name=name: f"{name}: {m}")
    for name, value in expected_state.items():
        torch.testing.assert_close(state[name], value, **tolerance)


@pytest.mark.parametrize("variant", ["vanilla", "sigmoid_weighting", "directional_weight_sharing"])
@pytest.mark.parametrize("ordering", sorted(ORDERINGS))
def test_native_backend_equals_eager_for_every_ordering(ordering, variant):
    from dartsrenet.kernels import native_build as native

    if native.library() is None:
        pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    assert_backend_equals_eager(ordering, "native", variant)


@pytest.fixture
def interpreted_triton(monkeypatch):
    """TRITON_INTERPRET=1 for the test (as tests/test_triton_kernels.py): Triton kernels on the CPU."""
    pytest.importorskip("triton", reason="triton is not installed: the triton backend is optional")
    from dartsrenet.kernels import triton_backend as triton_kernels

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_kernels.interpreted(), "dartsrenet.kernels.triton_backend was first called without TRITON_INTERPRET=1"


@pytest.mark.parametrize("ordering", sorted(ORDERINGS))
def test_triton_backend_equals_eager_for_every_ordering(ordering, interpreted_triton):
    """A 2×2 patch grid, h = 2: the interpreter runs every kernel in Python."""
    assert_backend_equals_eager(ordering, "triton", "directional_weight_sharing", height=4, hidden=2)


@pytest.mark.parametrize("cell", ["gru", "vanilla"])
def test_ordered_path_with_the_paper_ordering_equals_the_paper_layer(cell):
    """The generic gather → sweep → scatter path, given the paper's row/column reading, computes
    exactly what the paper's reshape-based layer computes."""
    torch.manual_seed(4)
    make = CELLS["gru"] if cell == "gru" else make_darts
    layer = ReNetLayer(3, 4, make, patch_size=2).double().eval()
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64)
    torch.testing.assert_close(layer._ordered_forward(x), layer(x), rtol=0, atol=0)


def test_paper_network_is_the_default_and_keeps_table1_counts():
    default = build_eval_model("gru")
    explicit = build_eval_model("gru", network=paper_network(256))
    assert count_parameters(explicit) == count_parameters(default) == 4_780_042
    assert parse_network("2x256,2x256,2x256") == paper_network(256)
    assert str(paper_network(256)) == "2x256,2x256,2x256"


def test_network_spec_round_trip_and_errors():
    spec = NetworkSpec((LayerSpec(4, 64, "hilbert"), LayerSpec(2, 32, "serpentine"), LayerSpec(1, 8)))
    assert NetworkSpec.from_string(spec.to_string()) == spec
    assert spec.to_string() == "4x64/hilbert,2x32/serpentine,1x8"
    for text, message in [
        ("2x256,", "malformed network layer ''"),
        ("2x255", "must be even"),
        ("2x64/zigzag", "unknown ordering 'zigzag'"),
        ("0x64", "at least 1"),
        ("", "malformed"),
    ]:
        with pytest.raises(ValueError, match=message):
            NetworkSpec.from_string(text)
    with pytest.raises(ValueError, match="a 4×4 map at ReNet layer 2, not divisible by 8"):
        build_eval_model("gru", network="4x8,8x8")


@pytest.mark.parametrize("network", ["4x16/hilbert,2x8/serpentine", "2x8/serpentine,2x12,2x8/hilbert", "8x8"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "directional_weight_sharing"])
def test_configurable_networks_train(network, cell):
    torch.manual_seed(0)
    model = build_eval_model(cell, network=network, image_size=(32, 48))
    logits = model(torch.randn(3, 3, 32, 48))
    assert logits.shape == (3, 10)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
