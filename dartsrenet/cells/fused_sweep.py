"""The fused sweeps: every time step of a DARTS cell's sweep as ONE autograd node over a kernel backend (paper eq. 3–8).

Why over 500 lines: the derived and the search sweep (each an autograd Function with its
forward and backward pass) share the input node, the matmuls and the plan below; split
apart, each would need most of the other's helpers.

A node and its BatchNorm is one kernel call each way (:mod:`dartsrenet.kernels`: the C
kernels of the ``native`` backend, the Triton kernels of the ``triton`` backend, one
:class:`~dartsrenet.kernels.protocol.KernelBackend` interface). Here each cell runs a
whole sweep — all T time steps of both directions — as ONE autograd node: no per-node or
per-step autograd bookkeeping. Its backward pass runs the steps in reverse and accumulates
in place: every state's gradient (the node matmuls' input gradients with ``baddbmm_``),
every weight's gradient over all steps in one buffer, the BatchNorm parameters' and the
mixing weights' gradients in one buffer each, and each h_{t−1}'s gradient into the
running sum that already holds the output's. The matmuls stay in PyTorch (oneDNN/MKL on
the CPU, cuBLAS on CUDA).

* :func:`fused_derived_sweep` — a derived cell: per step the input node, the eight nodes
  with their BatchNorms and the average h_t (eq. 3–6).
* :func:`fused_search_sweep` — the search cell: the input node and the eight mixed nodes of
  eq. 8 with the shared affine-free BatchNorm (the kernels' ``mixed_forward`` computes a
  node's whole mixture over predecessors and primitives, ``mixed_backward`` α's gradient).
* :func:`fused_derived_step`, :func:`fused_search_step` — one step from a given h_{t−1}
  (the sweeps of one step), for cells that cannot hoist the input node.

The sweeps take plain tensors and the backend's kernels (chosen once per cell,
:func:`dartsrenet.cells.backends.kernels`); they take the input node's x-part of every
step, computed before the recurrence (docs/architecture.md §4), and add h_{t−1}'s part
inside (:class:`HiddenInput`). The kernels compute float32 and float64; under autocast
the matmuls run in bf16 (or fp16 on CUDA) and the kernels in float32
(:func:`autocast_matmul_dtype`). In training mode the node BatchNorms' running statistics
are updated from the statistics the kernels wrote (:func:`~dartsrenet.cells.norms.record_together`).
``tests/test_fused_nodes.py``, ``tests/test_kernel_extremes.py``,
``tests/test_triton_kernels.py`` and ``tests/test_reference_oracle.py`` check them against
the eager backend and the oracle: values, gradients and running statistics.

Node states inside a step are (2, B, h) direction-major, projections (2, B, 2h): the
layouts the batched matmuls run fastest on. The h_t are stored batch-major, (B, 2, h), so
that the input BatchNorm sees each as (B, 2h) without a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dartsrenet.cells.backends import BackendError
from dartsrenet.cells.norms import DirectionalBatchNorm, record_together
from dartsrenet.kernels.protocol import ACTIVATION_CODES, KernelBackend, NormArguments


def check_kernel_inputs(name: str, source: Tensor, projection: Tensor, norms: Sequence[DirectionalBatchNorm]) -> None:
    """Refuse, in one line, inputs a fused backend cannot compute (instead of a wrong result)."""
    if source.dtype not in (torch.float32, torch.float64) or projection.dtype not in (
        source.dtype, torch.bfloat16, torch.float16
    ):  # fmt: skip
        raise BackendError(
            f"backend {name!r} computes DARTS cells in float32 or float64 (matmuls in bf16/fp16 under "
            f"autocast), not {source.dtype}/{projection.dtype}; use backend 'eager' for this dtype"
        )
    if source.shape[1] < 2 and any(norm.uses_batch_statistics() for norm in norms):
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {tuple(source.shape)}"
        )


def _norm_arguments(norm: DirectionalBatchNorm, slot: int) -> NormArguments:
    """What the kernels need of ``norm`` at statistics slot ``slot``."""
    batch_stats = norm.uses_batch_statistics()
    mean, var = (None, None) if batch_stats else norm.slot_statistics(slot)
    return NormArguments(norm.weight, norm.bias, batch_stats, mean, var, norm.eps)


def _directions(weight: Tensor) -> Tensor:
    """W as (2, h, 2h): a weight shared by both directions (D = 1) expanded without a copy."""
    return weight.expand(2, *weight.shape[1:])


# --- the matmuls around the kernels ----------------------------------------------------------
def autocast_matmul_dtype(device_type: str = "cpu") -> torch.dtype | None:
    """The autocast dtype for matmuls on ``device_type`` (bf16 on the CPU; bf16 or fp16 on CUDA), else None.

    Under autocast the fused steps run their matmuls in that dtype (AMX/AVX-512 BF16 units
    or tensor cores) and everything else in float32, as autocast would.
    """
    try:
        enabled, dtype = torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except TypeError:  # torch < 2.4
        if device_type != "cpu":
            return None
        enabled, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
    allowed = (torch.bfloat16,) if device_type == "cpu" else (torch.bfloat16, torch.float16)
    return dtype if enabled and dtype in allowed else None


def _matmul(a: Tensor, b: Tensor, dtype: torch.dtype | None) -> Tensor:
    """a·b (``bmm`` for 3-D, ``mm`` for 2-D operands); with ``dtype``, computed in it, returned in float32."""
    multiply = torch.bmm if a.dim() == 3 else torch.mm
    if dtype is None:
        return multiply(a, b)
    return multiply(a.to(dtype), b.to(dtype)).float()


def _add_matmul_(target: Tensor, a: Tensor, b: Tensor, dtype: torch.dtype | None) -> None:
    """target += a·b, in place (``target`` float32; the product in ``dtype`` when given)."""
    if dtype is None:
        (target.baddbmm_ if a.dim() == 3 else target.addmm_)(a, b)
    else:
        target.add_(_matmul(a, b, dtype))


def _project(state: Tensor, weight: Tensor, dtype: torch.dtype | None) -> Tensor:
    """[c, ĥ] = s·W for both directions: (2, B, h) contiguous × (D, h, 2h) → (2, B, 2h)."""
    if weight.shape[0] == 1:  # shared by both directions: one matmul over 2B rows
        return _matmul(state.view(-1, state.shape[-1]), weight[0], dtype).view(*state.shape[:2], weight.shape[-1])
    return _matmul(state, weight, dtype)




def _add_matmul(base: Tensor, a: Tensor, b: Tensor, dtype: torch.dtype | None) -> Tensor:
    """base + a·b, a new tensor (the product in ``dtype`` when given)."""
    if dtype is None:
        return torch.baddbmm(base, a, b)
    return base + _matmul(a, b, dtype)


# --- whole sweeps: every time step of a cell's sweep in one autograd node ---------------------
@dataclass
class HiddenInput:
    """How h_{t−1} enters the input node of a sweep whose x-part was computed beforehand (the
    cell's hoisted input node, docs/architecture.md §4): step t's projection is

        [c_0, ĥ_0] = x_part_t + N_t(h_{t−1})·W_h,t,

    with N_t the input BatchNorm's normalisation of the h-channels: the batch's statistics in
    training mode (``batch_stats``; their mean and unbiased variance are written to row t of
    ``means`` and ``variances``, (T, 2h)), the identity in eval mode (its scale is folded
    into W_h,t there)."""

    batch_stats: bool
    means: Tensor | None
    variances: Tensor | None
    eps: float


@dataclass
class _SweepPlan:
    """What the derived and search sweeps share: the kernels and the input node."""

    kernels: KernelBackend
    hidden: HiddenInput | None  # None: x_parts are the whole projections (one step from a given state)
    aligned: bool  # output (T, B, 2h) as BidirectionalCell.sweep returns it, else h_t as (T, B, 2, h)
    matmul_dtype: torch.dtype | None  # bf16 under CPU autocast
    norms: list[list[NormArguments]]  # per step, per node
    statistics: Tensor  # (T, n + 1, 3, 2h), filled by the forward pass


def _previous(initial: Tensor, outputs: Tensor, t: int) -> Tensor:
    """h_{t−1} as (2, B, h): the initial state, or step t − 1's output (stored batch-major)."""
    return initial if t == 0 else outputs[t - 1].transpose(0, 1)


def _input_forward(plan: _SweepPlan, t: int, x_parts: Tensor, previous: Tensor, hidden_weight: Tensor | None):
    """Step t's input projection (:class:`HiddenInput`) and what its backward pass needs."""
    if plan.hidden is None:
        return x_parts[t], None
    hidden = plan.hidden
    directions, batch, size = previous.shape
    flat = previous.transpose(0, 1).reshape(batch, directions * size)  # a view: states are batch-major
    if hidden.batch_stats:  # momentum 1 leaves the batch mean and unbiased variance in row t
        normalised_flat, mean, invstd = torch.native_batch_norm(
            flat, None, None, hidden.means[t], hidden.variances[t], True, 1.0, hidden.eps
        )
        normalised = normalised_flat.view(batch, directions, size).transpose(0, 1)
        saved = (normalised, flat, mean, invstd)
    else:
        normalised = previous
        saved = (normalised, None, None, None)
    weight = hidden_weight if hidden_weight.dim() == 3 else hidden_weight[t]
    return _add_matmul(x_parts[t], normalised, weight, plan.matmul_dtype), saved


def _input_backward(
    plan: _SweepPlan, t: int, saved, hidden_weight: Tensor, grad_projection: Tensor, grad_previous: Tensor | None,
    grad_hidden: Tensor | None,
) -> None:  # fmt: skip
    """Backward of :func:`_input_forward` at step t: adds W_h,t's gradient to ``grad_hidden`` and
    the gradient of h_{t−1} to ``grad_previous`` (either may be ``None``: not needed)."""
    normalised, flat, mean, invstd = saved
    dtype = plan.matmul_dtype
    weight = hidden_weight if hidden_weight.dim() == 3 else hidden_weight[t]
    if grad_hidden is not None:
        target = grad_hidden if grad_hidden.dim() == 3 else grad_hidden[t]
        _add_matmul_(target, normalised.transpose(1, 2), grad_projection, dtype)
    if grad_previous is None:
        return
    if not plan.hidden.batch_stats:
        _add_matmul_(grad_previous, grad_projection, weight.transpose(1, 2), dtype)
        return
    directions, batch, size = grad_previous.shape
    if dtype is None:
        grad_normalised = grad_previous.new_empty(batch, directions, size)  # batch-major, as the BatchNorm takes it
        torch.bmm(grad_projection, weight.transpose(1, 2), out=grad_normalised.transpose(0, 1))
    else:
        grad_normalised = _matmul(grad_projection, weight.transpose(1, 2), dtype).transpose(0, 1).contiguous()
    grad_flat = torch.ops.aten.native_batch_norm_backward(
        grad_normalised.view(batch, directions * size), flat, None, None, None, mean, invstd, True,
        plan.hidden.eps, [True, False, False],
    )[0]  # fmt: skip
    grad_previous.add_(grad_flat.view(batch, directions, size).transpose(0, 1))


def _sweep_output(plan: _SweepPlan, outputs: Tensor) -> Tensor:
    """The Function's output from the h_t (T, B, 2, h): ``[forward ‖ backward]`` re-aligned (the
    backward direction's step t at position T−1−t, as ``align_directions``), or as they are."""
    if not plan.aligned:
        return outputs
    return torch.cat([outputs[:, :, 0], outputs[:, :, 1].flip(0)], dim=-1)


def _output_gradients(plan: _SweepPlan, grad_output: Tensor) -> Tensor:
    """The output's gradient as the h_t's, (T, B, 2, h), in a new tensor the backward pass adds to."""
    if not plan.aligned:
        return grad_output.clone(memory_format=torch.contiguous_format)
    hidden = grad_output.shape[-1] // 2
    return torch.stack([grad_output[..., :hidden], grad_output[..., hidden:].flip(0)], dim=2)


def _grad_of_previous(t: int, gradients: Tensor, grad_initial: Tensor | None, scratch: Tensor) -> Tensor:
    """Where step t's backward pass puts h_{t−1}'s gradient: the running sum for step t − 1 (it
    holds the output's gradient already), ``grad_initial`` at t = 0, or ``scratch`` (not needed)."""
    if t > 0:
        return gradients[t - 1].transpose(0, 1)
    return scratch if grad_initial is None else grad_initial


def _plan(kernels: KernelBackend, initial: Tensor, steps: int, hidden: HiddenInput | None, aligned: bool,
          norms: list[list[NormArguments]], features: int, nodes: int) -> _SweepPlan:  # fmt: skip
    return _SweepPlan(
        kernels=kernels, hidden=hidden, aligned=aligned, matmul_dtype=autocast_matmul_dtype(initial.device.type),
        norms=norms, statistics=initial.new_empty(steps, nodes + 1, 3, features),
    )  # fmt: skip


# --- the derived cell -------------------------------------------------------------------------
@dataclass
class _DerivedGraph:
    """A derived cell's genotype as the sweep uses it."""

    codes: list[int]  # node 0 (tanh) … node n
    predecessors: list[int]  # of nodes 1 … n
    averaged: list[int]  # the concat nodes
    slots: list[int]  # where node k's state lives in a step's (n + 1, 2, B, h) buffer: averaged nodes last, in a row


class _FusedDerivedSweep(torch.autograd.Function):
    """All T steps of a derived cell (paper eq. 3–6) from h_{−1} and the input node's x-parts."""

    @staticmethod
    @torch.autocast("cpu", enabled=False)  # the matmuls' dtype is explicit (plan.matmul_dtype)
    @torch.autocast("cuda", enabled=False)
    def forward(ctx, plan: _SweepPlan, graph: _DerivedGraph, initial: Tensor, x_parts: Tensor,
                hidden_weight: Tensor | None, *parameters: Tensor) -> Tensor:  # fmt: skip
        count = len(graph.predecessors)
        weights = parameters[:count]
        steps, kernels, dtype = x_parts.shape[0], plan.kernels, plan.matmul_dtype
        _, batch, size = initial.shape
        outputs = initial.new_empty(steps, batch, 2, size)  # h_t, batch-major
        states = initial.new_empty(steps, count + 1, 2, batch, size)  # every node's state, at graph.slots
        averaged = slice(graph.slots[graph.averaged[0]], graph.slots[graph.averaged[0]] + len(graph.averaged))
        projections, saved_inputs = [], []
        for t in range(steps):
            previous = _previous(initial, outputs, t)
            projection, saved = _input_forward(plan, t, x_parts, previous, hidden_weight)
            step_states, step_projections = states[t], [projection]
            kernels.node_forward(
                previous, projection, graph.codes[0], plan.norms[t][0], plan.statistics[t, 0], step_states[graph.slots[0]]
            )  # fmt: skip
            for node, predecessor in enumerate(graph.predecessors, start=1):
                source = step_states[graph.slots[predecessor]]
                step_projections.append(_project(source, weights[node - 1], dtype))  # [c_i, ĥ_i]
                kernels.node_forward(
                    source, step_projections[-1], graph.codes[node], plan.norms[t][node], plan.statistics[t, node],
                    step_states[graph.slots[node]],
                )  # fmt: skip
            torch.mean(step_states[averaged], dim=0, out=outputs[t].transpose(0, 1))  # h_t (eq. 6)
            projections.append(step_projections)
            saved_inputs.append(saved)
        ctx.plan, ctx.graph = plan, graph
        # outputs may be the returned tensor itself (not aligned): keeping it on ctx would make a
        # reference cycle (output → grad_fn → ctx → output) that only the cycle collector frees —
        # a sweep's activations piling up step after step. A detached alias shares the memory.
        ctx.internals = (outputs.detach(), states, projections, saved_inputs)
        ctx.save_for_backward(initial, hidden_weight, *parameters)
        return _sweep_output(plan, outputs)

    @staticmethod
    @once_differentiable  # first-order DARTS needs no second derivatives; asking for one raises
    def backward(ctx, grad_output: Tensor):
        plan, graph = ctx.plan, ctx.graph
        outputs, states, projections, saved_inputs = ctx.internals
        initial, hidden_weight, *parameters = ctx.saved_tensors
        count = len(graph.predecessors)
        weights, gammas = parameters[:count], parameters[count : 2 * count + 1]
        needs = ctx.needs_input_grad  # plan, graph, initial, x_parts, hidden_weight, *weights, *gammas, *betas
        kernels, dtype = plan.kernels, plan.matmul_dtype
        steps, (_, batch, size) = len(projections), initial.shape
        gradients = _output_gradients(plan, grad_output)  # h_t's gradients, then each h_{t−1}'s added as found
        grads = initial.new_empty(count + 1, 2, batch, size)  # one step's node-state gradients
        written = [False] * (count + 1)
        grad_projection = initial.new_empty(2, batch, 2 * size)
        grad_x_parts = initial.new_empty(steps, 2, batch, 2 * size)  # = the input projections' gradients
        grad_hidden = torch.zeros_like(hidden_weight) if needs[4] else None
        grad_weights = initial.new_zeros(count, *weights[0].shape) if count and any(needs[5 : 5 + count]) else None
        affine = [gamma is not None for gamma in gammas]
        affine_grads = initial.new_zeros(2, count + 1, 2 * size) if any(affine) else None  # dγ, dβ per node
        grad_initial = torch.empty_like(initial) if needs[2] else None
        scratch = torch.empty_like(initial)
        averaged, share = set(graph.averaged), 1.0 / len(graph.averaged)
        for t in range(steps - 1, -1, -1):
            grad_output_t = gradients[t].transpose(0, 1)
            step_states, step_projections = states[t], projections[t]
            written[:] = [False] * (count + 1)
            for node in range(count, 0, -1):
                direct = grad_output_t if node in averaged else None
                if direct is None and not written[node]:  # the node feeds nothing: no gradients (zero)
                    continue
                predecessor, weight = graph.predecessors[node - 1], weights[node - 1]
                source = step_states[graph.slots[predecessor]]
                kernels.node_backward(
                    direct, share, grads[node] if written[node] else None, source, step_projections[node],
                    graph.codes[node], gammas[node], plan.norms[t][node].batch_stats, plan.statistics[t, node],
                    grads[predecessor], written[predecessor], grad_projection,
                    affine_grads=(affine_grads[0, node], affine_grads[1, node]) if affine[node] else None,
                )  # fmt: skip
                written[predecessor] = True
                if weight.shape[0] == 1:  # shared by both directions: one matmul over the 2B rows
                    rows = grad_projection.view(-1, grad_projection.shape[-1])
                    _add_matmul_(grads[predecessor].view(-1, size), rows, weight[0].t(), dtype)
                    if grad_weights is not None:
                        _add_matmul_(grad_weights[node - 1, 0], source.reshape(-1, size).t(), rows, dtype)
                else:
                    _add_matmul_(grads[predecessor], grad_projection, weight.transpose(1, 2), dtype)
                    if grad_weights is not None:
                        _add_matmul_(grad_weights[node - 1], source.transpose(1, 2), grad_projection, dtype)
            previous = _previous(initial, outputs, t)
            grad_previous = _grad_of_previous(t, gradients, grad_initial, scratch)
            direct = grad_output_t if 0 in averaged else None
            if direct is None and not written[0]:  # node 0 feeds nothing
                grad_x_parts[t].zero_()
                if t == 0 and grad_initial is not None:
                    grad_initial.zero_()
            else:
                kernels.node_backward(
                    direct, share, grads[0] if written[0] else None, previous, step_projections[0], graph.codes[0],
                    gammas[0], plan.norms[t][0].batch_stats, plan.statistics[t, 0], grad_previous, t > 0,
                    grad_x_parts[t], affine_grads=(affine_grads[0, 0], affine_grads[1, 0]) if affine[0] else None,
                )  # fmt: skip
            if plan.hidden is not None:
                wanted = grad_previous if (t > 0 or grad_initial is not None) else None
                _input_backward(plan, t, saved_inputs[t], hidden_weight, grad_x_parts[t], wanted, grad_hidden)
        grad_gammas = [affine_grads[0, node] if keep else None for node, keep in enumerate(affine)]
        grad_betas = [affine_grads[1, node] if keep else None for node, keep in enumerate(affine)]
        return (
            None, None, grad_initial, grad_x_parts if needs[3] else None, grad_hidden,
            *(None if grad_weights is None else grad_weights[node] for node in range(count)),
            *grad_gammas, *grad_betas,
        )  # fmt: skip


def _derived_graph(activations: Sequence[str], predecessors: Sequence[int], concat: Sequence[int]) -> _DerivedGraph:
    nodes = len(predecessors) + 1
    averaged = sorted(concat)
    order = [node for node in range(nodes) if node not in set(averaged)] + averaged
    slots = [order.index(node) for node in range(nodes)]
    codes = [ACTIVATION_CODES["tanh"], *(ACTIVATION_CODES[name] for name in activations)]
    return _DerivedGraph(codes=codes, predecessors=list(predecessors), averaged=averaged, slots=slots)


def fused_derived_sweep(
    kernels: KernelBackend,
    initial: Tensor,
    x_parts: Tensor,
    hidden_weight: Tensor | None,
    hidden: HiddenInput | None,
    activations: Sequence[str],
    predecessors: Sequence[int],
    concat: Sequence[int],
    node_weights: Sequence[Tensor],
    norms: Sequence[DirectionalBatchNorm],
    first_slot: int = 0,
    aligned: bool = True,
) -> Tensor:
    """T steps of a derived DARTS cell as ONE autograd node over a backend's kernels (paper eq. 3–6).

    The backward pass runs the steps in reverse and accumulates in place: every weight's and
    BatchNorm parameter's gradient in one buffer, each h_{t−1}'s gradient into the running sum
    that already holds the output's — no per-step gradient sums, stacks or copies.

    Args:
        kernels: the backend's kernels (:func:`dartsrenet.cells.backends.kernels`).
        initial: h_{−1}, (2, B, h).
        x_parts: (T, 2, B, 2h): with ``hidden``, x_t's share of the input node's projection;
            without, the whole projection [c_0, ĥ_0] of each step.
        hidden_weight: W_h, (2, h, 2h) or per step (T, 2, h, 2h); ``None`` without ``hidden``.
        hidden: how h_{t−1} enters the input node (:class:`HiddenInput`).
        activations: f_1 … f_n by name.
        predecessors: p_1 … p_n.
        concat: the averaged nodes.
        node_weights: W_1 … W_n, each (D, h, 2h) (D = 1: shared by both directions).
        norms: the n + 1 node BatchNorms (:class:`~dartsrenet.cells.DirectionalBatchNorm`).
        first_slot: the statistics slot of step 0 (step t uses first_slot + t).
        aligned: return (T, B, 2h) ``[forward ‖ backward]`` re-aligned as
            :meth:`~dartsrenet.cells.base.BidirectionalCell.sweep` does; else the h_t, (T, B, 2, h).

    Returns:
        The sweep's output; in training mode the norms' running statistics of the steps'
        slots are updated.
    """
    check_kernel_inputs(kernels.name, initial, x_parts[0], norms)
    steps, count = x_parts.shape[0], len(predecessors)
    plan = _plan(
        kernels, initial, steps, hidden, aligned,
        [[_norm_arguments(norm, first_slot + t) for norm in norms] for t in range(steps)], norms[0].num_features, count,
    )  # fmt: skip
    graph = _derived_graph(activations, predecessors, concat)
    gammas, betas = [norm.weight for norm in norms], [norm.bias for norm in norms]
    output = _FusedDerivedSweep.apply(
        plan, graph, initial, x_parts.to(initial.dtype), hidden_weight, *node_weights, *gammas, *betas
    )
    statistics = plan.statistics.transpose(0, 1)  # (n + 1, T, 3, 2h)
    record_together(norms, first_slot, statistics[:, :, 0], statistics[:, :, 1], initial.shape[1], biased=True)
    return output


def fused_derived_step(
    kernels: KernelBackend,
    previous: Tensor,
    projection: Tensor,
    activations: Sequence[str],
    predecessors: Sequence[int],
    concat: Sequence[int],
    node_weights: Sequence[Tensor],
    norms: Sequence[DirectionalBatchNorm],
    slot: int,
) -> Tensor:
    """One step of a derived DARTS cell (:func:`fused_derived_sweep` of one step from h_{t−1}).

    Args:
        previous: h_{t−1}, (2, B, h).
        projection: the input node's [c_0, ĥ_0], (2, B, 2h).
        slot: the step t (statistics slot).
        The others: as :func:`fused_derived_sweep`.

    Returns:
        h_t, (2, B, h), stored batch-major; in training mode the norms' running statistics
        of ``slot`` are updated.
    """
    output = fused_derived_sweep(
        kernels, previous, projection.unsqueeze(0), None, None, activations, predecessors, concat, node_weights, norms,
        slot, aligned=False,
    )  # fmt: skip
    return output[0].transpose(0, 1)


# --- the search cell --------------------------------------------------------------------------
class _FusedSearchSweep(torch.autograd.Function):
    """All T steps of the search cell (paper eq. 7–8) from h_{−1} and the input node's x-parts."""

    @staticmethod
    @torch.autocast("cpu", enabled=False)  # the matmuls' dtype is explicit (plan.matmul_dtype)
    @torch.autocast("cuda", enabled=False)
    def forward(ctx, plan: _SweepPlan, initial: Tensor, x_parts: Tensor, hidden_weight: Tensor | None, mixing: Tensor,
                *weights: Tensor) -> Tensor:  # fmt: skip
        nodes, steps, kernels, dtype = len(weights), x_parts.shape[0], plan.kernels, plan.matmul_dtype
        _, batch, size = initial.shape
        outputs = initial.new_empty(steps, batch, 2, size)  # h_t, batch-major
        states = initial.new_empty(steps, 2, nodes + 1, batch, size)  # s_0 … s_n of every step, after their BatchNorms
        projections, saved_inputs = [], []
        for t in range(steps):
            previous = _previous(initial, outputs, t)
            projection, saved = _input_forward(plan, t, x_parts, previous, hidden_weight)
            step_states, step_projections, first_edge = states[t], [projection], 0
            kernels.node_forward(
                previous, projection, ACTIVATION_CODES["tanh"], plan.norms[t][0], plan.statistics[t, 0], step_states[:, 0]
            )  # fmt: skip
            for node in range(1, nodes + 1):
                sources = step_states[:, :node]  # (2, i, B, h), a view
                flat = sources.view(2, node * batch, size)  # a view: (i, B) are contiguous within a direction
                step_projections.append(_matmul(flat, _directions(weights[node - 1]), dtype).view(2, node, batch, 2 * size))
                kernels.mixed_forward(
                    sources, step_projections[-1], mixing[first_edge : first_edge + node], plan.norms[t][node],
                    plan.statistics[t, node], step_states[:, node],
                )  # fmt: skip
                first_edge += node
            torch.mean(step_states[:, 1:], dim=1, out=outputs[t].transpose(0, 1))  # h_t = mean of s_1 … s_n
            projections.append(step_projections)
            saved_inputs.append(saved)
        ctx.plan = plan
        # outputs may be the returned tensor itself (not aligned): keeping it on ctx would make a
        # reference cycle (output → grad_fn → ctx → output) that only the cycle collector frees —
        # a sweep's activations piling up step after step. A detached alias shares the memory.
        ctx.internals = (outputs.detach(), states, projections, saved_inputs)
        ctx.save_for_backward(initial, hidden_weight, mixing, *weights)
        return _sweep_output(plan, outputs)

    @staticmethod
    @once_differentiable  # first-order DARTS needs no second derivatives; asking for one raises
    def backward(ctx, grad_output: Tensor):
        plan = ctx.plan
        outputs, states, projections, saved_inputs = ctx.internals
        initial, hidden_weight, mixing, *weights = ctx.saved_tensors
        needs = ctx.needs_input_grad  # plan, initial, x_parts, hidden_weight, mixing, *weights
        nodes, kernels, dtype = len(weights), plan.kernels, plan.matmul_dtype
        steps, (_, batch, size) = len(projections), initial.shape
        gradients = _output_gradients(plan, grad_output)  # h_t's gradients, then each h_{t−1}'s added as found
        grads = initial.new_empty(2, nodes + 1, batch, size)  # one step's node-state gradients
        grad_projections = initial.new_empty(2, nodes, batch, 2 * size)  # node i's in [:, :i]
        grad_x_parts = initial.new_empty(steps, 2, batch, 2 * size)  # = the input projections' gradients
        grad_hidden = torch.zeros_like(hidden_weight) if needs[3] else None
        grad_weights = initial.new_zeros(nodes, 2, size, 2 * size) if any(needs[5:]) else None  # per direction
        mixing_grads = kernels.mixing_gradients(batch, size, len(mixing), initial) if needs[4] else None
        grad_initial = torch.empty_like(initial) if needs[1] else None
        scratch, rows_scratch = torch.empty_like(initial), initial.new_empty(batch * 2 * size)
        for t in range(steps - 1, -1, -1):
            step_states, step_projections = states[t], projections[t]
            grads[:, 0].zero_()
            torch.div(gradients[t].transpose(0, 1).unsqueeze(1).expand(2, nodes, batch, size), nodes, out=grads[:, 1:])
            for node in range(nodes, 0, -1):
                first_edge = node * (node - 1) // 2
                edges = slice(first_edge, first_edge + node)
                sources, grad_sources = step_states[:, :node], grads[:, :node]
                grad_projection = grad_projections[:, :node]
                kernels.mixed_backward(
                    grads[:, node], step_states[:, node], sources, step_projections[node], mixing[edges],
                    plan.norms[t][node].batch_stats, plan.statistics[t, node], rows_scratch, grad_sources,
                    grad_projection, weight_grads=None if mixing_grads is None else mixing_grads[..., edges, :],
                )  # fmt: skip
                flat_projection = grad_projection.view(2, node * batch, 2 * size)
                weight = _directions(weights[node - 1])
                _add_matmul_(grad_sources.view(2, node * batch, size), flat_projection, weight.transpose(1, 2), dtype)
                if grad_weights is not None:
                    flat_sources = sources.view(2, node * batch, size)
                    _add_matmul_(grad_weights[node - 1], flat_sources.transpose(1, 2), flat_projection, dtype)
            previous = _previous(initial, outputs, t)
            grad_previous = _grad_of_previous(t, gradients, grad_initial, scratch)
            kernels.node_backward(
                grads[:, 0], 1.0, None, previous, step_projections[0], ACTIVATION_CODES["tanh"], None,
                plan.norms[t][0].batch_stats, plan.statistics[t, 0], grad_previous, t > 0, grad_x_parts[t],
            )  # fmt: skip
            if plan.hidden is not None:
                wanted = grad_previous if (t > 0 or grad_initial is not None) else None
                _input_backward(plan, t, saved_inputs[t], hidden_weight, grad_x_parts[t], wanted, grad_hidden)
        grad_mixing = None if mixing_grads is None else kernels.total_mixing_gradient(mixing_grads)
        grad_node_weights = [None] * nodes
        if grad_weights is not None:
            grad_node_weights = [
                grad.sum(0, keepdim=True) if weight.shape[0] == 1 else grad for grad, weight in zip(grad_weights, weights)
            ]
        return None, grad_initial, grad_x_parts if needs[2] else None, grad_hidden, grad_mixing, *grad_node_weights


def fused_search_sweep(
    kernels: KernelBackend,
    initial: Tensor,
    x_parts: Tensor,
    hidden_weight: Tensor | None,
    hidden: HiddenInput | None,
    mixing: Tensor,
    node_weights: Sequence[Tensor],
    norm: DirectionalBatchNorm,
    first_slot: int = 0,
    aligned: bool = True,
) -> Tensor:
    """T steps of the search cell as ONE autograd node over a backend's kernels (paper eq. 7–8).

    As :func:`fused_derived_sweep`; the mixing weights' gradient, too, is accumulated in one
    buffer over all steps and nodes.

    Args:
        mixing: softmax(α) over all primitives without the ``none`` column, (edges, 4),
            columns in the order of :data:`~dartsrenet.kernels.protocol.SEARCH_PRIMITIVES`.
        node_weights: W_1 … W_n, each (D, h, 2h).
        norm: the shared affine-free node BatchNorm.
        first_slot: the first statistics slot of step 0; step t uses first_slot + t·(n + 1) + node.
        The others: as :func:`fused_derived_sweep`.
    """
    check_kernel_inputs(kernels.name, initial, x_parts[0], [norm])
    steps, nodes = x_parts.shape[0], len(node_weights)
    plan = _plan(
        kernels, initial, steps, hidden, aligned,
        [[_norm_arguments(norm, first_slot + t * (nodes + 1) + node) for node in range(nodes + 1)] for t in range(steps)],
        norm.num_features, nodes,
    )  # fmt: skip
    output = _FusedSearchSweep.apply(
        plan, initial, x_parts.to(initial.dtype), hidden_weight, mixing.to(initial.dtype).contiguous(), *node_weights
    )
    statistics = plan.statistics.view(1, steps * (nodes + 1), 3, -1)  # one norm, a row per slot
    record_together([norm], first_slot, statistics[:, :, 0], statistics[:, :, 1], initial.shape[1], biased=True)
    return output


def fused_search_step(
    kernels: KernelBackend, previous: Tensor, projection: Tensor, mixing: Tensor, node_weights: Sequence[Tensor],
    norm: DirectionalBatchNorm, slot: int,
) -> Tensor:
    """One step of the search cell (:func:`fused_search_sweep` of one step from h_{t−1}).

    Args:
        previous: h_{t−1}, (2, B, h).
        projection: the input node's [c_0, ĥ_0], (2, B, 2h).
        slot: the first of the step's n + 1 statistics slots, t·(n + 1).
        The others: as :func:`fused_search_sweep`.

    Returns:
        h_t, (2, B, h), stored batch-major; in training mode the norm's running statistics of
        the step's slots are updated.
    """
    output = fused_search_sweep(
        kernels, previous, projection.unsqueeze(0), None, None, mixing, node_weights, norm, slot, aligned=False
    )
    return output[0].transpose(0, 1)