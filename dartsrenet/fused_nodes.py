"""DARTS nodes with their BatchNorms as fused operations (paper eq. 3–8): the ``native`` backend's
C kernels, and the one-autograd-node time steps that the ``native`` and ``triton`` backends share.

A node and its BatchNorm, ``norm(s + σ(c) ⊙ (f(ĥ) − s), slot)`` with [c, ĥ] = s·W, is
one kernel forward and one backward (here ``csrc/node_kernels.c``, built by
:mod:`dartsrenet.native`; :mod:`dartsrenet.triton_nodes` for CUDA, with the same
signatures): two passes over memory each way where eager PyTorch makes a dozen forward
and two dozen backward, and nothing is saved for the backward pass but the projection,
which it recomputes g, f(ĥ) and the normalised state from.

Each cell runs one time step as one autograd node, so no per-node autograd bookkeeping,
gradient sums or stacks remain: its backward pass accumulates every state's gradient in
place (the node matmuls' input gradients with ``baddbmm_``). The matmuls stay in
PyTorch (oneDNN/MKL on the CPU, cuBLAS on CUDA).

* :func:`fused_derived_step` — a derived cell: the input node, the eight nodes with their
  BatchNorms and the average h_t (eq. 3–6).
* :func:`fused_search_step` — the search cell: the input node and the eight mixed nodes of
  eq. 8 with the shared affine-free BatchNorm (a second kernel, ``mixed_forward``, computes
  a node's whole mixture over predecessors and primitives, and α's gradient).

Both take the backend's kernel module as their first argument; the cells call them when
their backend (:mod:`dartsrenet.cells.backends`) is ``native`` or ``triton``, which
covers float32/float64 and the activations tanh, relu, sigmoid and identity; under
autocast the steps' matmuls run in bf16 (or fp16 on CUDA) and the kernels in float32
(:func:`autocast_matmul_dtype`). ``tests/test_fused_nodes.py``,
``tests/test_kernel_extremes.py`` and ``tests/test_reference_oracle.py`` check them against
the eager backend and the oracle: values, gradients and running statistics.

States inside the fused step are (2, B, h) direction-major and contiguous, projections
(2, B, 2h): the layouts the batched matmuls run fastest on.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dartsrenet import native
from dartsrenet.cells.norms import record_together

ACTIVATION_CODES = {"tanh": 0, "relu": 1, "sigmoid": 2, "identity": 3}
"""The activations the kernels know, by name, with their codes in node_kernels.c."""


def _pointer(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _kernel(name: str, dtype: torch.dtype):
    return getattr(native.library(), name + ("_f32" if dtype == torch.float32 else "_f64"))


def _check(status: int, name: str) -> None:
    if status != 0:
        raise MemoryError(f"{name}: out of memory")


@dataclass
class NormArguments:
    """What the kernels need of one :class:`~dartsrenet.cells.DirectionalBatchNorm` at one slot."""

    weight: Tensor | None
    bias: Tensor | None
    batch_stats: bool
    running_mean: Tensor | None  # the slot's statistics, eval mode only
    running_var: Tensor | None
    eps: float

    @classmethod
    def of(cls, norm, slot: int) -> NormArguments:
        batch_stats = norm.uses_batch_statistics()
        mean, var = (None, None) if batch_stats else norm.slot_statistics(slot)
        return cls(norm.weight, norm.bias, batch_stats, mean, var, norm.eps)


def node_forward(
    source: Tensor, projection: Tensor, code: int, norm: NormArguments, statistics: Tensor, out: Tensor | None = None
) -> Tensor:
    """y = BN(s + σ(c) ⊙ (f(ĥ) − s)), into ``out`` or a new (2, B, h) tensor.

    ``statistics`` (3, 2h) receives the mean, biased variance and 1/√(var + ε) used.
    """
    _, rows, hidden = source.shape
    out = source.new_empty(2, rows, hidden) if out is None else out
    mean, var, invstd = statistics.unbind(0)
    status = _kernel("node_forward", source.dtype)(
        projection.data_ptr(), projection.stride(0), projection.stride(1),
        source.data_ptr(), source.stride(0), source.stride(1),
        rows, hidden, code,
        _pointer(norm.weight), _pointer(norm.bias),
        int(norm.batch_stats), _pointer(norm.running_mean), _pointer(norm.running_var), norm.eps,
        out.data_ptr(), out.stride(0), out.stride(1),
        mean.data_ptr(), var.data_ptr(), invstd.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    _check(status, "node_forward")
    return out


def _strides(tensor: Tensor | None) -> tuple[int, int]:
    return (0, 0) if tensor is None else (tensor.stride(0), tensor.stride(1))


def _inner_contiguous(tensor: Tensor | None) -> Tensor | None:
    return tensor if tensor is None or tensor.stride(-1) == 1 else tensor.contiguous()


def node_backward(
    grad: Tensor | None,
    grad_scale: float,
    extra: Tensor | None,
    source: Tensor,
    projection: Tensor,
    code: int,
    weight: Tensor | None,
    batch_stats: bool,
    statistics: Tensor,
    grad_state: Tensor,
    accumulate: bool,
    grad_projection: Tensor,
) -> tuple[Tensor, Tensor]:
    """Backward of :func:`node_forward` for dy = grad_scale·grad + extra (either may be ``None``).

    Writes (or adds to) ``grad_state``, writes ``grad_projection``; returns (dγ, dβ).
    """
    _, rows, hidden = source.shape
    grad, extra = _inner_contiguous(grad), _inner_contiguous(extra)
    grad_weight, grad_bias = source.new_empty(2 * hidden), source.new_empty(2 * hidden)
    mean, _, invstd = statistics.unbind(0)
    status = _kernel("node_backward", source.dtype)(
        _pointer(grad), *_strides(grad), grad_scale,
        _pointer(extra), *_strides(extra),
        projection.data_ptr(), projection.stride(0), projection.stride(1),
        source.data_ptr(), source.stride(0), source.stride(1),
        rows, hidden, code,
        _pointer(weight), mean.data_ptr(), invstd.data_ptr(), int(batch_stats),
        grad_state.data_ptr(), grad_state.stride(0), grad_state.stride(1), int(accumulate),
        grad_projection.data_ptr(), grad_projection.stride(0), grad_projection.stride(1),
        grad_weight.data_ptr(), grad_bias.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    _check(status, "node_backward")
    return grad_weight, grad_bias


def mean_of_states(states: Sequence[Tensor]) -> Tensor:
    """The mean of contiguous tensors of one shape, in one pass."""
    out = torch.empty_like(states[0])
    pointers = (ctypes.c_void_p * len(states))(*(state.data_ptr() for state in states))
    _kernel("mean_of_states", out.dtype)(pointers, len(states), out.numel(), out.data_ptr(), torch.get_num_threads())
    return out


def _record(norm, first_slot: int, statistics: Tensor, batch_size: int) -> None:
    """Training mode: fold the batch statistics the kernels used into ``norm``'s running statistics.

    ``statistics`` (n, 3, 2h): per slot first_slot … first_slot + n − 1, the mean, biased
    variance and 1/σ as the kernels wrote them.
    """
    if norm.training and norm.track_running_stats:
        norm.record(first_slot, statistics[:, 0], statistics[:, 1], batch_size, biased=True)


# --- one step of a derived cell --------------------------------------------------------
@dataclass
class _StepPlan:
    """The constants of one derived-cell step: the genotype as codes, the norms at slot t."""

    kernels: ModuleType  # node_forward, node_backward, mean_of_states of the backend
    codes: list[int]  # node 0 (tanh) … node n
    predecessors: list[int]  # of nodes 1 … n
    concat: list[int]
    norms: list[NormArguments]
    statistics: Tensor  # (n + 1, 3, 2h), filled by the forward pass
    matmul_dtype: torch.dtype | None  # bf16 under CPU autocast


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


class _FusedDerivedStep(torch.autograd.Function):
    """h_t of a derived cell from h_{t−1} and the input node's projection (paper eq. 3–6)."""

    @staticmethod
    @torch.autocast("cpu", enabled=False)  # the matmuls' dtype is explicit (plan.matmul_dtype)
    @torch.autocast("cuda", enabled=False)
    def forward(ctx, plan: _StepPlan, previous: Tensor, projection: Tensor, *parameters: Tensor) -> Tensor:
        count = len(plan.predecessors)
        weights = parameters[:count]
        statistics, kernels = plan.statistics, plan.kernels
        states = [kernels.node_forward(previous, projection, plan.codes[0], plan.norms[0], statistics[0])]
        projections = [projection]
        for node, predecessor in enumerate(plan.predecessors, start=1):
            projections.append(_project(states[predecessor], weights[node - 1], plan.matmul_dtype))  # [c_i, ĥ_i]
            states.append(
                kernels.node_forward(states[predecessor], projections[-1], plan.codes[node], plan.norms[node], statistics[node])
            )
        output = kernels.mean_of_states([states[node] for node in plan.concat])  # h_t (eq. 6)
        ctx.plan = plan
        ctx.save_for_backward(previous, *states, *projections, *weights, *(norm.weight for norm in plan.norms))
        return output

    @staticmethod
    @once_differentiable  # first-order DARTS needs no second derivatives; asking for one raises
    def backward(ctx, grad_output: Tensor):
        plan = ctx.plan
        count = len(plan.predecessors)
        saved = ctx.saved_tensors
        previous, states = saved[0], saved[1 : count + 2]
        projections = saved[count + 2 : 2 * count + 3]
        weights, norm_weights = saved[2 * count + 3 : 3 * count + 3], saved[3 * count + 3 :]
        sources = [previous, *(states[predecessor] for predecessor in plan.predecessors)]
        # a state's gradient: grad_output/len(concat) if it is averaged, plus what its successors add to grads[i]
        averaged, share = set(plan.concat), 1.0 / len(plan.concat)
        grads: list[Tensor | None] = [None] * (count + 1)
        grad_projection = torch.empty_like(projections[1]) if count else None
        grad_weights: list[Tensor | None] = [None] * count
        grad_gammas: list[Tensor | None] = [None] * (count + 1)
        grad_betas: list[Tensor | None] = [None] * (count + 1)
        for node in range(count, 0, -1):
            direct = grad_output if node in averaged else None
            if direct is None and grads[node] is None:  # the node feeds nothing: no gradients (None = zero)
                continue
            predecessor, weight = plan.predecessors[node - 1], weights[node - 1]
            accumulate = grads[predecessor] is not None
            if not accumulate:
                grads[predecessor] = torch.empty_like(states[predecessor])
            grad_gammas[node], grad_betas[node] = plan.kernels.node_backward(
                direct, share, grads[node], sources[node], projections[node], plan.codes[node], norm_weights[node],
                plan.norms[node].batch_stats, plan.statistics[node],
                grads[predecessor], accumulate, grad_projection,
            )  # fmt: skip
            source, dtype = sources[node], plan.matmul_dtype
            if weight.shape[0] == 1:
                rows = grad_projection.view(-1, grad_projection.shape[-1])
                _add_matmul_(grads[predecessor].view(-1, source.shape[-1]), rows, weight[0].t(), dtype)
                grad_weights[node - 1] = _matmul(source.view(-1, source.shape[-1]).t(), rows, dtype).unsqueeze(0)
            else:
                _add_matmul_(grads[predecessor], grad_projection, weight.transpose(1, 2), dtype)
                grad_weights[node - 1] = _matmul(source.transpose(1, 2), grad_projection, dtype)
        direct = grad_output if 0 in averaged else None
        grad_previous = torch.empty_like(previous)
        grad_input_projection = torch.empty_like(projections[0])
        if direct is None and grads[0] is None:
            grad_previous.zero_()
            grad_input_projection.zero_()
        else:
            grad_gammas[0], grad_betas[0] = plan.kernels.node_backward(
                direct, share, grads[0], previous, projections[0], plan.codes[0], norm_weights[0], plan.norms[0].batch_stats,
                plan.statistics[0], grad_previous, False, grad_input_projection,
            )  # fmt: skip
        affine = [norm.weight is not None for norm in plan.norms]
        return (
            None,
            grad_previous,
            grad_input_projection,
            *grad_weights,
            *(grad if keep else None for grad, keep in zip(grad_gammas, affine, strict=True)),
            *(grad if keep else None for grad, keep in zip(grad_betas, affine, strict=True)),
        )


def fused_derived_step(
    kernels: ModuleType,
    previous: Tensor,
    projection: Tensor,
    activations: Sequence[str],
    predecessors: Sequence[int],
    concat: Sequence[int],
    node_weights: Sequence[Tensor],
    norms: Sequence,
    slot: int,
) -> Tensor:
    """One step of a derived DARTS cell as one autograd node over a backend's kernels.

    Args:
        kernels: the backend's kernel module (this module for ``native``, see
            :func:`dartsrenet.cells.backends.kernels`).
        previous: h_{t−1}, (2, B, h).
        projection: the input node's [c_0, ĥ_0], (2, B, 2h).
        activations: f_1 … f_n by name.
        predecessors: p_1 … p_n.
        concat: the averaged nodes.
        node_weights: W_1 … W_n, each (D, h, 2h) (D = 1: shared by both directions).
        norms: the n + 1 node BatchNorms (:class:`~dartsrenet.cells.DirectionalBatchNorm`).
        slot: the step t (statistics slot).

    Returns:
        h_t, (2, B, h), contiguous; in training mode the norms' running statistics of
        ``slot`` are updated.
    """
    count = len(predecessors)
    plan = _StepPlan(
        kernels=kernels,
        codes=[ACTIVATION_CODES["tanh"], *(ACTIVATION_CODES[name] for name in activations)],
        predecessors=list(predecessors),
        concat=list(concat),
        norms=[NormArguments.of(norm, slot) for norm in norms],
        statistics=previous.new_empty(count + 1, 3, norms[0].num_features),
        matmul_dtype=autocast_matmul_dtype(previous.device.type),
    )
    projection = projection.to(previous.dtype)  # a bf16 projection under autocast
    gammas, betas = [norm.weight for norm in norms], [norm.bias for norm in norms]
    output = _FusedDerivedStep.apply(plan, previous, projection, *node_weights, *gammas, *betas)
    record_together(norms, slot, plan.statistics[:, 0], plan.statistics[:, 1], previous.shape[1], biased=True)
    return output


# --- one step of the search cell ---------------------------------------------------------
SEARCH_PRIMITIVES = ("tanh", "relu", "sigmoid", "identity")
"""The non-``none`` primitives the mixed-node kernel knows, in the order of its mixing weights."""


def mixed_forward(
    sources: Tensor, projection: Tensor, weights: Tensor, norm: NormArguments, statistics: Tensor, out: Tensor
) -> None:
    """out = BN(Σ_j Σ_f w_jf · node_update(s_j, σ(c_j), f(ĥ_j))) (eq. 8), BatchNorm without affine parameters.

    Args:
        sources: s_0 … s_{i−1}, (2, i, B, h).
        projection: [c_j, ĥ_j] = s_j·W_i, (2, i, B, 2h).
        weights: w_jf = softmax(α)[j→i, f] for f in :data:`SEARCH_PRIMITIVES`, (i, 4), contiguous.
        norm: the shared node norm at this node's slot.
        statistics: (3, 2h), receives mean, biased variance, 1/σ.
        out: (2, B, h), written.
    """
    _, count, rows, hidden = sources.shape
    mean, var, invstd = statistics.unbind(0)
    status = _kernel("mixed_forward", sources.dtype)(
        projection.data_ptr(), *projection.stride()[:3],
        sources.data_ptr(), *sources.stride()[:3],
        count, rows, hidden, weights.data_ptr(),
        int(norm.batch_stats), _pointer(norm.running_mean), _pointer(norm.running_var), norm.eps,
        out.data_ptr(), out.stride(0), out.stride(1),
        mean.data_ptr(), var.data_ptr(), invstd.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    _check(status, "mixed_forward")


def mixed_backward(
    grad: Tensor, out: Tensor, sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool,
    statistics: Tensor, scratch: Tensor, grad_sources: Tensor, grad_projection: Tensor,
) -> Tensor:  # fmt: skip
    """Backward of :func:`mixed_forward`: adds to ``grad_sources``, writes ``grad_projection``;
    returns the gradient of the mixing weights (i, 4)."""
    _, count, rows, hidden = sources.shape
    grad_weights = torch.empty_like(weights)
    status = _kernel("mixed_backward", sources.dtype)(
        grad.data_ptr(), grad.stride(0), grad.stride(1),
        out.data_ptr(), out.stride(0), out.stride(1),
        projection.data_ptr(), *projection.stride()[:3],
        sources.data_ptr(), *sources.stride()[:3],
        count, rows, hidden, weights.data_ptr(),
        statistics[2].data_ptr(), int(batch_stats), scratch.data_ptr(),
        grad_sources.data_ptr(), *grad_sources.stride()[:3],
        grad_projection.data_ptr(), *grad_projection.stride()[:3],
        grad_weights.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    _check(status, "mixed_backward")
    return grad_weights


def _directions(weight: Tensor) -> Tensor:
    """W as (2, h, 2h): a weight shared by both directions (D = 1) expanded without a copy."""
    return weight.expand(2, *weight.shape[1:])


@dataclass
class _SearchPlan:
    """The constants of one search-cell step: the shared node norm at slots t·(n+1) … t·(n+1)+n."""

    kernels: ModuleType  # node_forward, node_backward, mixed_forward, mixed_backward of the backend
    nodes: int
    norms: list[NormArguments]
    statistics: Tensor  # (n + 1, 3, 2h), filled by the forward pass
    matmul_dtype: torch.dtype | None  # bf16 under CPU autocast


class _FusedSearchStep(torch.autograd.Function):
    """h_t of the search cell from h_{t−1} and the input node's projection (paper eq. 7–8)."""

    @staticmethod
    @torch.autocast("cpu", enabled=False)  # the matmuls' dtype is explicit (plan.matmul_dtype)
    @torch.autocast("cuda", enabled=False)
    def forward(ctx, plan: _SearchPlan, previous: Tensor, projection: Tensor, mixing: Tensor, *weights: Tensor):
        _, rows, hidden = previous.shape
        states = previous.new_empty(2, plan.nodes + 1, rows, hidden)  # s_0 … s_n, after their BatchNorms
        kernels = plan.kernels
        kernels.node_forward(previous, projection, ACTIVATION_CODES["tanh"], plan.norms[0], plan.statistics[0], states[:, 0])
        projections, first_edge = [], 0
        for node in range(1, plan.nodes + 1):
            sources = states[:, :node]  # (2, i, B, h), a view
            flat = sources.view(2, node * rows, hidden)  # a view: (i, B) are contiguous within a direction
            projected = _matmul(flat, _directions(weights[node - 1]), plan.matmul_dtype)
            projections.append(projected.view(2, node, rows, 2 * hidden))
            edges = mixing[first_edge : first_edge + node]
            kernels.mixed_forward(sources, projections[-1], edges, plan.norms[node], plan.statistics[node], states[:, node])
            first_edge += node
        ctx.plan = plan
        ctx.save_for_backward(previous, projection, mixing, states, *projections, *weights)
        return states[:, 1:].mean(dim=1)  # h_t = mean of s_1 … s_n

    @staticmethod
    @once_differentiable  # first-order DARTS needs no second derivatives; asking for one raises
    def backward(ctx, grad_output: Tensor):
        plan = ctx.plan
        previous, projection, mixing, states, *rest = ctx.saved_tensors
        projections, weights = rest[: plan.nodes], rest[plan.nodes :]
        _, rows, hidden = previous.shape
        grads = torch.zeros_like(states)  # each state's gradient, accumulated as later nodes are visited
        grads[:, 1:] = grad_output.unsqueeze(1) / plan.nodes
        grad_mixing = torch.zeros_like(mixing)
        grad_weights: list[Tensor] = [None] * plan.nodes  # type: ignore[list-item]
        scratch = previous.new_empty(rows * 2 * hidden)  # du, row by row
        for node in range(plan.nodes, 0, -1):
            first_edge = node * (node - 1) // 2
            sources, grad_sources = states[:, :node], grads[:, :node]
            grad_projection = torch.empty_like(projections[node - 1])
            grad_mixing[first_edge : first_edge + node] = plan.kernels.mixed_backward(
                grads[:, node], states[:, node], sources, projections[node - 1], mixing[first_edge : first_edge + node],
                plan.norms[node].batch_stats, plan.statistics[node], scratch, grad_sources, grad_projection,
            )  # fmt: skip
            weight = _directions(weights[node - 1])
            flat_projection = grad_projection.view(2, node * rows, 2 * hidden)
            flat_sources = sources.view(2, node * rows, hidden)
            _add_matmul_(grad_sources.view(2, node * rows, hidden), flat_projection, weight.transpose(1, 2), plan.matmul_dtype)
            grad_weight = _matmul(flat_sources.transpose(1, 2), flat_projection, plan.matmul_dtype)
            grad_weights[node - 1] = grad_weight.sum(0, keepdim=True) if weights[node - 1].shape[0] == 1 else grad_weight
        grad_previous, grad_input_projection = torch.empty_like(previous), torch.empty_like(projection)
        plan.kernels.node_backward(
            grads[:, 0], 1.0, None, previous, projection, ACTIVATION_CODES["tanh"], None, plan.norms[0].batch_stats,
            plan.statistics[0], grad_previous, False, grad_input_projection,
        )  # fmt: skip
        return None, grad_previous, grad_input_projection, grad_mixing, *grad_weights


def fused_search_step(
    kernels: ModuleType, previous: Tensor, projection: Tensor, mixing: Tensor, node_weights: Sequence[Tensor], norm, slot: int
) -> Tensor:
    """One step of the search cell as one autograd node over a backend's kernels.

    Args:
        kernels: the backend's kernel module (see :func:`fused_derived_step`).
        previous: h_{t−1}, (2, B, h).
        projection: the input node's [c_0, ĥ_0], (2, B, 2h).
        mixing: softmax(α) over all primitives without the ``none`` column, (edges, 4),
            columns in the order of :data:`SEARCH_PRIMITIVES`.
        node_weights: W_1 … W_n, each (D, h, 2h).
        norm: the shared affine-free node BatchNorm.
        slot: the first of the step's n + 1 statistics slots, t·(n + 1).

    Returns:
        h_t, (2, B, h), contiguous; in training mode the norm's running statistics of the
        step's slots are updated.
    """
    nodes = len(node_weights)
    plan = _SearchPlan(
        kernels=kernels,
        nodes=nodes,
        norms=[NormArguments.of(norm, slot + node) for node in range(nodes + 1)],
        statistics=previous.new_empty(nodes + 1, 3, norm.num_features),
        matmul_dtype=autocast_matmul_dtype(previous.device.type),
    )
    projection = projection.to(previous.dtype)  # a bf16 projection under autocast
    output = _FusedSearchStep.apply(plan, previous, projection, mixing.to(previous.dtype).contiguous(), *node_weights)
    _record(norm, slot, plan.statistics, previous.shape[1])
    return output
