"""The DARTS cells: derived (paper eq. 3–6) and search (eq. 7–8), over one input node.

Why over 500 lines: both cells, α and the hoisted input node they share
(:class:`_HoistedInputNode`) belong together; the fused sweeps they call are in
:mod:`~dartsrenet.cells.fused_sweep`.

Both compute node states with :func:`~dartsrenet.cells.maths.node_update`, so the search
cell with one-hot mixing weights *is* the derived cell. The BatchNorms inside the
recurrence keep statistics per time step (:class:`~dartsrenet.cells.norms.DirectionalBatchNorm`),
so :meth:`step` takes the step index t. Each cell's nodes are computed by the backend
chosen when it is built or moved (:mod:`dartsrenet.cells.backends`); the sweep around
them is the same for all backends:

* both directions go through one batched matmul per node (one plain matmul when the
  variant shares the weights);
* the input node's x-part is hoisted out of the recurrence: W_0 = [W_0x ; W_0h] and the
  input BatchNorm is per channel, so BN(x_t)·W_0x is computed for every step before the
  loop (:class:`_HoistedInputNode`); not possible for ``sigmoid_weighting`` in training
  mode, whose gate depends on h_{t−1} — that case runs :meth:`step`;
* on a fused backend the whole hoisted sweep is one autograd node
  (:func:`~dartsrenet.cells.fused_sweep.fused_derived_sweep`,
  :func:`~dartsrenet.cells.fused_sweep.fused_search_sweep`), except ``sigmoid_weighting``'s
  gated input node, which runs the fused steps one by one;
* node states live batch-major in memory (``(B, 2, h)``, seen as ``(2, B, h)``), so the
  BatchNorm over ``[fwd ‖ bwd]`` needs no transposed copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dartsrenet.activations import NONE, PRIMITIVES, get_activation
from dartsrenet.cells.backends import compiled, kernels, resolve_backend
from dartsrenet.cells.base import NUM_DIRECTIONS, BidirectionalCell, batch_major_zeros
from dartsrenet.cells.fused_sweep import (
    HiddenInput,
    autocast_matmul_dtype,
    fused_derived_step,
    fused_derived_sweep,
    fused_search_step,
    fused_search_sweep,
)
from dartsrenet.cells.maths import align_directions, average_states, directional_matmul, gated_node, mixed_node
from dartsrenet.cells.norms import DirectionalBatchNorm
from dartsrenet.genotypes import NUM_NODES, Genotype, num_edges
from dartsrenet.kernels.protocol import SEARCH_PRIMITIVES, KernelBackend
from dartsrenet.variants import Variant, get_variant

DARTS_INIT_RANGE = 0.04
"""DARTS cell weights are initialised U(−0.04, 0.04) (as the original code)."""


class _DartsCellBase(BidirectionalCell):
    """What derived and search cells share: the input node and the node weights (docs/architecture.md §2–§4)."""

    def __init__(self, input_size: int, hidden_size: int, variant: str | Variant, num_nodes: int):
        super().__init__()
        self.requested_backend = "auto"  # as asked; resolved into self.backend by use_backend
        self.backend = "eager"
        self.kernels: KernelBackend | None = None  # the fused backend's kernels; None: eager
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.variant = get_variant(variant)
        self.num_nodes = num_nodes
        joint_size = input_size + hidden_size  # d_in: [x_t ; h_{t-1}]
        weight_directions = 1 if self.variant.share_direction_weights else NUM_DIRECTIONS
        # sigmoid weighting: one gate vector w (d_in × 1) shared by both directions.
        self.input_gate = nn.Parameter(torch.empty(joint_size, 1)) if self.variant.sigmoid_weighting else None
        self.input_norm = DirectionalBatchNorm(joint_size)
        self.input_weight = nn.Parameter(torch.empty(weight_directions, joint_size, 2 * hidden_size))
        self.node_weights = nn.ParameterList(
            nn.Parameter(torch.empty(weight_directions, hidden_size, 2 * hidden_size))
            for _ in range(num_nodes)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(−0.04, 0.04) for every weight matrix and the gate vector (docs/architecture.md §2)."""
        for weight in [self.input_weight, *self.node_weights]:
            nn.init.uniform_(weight, -DARTS_INIT_RANGE, DARTS_INIT_RANGE)
        if self.input_gate is not None:
            nn.init.uniform_(self.input_gate, -DARTS_INIT_RANGE, DARTS_INIT_RANGE)

    def kernel_activations(self) -> tuple[str, ...]:
        """The activations the nodes use, which a fused backend must implement."""
        raise NotImplementedError

    def use_backend(self, name: str = "auto", device: torch.device | str | None = None) -> str:
        """Compute the nodes with backend ``name`` (:mod:`dartsrenet.cells.backends`) on ``device``
        (default: where the parameters are); returns the backend chosen. Moving the cell to a
        device (``.to``, ``.cuda``) chooses again for the new device."""
        device = self.input_weight.device if device is None else device
        self.backend = resolve_backend(name, device, self.kernel_activations())
        self.kernels = kernels(self.backend)
        self.requested_backend = name
        return self.backend

    def kernel_state(self, previous: Tensor) -> Tensor:
        """h_{t−1} as the fused backends take it: under autocast a bf16/fp16 zero state (made
        like a low-precision input) becomes the parameters' dtype, which the kernels compute in."""
        dtype = self.input_weight.dtype
        if previous.dtype != dtype and previous.dtype in (torch.bfloat16, torch.float16):
            if autocast_matmul_dtype(previous.device.type) is not None:
                return previous.to(dtype)
        return previous

    def _apply(self, fn, recurse=True):
        module = super()._apply(fn, recurse)
        if hasattr(self, "requested_backend"):  # after a move or dtype change: choose again
            self.use_backend(self.requested_backend)
        return module

    def direction_weights(self, direction: int) -> list[Tensor]:
        """W_0 … W_8 as used by ``direction`` (0 forward, 1 backward)."""
        index = 0 if self.input_weight.shape[0] == 1 else direction
        return [self.input_weight[index], *(weight[index] for weight in self.node_weights)]

    def initial_state(self, batch_size: int, like: Tensor) -> Tensor:
        """Zero state (2, B, h), stored batch-major like every node state."""
        return batch_major_zeros(batch_size, self.hidden_size, like)

    def input_projection(self, x: Tensor, previous: Tensor, t: int = 0) -> Tensor:
        """The input node's [c_0, ĥ_0] = BN([x_t ; h_{t−1}])·W_0 (eq. 3–4; docs/architecture.md §2, §4).

        Node 0 is then s_0 = h + σ(c_0) ⊙ (tanh(ĥ_0) − h) (eq. 5, i = 0), in :meth:`nodes`.

        Args:
            x: (2, B, input_size).
            previous: h_{t−1}, (2, B, h).
            t: the step (BatchNorm slot).

        Returns:
            (2, B, 2h).
        """
        joint = torch.cat([x, previous], dim=-1)  # (2, B, d_in)
        if self.input_gate is not None:
            joint = joint * torch.sigmoid(torch.matmul(joint, self.input_gate))  # g: (2, B, 1)
        joint = self.input_norm(joint, t)
        return directional_matmul(joint, self.input_weight)

    def nodes(self, previous: Tensor, projection: Tensor, t: int = 0) -> Tensor:
        """The input node from its projection, nodes 1 … 8 and the output h_t at step t.

        Args:
            previous: h_{t−1}, (2, B, h).
            projection: the input node's [c_0, ĥ_0] (:meth:`input_projection`).
            t: the step.
        """
        raise NotImplementedError

    def _sweep_nodes(self) -> Callable[[Tensor, Tensor, int], Tensor]:
        """:meth:`nodes` as a sweep calls it at every step (the search cell precomputes its mixing weights)."""
        return self.nodes

    def step(self, x: Tensor, state: Tensor, t: int = 0) -> tuple[Tensor, Tensor]:
        output = self.nodes(state, self.input_projection(x, state, t), t)
        return output, output

    def sweep(self, x: Tensor) -> Tensor:
        """:meth:`BidirectionalCell.sweep`, with the input node's x-part hoisted out of the loop.

        ``sigmoid_weighting`` in training mode runs the plain step loop: its gate
        g = σ([x_t ; h_{t−1}]·w) scales x_t before the input BatchNorm, whose per-step
        batch statistics then depend on h_{t−1}.
        """
        norm = self.input_norm
        if not norm.track_running_stats or (self.input_gate is not None and norm.uses_batch_statistics()):
            return super().sweep(x)
        input_node = _HoistedInputNode(self, x)
        if self._fused_sweep_applies():
            output = self._fused_sweep(self.kernel_state(self.initial_state(x.shape[1], x)), input_node)
        else:
            nodes = self._sweep_nodes()
            state = self.initial_state(x.shape[1], x)
            outputs = []
            for t in range(x.shape[0]):
                state = nodes(state, input_node.projection(t, state), t)
                outputs.append(state)
            output = align_directions(outputs)
        input_node.update_running_statistics()
        return output

    def _fused_sweep_applies(self) -> bool:
        """Whether :meth:`sweep` runs as one fused autograd node (:meth:`_fused_sweep`)."""
        return self.kernels is not None and self.input_gate is None

    def _fused_sweep(self, initial: Tensor, input_node: _HoistedInputNode) -> Tensor:
        """:meth:`sweep` on a fused backend, as one autograd node, from h_{−1} = ``initial``."""
        raise NotImplementedError


class _HoistedInputNode:
    """The input node of one sweep, with x_t's share of W_0 computed for all steps up front.

    At step t the input BatchNorm is affine per channel: BN(z) = N(z) ⊙ scale_t + shift_t,
    where in training mode N(z) = (z − μ_batch)/√(σ²_batch + ε), scale_t = γ, shift_t = β,
    and in eval mode N(z) = z, scale_t = γ/√(var_t + ε), shift_t = β − mean_t ⊙ scale_t with
    slot t's running statistics. With W_0 = [W_0x ; W_0h] split at the x/h boundary and
    W'_0,t = diag(scale_t)·W_0,

        BN([x_t ; h])·W_0 = N(x_t)·W'_0x,t + N(h)·W'_0h,t + shift_t·W_0.

    The x-channels' statistics depend only on x_t, so N(x_t)·W'_0x,t + shift_t·W_0 is
    computed for every step before the recurrence (in training mode both directions in
    one matmul); only N(h)·W'_0h,t stays in the loop. Running statistics end up as T
    sequential training-mode steps would leave them (:meth:`update_running_statistics`).

    ``sigmoid_weighting`` (eval mode only here): BN(g·z) = g·(z ⊙ scale_t) + shift_t, so
    [c_0, ĥ_0] = g ⊙ (x_t·W'_0x,t + h·W'_0h,t) + shift_t·W_0 with g = σ(x_t·w_x + h·w_h).
    """

    def __init__(self, cell: _DartsCellBase, x: Tensor):
        norm = cell.input_norm
        length, batch, input_size = x.shape
        hidden, directions = cell.hidden_size, NUM_DIRECTIONS
        joint = input_size + hidden
        self.norm, self.input_size, self.gate_weight = norm, input_size, cell.input_gate
        self.length, self.batch_size = length, batch
        self.batch_statistics = norm.uses_batch_statistics()
        gamma = norm.weight.view(directions, joint) if norm.affine else x.new_ones(directions, joint)
        beta = norm.bias.view(directions, joint) if norm.affine else x.new_zeros(directions, joint)
        weight = cell.input_weight.expand(directions, joint, 2 * hidden)  # (2, d_in, 2h)
        self.biases = None  # shift_t·W_0 when the gate comes first (sigmoid weighting)
        if self.batch_statistics:  # training mode (the gated variant never gets here)
            folded = gamma.unsqueeze(-1) * weight  # W'_0 = diag(γ)·W_0, the same at every step
            bias = torch.einsum("dj,djk->dk", beta, weight)  # β·W_0, (2, 2h)
            self.hidden_weight = folded[:, input_size:]  # W'_0h, (2, h, 2h), the same at every step
            self.hidden_weights = [self.hidden_weight] * length
            # statistics per step and channel over the batch: a BatchNorm over the T·C channels of
            # x as (B, T·C); momentum 1 leaves each step's batch mean and unbiased variance in the buffers
            statistics_dtype = norm.running_mean.dtype  # float32 under autocast too
            self.x_mean = x.new_zeros(length, input_size, dtype=statistics_dtype)
            self.x_var = x.new_ones(length, input_size, dtype=statistics_dtype)
            flat = x.transpose(0, 1).reshape(batch, length * input_size)  # (B, T·C)
            normalised = F.batch_norm(flat, self.x_mean.view(-1), self.x_var.view(-1), None, None, True, 1.0, norm.eps)
            # x_t's share of [c_0, ĥ_0] for every step and both directions: one matmul
            input_weight = torch.cat([folded[0, :input_size], folded[1, :input_size]], dim=-1)  # (C, 4h)
            projected = torch.addmm(bias.reshape(-1), normalised.view(-1, input_size), input_weight)  # (B·T, 4h)
            forward, backward = projected.view(batch, length, directions, 2 * hidden).unbind(-2)  # (B, T, 2h)
            # step t: the forward direction reads position t, the backward position T−1−t
            self.all_x_parts = torch.stack([forward.transpose(0, 1), backward.flip(1).transpose(0, 1)], dim=1)
            self.x_parts = self.all_x_parts.unbind(0)  # T × (2, B, 2h)
            # the h-channels' batch statistics of every step, filled in by the loop
            self.h_mean = x.new_zeros(length, directions * hidden, dtype=statistics_dtype)
            self.h_var = x.new_zeros(length, directions * hidden, dtype=statistics_dtype)
        else:  # eval mode: slot t's running statistics at step t
            means, variances = zip(*(norm.slot_statistics(t) for t in range(length)))
            scale = gamma * torch.rsqrt(torch.stack(variances).view(length, directions, joint) + norm.eps)  # (T, 2, d_in)
            shift = beta - torch.stack(means).view(length, directions, joint) * scale
            folded = scale.unsqueeze(-1) * weight  # W'_0,t, (T, 2, d_in, 2h)
            bias = torch.einsum("tdj,djk->tdk", shift, weight).unsqueeze(2)  # shift_t·W_0, (T, 2, 1, 2h)
            self.hidden_weight = folded[:, :, input_size:]  # W'_0h,t, (T, 2, h, 2h)
            self.hidden_weights = list(self.hidden_weight.unbind(0))
            reads = torch.stack([x, x.flip(0)], dim=1)  # (T, 2, B, C): what each direction reads at step t
            x_parts = torch.matmul(reads, folded[:, :, :input_size])  # (T, 2, B, 2h)
            if self.gate_weight is None:
                x_parts = x_parts + bias
            else:
                self.biases = list(bias.unbind(0))
            self.all_x_parts = x_parts  # (T, 2, B, 2h)
            self.x_parts = list(x_parts.unbind(0))
        if self.gate_weight is not None:
            x_gate = torch.matmul(x, self.gate_weight[:input_size]).unbind(0)  # x_t·w_x, (B, 1) per step
            self.x_gates = [torch.stack([x_gate[t], x_gate[-1 - t]]) for t in range(length)]

    def projection(self, t: int, previous: Tensor) -> Tensor:
        """[c_0, ĥ_0] at step t, (2, B, 2h), from h_{t−1} (2, B, h)."""
        directions, batch, hidden = previous.shape
        if self.batch_statistics:
            flat = previous.transpose(0, 1).reshape(batch, directions * hidden)  # a view: batch-major
            normalised = F.batch_norm(
                flat, self.h_mean[t], self.h_var[t], None, None, True, 1.0, self.norm.eps
            ).view(batch, directions, hidden).transpose(0, 1)
        else:
            normalised = previous
        projection = torch.baddbmm(self.x_parts[t], normalised, self.hidden_weights[t])  # (2, B, 2h)
        if self.gate_weight is not None:
            gate = torch.sigmoid(self.x_gates[t] + torch.matmul(previous, self.gate_weight[self.input_size :]))
            projection = torch.addcmul(self.biases[t], gate, projection)
        return projection

    def hidden_input(self) -> HiddenInput:
        """How h_{t−1} enters the projection, for the fused sweeps (x-parts without a gate only)."""
        if self.batch_statistics:
            return HiddenInput(True, self.h_mean, self.h_var, self.norm.eps)
        return HiddenInput(False, None, None, self.norm.eps)

    def update_running_statistics(self) -> None:
        """Leave the input BatchNorm's running statistics as T sequential steps would (slot t ← step t)."""
        norm, length = self.norm, self.length
        if not (self.batch_statistics and norm.track_running_stats and norm.training):
            return
        with torch.no_grad():
            # slot t: the forward direction read x_t, the backward direction x_{T−1−t}
            x_means = torch.stack([self.x_mean, self.x_mean.flip(0)], dim=1)  # (T, 2, C)
            x_vars = torch.stack([self.x_var, self.x_var.flip(0)], dim=1)
            h_means = self.h_mean.view(length, NUM_DIRECTIONS, -1)  # (T, 2, h)
            h_vars = self.h_var.view(length, NUM_DIRECTIONS, -1)
            means = torch.cat([x_means, h_means], dim=-1).view(length, -1)  # (T, 2·d_in), [fwd | bwd]
            variances = torch.cat([x_vars, h_vars], dim=-1).view(length, -1)
        norm.record(0, means, variances, self.batch_size)


class DartsCell(_DartsCellBase):
    """A derived DARTS cell (paper eq. 3–6; docs/architecture.md §2).

    Node i reads its predecessor s_{p_i} *at the same time step*; after the input node
    and after every node, the state of both directions passes its own affine
    BatchNorm1d(2h) (9 modules, reused at every step). Output h_t is the mean of the
    genotype's averaged nodes and is also the recurrent state.

    Args:
        input_size: features of x_t.
        hidden_size: h per direction.
        genotype: the cell's activations and predecessors.
        variant: a :data:`~dartsrenet.variants.VARIANTS` name.
        backend: a :data:`~dartsrenet.cells.backends.BACKENDS` name.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        genotype: Genotype,
        variant: str | Variant = "vanilla",
        backend: str = "auto",
    ):
        super().__init__(input_size, hidden_size, variant, num_nodes=len(genotype.recurrent))
        self.genotype = genotype
        self.node_norms = nn.ModuleList(DirectionalBatchNorm(hidden_size) for _ in range(self.num_nodes + 1))
        self._activations = [get_activation(name) for name in genotype.activations]
        self.use_backend(backend)

    def kernel_activations(self) -> tuple[str, ...]:
        return ("tanh", *self.genotype.activations)

    def nodes(self, previous: Tensor, projection: Tensor, t: int = 0) -> Tensor:
        if self.kernels is not None:
            return fused_derived_step(
                self.kernels, self.kernel_state(previous), projection, self.genotype.activations, self.genotype.predecessors,
                self.genotype.concat, list(self.node_weights), self.node_norms, t,
            )  # fmt: skip
        update = compiled(gated_node)
        states = [self.node_norms[0](update(previous, projection, torch.tanh), t)]
        for node, (activation, predecessor) in enumerate(zip(self._activations, self.genotype.predecessors, strict=True), 1):
            source = states[predecessor]
            projection = directional_matmul(source, self.node_weights[node - 1])  # [c_i, ĥ_i]
            states.append(self.node_norms[node](update(source, projection, activation), t))
        return average_states([states[node] for node in self.genotype.concat])

    def _fused_sweep(self, initial: Tensor, input_node: _HoistedInputNode) -> Tensor:
        return fused_derived_sweep(
            self.kernels, initial, input_node.all_x_parts, input_node.hidden_weight, input_node.hidden_input(),
            self.genotype.activations, self.genotype.predecessors, self.genotype.concat, list(self.node_weights),
            self.node_norms,
        )  # fmt: skip


class ArchitectureWeights(nn.Module):
    """α, the architecture parameters of eq. 8: one row per edge j→i, one column per primitive.

    One instance is shared by every search cell of a network (docs/architecture.md §3), so the
    network yields one genotype. Init 1e-3 · N(0, 1).
    """

    def __init__(self, num_nodes: int = NUM_NODES, primitives: Sequence[str] = PRIMITIVES):
        super().__init__()
        self.primitives = tuple(primitives)
        self.num_nodes = num_nodes
        self.alpha = nn.Parameter(1e-3 * torch.randn(num_edges(num_nodes), len(self.primitives)))
        # What the search cells mix with instead of softmax(α), set by a search strategy for one
        # step (dartsrenet/strategies): mixing weights of α's shape, or one sampled path.
        self.mixing_override: Tensor | None = None
        self.path: Genotype | None = None

    def probabilities(self) -> Tensor:
        """softmax(α) over primitives, (num_edges, num_primitives)."""
        return F.softmax(self.alpha, dim=-1)

    def mixing(self) -> Tensor:
        """The mixing weights the search cells use: :attr:`mixing_override` if a strategy set
        one (a Gumbel sample, noisy probabilities), else :meth:`probabilities`."""
        return self.probabilities() if self.mixing_override is None else self.mixing_override

    @contextmanager
    def mixing_with(self, weights: Tensor | None = None, path: Genotype | None = None) -> Iterator[None]:
        """Within the block the cells mix with ``weights`` (α's shape) or compute only ``path``
        (one predecessor and activation per node: the derived cell on the search cell's weights);
        both None: softmax(α)."""
        if weights is not None and path is not None:
            raise ValueError("give mixing weights or a path, not both")
        if weights is not None and weights.shape != self.alpha.shape:
            raise ValueError(f"mixing weights must have α's shape {tuple(self.alpha.shape)}, got {tuple(weights.shape)}")
        if path is not None and len(path.recurrent) != self.num_nodes:
            raise ValueError(f"a path needs {self.num_nodes} nodes, got {len(path.recurrent)}")
        saved = self.mixing_override, self.path
        self.mixing_override, self.path = weights, path
        try:
            yield
        finally:
            self.mixing_override, self.path = saved


class DartsSearchCell(_DartsCellBase):
    """The DARTS search cell (paper eq. 7–8; docs/architecture.md §3).

    For node i every earlier state s_j (j < i) is projected by the node's one shared
    W_i (a single batched matmul), and
    s_i = Σ_j Σ_{f≠none} p_f^{(j,i)} · node_update(s_j, σ(c_j), f(ĥ_j)),
    p^{(j,i)} = softmax(α[j→i]) over {none, tanh, relu, sigmoid, identity}. One
    BatchNorm1d(2h, affine=False) is shared by the input node and all nodes; the
    input BatchNorm stays affine. Output: mean of s_1 … s_8.

    Args:
        input_size: features of x_t.
        hidden_size: h per direction.
        architecture: the network's shared α.
        variant: a :data:`~dartsrenet.variants.VARIANTS` name.
        backend: a :data:`~dartsrenet.cells.backends.BACKENDS` name.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        architecture: ArchitectureWeights,
        variant: str | Variant = "vanilla",
        backend: str = "auto",
    ):
        super().__init__(input_size, hidden_size, variant, num_nodes=architecture.num_nodes)
        self.architecture = architecture
        self.node_norm = DirectionalBatchNorm(hidden_size, affine=False)
        self._columns = [column for column, name in enumerate(architecture.primitives) if name != NONE]
        self._primitive_names = tuple(architecture.primitives[column] for column in self._columns)
        self._primitives = [get_activation(name) for name in self._primitive_names]
        # the mixed-node kernels take (edges, 4) weights in SEARCH_PRIMITIVES order; a subset of
        # those primitives gets zero columns for the others (exact: they then contribute nothing)
        kernel_columns = (
            None if self._primitive_names == SEARCH_PRIMITIVES
            else [SEARCH_PRIMITIVES.index(name) for name in self._primitive_names if name in SEARCH_PRIMITIVES]
        )
        # buffers (moved with the cell), so a step never copies a host list to the device: the
        # columns without 'none' as a slice where they are contiguous (the default), else an index
        contiguous = self._columns == list(range(self._columns[0], self._columns[-1] + 1))
        self.register_buffer(
            "_column_index", None if contiguous else torch.tensor(self._columns), persistent=False
        )
        self.register_buffer(
            "_kernel_columns", None if kernel_columns is None else torch.tensor(kernel_columns), persistent=False
        )
        self.use_backend(backend)

    def kernel_activations(self) -> tuple[str, ...]:
        return ("tanh", *self._primitive_names)

    def kernel_mixing(self, probabilities: Tensor) -> Tensor:
        """:meth:`edge_probabilities` as the mixed-node kernels take them: (edges, 4), columns
        in :data:`~dartsrenet.kernels.protocol.SEARCH_PRIMITIVES` order."""
        if self._kernel_columns is None:
            return probabilities
        return probabilities.new_zeros(len(probabilities), len(SEARCH_PRIMITIVES)).index_copy(
            1, self._kernel_columns, probabilities
        )

    def edge_probabilities(self) -> Tensor:
        """softmax(α) (or a strategy's mixing weights, :meth:`ArchitectureWeights.mixing`)
        without the 'none' column (it contributes nothing), (36, F)."""
        probabilities = self.architecture.mixing()
        if self._column_index is None:
            return probabilities[:, self._columns[0] : self._columns[-1] + 1]
        return probabilities.index_select(1, self._column_index)

    def mixing_weights(self, probabilities: Tensor | None = None) -> list[tuple[Tensor, Tensor]]:
        """Per node i: (p_f per primitive f ≠ none (F, 1, i, 1, 1), P = Σ_{f≠none} p_f (1, i, 1, 1)).

        Args:
            probabilities: :meth:`edge_probabilities`, computed if not given.
        """
        probabilities = self.edge_probabilities() if probabilities is None else probabilities
        weights, first_edge = [], 0
        for node in range(1, self.num_nodes + 1):
            edges = probabilities[first_edge : first_edge + node]  # (i, F): edges j→i, j = 0 … i−1
            weights.append((edges.t().reshape(-1, 1, node, 1, 1), edges.sum(dim=-1).view(1, node, 1, 1)))
            first_edge += node
        return weights

    def nodes(
        self,
        previous: Tensor,
        projection: Tensor,
        t: int = 0,
        mixing: list[tuple[Tensor, Tensor]] | None = None,
        probabilities: Tensor | None = None,
    ) -> Tensor:
        """:meth:`_DartsCellBase.nodes`; ``mixing`` (:meth:`mixing_weights`) and ``probabilities``
        (:meth:`edge_probabilities`) are computed if not given.

        The shared node BatchNorm uses slot t·(nodes+1) + node. With a fused backend the
        whole step is one autograd node (:func:`~dartsrenet.cells.fused_sweep.fused_search_step`;
        a hoisted :meth:`sweep` is one for all steps).
        """
        first_slot = t * (self.num_nodes + 1)
        if self.architecture.path is not None:
            return self._path_nodes(previous, projection, t, self.architecture.path)
        if self.kernels is not None:
            probabilities = self.edge_probabilities() if probabilities is None else probabilities
            return self._fused_nodes(previous, projection, t, self.kernel_mixing(probabilities))
        mixing = self.mixing_weights(probabilities) if mixing is None else mixing
        mix = compiled(mixed_node)
        states = [self.node_norm(compiled(gated_node)(previous, projection, torch.tanh), first_slot)]
        for node in range(1, self.num_nodes + 1):
            sources = torch.stack([state.transpose(0, 1) for state in states]).permute(2, 0, 1, 3)  # (2, i, B, h)
            projection = directional_matmul(sources, self.node_weights[node - 1])  # (2, i, B, 2h), one matmul
            weights, kept = mixing[node - 1]
            states.append(self.node_norm(mix(sources, projection, weights, kept, self._primitives), first_slot + node))
        return average_states(states[1:])

    def _path_nodes(self, previous: Tensor, projection: Tensor, t: int, path: Genotype) -> Tensor:
        """:meth:`nodes` with one-hot mixing weights on ``path``, computing only that path.

        Node i reads only s_{p_i}: one projection s_{p_i}·W_i instead of i, one activation
        instead of four, s_i = BN(node_update(s_{p_i}, σ(c), f_i(ĥ))) in the shared node
        BatchNorm's slot. With one-hot weights :func:`~dartsrenet.cells.maths.mixed_node`
        computes the same (the other edges add exact zeros), so the values and the weights'
        gradients are those of the full search cell; α gets no gradient here. Plain PyTorch,
        whatever the backend (the fused kernels mix every edge).
        """
        first_slot = t * (self.num_nodes + 1)
        update = compiled(gated_node)
        states = [self.node_norm(update(previous, projection, torch.tanh), first_slot)]
        for node, (activation, predecessor) in enumerate(path.recurrent, 1):
            source = states[predecessor]
            node_projection = directional_matmul(source, self.node_weights[node - 1])
            states.append(self.node_norm(update(source, node_projection, get_activation(activation)), first_slot + node))
        return average_states(states[1:])

    def _fused_sweep_applies(self) -> bool:
        return super()._fused_sweep_applies() and self.architecture.path is None

    def _fused_nodes(self, previous: Tensor, projection: Tensor, t: int, kernel_mixing: Tensor) -> Tensor:
        """:meth:`nodes` on a fused backend, with :meth:`kernel_mixing` given."""
        return fused_search_step(
            self.kernels, self.kernel_state(previous), projection, kernel_mixing, list(self.node_weights), self.node_norm,
            t * (self.num_nodes + 1),
        )

    def _fused_sweep(self, initial: Tensor, input_node: _HoistedInputNode) -> Tensor:
        return fused_search_sweep(
            self.kernels, initial, input_node.all_x_parts, input_node.hidden_weight, input_node.hidden_input(),
            self.kernel_mixing(self.edge_probabilities()), list(self.node_weights), self.node_norm,
        )  # fmt: skip

    def _sweep_nodes(self) -> Callable[[Tensor, Tensor, int], Tensor]:
        path = self.architecture.path
        if path is not None:
            return lambda previous, projection, t: self._path_nodes(previous, projection, t, path)
        probabilities = self.edge_probabilities()  # softmax(α) once per sweep, not per step
        if self.kernels is not None:  # the kernels' (edges, 4) mixing weights, also once per sweep
            kernel_mixing = self.kernel_mixing(probabilities)
            return lambda previous, projection, t: self._fused_nodes(previous, projection, t, kernel_mixing)
        mixing = self.mixing_weights(probabilities)
        return lambda previous, projection, t: self.nodes(previous, projection, t, mixing, probabilities)

