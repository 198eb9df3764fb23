"""Bidirectional recurrent cells behind one step interface (paper §2.2, SPEC §2–§4).

Every cell steps *both directions of a bidirectional sweep at once*: tensors carry a
leading direction axis of size 2, ``[forward, backward]``. At step t the forward
direction reads position t and the backward direction position T−1−t.
:meth:`BidirectionalCell.sweep` runs the loop and re-aligns the backward direction to
spatial order (paper eq. 2), so a ReNet layer never needs to know which cell it runs.

Cells:

* :class:`DartsCell` — a derived cell from a :class:`~dartsrenet.genotypes.Genotype`
  (eq. 3–6 with SPEC §2's BatchNorm placement).
* :class:`DartsSearchCell` — the continuous relaxation of eq. 8: every node mixes all
  predecessors through one shared W_i and all primitives weighted by softmax(α).
* :class:`GRUCell`, :class:`LSTMCell` — the baselines, in ``torch.nn.GRU``/``LSTM``
  parameter layout, with a fused whole-sequence path.

Both DARTS cells compute node states with the one function :func:`node_update`, so
the search cell with one-hot mixing weights *is* the derived cell. The BatchNorms
inside the recurrence keep population statistics per time step
(:class:`DirectionalBatchNorm`), so :meth:`step` takes the step index t.

Speed (``benchmarks/README.md`` has the figures and what each item bought).
:meth:`step` is the plain single step; the DARTS cells' :meth:`sweep` computes the
same thing faster (``tests/test_reference_oracle.py`` checks both against a
straightforward oracle):

* on the CPU, each time step of a DARTS cell — nodes, BatchNorms, mixture, average — is
  one autograd node over fused C kernels (:mod:`dartsrenet.fused_nodes`), where they
  apply; everything below is the eager PyTorch path they replace, and what runs on GPUs;
* both directions go through one batched matmul per node (one plain matmul when the
  variant shares the weights);
* the input node's x-part is hoisted out of the recurrence: W_0 = [W_0x ; W_0h] and the
  input BatchNorm is per channel, so BN(x_t)·W_0x is computed for every step before the
  loop (see :class:`_HoistedInputNode`); not possible for ``sigmoid_weighting`` in
  training mode, whose gate depends on h_{t−1} — that case runs :meth:`step`;
* node states live batch-major in memory (``(B, 2, h)``, seen as ``(2, B, h)``), so the
  BatchNorm over ``[fwd ‖ bwd]`` needs no transposed copies;
* the search cell mixes the primitives with the algebra of :func:`mixed_node`;
* the node update is one ``torch.lerp``; steps are read with ``unbind`` (indexing
  ``x[t]`` of a tensor that needs a gradient costs a zero-filled gradient of the whole
  input per step in the backward pass);
* :func:`set_compile` fuses the element-wise work with ``torch.compile`` (an option,
  falling back to eager mode when compilation fails).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dartsrenet.activations import NONE, PRIMITIVES, Activation, get_activation
from dartsrenet.fused_nodes import (
    SEARCH_PRIMITIVES,
    fused_derived_step,
    fused_search_step,
    kernels_apply,
)
from dartsrenet.genotypes import NUM_NODES, Genotype, num_edges
from dartsrenet.registry import lookup
from dartsrenet.variants import Variant, get_variant

NUM_DIRECTIONS = 2
DARTS_INIT_RANGE = 0.04
"""DARTS cell weights are initialised U(−0.04, 0.04) (SPEC §2, code)."""

State = Any  # a Tensor (2, B, h), or a tuple of them for the LSTM


def node_update(state: Tensor, gate: Tensor, candidate: Tensor) -> Tensor:
    """One DARTS node (paper eq. 5): s_i = s_p + c_i ⊙ (f_i(ĥ_i) − s_p).

    Computed as ``torch.lerp`` (one fused kernel); the result has ``state``'s memory layout
    and dtype (under bf16 autocast the states, BatchNorm outputs, stay float32).

    Args:
        state: the predecessor's state s_p.
        gate: the update gate c_i = σ(c), in [0, 1].
        candidate: the candidate f_i(ĥ_i).
    """
    return torch.lerp(state, candidate.to(state.dtype), gate.to(state.dtype))


def gated_node(state: Tensor, projection: Tensor, activation: Activation) -> Tensor:
    """A derived node from its projection [c, ĥ] = s_p·W_i: node_update(s_p, σ(c), f(ĥ)).

    Args:
        state: s_p, (2, B, h).
        projection: [c, ĥ], (2, B, 2h).
        activation: f.
    """
    gate, candidate = projection.chunk(2, dim=-1)
    return node_update(state, torch.sigmoid(gate), activation(candidate))


def mixed_node(
    sources: Tensor, projection: Tensor, weights: Tensor, kept: Tensor, activations: Sequence[Activation]
) -> Tensor:
    """A search node: Σ_j Σ_{f≠none} p_f^{(j)} · node_update(s_j, σ(c_j), f(ĥ_j)) (eq. 8).

    Computed with fewer element-wise passes through the identity (P = Σ_{f≠none} p_f)

        Σ_f p_f · node_update(s, g, f(ĥ)) = Σ_f p_f·s + g ⊙ (Σ_f p_f f(ĥ) − Σ_f p_f·s)
                                          = node_update(P·s, g, Σ_f p_f f(ĥ)),

    which holds because node_update is affine in (s, f(ĥ)) for a fixed gate g.
    ``tests/test_reference_oracle.py`` checks it against the term-by-term sum.

    Args:
        sources: s_0 … s_{i−1} stacked, (2, i, B, h).
        projection: [c_j, ĥ_j] = s_j·W_i, (2, i, B, 2h).
        weights: p_f per primitive f ≠ none, (F, 1, i, 1, 1) in the order of ``activations``.
        kept: P = Σ_{f≠none} p_f per edge, (1, i, 1, 1).
        activations: the primitives' functions f.

    Returns:
        The node's state before its BatchNorm, (2, B, h), stored batch-major.
    """
    gate, candidate = projection.chunk(2, dim=-1)
    mixed = sum(weight * activation(candidate) for weight, activation in zip(weights, activations, strict=True))
    updates = node_update(kept * sources, torch.sigmoid(gate), mixed)  # (2, i, B, h)
    return updates.permute(2, 0, 1, 3).sum(dim=2).transpose(0, 1)  # Σ_j, stored batch-major as (B, 2, h)


# --- optional torch.compile of the element-wise work ---------------------------------
_COMPILE: dict[str, Any] = {"enabled": False, "functions": {}}


def set_compile(enabled: bool = True) -> None:
    """Fuse the DARTS cells' element-wise work with ``torch.compile`` (default off).

    Applies to :func:`gated_node` and :func:`mixed_node` wherever the cells call them.
    Worth it where kernel launches dominate (GPUs); on CPUs it measured no gain. If
    compilation fails, a warning is issued once and the cells run in eager mode.
    """
    _COMPILE["enabled"] = bool(enabled)


def compile_enabled() -> bool:
    """Whether :func:`set_compile` is on (it turns itself off after a compiler failure)."""
    return _COMPILE["enabled"]


def _fused(function: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``function``, compiled when :func:`set_compile` is on."""
    if not _COMPILE["enabled"]:
        return function
    wrapper = _COMPILE["functions"].get(function)
    if wrapper is None:
        compiled = torch.compile(function)

        def wrapper(*args: Any) -> Tensor:
            if not _COMPILE["enabled"]:
                return function(*args)
            try:
                return compiled(*args)
            except Exception as error:  # noqa: BLE001 — any compiler failure falls back to eager mode
                warnings.warn(f"torch.compile failed, running the cells in eager mode: {error}", stacklevel=2)
                _COMPILE["enabled"] = False
                return function(*args)

        _COMPILE["functions"][function] = wrapper
    return wrapper


def directional_matmul(x: Tensor, weight: Tensor) -> Tensor:
    """Multiply each direction's inputs by its weight matrix.

    Args:
        x: (2, …, k) inputs, direction first (any memory layout with k innermost).
        weight: (D, k, m); D = 1 means one matrix shared by both directions.

    Returns:
        (2, …, m); with shared weights, in x's memory layout.
    """
    if weight.shape[0] == 1:
        # one mm over every row of x, taken in memory order: no copy for batch-major layouts
        order = sorted(range(x.dim() - 1), key=lambda dim: -x.stride(dim)) + [x.dim() - 1]
        in_memory_order = x.permute(*order)
        if in_memory_order.is_contiguous():
            return torch.matmul(in_memory_order, weight[0]).permute(*sorted(range(x.dim()), key=order.__getitem__))
        return torch.matmul(x, weight[0])
    directions = x.shape[0]
    flat = x.reshape(directions, -1, x.shape[-1])  # (2, N, k), a view for the layouts used here
    return torch.bmm(flat, weight).view(*x.shape[:-1], weight.shape[-1])


def batch_major_zeros(batch_size: int, features: int, like: Tensor) -> Tensor:
    """Zeros (2, B, features) stored batch-major, as (B, 2, features)."""
    return like.new_zeros(batch_size, NUM_DIRECTIONS, features).transpose(0, 1)


class DirectionalBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the features of both directions together, ``[fwd ‖ bwd]`` (SPEC §2),
    with population statistics per *slot* (time step; Cooijmans et al. 2017).

    Holds ``num_directions × features`` channels, exactly like ``BatchNorm1d(2h)`` on the
    concatenated state; statistics are per channel, so it is also equal to one
    ``BatchNorm1d(features)`` per direction. Input and output are (D, B, features); the
    output is stored batch-major, and a batch-major input is normalised without a copy.

    Training mode normalises with the batch's statistics, as ``BatchNorm1d``, and updates
    the running averages of the given slot only: ``running_mean``/``running_var`` are
    (slots, channels), one row per slot, grown on first use and initialised then with
    that batch's statistics (later calls: momentum updates, cumulative with
    ``momentum=None``). ``running_var`` averages the *biased* batch variance, the one
    training mode normalises with (as Keras does; ``BatchNorm1d`` keeps the unbiased one),
    so eval mode reproduces training-mode outputs on a training batch once the statistics
    settle — with the unbiased estimate the B/(B−1) mismatch, amplified through the nine
    BatchNorms in a row, visibly shifted them. Eval mode normalises with the slot's running
    statistics (the last row for slots never seen in training; 0 and 1 before any
    training). The affine parameters are shared by all slots, so parameter counts do not
    change. ``num_batches_tracked`` counts training-mode calls. A cell uses slot t at
    step t (the search cell's shared node norm: t·(nodes+1) + node).
    """

    def __init__(self, features: int, num_directions: int = NUM_DIRECTIONS, affine: bool = True):
        super().__init__(num_directions * features, affine=affine)
        self.features = features
        self.num_directions = num_directions
        # scratch for the batch statistics of a training-mode call (not part of the state)
        self.register_buffer("_batch_mean", torch.zeros(1, self.num_features), persistent=False)
        self.register_buffer("_batch_var", torch.zeros(1, self.num_features), persistent=False)

    def reset_running_stats(self) -> None:
        """No slots yet (rows are added on first use), counter at 0."""
        if self.track_running_stats:
            self.running_mean = self.running_mean.new_zeros(0, self.num_features)
            self.running_var = self.running_var.new_ones(0, self.num_features)
            self.num_batches_tracked.zero_()

    @property
    def num_slots(self) -> int:
        """Slots with running statistics so far."""
        return 0 if self.running_mean is None else self.running_mean.shape[0]

    def grow(self, slots: int) -> None:
        """Make sure slots 0 … ``slots``−1 have running statistics (new rows: mean 0, variance 1)."""
        if self.running_mean is not None and self.num_slots < slots:
            extra = slots - self.num_slots
            with torch.no_grad():
                self.running_mean = torch.cat([self.running_mean, self.running_mean.new_zeros(extra, self.num_features)])
                self.running_var = torch.cat([self.running_var, self.running_var.new_ones(extra, self.num_features)])

    def slot_statistics(self, slot: int) -> tuple[Tensor, Tensor]:
        """The running (mean, variance) that eval mode uses for ``slot``, each (channels,)."""
        if self.num_slots == 0:
            return self.running_mean.new_zeros(self.num_features), self.running_var.new_ones(self.num_features)
        row = min(slot, self.num_slots - 1)
        return self.running_mean[row], self.running_var[row]

    def normalise(self, flat: Tensor, slot: int = 0) -> Tensor:
        """Batch norm of (B, channels), ``[fwd ‖ bwd]`` features, at ``slot``."""
        if not self.uses_batch_statistics():
            mean, var = self.slot_statistics(slot)
            return F.batch_norm(flat, mean, var, self.weight, self.bias, False, 0.0, self.eps)
        if not self.track_running_stats:
            return F.batch_norm(flat, None, None, self.weight, self.bias, True, 0.0, self.eps)
        # momentum 1 leaves the batch mean and unbiased variance in the two scratch buffers
        out = F.batch_norm(flat, self._batch_mean[0], self._batch_var[0], self.weight, self.bias, True, 1.0, self.eps)
        self.record(slot, self._batch_mean, self._batch_var, flat.shape[0])
        return out

    def record(self, first_slot: int, means: Tensor, variances: Tensor, batch_size: int, biased: bool = False) -> None:
        """Fold batch statistics into the running statistics of slots ``first_slot`` … (one per row).

        As one training-mode call per slot would: counts the calls, initialises new slots.

        Args:
            first_slot: the slot of the first row.
            means: batch means, (n, channels).
            variances: batch variances, (n, channels): unbiased (as ``F.batch_norm`` leaves
                them) unless ``biased``.
            batch_size: B, to turn unbiased variances into biased ones.
            biased: the variances are already the biased ones.
        """
        momenta = self.advance(len(means))
        seen = self.num_slots
        self.grow(first_slot + len(means))
        with torch.no_grad():
            biased = variances if biased else variances * ((batch_size - 1) / batch_size)
            for row, momentum in enumerate(momenta):
                slot = first_slot + row
                momentum = 1.0 if slot >= seen else momentum  # a new slot starts from this batch
                self.running_mean[slot].lerp_(means[row], momentum)  # (1 − m)·running + m·batch
                self.running_var[slot].lerp_(biased[row], momentum)

    def forward(self, x: Tensor, slot: int = 0) -> Tensor:
        directions, batch, features = x.shape
        flat = x.transpose(0, 1).reshape(batch, directions * features)  # (B, D·F), a view if batch-major
        return self.normalise(flat, slot).view(batch, directions, features).transpose(0, 1)

    def uses_batch_statistics(self) -> bool:
        """True when forward normalises with the batch's statistics (as ``nn.BatchNorm1d`` decides)."""
        return self.training or self.running_mean is None

    def advance(self, steps: int) -> list[float]:
        """Count ``steps`` training-mode calls; return the momentum each call would use.

        Mirrors ``nn.BatchNorm1d.forward``: with ``momentum=None`` the cumulative average
        factor 1/num_batches_tracked.
        """
        if not (self.training and self.track_running_stats):
            return [0.0] * steps
        if self.momentum is None:  # reads the counter (a device sync); the default momentum does not
            done = int(self.num_batches_tracked)
            self.num_batches_tracked.add_(steps)
            return [1.0 / (done + k) for k in range(1, steps + 1)]
        self.num_batches_tracked.add_(steps)
        return [self.momentum] * steps

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # take the checkpoint's number of slots
        key = prefix + "running_mean"
        if self.running_mean is not None and key in state_dict and state_dict[key].dim() == 2:
            self.running_mean = self.running_mean.new_zeros(state_dict[key].shape)
            self.running_var = self.running_var.new_ones(state_dict[key].shape)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


class BidirectionalCell(nn.Module):
    """Interface of every cell: :meth:`initial_state`, :meth:`step`, :meth:`sweep`.

    Attributes:
        input_size: features of x_t.
        hidden_size: h, features of one direction's state.
    """

    input_size: int
    hidden_size: int

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        """Zero state for both directions (paper §2.1): (2, B, h)."""
        return like.new_zeros(NUM_DIRECTIONS, batch_size, self.hidden_size)

    def step(self, x: Tensor, state: State, t: int = 0) -> tuple[Tensor, State]:
        """Advance both directions by one step.

        Args:
            x: (2, B, input_size): the forward direction's input at t, the backward's at T−1−t.
            state: the previous state of both directions.
            t: the step's index in the sequence (selects per-step BatchNorm statistics).

        Returns:
            The output h_t (2, B, h) and the new state.
        """
        raise NotImplementedError

    def sweep(self, x: Tensor) -> Tensor:
        """Bidirectional sweep over sequences (paper eq. 1–2), step by step.

        Args:
            x: (T, B, input_size), time-major.

        Returns:
            (T, B, 2h): ``[forward ‖ backward]`` at every position, the backward
            direction re-aligned so that position t holds the state after reading
            positions T−1 … t.
        """
        steps = x.unbind(0)  # unbind, not x[t]: one backward node instead of T full-size zero tensors
        state = self.initial_state(x.shape[1], x)
        outputs = []
        for t in range(len(steps)):
            output, state = self.step(torch.stack([steps[t], steps[-1 - t]]), state, t)
            outputs.append(output)
        return align_directions(outputs)


def align_directions(outputs: Sequence[Tensor]) -> Tensor:
    """Step outputs (2, B, h) → (T, B, 2h): ``[forward ‖ backward]`` in spatial order (eq. 2)."""
    forward, backward = torch.stack(outputs).unbind(1)  # (T, B, h) each; unbind: no per-step select backward
    return torch.cat([forward, backward.flip(0)], dim=-1)  # backward at position t: after reading T−1 … t


def _average(states: Sequence[Tensor]) -> Tensor:
    """Mean of node states (2, B, h), stored batch-major."""
    stacked = torch.stack([state.transpose(0, 1) for state in states], dim=1)  # (B, n, 2, h)
    return stacked.mean(dim=1).transpose(0, 1)


class _DartsCellBase(BidirectionalCell):
    """What derived and search cells share: the input node and the node weights (SPEC §2–§4)."""

    def __init__(self, input_size: int, hidden_size: int, variant: str | Variant, num_nodes: int):
        super().__init__()
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
        """U(−0.04, 0.04) for every weight matrix and the gate vector (SPEC §2)."""
        for weight in [self.input_weight, *self.node_weights]:
            nn.init.uniform_(weight, -DARTS_INIT_RANGE, DARTS_INIT_RANGE)
        if self.input_gate is not None:
            nn.init.uniform_(self.input_gate, -DARTS_INIT_RANGE, DARTS_INIT_RANGE)

    def direction_weights(self, direction: int) -> list[Tensor]:
        """W_0 … W_8 as used by ``direction`` (0 forward, 1 backward)."""
        index = 0 if self.input_weight.shape[0] == 1 else direction
        return [self.input_weight[index], *(weight[index] for weight in self.node_weights)]

    def initial_state(self, batch_size: int, like: Tensor) -> Tensor:
        """Zero state (2, B, h), stored batch-major like every node state."""
        return batch_major_zeros(batch_size, self.hidden_size, like)

    def input_projection(self, x: Tensor, previous: Tensor, t: int = 0) -> Tensor:
        """The input node's [c_0, ĥ_0] = BN([x_t ; h_{t−1}])·W_0 (eq. 3–4; SPEC §2, §4).

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
        nodes = self._sweep_nodes()
        state = self.initial_state(x.shape[1], x)
        outputs = []
        for t in range(x.shape[0]):
            state = nodes(state, input_node.projection(t, state), t)
            outputs.append(state)
        input_node.update_running_statistics()
        return align_directions(outputs)


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
            self.hidden_weights = [folded[:, input_size:]] * length  # W'_0h, (2, h, 2h)
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
            forward, backward = projected.view(batch, length, directions, 2 * hidden).unbind(-2)
            forward, backward = forward.unbind(1), backward.unbind(1)  # T × (B, 2h)
            # step t: the forward direction reads position t, the backward position T−1−t
            self.x_parts = [torch.stack([forward[t], backward[-1 - t]]) for t in range(length)]  # (2, B, 2h)
            # the h-channels' batch statistics of every step, filled in by the loop
            self.h_mean = x.new_zeros(length, directions * hidden, dtype=statistics_dtype)
            self.h_var = x.new_zeros(length, directions * hidden, dtype=statistics_dtype)
        else:  # eval mode: slot t's running statistics at step t
            means, variances = zip(*(norm.slot_statistics(t) for t in range(length)))
            scale = gamma * torch.rsqrt(torch.stack(variances).view(length, directions, joint) + norm.eps)  # (T, 2, d_in)
            shift = beta - torch.stack(means).view(length, directions, joint) * scale
            folded = scale.unsqueeze(-1) * weight  # W'_0,t, (T, 2, d_in, 2h)
            bias = torch.einsum("tdj,djk->tdk", shift, weight).unsqueeze(2)  # shift_t·W_0, (T, 2, 1, 2h)
            self.hidden_weights = list(folded[:, :, input_size:].unbind(0))
            reads = torch.stack([x, x.flip(0)], dim=1)  # (T, 2, B, C): what each direction reads at step t
            x_parts = torch.matmul(reads, folded[:, :, :input_size])  # (T, 2, B, 2h)
            if self.gate_weight is None:
                x_parts = x_parts + bias
            else:
                self.biases = list(bias.unbind(0))
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
    """A derived DARTS cell (paper eq. 3–6; SPEC §2).

    Node i reads its predecessor s_{p_i} *at the same time step*; after the input node
    and after every node, the state of both directions passes its own affine
    BatchNorm1d(2h) (9 modules, reused at every step). Output h_t is the mean of the
    genotype's averaged nodes and is also the recurrent state.

    Args:
        input_size: features of x_t.
        hidden_size: h per direction.
        genotype: the cell's activations and predecessors.
        variant: a :data:`~dartsrenet.variants.VARIANTS` name.
    """

    def __init__(
        self, input_size: int, hidden_size: int, genotype: Genotype, variant: str | Variant = "vanilla"
    ):
        super().__init__(input_size, hidden_size, variant, num_nodes=len(genotype.recurrent))
        self.genotype = genotype
        self.node_norms = nn.ModuleList(DirectionalBatchNorm(hidden_size) for _ in range(self.num_nodes + 1))
        self._activations = [get_activation(name) for name in genotype.activations]

    def nodes(self, previous: Tensor, projection: Tensor, t: int = 0) -> Tensor:
        names = self.genotype.activations
        if not compile_enabled() and kernels_apply(previous, projection, names, self.node_norms, self.node_weights):
            return fused_derived_step(
                previous, projection, names, self.genotype.predecessors, self.genotype.concat,
                list(self.node_weights), self.node_norms, t,
            )  # fmt: skip
        update = _fused(gated_node)
        states = [self.node_norms[0](update(previous, projection, torch.tanh), t)]
        for node, (activation, predecessor) in enumerate(zip(self._activations, self.genotype.predecessors, strict=True), 1):
            source = states[predecessor]
            projection = directional_matmul(source, self.node_weights[node - 1])  # [c_i, ĥ_i]
            states.append(self.node_norms[node](update(source, projection, activation), t))
        return _average([states[node] for node in self.genotype.concat])


class ArchitectureWeights(nn.Module):
    """α, the architecture parameters of eq. 8: one row per edge j→i, one column per primitive.

    One instance is shared by every search cell of a network (SPEC §3), so the
    network yields one genotype. Init 1e-3 · N(0, 1).
    """

    def __init__(self, num_nodes: int = NUM_NODES, primitives: Sequence[str] = PRIMITIVES):
        super().__init__()
        self.primitives = tuple(primitives)
        self.num_nodes = num_nodes
        self.alpha = nn.Parameter(1e-3 * torch.randn(num_edges(num_nodes), len(self.primitives)))

    def probabilities(self) -> Tensor:
        """softmax(α) over primitives, (num_edges, num_primitives)."""
        return F.softmax(self.alpha, dim=-1)


class DartsSearchCell(_DartsCellBase):
    """The DARTS search cell (paper eq. 7–8; SPEC §3).

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
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        architecture: ArchitectureWeights,
        variant: str | Variant = "vanilla",
    ):
        super().__init__(input_size, hidden_size, variant, num_nodes=architecture.num_nodes)
        self.architecture = architecture
        self.node_norm = DirectionalBatchNorm(hidden_size, affine=False)
        self._columns = [column for column, name in enumerate(architecture.primitives) if name != NONE]
        self._primitive_names = tuple(architecture.primitives[column] for column in self._columns)
        self._primitives = [get_activation(name) for name in self._primitive_names]

    def edge_probabilities(self) -> Tensor:
        """softmax(α) without the 'none' column (it contributes nothing), (36, F)."""
        return self.architecture.probabilities()[:, self._columns]

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

        The shared node BatchNorm uses slot t·(nodes+1) + node. On the CPU the whole step
        runs as fused kernels (:func:`~dartsrenet.fused_nodes.fused_search_step`).
        """
        first_slot = t * (self.num_nodes + 1)
        if (
            self._primitive_names == SEARCH_PRIMITIVES
            and not compile_enabled()
            and kernels_apply(previous, projection, (), [self.node_norm], [*self.node_weights, self.architecture.alpha])
        ):
            probabilities = self.edge_probabilities() if probabilities is None else probabilities
            return fused_search_step(previous, projection, probabilities, list(self.node_weights), self.node_norm, first_slot)
        mixing = self.mixing_weights(probabilities) if mixing is None else mixing
        mix = _fused(mixed_node)
        states = [self.node_norm(_fused(gated_node)(previous, projection, torch.tanh), first_slot)]
        for node in range(1, self.num_nodes + 1):
            sources = torch.stack([state.transpose(0, 1) for state in states]).permute(2, 0, 1, 3)  # (2, i, B, h)
            projection = directional_matmul(sources, self.node_weights[node - 1])  # (2, i, B, 2h), one matmul
            weights, kept = mixing[node - 1]
            states.append(self.node_norm(mix(sources, projection, weights, kept, self._primitives), first_slot + node))
        return _average(states[1:])

    def _sweep_nodes(self) -> Callable[[Tensor, Tensor, int], Tensor]:
        probabilities = self.edge_probabilities()  # softmax(α) once per sweep, not per step
        mixing = self.mixing_weights(probabilities)
        return lambda previous, projection, t: self.nodes(previous, projection, t, mixing, probabilities)


class _TorchRNNCell(BidirectionalCell):
    """A GRU/LSTM baseline held as a bidirectional ``torch.nn.GRU``/``LSTM`` (SPEC §2).

    ``step`` implements the cell's equations on the module's own weights; ``sweep``
    uses the fused kernel (cuDNN/oneDNN) unless ``fused=False``.
    """

    rnn_class: type[nn.RNNBase]

    def __init__(self, input_size: int, hidden_size: int, fused: bool = True):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.fused = fused
        self.rnn = self.rnn_class(input_size, hidden_size, bidirectional=True)

    def _stacked(self, name: str) -> Tensor:
        """A weight of both directions stacked: (2, …)."""
        return torch.stack([getattr(self.rnn, f"{name}_l0"), getattr(self.rnn, f"{name}_l0_reverse")])

    def _gates(self, x: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """Input and hidden pre-activations W_ih x + b_ih and W_hh h + b_hh, (2, B, k·h)."""
        from_input = torch.baddbmm(self._stacked("bias_ih").unsqueeze(1), x, self._stacked("weight_ih").transpose(1, 2))
        from_hidden = torch.baddbmm(
            self._stacked("bias_hh").unsqueeze(1), hidden, self._stacked("weight_hh").transpose(1, 2)
        )
        return from_input, from_hidden

    def sweep(self, x: Tensor) -> Tensor:
        if self.fused:
            return self.rnn(x)[0]  # (T, B, 2h), backward already aligned
        return super().sweep(x)


class GRUCell(_TorchRNNCell):
    """GRU baseline (Cho et al. 2014), PyTorch's gate order r, z, n."""

    rnn_class = nn.GRU

    def step(self, x: Tensor, state: Tensor, t: int = 0) -> tuple[Tensor, Tensor]:
        from_input, from_hidden = self._gates(x, state)
        input_r, input_z, input_n = from_input.chunk(3, dim=-1)
        hidden_r, hidden_z, hidden_n = from_hidden.chunk(3, dim=-1)
        reset = torch.sigmoid(input_r + hidden_r)
        update = torch.sigmoid(input_z + hidden_z)
        candidate = torch.tanh(input_n + reset * hidden_n)
        hidden = (1 - update) * candidate + update * state
        return hidden, hidden


class LSTMCell(_TorchRNNCell):
    """LSTM baseline (Hochreiter & Schmidhuber 1997), PyTorch's gate order i, f, g, o."""

    rnn_class = nn.LSTM

    def initial_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = super().initial_state(batch_size, like)
        return zeros, zeros.clone()

    def step(self, x: Tensor, state: tuple[Tensor, Tensor], t: int = 0) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        hidden, memory = state
        from_input, from_hidden = self._gates(x, hidden)
        input_gate, forget_gate, candidate, output_gate = (from_input + from_hidden).chunk(4, dim=-1)
        memory = torch.sigmoid(forget_gate) * memory + torch.sigmoid(input_gate) * torch.tanh(candidate)
        hidden = torch.sigmoid(output_gate) * torch.tanh(memory)
        return hidden, (hidden, memory)


CellFactory = Callable[[int, int], BidirectionalCell]
"""Builds a cell for a sweep from (input_size, hidden_size)."""

CELLS: dict[str, type[BidirectionalCell]] = {
    "darts": DartsCell,
    "darts_search": DartsSearchCell,
    "gru": GRUCell,
    "lstm": LSTMCell,
}
"""Every cell type by name. ``darts`` needs a genotype, ``darts_search`` an α."""


def get_cell_class(name: str) -> type[BidirectionalCell]:
    """The cell class called ``name``; unknown names list the valid ones."""
    return lookup(CELLS, name, "cell")
