"""Cells and ReNet sweeps: registries, search≡derived, GRU/LSTM against torch, directions."""

import copy

import pytest
import torch
from torch import nn

from dartsrenet.activations import ACTIVATIONS, PRIMITIVES, get_activation
from dartsrenet.cells import (
    CELLS,
    ArchitectureWeights,
    DartsCell,
    DartsSearchCell,
    GRUCell,
    LSTMCell,
    get_cell_class,
)
from dartsrenet.genotypes import PAPER_GENOTYPES, edge_index, num_edges
from dartsrenet.registry import UnknownNameError
from dartsrenet.renet import ReNetLayer, patch_rows
from dartsrenet.variants import VARIANTS, get_variant
from tests.ci import CPU_CELL_BACKENDS, require_cell_backend

INPUT, HIDDEN, BATCH, LENGTH = 12, 6, 5, 4


DARTS_CELLS = ("darts", "darts_search")
CELLS_ON_BACKENDS = [
    pytest.param(name, backend, id=f"{name}-{backend}" if backend else name)
    for name in sorted(CELLS) for backend in (CPU_CELL_BACKENDS if name in DARTS_CELLS else (None,))
]
"""Every registered cell; the DARTS cells once per CPU backend (the baselines have none)."""


def make_cell(name, variant="vanilla", input_size=INPUT, hidden_size=HIDDEN, backend=None):
    """A cell of registry ``name`` (``darts``/``darts_search``: the DARTS cells, on ``backend``)."""
    if name in DARTS_CELLS:
        assert backend is not None, "a DARTS cell is built on a named backend, never 'auto'"
    if name == "darts":
        return DartsCell(input_size, hidden_size, PAPER_GENOTYPES["vanilla"], variant, backend=backend)
    if name == "darts_search":
        return DartsSearchCell(input_size, hidden_size, ArchitectureWeights(), variant, backend=backend)
    return get_cell_class(name)(input_size, hidden_size)


# --- registries ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation(name):
    x = torch.linspace(-3, 3, 13)
    reference = {"tanh": torch.tanh(x), "relu": x.clamp(min=0), "sigmoid": 1 / (1 + torch.exp(-x)), "identity": x}
    assert torch.allclose(get_activation(name)(x), reference[name])
    assert name in PRIMITIVES


@pytest.mark.parametrize(("name", "backend"), CELLS_ON_BACKENDS)
def test_every_cell_steps_and_sweeps(name, backend):
    """Shapes, and a gradient for every parameter: finite, not all zero, and (DARTS cells)
    the eager backend's to round-off, whichever backend computed it."""
    torch.manual_seed(0)
    cell = make_cell(name, backend=backend and require_cell_backend(backend)).double()
    x = torch.randn(LENGTH, BATCH, INPUT, dtype=torch.float64)
    out = cell.sweep(x)
    assert out.shape == (LENGTH, BATCH, 2 * HIDDEN)
    output, _ = cell.step(torch.randn(2, BATCH, INPUT, dtype=torch.float64), cell.initial_state(BATCH, x))
    assert output.shape == (2, BATCH, HIDDEN)
    weights = torch.randn_like(out)  # a loss whose gradient differs per output
    (out * weights).sum().backward()
    for parameter_name, parameter in cell.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, parameter_name
    if name in DARTS_CELLS:
        eager = copy.deepcopy(cell)
        eager.use_backend("eager")
        eager.zero_grad(set_to_none=True)
        (eager.sweep(x) * weights).sum().backward()
        for (parameter_name, parameter), reference in zip(cell.named_parameters(), eager.parameters(), strict=True):
            torch.testing.assert_close(parameter.grad, reference.grad, rtol=1e-9, atol=1e-11, msg=parameter_name)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("name", ["darts", "darts_search"])
def test_every_variant_in_search_and_derived_cells(name, variant, cell_backend):
    cell = make_cell(name, variant, backend=cell_backend)
    assert cell.backend == cell_backend
    assert cell.sweep(torch.randn(LENGTH, BATCH, INPUT)).shape == (LENGTH, BATCH, 2 * HIDDEN)
    spec = get_variant(variant)
    assert (cell.input_gate is not None) == spec.sigmoid_weighting
    assert cell.input_weight.shape[0] == (1 if spec.share_direction_weights else 2)


@pytest.mark.parametrize(("lookup", "name"), [(get_activation, "swish"), (get_variant, "vanila"), (get_cell_class, "rnn")])
def test_unknown_names_list_valid_ones(lookup, name):
    with pytest.raises(UnknownNameError) as info:
        lookup(name)
    assert name in str(info.value) and "valid" in str(info.value)


# --- weights shapes and initialisation (docs/architecture.md §2–§4) -------------------------------
def test_darts_cell_weight_shapes_and_init():
    cell = DartsCell(INPUT, HIDDEN, PAPER_GENOTYPES["vanilla"])
    joint = INPUT + HIDDEN
    assert cell.input_weight.shape == (2, joint, 2 * HIDDEN)
    assert [w.shape for w in cell.node_weights] == [(2, HIDDEN, 2 * HIDDEN)] * 8
    assert len(cell.node_norms) == 9 and all(bn.num_features == 2 * HIDDEN and bn.affine for bn in cell.node_norms)
    assert cell.input_norm.num_features == 2 * joint and cell.input_norm.affine
    for weight in [cell.input_weight, *cell.node_weights]:
        assert weight.abs().max() <= 0.04
    assert not any(name.endswith("bias") and "norm" not in name for name, _ in cell.named_parameters())


def test_search_cell_batchnorm_is_shared_and_not_affine():
    cell = DartsSearchCell(INPUT, HIDDEN, ArchitectureWeights())
    assert not cell.node_norm.affine and cell.input_norm.affine


def test_directional_weight_sharing_uses_the_same_tensors():
    for cls in (DartsCell, DartsSearchCell):
        extra = PAPER_GENOTYPES["directional_weight_sharing"] if cls is DartsCell else ArchitectureWeights()
        cell = cls(INPUT, HIDDEN, extra, "directional_weight_sharing")
        forward, backward = cell.direction_weights(0), cell.direction_weights(1)
        assert all(f.data_ptr() == b.data_ptr() and f.shape == b.shape for f, b in zip(forward, backward, strict=True))
        vanilla = cls(INPUT, HIDDEN, extra, "vanilla")
        assert all(f.data_ptr() != b.data_ptr() for f, b in zip(vanilla.direction_weights(0), vanilla.direction_weights(1), strict=True))


def test_sigmoid_weighting_gate_is_one_shared_vector():
    cell = DartsCell(INPUT, HIDDEN, PAPER_GENOTYPES["sigmoid_weighting"], "sigmoid_weighting")
    assert cell.input_gate.shape == (INPUT + HIDDEN, 1)
    vanilla = DartsCell(INPUT, HIDDEN, PAPER_GENOTYPES["sigmoid_weighting"], "vanilla")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(cell) - count(vanilla) == INPUT + HIDDEN


# --- search with one-hot α equals the derived cell ---------------------------------
def one_hot_alpha(genotype):
    """α whose softmax is exactly one-hot: the genotype's edges on their activation, the rest on none."""
    alpha = torch.full((num_edges(), len(PRIMITIVES)), -1e4)
    alpha[:, PRIMITIVES.index("none")] = 0.0
    for node, (activation, predecessor) in enumerate(genotype.recurrent, start=1):
        alpha[edge_index(node, predecessor)] = -1e4
        alpha[edge_index(node, predecessor), PRIMITIVES.index(activation)] = 0.0
    return alpha


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("genotype_name", sorted(PAPER_GENOTYPES))
def test_search_cell_with_one_hot_alpha_equals_derived_cell(genotype_name, variant, cell_backend):
    torch.manual_seed(0)
    genotype = PAPER_GENOTYPES[genotype_name]
    derived = DartsCell(INPUT, HIDDEN, genotype, variant, backend=cell_backend)
    architecture = ArchitectureWeights()
    with torch.no_grad():
        architecture.alpha.copy_(one_hot_alpha(genotype))
    search = DartsSearchCell(INPUT, HIDDEN, architecture, variant, backend=cell_backend)
    assert (derived.backend, search.backend) == (cell_backend, cell_backend)
    missing, unexpected = search.load_state_dict(derived.state_dict(), strict=False)
    assert not [k for k in missing if "architecture" not in k and "node_norm" not in k]
    assert all(k.startswith("node_norms") for k in unexpected)
    x = torch.randn(LENGTH, BATCH, INPUT)
    torch.testing.assert_close(search.sweep(x), derived.sweep(x), rtol=1e-5, atol=1e-5)
    state = torch.randn(2, BATCH, HIDDEN)
    step_x = torch.randn(2, BATCH, INPUT)
    torch.testing.assert_close(search.step(step_x, state)[0], derived.step(step_x, state)[0], rtol=1e-5, atol=1e-5)


# --- GRU / LSTM against torch.nn.GRU / LSTM ------------------------------------------
@pytest.mark.parametrize(("cell_class", "torch_class"), [(GRUCell, nn.GRU), (LSTMCell, nn.LSTM)])
@pytest.mark.parametrize("fused", [False, True])
def test_baseline_renet_sweeps_equal_torch_rnn_on_the_same_patches(cell_class, torch_class, fused):
    torch.manual_seed(0)
    channels, hidden = 3, 4
    layer = ReNetLayer(channels, hidden, lambda i, h: cell_class(i, h, fused=fused))
    images = torch.randn(2, channels, 6, 8)
    # Independent reference: torch RNNs with the same weights, on patches cut by hand.
    horizontal = torch_class(4 * channels, hidden, bidirectional=True, batch_first=True)
    vertical = torch_class(2 * hidden, hidden, bidirectional=True, batch_first=True)
    horizontal.load_state_dict(layer.horizontal.rnn.state_dict())
    vertical.load_state_dict(layer.vertical.rnn.state_dict())
    batch, _, height, width = images.shape
    rows = []
    for i in range(height // 2):
        patches = [images[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(batch, -1) for j in range(width // 2)]
        rows.append(horizontal(torch.stack(patches, dim=1))[0])  # (B, W/2, 2h)
    feature_map = torch.stack(rows, dim=1)  # (B, H/2, W/2, 2h)
    columns = [vertical(feature_map[:, :, j])[0] for j in range(width // 2)]  # each (B, H/2, 2h)
    expected = torch.stack(columns, dim=2).permute(0, 3, 1, 2)  # (B, 2h, H/2, W/2)
    torch.testing.assert_close(layer(images), expected, rtol=1e-5, atol=1e-5)


# --- direction correctness --------------------------------------------------------
@pytest.mark.parametrize(("name", "backend"), CELLS_ON_BACKENDS)
def test_forward_half_depends_on_the_past_backward_half_on_the_future(name, backend):
    torch.manual_seed(0)
    cell = make_cell(name, backend=backend and require_cell_backend(backend))
    x = torch.randn(LENGTH, BATCH, INPUT, requires_grad=True)
    out = cell.sweep(x)
    for j in range(LENGTH):
        forward_grad, = torch.autograd.grad(out[j, :, :HIDDEN].sum(), x, retain_graph=True)
        backward_grad, = torch.autograd.grad(out[j, :, HIDDEN:].sum(), x, retain_graph=True)
        per_position_f = forward_grad.abs().sum(dim=(1, 2))
        per_position_b = backward_grad.abs().sum(dim=(1, 2))
        assert torch.all(per_position_f[j + 1 :] == 0) and torch.all(per_position_f[: j + 1] > 0)
        assert torch.all(per_position_b[:j] == 0) and torch.all(per_position_b[j:] > 0)


@pytest.mark.parametrize(("name", "backend"), [*(("darts", b) for b in CPU_CELL_BACKENDS), ("gru", None)])
def test_renet_layer_directions_horizontally_and_vertically(name, backend):
    """Perturb one image column (row): forward/backward halves change only on the expected side."""
    torch.manual_seed(0)
    backend = backend and require_cell_backend(backend)
    layer = ReNetLayer(2, HIDDEN, lambda i, h: make_cell(name, input_size=i, hidden_size=h, backend=backend)).eval()
    images = torch.randn(3, 2, 8, 8)
    horizontal_out = lambda im: layer.horizontal.sweep(patch_rows(im))  # noqa: E731  (W/2, B·H/2, 2h)
    base = horizontal_out(images)
    changed = images.clone()
    changed[:, :, :, 4] += 1.0  # image column 4 → patch column 2
    delta = (horizontal_out(changed) - base).abs().sum(dim=1)  # (W/2, 2h)
    assert torch.all(delta[:2, :HIDDEN] == 0) and torch.all(delta[2:, :HIDDEN].sum(-1) > 0)
    assert torch.all(delta[3:, HIDDEN:] == 0) and torch.all(delta[:3, HIDDEN:].sum(-1) > 0)
    # vertical sweep: sequences along the height, columns in the batch.
    columns = torch.randn(4, 6, 2 * HIDDEN)  # (H/2, B·W/2, 2h)
    base = layer.vertical.sweep(columns)
    changed = columns.clone()
    changed[1] += 1.0
    delta = (layer.vertical.sweep(changed) - base).abs().sum(dim=1)
    assert torch.all(delta[:1, :HIDDEN] == 0) and torch.all(delta[1:, :HIDDEN].sum(-1) > 0)
    assert torch.all(delta[2:, HIDDEN:] == 0) and torch.all(delta[:2, HIDDEN:].sum(-1) > 0)


def test_patches_are_flattened_channel_major_with_rows_in_the_batch():
    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    sequences = patch_rows(images)  # (W/2, B·H/2, 4C)
    assert sequences.shape == (3, 4, 12)
    b, i, j = 1, 1, 2
    expected = images[b, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(-1)
    assert torch.equal(sequences[j, b * 2 + i], expected)


def test_renet_layer_handles_non_square_maps_and_refuses_odd_sizes():
    layer = ReNetLayer(3, HIDDEN, lambda i, h: GRUCell(i, h))
    assert layer(torch.randn(2, 3, 4, 10)).shape == (2, 2 * HIDDEN, 2, 5)
    with pytest.raises(ValueError, match="divisible by 2, got 5×4"):
        layer(torch.randn(2, 3, 5, 4))


def test_cells_are_deep_copyable(cell_backend):
    cell = make_cell("darts_search", backend=cell_backend)
    clone = copy.deepcopy(cell)
    x = torch.randn(LENGTH, BATCH, INPUT)
    torch.testing.assert_close(clone.sweep(x), cell.sweep(x))


def test_batchnorm_keeps_running_statistics_per_time_step(cell_backend):
    """Eval mode must see each step's own population statistics (Cooijmans et al. 2017).

    REQUIRED of DirectionalBatchNorm (lead's decision, see its docstring): running_mean /
    running_var have one row per slot (time step; the search cell's shared node BN uses
    slot t·(nodes+1)+node), grown on first use; forward(x, slot). One running average over
    all steps made eval-mode DARTS networks collapse to chance accuracy on digits.
    """
    torch.manual_seed(0)
    cell = DartsCell(INPUT, HIDDEN, PAPER_GENOTYPES["vanilla"], backend=cell_backend)
    x = torch.randn(LENGTH, 64, INPUT) * torch.arange(1, LENGTH + 1).view(LENGTH, 1, 1)  # step-dependent scale
    cell.sweep(x)
    norm = cell.input_norm
    assert norm.running_mean.shape == (LENGTH, 2 * (INPUT + HIDDEN))
    spread = norm.running_var[:, :INPUT]  # x-channels of the forward direction: variance grows with t
    assert torch.all(spread[1:].mean(-1) > spread[:-1].mean(-1))
    # Eval mode on training data reproduces training-mode outputs closely once statistics settle.
    for _ in range(30):
        cell.sweep(x)
    train_out = cell.sweep(x)
    cell.eval()
    torch.testing.assert_close(cell.sweep(x), train_out, rtol=0.05, atol=0.05)
    # The statistics survive a state_dict round trip into a fresh cell.
    fresh = DartsCell(INPUT, HIDDEN, PAPER_GENOTYPES["vanilla"], backend=cell_backend).eval()
    fresh.load_state_dict(cell.state_dict())
    torch.testing.assert_close(fresh.sweep(x), cell.sweep(x))
