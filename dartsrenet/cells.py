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
the search cell with one-hot mixing weights *is* the derived cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dartsrenet.activations import NONE, PRIMITIVES, get_activation
from dartsrenet.genotypes import NUM_NODES, Genotype, num_edges
from dartsrenet.registry import lookup
from dartsrenet.variants import Variant, get_variant

NUM_DIRECTIONS = 2
DARTS_INIT_RANGE = 0.04
"""DARTS cell weights are initialised U(−0.04, 0.04) (SPEC §2, code)."""

State = Any  # a Tensor (2, B, h), or a tuple of them for the LSTM


def node_update(state: Tensor, gate: Tensor, candidate: Tensor) -> Tensor:
    """One DARTS node (paper eq. 5): s_i = s_p + c_i ⊙ (f_i(ĥ_i) − s_p).

    Args:
        state: the predecessor's state s_p.
        gate: the update gate c_i = σ(c), in [0, 1].
        candidate: the candidate f_i(ĥ_i).
    """
    return state + gate * (candidate - state)


def directional_matmul(x: Tensor, weight: Tensor) -> Tensor:
    """Multiply each direction's inputs by its weight matrix.

    Args:
        x: (2, …, k) inputs, direction first.
        weight: (D, k, m); D = 1 means one matrix shared by both directions.

    Returns:
        (2, …, m).
    """
    if weight.shape[0] == 1:
        return torch.matmul(x, weight[0])
    directions = x.shape[0]
    flat = x.reshape(directions, -1, x.shape[-1])  # (2, N, k)
    return torch.bmm(flat, weight).view(*x.shape[:-1], weight.shape[-1])


class DirectionalBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the features of both directions together, ``[fwd ‖ bwd]`` (SPEC §2).

    Holds ``num_directions × features`` channels, exactly like ``BatchNorm1d(2h)`` on the
    concatenated state; statistics are per channel, so it is also equal to one
    ``BatchNorm1d(features)`` per direction. Input and output are (D, B, features).
    """

    def __init__(self, features: int, num_directions: int = NUM_DIRECTIONS, affine: bool = True):
        super().__init__(num_directions * features, affine=affine)
        self.features = features
        self.num_directions = num_directions

    def forward(self, x: Tensor) -> Tensor:
        directions, batch, features = x.shape
        flat = x.transpose(0, 1).reshape(batch, directions * features)  # (B, D·F)
        return super().forward(flat).view(batch, directions, features).transpose(0, 1)


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

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """Advance both directions by one step.

        Args:
            x: (2, B, input_size): the forward direction's input at t, the backward's at T−1−t.
            state: the previous state of both directions.

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
        length, batch, _ = x.shape
        both = torch.stack([x, x.flip(0)], dim=1)  # (T, 2, B, C)
        state = self.initial_state(batch, x)
        outputs = []
        for t in range(length):
            output, state = self.step(both[t], state)
            outputs.append(output)
        out = torch.stack(outputs)  # (T, 2, B, h)
        return torch.cat([out[:, 0], out[:, 1].flip(0)], dim=-1)


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

    def input_node(self, x: Tensor, previous: Tensor) -> Tensor:
        """Node 0 before its BatchNorm: s_0 = h + σ(c_0) ⊙ (tanh(ĥ_0) − h) (eq. 3–5, i = 0).

        Args:
            x: (2, B, input_size).
            previous: h_{t−1}, (2, B, h).
        """
        joint = torch.cat([x, previous], dim=-1)  # (2, B, d_in)
        if self.input_gate is not None:
            joint = joint * torch.sigmoid(torch.matmul(joint, self.input_gate))  # g: (2, B, 1)
        joint = self.input_norm(joint)
        gate, candidate = directional_matmul(joint, self.input_weight).chunk(2, dim=-1)
        return node_update(previous, torch.sigmoid(gate), torch.tanh(candidate))


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

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        states = [self.node_norms[0](self.input_node(x, state))]
        for node, (activation, predecessor) in enumerate(
            zip(self._activations, self.genotype.predecessors, strict=True), start=1
        ):
            source = states[predecessor]
            gate, candidate = directional_matmul(source, self.node_weights[node - 1]).chunk(2, dim=-1)
            updated = node_update(source, torch.sigmoid(gate), activation(candidate))
            states.append(self.node_norms[node](updated))
        output = torch.stack([states[node] for node in self.genotype.concat]).mean(dim=0)
        return output, output


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
        self._primitives = [
            (column, get_activation(name))
            for column, name in enumerate(architecture.primitives)
            if name != NONE
        ]

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        probabilities = self.architecture.probabilities()  # (36, 5)
        states = [self.node_norm(self.input_node(x, state))]
        first_edge = 0
        for node in range(1, self.num_nodes + 1):
            sources = torch.stack(states, dim=1)  # (2, node, B, h)
            gate, candidate = directional_matmul(sources, self.node_weights[node - 1]).chunk(2, dim=-1)
            gate = torch.sigmoid(gate)
            edge_probabilities = probabilities[first_edge : first_edge + node]  # (node, 5)
            mixture = torch.zeros_like(states[0])
            for column, activation in self._primitives:
                weights = edge_probabilities[:, column].view(1, node, 1, 1)
                mixture = mixture + (weights * node_update(sources, gate, activation(candidate))).sum(dim=1)
            states.append(self.node_norm(mixture))
            first_edge += node
        output = torch.stack(states[1:]).mean(dim=0)
        return output, output


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

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
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

    def step(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
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
