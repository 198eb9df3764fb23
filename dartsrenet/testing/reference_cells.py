"""The straightforward DARTS cells: the correctness oracle of the optimised library cells.

Written plainly from docs/architecture.md §2–§4 (paper eq. 3–8), independently of ``dartsrenet.cells``:
step by step, one direction at a time, one weight matrix per direction and
per-direction modules exactly as docs/architecture.md §2.5 and §3.2 state them:

* per direction, an input ``BatchNorm1d(d_in)`` on z = [x_t ; h_{t−1}] (after the
  sigmoid-weighting gate, when the variant has one), then [c_0, ĥ_0] = z·W_0,
  s_0 = h_{t−1} + σ(c_0) ⊙ (tanh(ĥ_0) − h_{t−1});
* node i: [c_i, ĥ_i] = s_{p_i}·W_i, s_i = s_{p_i} + σ(c_i) ⊙ (f_i(ĥ_i) − s_{p_i}) (derived), or
  s_i = Σ_{j<i} Σ_{f≠none} p_f · (s_j + σ(c_j) ⊙ (f(ĥ_j) − s_j)), [c_j, ĥ_j] = s_j·W_i (search);
* after the input node and after every node, ``BatchNorm1d(2h)`` on ``[fwd ‖ bwd]``
  (9 affine modules in a derived cell, one non-affine module shared by all nodes in
  the search cell);
* h_t = mean of the averaged nodes.

BatchNorm keeps its population statistics per time step (the project's choice, see
``DirectionalBatchNorm``): :class:`StepBatchNorm` is BatchNorm written out from its
definition, with one row of running statistics per slot — step t, or t·9 + node for
the search cell's shared node norm — created from the batch of its first use, then
updated with momentum; the running variance is the biased batch variance.

Nothing here is fast on purpose. :func:`reference_from_library` copies a library
cell's weights and BatchNorm state into an oracle; :func:`library_state_from_reference`
copies them back (to compare running statistics).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# Plain activations, written here rather than imported from the library.
ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda v: v,
}
PRIMITIVES = ("none", "tanh", "relu", "sigmoid", "identity")


class StepBatchNorm(nn.Module):
    """BatchNorm over a (B, C) batch with running statistics per slot and shared affine parameters."""

    def __init__(self, channels: int, affine: bool = True, momentum: float | None = 0.1, eps: float = 1e-5):
        super().__init__()
        self.channels, self.affine, self.momentum, self.eps = channels, affine, momentum, eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None
        self.register_buffer("running_mean", torch.zeros(0, channels))
        self.register_buffer("running_var", torch.ones(0, channels))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, z: Tensor, slot: int) -> Tensor:
        if self.training:
            mean = z.mean(dim=0)
            var = ((z - mean) ** 2).mean(dim=0)  # biased, as normalisation uses it
            with torch.no_grad():
                self.calls += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / int(self.calls)
                if slot >= len(self.running_mean):  # first use of this slot: start from this batch
                    new_rows = slot + 1 - len(self.running_mean)
                    self.running_mean = torch.cat([self.running_mean, z.new_zeros(new_rows, self.channels)])
                    self.running_var = torch.cat([self.running_var, z.new_ones(new_rows, self.channels)])
                    momentum = 1.0
                self.running_mean[slot] = (1 - momentum) * self.running_mean[slot] + momentum * mean
                self.running_var[slot] = (1 - momentum) * self.running_var[slot] + momentum * var
        elif len(self.running_mean) == 0:
            mean, var = z.new_zeros(self.channels), z.new_ones(self.channels)
        else:
            row = min(slot, len(self.running_mean) - 1)
            mean, var = self.running_mean[row], self.running_var[row]
        out = (z - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        return out


class ReferenceDartsCell(nn.Module):
    """A derived (``genotype`` given) or search (``search=True``) DARTS cell, one direction at a time.

    Args:
        input_size: features of x_t.
        hidden_size: h per direction.
        genotype: ``[(activation, predecessor), …]`` for nodes 1 … 8 (derived cells).
        concat: the averaged nodes (derived cells).
        variant: ``vanilla``, ``sigmoid_weighting`` or ``directional_weight_sharing``.
        search: build the search cell (α is passed to :meth:`sweep`).
        num_nodes: intermediate nodes (8).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        genotype: list[tuple[str, int]] | None = None,
        concat: list[int] | None = None,
        variant: str = "vanilla",
        search: bool = False,
        num_nodes: int = 8,
    ):
        super().__init__()
        self.input_size, self.hidden_size, self.variant, self.search = input_size, hidden_size, variant, search
        self.genotype = None if search else list(genotype)
        self.num_nodes = num_nodes if search else len(self.genotype)
        self.concat = list(range(1, self.num_nodes + 1)) if search or concat is None else list(concat)
        joint = input_size + hidden_size
        # per direction: W_0 (d_in × 2h) and W_1 … W_8 (h × 2h); shared weights are the same Parameter twice
        forward_weights = [nn.Parameter(torch.empty(joint, 2 * hidden_size))] + [
            nn.Parameter(torch.empty(hidden_size, 2 * hidden_size)) for _ in range(self.num_nodes)
        ]
        if variant == "directional_weight_sharing":
            backward_weights = forward_weights
        else:
            backward_weights = [nn.Parameter(torch.empty_like(w)) for w in forward_weights]
        self.weights = nn.ModuleList([nn.ParameterList(forward_weights), nn.ParameterList(backward_weights)])
        self.gate = nn.Parameter(torch.empty(joint, 1)) if variant == "sigmoid_weighting" else None
        self.input_norms = nn.ModuleList([StepBatchNorm(joint), StepBatchNorm(joint)])  # one per direction
        if search:
            self.state_norm = StepBatchNorm(2 * hidden_size, affine=False)  # shared by all nodes
        else:
            self.state_norms = nn.ModuleList(StepBatchNorm(2 * hidden_size) for _ in range(self.num_nodes + 1))

    def weight(self, direction: int, node: int) -> Tensor:
        return self.weights[direction][node]

    def norm_both_directions(self, t: int, node: int, forward: Tensor, backward: Tensor) -> tuple[Tensor, Tensor]:
        """BatchNorm(2h) on the concatenated state [fwd ‖ bwd] of node ``node`` at step t."""
        if self.search:
            both = self.state_norm(torch.cat([forward, backward], dim=1), t * (self.num_nodes + 1) + node)
        else:
            both = self.state_norms[node](torch.cat([forward, backward], dim=1), t)
        return both[:, : self.hidden_size], both[:, self.hidden_size :]

    def input_node(self, t: int, direction: int, x: Tensor, h: Tensor) -> Tensor:
        """s_0 before its BatchNorm at step t, for one direction. x: (B, C), h: (B, h)."""
        z = torch.cat([x, h], dim=1)
        if self.gate is not None:
            g = torch.sigmoid(z @ self.gate)  # (B, 1)
            z = g * z
        z = self.input_norms[direction](z, t)
        projection = z @ self.weight(direction, 0)
        c = projection[:, : self.hidden_size]
        candidate = projection[:, self.hidden_size :]
        return h + torch.sigmoid(c) * (torch.tanh(candidate) - h)

    def derived_node(self, direction: int, node: int, source: Tensor) -> Tensor:
        activation = ACTIVATIONS[self.genotype[node - 1][0]]
        projection = source @ self.weight(direction, node)
        c = projection[:, : self.hidden_size]
        candidate = projection[:, self.hidden_size :]
        return source + torch.sigmoid(c) * (activation(candidate) - source)

    def search_node(self, direction: int, node: int, states: list[Tensor], probabilities: Tensor) -> Tensor:
        total = torch.zeros_like(states[0])
        for j in range(node):
            edge = (node - 1) * node // 2 + j  # rows of α: 1←0, 2←0, 2←1, 3←0, …
            projection = states[j] @ self.weight(direction, node)
            c = projection[:, : self.hidden_size]
            candidate = projection[:, self.hidden_size :]
            for column, name in enumerate(PRIMITIVES):
                if name == "none":
                    continue
                update = states[j] + torch.sigmoid(c) * (ACTIVATIONS[name](candidate) - states[j])
                total = total + probabilities[edge, column] * update
        return total

    def step(self, x_forward: Tensor, x_backward: Tensor, h_forward: Tensor, h_backward: Tensor, alpha=None, t: int = 0):
        """Time step t of both directions; returns the new (h_forward, h_backward)."""
        probabilities = torch.softmax(alpha, dim=-1) if self.search else None
        s_forward = [self.input_node(t, 0, x_forward, h_forward)]
        s_backward = [self.input_node(t, 1, x_backward, h_backward)]
        s_forward[0], s_backward[0] = self.norm_both_directions(t, 0, s_forward[0], s_backward[0])
        for node in range(1, self.num_nodes + 1):
            if self.search:
                new_forward = self.search_node(0, node, s_forward, probabilities)
                new_backward = self.search_node(1, node, s_backward, probabilities)
            else:
                predecessor = self.genotype[node - 1][1]
                new_forward = self.derived_node(0, node, s_forward[predecessor])
                new_backward = self.derived_node(1, node, s_backward[predecessor])
            new_forward, new_backward = self.norm_both_directions(t, node, new_forward, new_backward)
            s_forward.append(new_forward)
            s_backward.append(new_backward)
        h_forward = sum(s_forward[i] for i in self.concat) / len(self.concat)
        h_backward = sum(s_backward[i] for i in self.concat) / len(self.concat)
        return h_forward, h_backward

    def sweep(self, x: Tensor, alpha: Tensor | None = None) -> Tensor:
        """x (T, B, C) → (T, B, 2h): [forward after reading 0 … t ‖ backward after reading T−1 … t]."""
        length, batch, _ = x.shape
        h_forward = x.new_zeros(batch, self.hidden_size)
        h_backward = x.new_zeros(batch, self.hidden_size)
        forward_outputs, backward_outputs = [], []
        for t in range(length):
            h_forward, h_backward = self.step(x[t], x[length - 1 - t], h_forward, h_backward, alpha, t)
            forward_outputs.append(h_forward)
            backward_outputs.append(h_backward)
        backward_outputs.reverse()  # position t holds the state after reading T−1 … t
        return torch.stack([torch.cat([f, b], dim=1) for f, b in zip(forward_outputs, backward_outputs)])


class ReferenceSweep(nn.Module):
    """An oracle cell behind the library's ``sweep`` interface (for ReNet layers in benchmarks)."""

    def __init__(self, reference: ReferenceDartsCell, architecture: nn.Module | None = None):
        super().__init__()
        self.reference = reference
        self.architecture = architecture  # the library's shared α module, for search cells

    def sweep(self, x: Tensor) -> Tensor:
        alpha = self.architecture.alpha if self.architecture is not None else None
        return self.reference.sweep(x, alpha)


def _copy_norm(target: StepBatchNorm, source: nn.BatchNorm1d, channels: slice) -> None:
    if target.affine:
        target.weight.copy_(source.weight[channels])
        target.bias.copy_(source.bias[channels])
    target.running_mean = source.running_mean[:, channels].clone()  # (slots, channels)
    target.running_var = source.running_var[:, channels].clone()
    target.calls.copy_(source.num_batches_tracked)
    target.momentum, target.eps = source.momentum, source.eps


@torch.no_grad()
def reference_from_library(cell: nn.Module) -> ReferenceDartsCell:
    """An oracle with the weights, BatchNorm parameters and running statistics of a library DARTS cell.

    Reads only the library cell's parameters and buffers (its documented layout):
    ``input_weight`` (D, d_in, 2h), ``node_weights[k]`` (D, h, 2h), ``input_gate``
    (d_in, 1), ``input_norm`` (2·d_in channels, [fwd | bwd]), ``node_norms`` /
    ``node_norm`` (2h channels, [fwd | bwd]).
    """
    search = hasattr(cell, "architecture")
    genotype = None if search else list(cell.genotype.recurrent)
    concat = None if search else list(cell.genotype.concat)
    reference = ReferenceDartsCell(
        cell.input_size, cell.hidden_size, genotype, concat, cell.variant.name, search, cell.num_nodes
    )
    shared = cell.input_weight.shape[0] == 1
    library_weights = [cell.input_weight, *cell.node_weights]
    for direction in range(2):
        for node, weight in enumerate(library_weights):
            reference.weights[direction][node].copy_(weight[0 if shared else direction])
    if reference.gate is not None:
        reference.gate.copy_(cell.input_gate)
    joint = cell.input_size + cell.hidden_size
    for direction in range(2):
        _copy_norm(reference.input_norms[direction], cell.input_norm, slice(direction * joint, (direction + 1) * joint))
    everything = slice(None)
    if search:
        _copy_norm(reference.state_norm, cell.node_norm, everything)
    else:
        for target, source in zip(reference.state_norms, cell.node_norms, strict=True):
            _copy_norm(target, source, everything)
    return reference.train(cell.training)


def library_state_from_reference(reference: ReferenceDartsCell, cell: nn.Module) -> dict[str, Tensor]:
    """The oracle's BatchNorm buffers in the library cell's state_dict names and layout."""
    joint = reference.input_size + reference.hidden_size
    state = {}
    for name in ("running_mean", "running_var"):
        state[f"input_norm.{name}"] = torch.cat([getattr(n, name) for n in reference.input_norms], dim=1)
        norms = [reference.state_norm] if reference.search else list(reference.state_norms)
        prefixes = ["node_norm"] if reference.search else [f"node_norms.{k}" for k in range(len(norms))]
        for prefix, norm in zip(prefixes, norms, strict=True):
            state[f"{prefix}.{name}"] = getattr(norm, name)
    assert state["input_norm.running_mean"].shape[-1] == 2 * joint
    state["input_norm.num_batches_tracked"] = reference.input_norms[0].calls
    return state


def reference_gradients(reference: ReferenceDartsCell) -> dict[str, Tensor]:
    """The oracle's parameter gradients in the library cell's parameter names and shapes."""
    shared = reference.variant == "directional_weight_sharing"
    grads = {}

    def stacked(node: int) -> Tensor:
        forward = reference.weights[0][node].grad
        if shared:
            return forward.unsqueeze(0)  # one Parameter: its grad already sums both directions
        return torch.stack([forward, reference.weights[1][node].grad])

    grads["input_weight"] = stacked(0)
    for node in range(1, reference.num_nodes + 1):
        grads[f"node_weights.{node - 1}"] = stacked(node)
    if reference.gate is not None:
        grads["input_gate"] = reference.gate.grad
    grads["input_norm.weight"] = torch.cat([n.weight.grad for n in reference.input_norms])
    grads["input_norm.bias"] = torch.cat([n.bias.grad for n in reference.input_norms])
    if not reference.search:
        for k, norm in enumerate(reference.state_norms):
            grads[f"node_norms.{k}.weight"] = norm.weight.grad
            grads[f"node_norms.{k}.bias"] = norm.bias.grad
    return grads
