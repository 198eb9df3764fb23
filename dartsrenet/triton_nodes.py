"""DARTS nodes with their BatchNorms as Triton kernels: the GPU backend of the fused sweeps (paper eq. 5–8).

The same operations, with the same signatures and semantics, as the C kernels' wrappers
in :mod:`dartsrenet.fused_nodes` (``csrc/node_kernels_body.h`` spells out the maths both
implement):

* :func:`node_forward` / :func:`node_backward` — one node of a derived cell (eq. 5) and
  its BatchNorm, y = BN(s + σ(c) ⊙ (f(ĥ) − s)), and the gradients;
* :func:`mixed_forward` / :func:`mixed_backward` — one node of the search cell (eq. 8):
  the mixture over its i predecessors and the primitives tanh, relu, sigmoid, identity,
  then an affine-free BatchNorm; the backward pass also returns the gradient of the
  mixing weights;
* :func:`mean_of_states` — h_t, the mean of the averaged nodes (eq. 6).

A fused sweep (:func:`~dartsrenet.fused_nodes.fused_search_sweep`) runs every time step in
one autograd node, so the backward kernels can add dγ, dβ and the mixing weights'
gradient to one buffer for the whole sweep (``affine_grads``, ``weight_grads``;
:func:`mixing_gradients`) instead of returning them step by step.

How the work is laid out. A node's BatchNorm normalises each of its 2h features
[forward ‖ backward] over the whole batch, so a program owns a block of feature columns
of one direction for *all* B rows: its statistics are local, and every node is ONE launch
each way, on a grid of 2 × ⌈h / columns⌉ × r programs (:func:`layout`). Where no
batch-wide reduction has to come first, the rows are split into r ranges side by side
(:func:`row_splits`): the backward passes' second pass (each range redoes the first pass's
reductions over all rows, in the same order) and forward passes with running statistics;
the search node's backward pass also runs one program per predecessor (the grid's third
axis is predecessor × range). ``benchmarks/README.md`` ("Filling the GPU") gives the
reasoning and the grid at the paper's sizes. The forward pass
loops over blocks of rows twice: pass 1 computes the node's update u, writes it to
``out`` and folds each block's column means and sums of squared deviations into running
ones (Chan, Golub and LeVeque's pairwise update: no E[u²] − E[u]² cancellation, so
float32 sums match PyTorch to round-off even for states of size 1e3 with a small
spread); pass 2 normalises ``out`` in place. The backward pass likewise: pass 1 the
reductions Σdy and Σdy·x̂, pass 2 the gradients, recomputing σ(c), f(ĥ) and x̂ from the
projection and the state as the C kernels do (nothing else is saved). The search node's
backward pass writes (or adds to) the mixing weights' gradient as partial sums per program
and predecessor that one ``torch.sum`` adds up — once per step, or once per sweep when accumulated
(deterministic: no atomics).

Maths. σ(x) = 1/(1 + e) for x ≥ 0 and e/(1 + e) below, with e = exp(−|x|) ≤ 1: it never
overflows, is exact at ±inf and keeps NaN. tanh(x) = ±(1 − 2/(exp(2|x|) + 1)) for
|x| ≥ 0.4 (exactly ±1 once exp overflows) and its Taylor series to x²⁷ below (truncation
error < 2·10⁻¹⁷ relative, so float64 is as exact as float32). relu is x < 0 ? 0 : x,
which keeps NaN. Divisions and the BatchNorm's square root are IEEE-rounded. On a GPU,
``tl.exp`` is the hardware's approximate exp2 (a few ulp, growing to ~10⁻⁵ relative for σ
at |x| ≈ 88; the C kernels use libm): Triton's libdevice ``exp``/``tanh`` would be more
accurate but cannot run under Triton's interpreter, and this module runs the code its
tests check.

Each operation is a PyTorch custom op, ``torch.ops.dartsrenet.triton_*`` (registered with
:func:`torch.library.triton_op`), so ``torch.compile`` and CUDA-graph capture see one op
per kernel (the accumulating backward passes are ``triton_node_backward_accumulate`` and
``triton_mixed_backward_accumulate``); the functions below are the fused sweeps' interface
to them. Triton is
optional: importing this module never imports it, the first call does
(:func:`triton_available` says whether it is installed). The kernels are compiled for CUDA
tensors, or run on the CPU by Triton's interpreter when ``TRITON_INTERPRET=1`` is set
before the first call (how ``tests/test_triton_kernels.py`` checks them against eager
PyTorch); which of the two is fixed by that first call. (The device code uses none of the
``triton.jit`` functions of Triton's own library, such as ``tl.sum``: those are compiled or
interpreted as set when triton was first imported — ``torch._dynamo`` imports it.)

Supported: float32 and float64 (all tensors of a call in one dtype); states (2, B, h) and
projections (2, B, 2h) (search nodes: (2, i, B, ·)) with any strides but a contiguous
last axis. A batch of one with batch statistics gives zero variance (PyTorch refuses it;
the fused steps never ask for it).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence

import torch
from torch import Tensor

from dartsrenet.fused_nodes import ACTIVATION_CODES, NormArguments

# Block sizes and grid axes, chosen by reasoning (benchmarks/README.md, "Filling the GPU"): not
# yet timed on a GPU.
MAX_TILE = 1024
"""Most elements of the (rows × columns) block one program holds at a time: with 4 warps, 8
per thread for each of the ~15 block-sized values the search node's backward pass keeps live."""

MAX_COLUMNS = 8
"""Most feature columns per program: 8 float32 values are one 32-byte memory sector, the
narrowest block that still reads whole sectors; narrower blocks make more programs
(2·⌈h/columns⌉: 16 for the search cell's h = 64, 32 for the evaluation cell's h = 128)."""

MIN_ROWS_PER_SPLIT = 128
"""A kernel whose rows need no batch-wide reduction before they are written splits them over
programs (:func:`row_splits`), each range at least this many rows."""

MAX_ROW_SPLITS = 4
"""Most row ranges per column block (4 × 128 = the 512 rows of a paper-size first layer)."""

STATES_PER_LAUNCH = 8
""":func:`mean_of_states` adds up to this many states per launch (a cell averages at most 9)."""

DTYPES = (torch.float32, torch.float64)

tl = None  # triton.language, bound by _load() (the device functions below use it)


def triton_available() -> bool:
    """Whether Triton is installed (the kernels then run on CUDA tensors, or anywhere with ``TRITON_INTERPRET=1``)."""
    return importlib.util.find_spec("triton") is not None


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def tile_shape(rows: int, hidden: int) -> tuple[int, int]:
    """(rows, columns) of the block a program holds: powers of two, at most :data:`MAX_TILE` elements."""
    columns = min(_next_power_of_2(hidden), MAX_COLUMNS)
    return min(_next_power_of_2(rows), max(1, MAX_TILE // columns)), columns


def row_splits(rows: int) -> int:
    """How many row ranges (a grid axis) a kernel splits ``rows`` into where it may: the backward
    passes' second pass (every program redoes the cheap first pass over all rows, so the
    reductions stay local and in one fixed order) and the forward passes with running statistics.
    A forward pass with batch statistics never splits: its BatchNorm needs every row first."""
    return max(1, min(MAX_ROW_SPLITS, rows // MIN_ROWS_PER_SPLIT))


def layout(rows: int, hidden: int, splits: bool = True) -> tuple[int, int, int]:
    """(block rows, block columns, row splits) of a node kernel on (2, ``rows``, ``hidden``) states."""
    return (*tile_shape(rows, hidden), row_splits(rows) if splits else 1)


# --- device code ----------------------------------------------------------------------
# Plain functions here. On the first call, _load() makes each a triton.jit function under
# the same module-level name (Triton resolves the calls between them by those names), so
# importing this module needs no Triton and the interpreter setting is read at first use.
# Activation codes as fused_nodes.ACTIVATION_CODES: tanh 0, relu 1, sigmoid 2, identity 3.


def _add(a, b):
    return a + b


def _sum(x, axis: tl.constexpr):
    """x summed over ``axis`` (what ``tl.sum`` does for floats; that one is a ``triton.jit`` function of
    Triton's library, compiled or interpreted as Triton was first imported, which this module does not
    control: it may not run in the interpreter)."""
    return tl.reduce(x, axis, _add)


def _fill(value, like):
    """A tensor like ``like`` filled with the float ``value`` in its dtype. (Not ``tl.cast(value, …)``:
    Triton's interpreter rounds a Python float through float32 there, which float64 must not.)"""
    return (tl.full(like.shape, 0.0, like.dtype) + value).to(like.dtype)


def _row_range(split, splits, rows, BLOCK_ROWS: tl.constexpr):
    """The rows [start, end) of row range ``split`` of ``splits``: whole blocks, the last range
    ragged (or empty when there are more ranges than blocks)."""
    per_range = (rows + splits - 1) // splits  # (not tl.cdiv: a triton.jit function of Triton's library)
    span = (per_range + BLOCK_ROWS - 1) // BLOCK_ROWS * BLOCK_ROWS
    start = tl.minimum(split * span, rows)
    return start, tl.minimum(start + span, rows)


def _divide(numerator, denominator):
    """numerator / denominator, IEEE-rounded (float32 ``/`` on a GPU is a 2-ulp approximation)."""
    if denominator.dtype == tl.float64:
        quotient = numerator / denominator
    else:
        quotient = tl.div_rn(numerator, denominator)
    return quotient


def _inverse_sqrt(x):
    """1/√x, IEEE-rounded square root and division."""
    if x.dtype == tl.float64:
        root = tl.sqrt(x)
    else:
        root = tl.sqrt_rn(x)
    return _divide(tl.full(x.shape, 1.0, x.dtype), root)


def _sigmoid(x):
    """σ(x) from e = exp(−|x|) ∈ [0, 1]: 1/(1 + e) for x ≥ 0, e/(1 + e) below."""
    e = tl.exp(-tl.abs(x))
    r = _divide(tl.full(x.shape, 1.0, x.dtype), 1.0 + e)
    return tl.where(x >= 0, r, e * r)


def _tanh(x):
    """tanh(x): its Taylor series below |x| = 0.4, ±(1 − 2/(exp(2|x|) + 1)) from there."""
    magnitude = tl.abs(x)
    large = 1.0 - _divide(tl.full(x.shape, 2.0, x.dtype), tl.exp(2.0 * magnitude) + 1.0)
    square = x * x
    series = square * -6.451689215655431e-06 + 1.5918905069328964e-05  # coefficients of x^27 … x^3
    series = series * square - 3.927832388331683e-05
    series = series * square + 9.691537956929451e-05
    series = series * square - 2.3912911424355248e-04
    series = series * square + 5.90027440945586e-04
    series = series * square - 1.4558343870513183e-03
    series = series * square + 3.592128036572481e-03
    series = series * square - 8.863235529902197e-03
    series = series * square + 2.1869488536155203e-02
    series = series * square - 5.396825396825397e-02
    series = series * square + 1.3333333333333333e-01
    series = series * square - 3.333333333333333e-01
    small = x + x * square * series
    return tl.where(magnitude < 0.4, small, tl.where(x < 0, -large, large))


def _activate(x, ACTIVATION: tl.constexpr):
    """f(x) for the activation code (a compile-time constant)."""
    if ACTIVATION == 0:
        value = _tanh(x)
    elif ACTIVATION == 1:
        value = tl.where(x < 0, 0.0, x)  # NaN stays NaN, as in torch.relu
    elif ACTIVATION == 2:
        value = _sigmoid(x)
    else:
        value = x
    return value


def _slope(a, ACTIVATION: tl.constexpr):
    """f'(x) written with a = f(x)."""
    if ACTIVATION == 0:
        value = 1.0 - a * a
    elif ACTIVATION == 1:
        value = tl.where(a > 0, 1.0, 0.0).to(a.dtype)
    elif ACTIVATION == 2:
        value = a * (1.0 - a)
    else:
        value = tl.full(a.shape, 1.0, a.dtype)
    return value


def _fold_block(count, shift, mean, m2, update, mask, row, first, rows, BLOCK_ROWS: tl.constexpr):
    """Fold a block of rows of u into its columns' running statistics (Chan, Golub and LeVeque):
    the block's mean and sum of squared deviations merged with the running count, mean and M2.
    The values are taken relative to ``shift``, the first row's u: exact where u varies little
    against its size, so the mean's rounding does not swamp the spread."""
    first_row = _sum(tl.where((row == 0) & mask, update, 0.0), axis=0).to(mean.dtype)
    shift = tl.where(first == 0, first_row, shift)
    values = tl.where(mask, update - shift[None, :].to(update.dtype), 0.0)
    block_count = tl.minimum(rows - first, BLOCK_ROWS).to(mean.dtype)
    block_mean = _divide(_sum(values, axis=0).to(mean.dtype), block_count)
    deviation = tl.where(mask, values - block_mean[None, :].to(values.dtype), 0.0)
    block_m2 = _sum(deviation * deviation, axis=0).to(mean.dtype)
    total = count + block_count
    delta = block_mean - mean
    share = _divide(tl.full(total.shape, 1.0, total.dtype) * block_count, total)
    return total, shift, mean + delta * share, m2 + block_m2 + delta * delta * count * share


def _normalise(
    out, out_dir, out_row, statistics, statistics_stride, weight, bias, running_mean, running_var,
    count, mean, m2, eps, direction, columns, start, end, split, hidden,
    HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, BATCH_STATS: tl.constexpr,
    BLOCK_ROWS: tl.constexpr, BLOCK_COLUMNS: tl.constexpr,
):  # fmt: skip
    """The BatchNorm of a forward pass once u is in ``out``: the statistics (batch or running),
    written to ``statistics`` by row range 0, then y = γ(u − μ)/σ + β in place over the rows
    [start, end) (all of them with batch statistics)."""
    in_columns = columns < hidden
    feature = direction * hidden + columns  # the BatchNorm channel: [forward ‖ backward]
    if BATCH_STATS:
        variance = _divide(m2, count)  # biased
    else:
        mean = tl.load(running_mean + feature, mask=in_columns, other=0.0).to(mean.dtype)
        variance = tl.load(running_var + feature, mask=in_columns, other=1.0).to(mean.dtype)
    inverse = _inverse_sqrt(variance + _fill(eps, variance))
    writes = in_columns & (split == 0)
    tl.store(statistics + feature, mean, mask=writes)
    tl.store(statistics + statistics_stride + feature, variance, mask=writes)
    tl.store(statistics + 2 * statistics_stride + feature, inverse, mask=writes)
    scale = inverse  # γ/σ
    if HAS_WEIGHT:
        scale = scale * tl.load(weight + feature, mask=in_columns, other=1.0).to(mean.dtype)
    beta = tl.full([BLOCK_COLUMNS], 0.0, dtype=mean.dtype)
    if HAS_BIAS:
        beta = tl.load(bias + feature, mask=in_columns, other=0.0).to(mean.dtype)
    tl.debug_barrier()  # pass 2 reads the u that pass 1 stored
    for first in tl.range(start, end, BLOCK_ROWS):
        row = first + tl.arange(0, BLOCK_ROWS)
        mask = (row < end)[:, None] & in_columns[None, :]
        at = out + direction * out_dir + row.to(tl.int64)[:, None] * out_row + columns[None, :]
        update = tl.load(at, mask=mask, other=0.0)
        y = (update - mean[None, :].to(update.dtype)) * scale[None, :].to(update.dtype) + beta[None, :].to(update.dtype)
        tl.store(at, y, mask=mask)


def _node_forward_kernel(
    projection, projection_dir, projection_row, source, source_dir, source_row, out, out_dir, out_row,
    weight, bias, running_mean, running_var, statistics, statistics_stride, rows, hidden, splits, eps: tl.float64,
    ACTIVATION: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, BATCH_STATS: tl.constexpr,
    BLOCK_ROWS: tl.constexpr, BLOCK_COLUMNS: tl.constexpr,
):  # fmt: skip
    """Program (direction, column block, row range): pass 1 u = s + σ(c)(f(ĥ) − s) into ``out`` and
    the column statistics, pass 2 the BatchNorm in place (:func:`_normalise`). Batch statistics
    need one row range (all rows); running statistics let ``splits`` ranges run side by side."""
    direction = tl.program_id(0)
    columns = tl.program_id(1) * BLOCK_COLUMNS + tl.arange(0, BLOCK_COLUMNS)
    in_columns = columns < hidden
    split = tl.program_id(2)
    start, end = _row_range(split, splits, rows, BLOCK_ROWS)
    accumulator = out.dtype.element_ty
    count = tl.full([BLOCK_COLUMNS], 0.0, dtype=accumulator)
    shift = tl.full([BLOCK_COLUMNS], 0.0, dtype=accumulator)
    mean = tl.full([BLOCK_COLUMNS], 0.0, dtype=accumulator)  # of u − shift
    m2 = tl.full([BLOCK_COLUMNS], 0.0, dtype=accumulator)
    for first in tl.range(start, end, BLOCK_ROWS):
        row = first + tl.arange(0, BLOCK_ROWS)
        mask = (row < end)[:, None] & in_columns[None, :]
        row = row.to(tl.int64)[:, None]
        at = projection + direction * projection_dir + row * projection_row + columns[None, :]
        gate = tl.load(at, mask=mask, other=0.0)
        candidate = tl.load(at + hidden, mask=mask, other=0.0)
        state = tl.load(source + direction * source_dir + row * source_row + columns[None, :], mask=mask, other=0.0)
        update = state + _sigmoid(gate) * (_activate(candidate, ACTIVATION) - state)
        tl.store(out + direction * out_dir + row * out_row + columns[None, :], update, mask=mask)
        if BATCH_STATS:
            count, shift, mean, m2 = _fold_block(count, shift, mean, m2, update, mask, row, first, rows, BLOCK_ROWS)
    _normalise(
        out, out_dir, out_row, statistics, statistics_stride, weight, bias, running_mean, running_var,
        count, shift + mean, m2, eps, direction, columns, start, end, split, hidden,
        HAS_WEIGHT, HAS_BIAS, BATCH_STATS, BLOCK_ROWS, BLOCK_COLUMNS,
    )  # fmt: skip


def _output_grad(grad, grad_dir, grad_row, grad_scale, extra, extra_dir, extra_row, direction, row, columns, mask,
                 HAS_GRAD: tl.constexpr, HAS_EXTRA: tl.constexpr):  # fmt: skip
    """dy = grad_scale·grad + extra, without the absent terms."""
    if HAS_GRAD:
        dy = tl.load(grad + direction * grad_dir + row * grad_row + columns[None, :], mask=mask, other=0.0)
        dy = _fill(grad_scale, dy) * dy
        if HAS_EXTRA:
            dy = dy + tl.load(extra + direction * extra_dir + row * extra_row + columns[None, :], mask=mask, other=0.0)
    else:
        dy = tl.load(extra + direction * extra_dir + row * extra_row + columns[None, :], mask=mask, other=0.0)
    return dy


def _node_backward_kernel(
    grad, grad_dir, grad_row, grad_scale: tl.float64, extra, extra_dir, extra_row,
    projection, projection_dir, projection_row, source, source_dir, source_row,
    weight, statistics, statistics_stride,
    grad_state, grad_state_dir, grad_state_row, grad_projection, grad_projection_dir, grad_projection_row,
    grad_weight, grad_bias, add_affine, rows, hidden, splits,
    ACTIVATION: tl.constexpr, HAS_GRAD: tl.constexpr, HAS_EXTRA: tl.constexpr, HAS_WEIGHT: tl.constexpr,
    BATCH_STATS: tl.constexpr, ACCUMULATE: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_COLUMNS: tl.constexpr,
):  # fmt: skip
    """Program (direction, column block, row range). Pass 1 over all rows, pass 2 over the
    program's range (every range redoes pass 1, in the same order: the same sums). With N = B
    and per feature Σdy, Σdy·x̂:

        dγ = Σdy·x̂,  dβ = Σdy,  du = γ/σ · (dy − Σdy/N − x̂·Σdy·x̂/N)   (running statistics: γ/σ·dy),
        ds = du ⊙ (1 − g),  dc = du ⊙ (a − s) ⊙ g(1 − g),  dĥ = du ⊙ g ⊙ f'(ĥ).

    dγ and dβ are written to ``grad_weight``/``grad_bias`` by row range 0, or added to them when
    ``add_affine`` is non-zero (a sweep's steps accumulate there).
    """
    direction = tl.program_id(0)
    columns = tl.program_id(1) * BLOCK_COLUMNS + tl.arange(0, BLOCK_COLUMNS)
    in_columns = columns < hidden
    feature = direction * hidden + columns
    split = tl.program_id(2)
    start, end = _row_range(split, splits, rows, BLOCK_ROWS)
    mean = tl.load(statistics + feature, mask=in_columns, other=0.0)
    inverse = tl.load(statistics + 2 * statistics_stride + feature, mask=in_columns, other=0.0)
    grad_sum = tl.full([BLOCK_COLUMNS], 0.0, dtype=mean.dtype)
    grad_dot = tl.full([BLOCK_COLUMNS], 0.0, dtype=mean.dtype)
    for first in tl.range(0, rows, BLOCK_ROWS):  # pass 1: Σdy, Σdy·x̂
        row = first + tl.arange(0, BLOCK_ROWS)
        mask = (row < rows)[:, None] & in_columns[None, :]
        row = row.to(tl.int64)[:, None]
        at = projection + direction * projection_dir + row * projection_row + columns[None, :]
        gate = tl.load(at, mask=mask, other=0.0)
        candidate = tl.load(at + hidden, mask=mask, other=0.0)
        state = tl.load(source + direction * source_dir + row * source_row + columns[None, :], mask=mask, other=0.0)
        update = state + _sigmoid(gate) * (_activate(candidate, ACTIVATION) - state)
        normalised = (update - mean[None, :]) * inverse[None, :]
        dy = _output_grad(grad, grad_dir, grad_row, grad_scale, extra, extra_dir, extra_row, direction, row, columns,
                          mask, HAS_GRAD, HAS_EXTRA)  # fmt: skip
        grad_sum += _sum(tl.where(mask, dy, 0.0), axis=0)
        grad_dot += _sum(tl.where(mask, dy * normalised, 0.0), axis=0)
    writes = in_columns & (split == 0)
    adding = writes & (add_affine != 0)
    tl.store(grad_bias + feature, tl.load(grad_bias + feature, mask=adding, other=0.0) + grad_sum, mask=writes)
    tl.store(grad_weight + feature, tl.load(grad_weight + feature, mask=adding, other=0.0) + grad_dot, mask=writes)
    scale = inverse
    if HAS_WEIGHT:
        scale = scale * tl.load(weight + feature, mask=in_columns, other=1.0)
    if BATCH_STATS:
        grad_mean = _divide(grad_sum, tl.full(grad_sum.shape, 1.0, grad_sum.dtype) * rows)
        grad_dot_mean = _divide(grad_dot, tl.full(grad_dot.shape, 1.0, grad_dot.dtype) * rows)
    else:
        grad_mean = tl.full([BLOCK_COLUMNS], 0.0, dtype=mean.dtype)
        grad_dot_mean = tl.full([BLOCK_COLUMNS], 0.0, dtype=mean.dtype)
    for first in tl.range(start, end, BLOCK_ROWS):  # pass 2: du, then the gradients
        row = first + tl.arange(0, BLOCK_ROWS)
        mask = (row < end)[:, None] & in_columns[None, :]
        row = row.to(tl.int64)[:, None]
        at = projection + direction * projection_dir + row * projection_row + columns[None, :]
        gate = tl.load(at, mask=mask, other=0.0)
        candidate = tl.load(at + hidden, mask=mask, other=0.0)
        state = tl.load(source + direction * source_dir + row * source_row + columns[None, :], mask=mask, other=0.0)
        g = _sigmoid(gate)
        a = _activate(candidate, ACTIVATION)
        normalised = (state + g * (a - state) - mean[None, :]) * inverse[None, :]
        dy = _output_grad(grad, grad_dir, grad_row, grad_scale, extra, extra_dir, extra_row, direction, row, columns,
                          mask, HAS_GRAD, HAS_EXTRA)  # fmt: skip
        du = scale[None, :] * (dy - grad_mean[None, :] - normalised * grad_dot_mean[None, :])
        grad_source = du * (1.0 - g)
        state_at = grad_state + direction * grad_state_dir + row * grad_state_row + columns[None, :]
        if ACCUMULATE:
            grad_source = tl.load(state_at, mask=mask, other=0.0) + grad_source
        tl.store(state_at, grad_source, mask=mask)
        projection_at = grad_projection + direction * grad_projection_dir + row * grad_projection_row + columns[None, :]
        tl.store(projection_at, du * (a - state) * g * (1.0 - g), mask=mask)
        tl.store(projection_at + hidden, du * g * _slope(a, ACTIVATION), mask=mask)


def _mixed_update(gate, candidate, state, w_tanh, w_relu, w_sigmoid, w_identity):
    """One predecessor's term of eq. 8: K·s + g(m − K·s) with g = σ(c), m = Σ_f w_f f(ĥ), K = Σ_f w_f."""
    mixed = (
        w_tanh * _tanh(candidate) + w_relu * tl.where(candidate < 0, 0.0, candidate)
        + w_sigmoid * _sigmoid(candidate) + w_identity * candidate
    )  # fmt: skip
    held = (w_tanh + w_relu + w_sigmoid + w_identity) * state
    return held + _sigmoid(gate) * (mixed - held)


def _mixed_forward_kernel(
    projection, projection_dir, projection_source, projection_row,
    source, source_dir, source_source, source_row, weights, weights_stride, sources,
    out, out_dir, out_row, running_mean, running_var, statistics, statistics_stride, rows, hidden, splits,
    eps: tl.float64, BATCH_STATS: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_COLUMNS: tl.constexpr,
):  # fmt: skip
    """Program (direction, column block, row range): pass 1 u = Σ_j [K_j s_j + g_j (m_j − K_j s_j)]
    into ``out`` and the column statistics, pass 2 the affine-free BatchNorm in place (row ranges
    as in :func:`_node_forward_kernel`)."""
    direction = tl.program_id(0)
    columns = tl.program_id(1) * BLOCK_COLUMNS + tl.arange(0, BLOCK_COLUMNS)
    in_columns = columns < hidden
    split = tl.program_id(2)
    start, end = _row_range(split, splits, rows, BLOCK_ROWS)
    accumulator = out.dtype.element_ty
    count = tl.full([BLOCK_COLUMNS], 0.0, dtype=accumulator)
    shift = tl.full([BLOCK_COLUMNS], 0.0, dtype=accumulator)
    mean = tl.full([BLOCK_COLUMNS], 0.0, dtype=accumulator)  # of u − shift
    m2 = tl.full([BLOCK_COLUMNS], 0.0, dtype=accumulator)
    for first in tl.range(start, end, BLOCK_ROWS):
        row = first + tl.arange(0, BLOCK_ROWS)
        mask = (row < end)[:, None] & in_columns[None, :]
        row = row.to(tl.int64)[:, None]
        update = tl.full([BLOCK_ROWS, BLOCK_COLUMNS], 0.0, dtype=accumulator)
        for j in tl.range(0, sources):
            w_tanh = tl.load(weights + j * weights_stride)
            w_relu = tl.load(weights + j * weights_stride + 1)
            w_sigmoid = tl.load(weights + j * weights_stride + 2)
            w_identity = tl.load(weights + j * weights_stride + 3)
            at = projection + direction * projection_dir + j * projection_source + row * projection_row + columns[None, :]
            gate = tl.load(at, mask=mask, other=0.0)
            candidate = tl.load(at + hidden, mask=mask, other=0.0)
            state_at = source + direction * source_dir + j * source_source + row * source_row + columns[None, :]
            state = tl.load(state_at, mask=mask, other=0.0)
            update += _mixed_update(gate, candidate, state, w_tanh, w_relu, w_sigmoid, w_identity)
        tl.store(out + direction * out_dir + row * out_row + columns[None, :], update, mask=mask)
        if BATCH_STATS:
            count, shift, mean, m2 = _fold_block(count, shift, mean, m2, update, mask, row, first, rows, BLOCK_ROWS)
    _normalise(
        out, out_dir, out_row, statistics, statistics_stride, None, None, running_mean, running_var,
        count, shift + mean, m2, eps, direction, columns, start, end, split, hidden,
        False, False, BATCH_STATS, BLOCK_ROWS, BLOCK_COLUMNS,
    )  # fmt: skip


def _mixed_backward_kernel(
    grad, grad_dir, grad_row, out, out_dir, out_row,
    projection, projection_dir, projection_source, projection_row,
    source, source_dir, source_source, source_row, weights, weights_stride, sources, statistics, statistics_stride,
    grad_source, grad_source_dir, grad_source_source, grad_source_row,
    grad_projection, grad_projection_dir, grad_projection_source, grad_projection_row,
    partial, partial_program, add_partial, rows, hidden, splits,
    BATCH_STATS: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_COLUMNS: tl.constexpr,
):  # fmt: skip
    """Program (direction, column block, predecessor j · splits + row range): pass 1 (the
    reductions over all rows, redone alike by every program) then pass 2 for predecessor j over
    the program's rows. Without affine parameters x̂ = y, the output itself; with
    du = (1/σ)(dy − Σdy/N − y·Σdy·y/N) (running statistics: dy/σ), per predecessor j:

        ds_j += du ⊙ K_j (1 − g_j),   dc_j = du ⊙ (m_j − K_j s_j) ⊙ g_j (1 − g_j),
        dĥ_j = du ⊙ g_j ⊙ Σ_f w_jf f'(ĥ_j),   dw_jf = Σ du ⊙ (s_j (1 − g_j) + g_j f(ĥ_j)),

    the last summed over this program's rows and columns into ``partial[program, j, f]`` (at
    ``partial + program·partial_program + 4j + f``, program = (direction, column block, row
    range) in row-major order), or added there when ``add_partial`` is non-zero (a sweep's steps
    accumulate there). Each (program, j) has its own slot: no atomics, one fixed summation order.
    """
    direction = tl.program_id(0)
    j = tl.program_id(2) // splits
    split = tl.program_id(2) % splits
    program = (direction * tl.num_programs(1) + tl.program_id(1)) * splits + split
    start, end = _row_range(split, splits, rows, BLOCK_ROWS)
    columns = tl.program_id(1) * BLOCK_COLUMNS + tl.arange(0, BLOCK_COLUMNS)
    in_columns = columns < hidden
    feature = direction * hidden + columns
    inverse = tl.load(statistics + 2 * statistics_stride + feature, mask=in_columns, other=0.0)
    grad_sum = tl.full([BLOCK_COLUMNS], 0.0, dtype=inverse.dtype)
    grad_dot = tl.full([BLOCK_COLUMNS], 0.0, dtype=inverse.dtype)
    if BATCH_STATS:
        for first in tl.range(0, rows, BLOCK_ROWS):  # pass 1: Σdy, Σdy·y
            row = first + tl.arange(0, BLOCK_ROWS)
            mask = (row < rows)[:, None] & in_columns[None, :]
            row = row.to(tl.int64)[:, None]
            dy = tl.load(grad + direction * grad_dir + row * grad_row + columns[None, :], mask=mask, other=0.0)
            y = tl.load(out + direction * out_dir + row * out_row + columns[None, :], mask=mask, other=0.0)
            grad_sum += _sum(dy, axis=0)
            grad_dot += _sum(dy * y, axis=0)
        grad_sum = _divide(grad_sum, tl.full(grad_sum.shape, 1.0, grad_sum.dtype) * rows)
        grad_dot = _divide(grad_dot, tl.full(grad_dot.shape, 1.0, grad_dot.dtype) * rows)
    w_tanh = tl.load(weights + j * weights_stride)
    w_relu = tl.load(weights + j * weights_stride + 1)
    w_sigmoid = tl.load(weights + j * weights_stride + 2)
    w_identity = tl.load(weights + j * weights_stride + 3)
    kept = w_tanh + w_relu + w_sigmoid + w_identity
    d_tanh = tl.full([BLOCK_COLUMNS], 0.0, dtype=inverse.dtype)
    d_relu = tl.full([BLOCK_COLUMNS], 0.0, dtype=inverse.dtype)
    d_sigmoid = tl.full([BLOCK_COLUMNS], 0.0, dtype=inverse.dtype)
    d_identity = tl.full([BLOCK_COLUMNS], 0.0, dtype=inverse.dtype)
    for first in tl.range(start, end, BLOCK_ROWS):  # pass 2: predecessor j, this program's rows
        row = first + tl.arange(0, BLOCK_ROWS)
        mask = (row < end)[:, None] & in_columns[None, :]
        row = row.to(tl.int64)[:, None]
        dy = tl.load(grad + direction * grad_dir + row * grad_row + columns[None, :], mask=mask, other=0.0)
        y = tl.load(out + direction * out_dir + row * out_row + columns[None, :], mask=mask, other=0.0)
        du = tl.where(mask, inverse[None, :] * (dy - grad_sum[None, :] - y * grad_dot[None, :]), 0.0)
        at = projection + direction * projection_dir + j * projection_source + row * projection_row + columns[None, :]
        gate = tl.load(at, mask=mask, other=0.0)
        candidate = tl.load(at + hidden, mask=mask, other=0.0)
        state_at = source + direction * source_dir + j * source_source + row * source_row + columns[None, :]
        state = tl.load(state_at, mask=mask, other=0.0)
        g = _sigmoid(gate)
        t = _tanh(candidate)
        r = tl.where(candidate < 0, 0.0, candidate)
        q = _sigmoid(candidate)
        mixed = w_tanh * t + w_relu * r + w_sigmoid * q + w_identity * candidate
        held = kept * state
        slope = w_tanh * _slope(t, 0) + w_relu * _slope(r, 1) + w_sigmoid * _slope(q, 2) + w_identity
        source_grad_at = (
            grad_source + direction * grad_source_dir + j * grad_source_source + row * grad_source_row + columns[None, :]
        )  # fmt: skip
        tl.store(source_grad_at, tl.load(source_grad_at, mask=mask, other=0.0) + du * kept * (1.0 - g), mask=mask)
        projection_grad_at = (
            grad_projection + direction * grad_projection_dir + j * grad_projection_source
            + row * grad_projection_row + columns[None, :]
        )  # fmt: skip
        tl.store(projection_grad_at, du * (mixed - held) * g * (1.0 - g), mask=mask)
        tl.store(projection_grad_at + hidden, du * g * slope, mask=mask)
        common = du * state * (1.0 - g)
        ug = du * g
        d_tanh += _sum(tl.where(mask, common + ug * t, 0.0), axis=0)
        d_relu += _sum(tl.where(mask, common + ug * r, 0.0), axis=0)
        d_sigmoid += _sum(tl.where(mask, common + ug * q, 0.0), axis=0)
        d_identity += _sum(tl.where(mask, common + ug * candidate, 0.0), axis=0)
    at = partial + program * partial_program + j * 4
    adding = add_partial != 0
    tl.store(at, tl.load(at, mask=adding, other=0.0) + _sum(d_tanh, axis=0))
    tl.store(at + 1, tl.load(at + 1, mask=adding, other=0.0) + _sum(d_relu, axis=0))
    tl.store(at + 2, tl.load(at + 2, mask=adding, other=0.0) + _sum(d_sigmoid, axis=0))
    tl.store(at + 3, tl.load(at + 3, mask=adding, other=0.0) + _sum(d_identity, axis=0))


def _mean_of_states_kernel(
    out, first, second, third, fourth, fifth, sixth, seventh, eighth, size, scale: tl.float64,
    COUNT: tl.constexpr, ACCUMULATE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """out = ((out if ACCUMULATE) + Σ of the first COUNT states) · scale, over ``size`` contiguous values."""
    offset = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offset < size
    total = tl.load(first + offset, mask=mask)
    if ACCUMULATE:
        total = tl.load(out + offset, mask=mask) + total
    if COUNT > 1:
        total += tl.load(second + offset, mask=mask)
    if COUNT > 2:
        total += tl.load(third + offset, mask=mask)
    if COUNT > 3:
        total += tl.load(fourth + offset, mask=mask)
    if COUNT > 4:
        total += tl.load(fifth + offset, mask=mask)
    if COUNT > 5:
        total += tl.load(sixth + offset, mask=mask)
    if COUNT > 6:
        total += tl.load(seventh + offset, mask=mask)
    if COUNT > 7:
        total += tl.load(eighth + offset, mask=mask)
    tl.store(out + offset, total * _fill(scale, total), mask=mask)


_DEVICE_FUNCTIONS = (
    "_add", "_sum", "_fill", "_row_range", "_divide", "_inverse_sqrt", "_sigmoid", "_tanh", "_activate", "_slope", "_fold_block",
    "_normalise", "_node_forward_kernel", "_output_grad", "_node_backward_kernel", "_mixed_update",
    "_mixed_forward_kernel", "_mixed_backward_kernel", "_mean_of_states_kernel",
)  # fmt: skip
"""The device functions above, made ``triton.jit`` functions by :func:`_load`."""


# --- the custom ops ---------------------------------------------------------------------
# Their arguments are tensors, numbers and flags (what an op schema holds); the block sizes
# are arguments too, so that tests can run many small blocks. An absent optional tensor
# reaches a kernel as None (never read: its HAS_* flag is off), not as a stand-in tensor: a
# stand-in aliasing a written argument would confuse torch.compile's functionalisation.


def _grid(hidden: int, block_columns: int, third: int = 1) -> tuple[int, int, int]:
    """(directions, column blocks, ``third``: row ranges, or predecessors × row ranges)."""
    return 2, -(-hidden // block_columns), third


def _check_splits(row_splits: int, batch_stats: bool) -> None:
    if row_splits < 1 or (batch_stats and row_splits != 1):
        raise ValueError(
            f"triton kernels: row_splits {row_splits} is not possible here; valid: 1 with batch statistics, "
            ">= 1 with running statistics"
        )


def _triton_node_forward(
    source: Tensor, projection: Tensor, code: int, weight: Tensor | None, bias: Tensor | None, batch_stats: bool,
    running_mean: Tensor | None, running_var: Tensor | None, eps: float, statistics: Tensor, out: Tensor,
    block_rows: int, block_columns: int, row_splits: int,
) -> None:  # fmt: skip
    _, rows, hidden = source.shape
    _check_splits(row_splits, batch_stats)
    torch.library.wrap_triton(_node_forward_kernel)[_grid(hidden, block_columns, row_splits)](
        projection, projection.stride(0), projection.stride(1), source, source.stride(0), source.stride(1),
        out, out.stride(0), out.stride(1),
        weight, bias, running_mean, running_var, statistics, statistics.stride(0), rows, hidden, row_splits, eps,
        ACTIVATION=code, HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None, BATCH_STATS=batch_stats,
        BLOCK_ROWS=block_rows, BLOCK_COLUMNS=block_columns,
    )  # fmt: skip


def _triton_node_backward(
    grad: Tensor | None, grad_scale: float, extra: Tensor | None, source: Tensor, projection: Tensor, code: int,
    weight: Tensor | None, batch_stats: bool, statistics: Tensor, grad_state: Tensor, accumulate: bool,
    grad_projection: Tensor, block_rows: int, block_columns: int, row_splits: int,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    _, rows, hidden = source.shape
    grad_weight, grad_bias = source.new_empty(2 * hidden), source.new_empty(2 * hidden)
    _triton_node_backward_accumulate(
        grad, grad_scale, extra, source, projection, code, weight, batch_stats, statistics, grad_state, accumulate,
        grad_projection, grad_weight, grad_bias, False, block_rows, block_columns, row_splits,
    )  # fmt: skip
    return grad_weight, grad_bias


def _triton_node_backward_accumulate(
    grad: Tensor | None, grad_scale: float, extra: Tensor | None, source: Tensor, projection: Tensor, code: int,
    weight: Tensor | None, batch_stats: bool, statistics: Tensor, grad_state: Tensor, accumulate: bool,
    grad_projection: Tensor, grad_weight: Tensor, grad_bias: Tensor, add_affine: bool, block_rows: int,
    block_columns: int, row_splits: int,
) -> None:  # fmt: skip
    _, rows, hidden = source.shape
    _check_splits(row_splits, False)
    torch.library.wrap_triton(_node_backward_kernel)[_grid(hidden, block_columns, row_splits)](
        grad, *_row_strides(grad), grad_scale, extra, *_row_strides(extra),
        projection, projection.stride(0), projection.stride(1), source, source.stride(0), source.stride(1),
        weight, statistics, statistics.stride(0),
        grad_state, grad_state.stride(0), grad_state.stride(1),
        grad_projection, grad_projection.stride(0), grad_projection.stride(1),
        grad_weight, grad_bias, int(add_affine), rows, hidden, row_splits,
        ACTIVATION=code, HAS_GRAD=grad is not None, HAS_EXTRA=extra is not None, HAS_WEIGHT=weight is not None,
        BATCH_STATS=batch_stats, ACCUMULATE=accumulate, BLOCK_ROWS=block_rows, BLOCK_COLUMNS=block_columns,
    )  # fmt: skip


def _row_strides(tensor: Tensor | None) -> tuple[int, int]:
    return (0, 0) if tensor is None else (tensor.stride(0), tensor.stride(1))


def _triton_mixed_forward(
    sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool, running_mean: Tensor | None,
    running_var: Tensor | None, eps: float, statistics: Tensor, out: Tensor, block_rows: int, block_columns: int,
    row_splits: int,
) -> None:  # fmt: skip
    _, count, rows, hidden = sources.shape
    _check_splits(row_splits, batch_stats)
    torch.library.wrap_triton(_mixed_forward_kernel)[_grid(hidden, block_columns, row_splits)](
        projection, *projection.stride()[:3], sources, *sources.stride()[:3], weights, weights.stride(0), count,
        out, out.stride(0), out.stride(1), running_mean, running_var, statistics, statistics.stride(0), rows, hidden,
        row_splits, eps,
        BATCH_STATS=batch_stats, BLOCK_ROWS=block_rows, BLOCK_COLUMNS=block_columns,
    )  # fmt: skip


def _triton_mixed_backward(
    grad: Tensor, out: Tensor, sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool,
    statistics: Tensor, grad_sources: Tensor, grad_projection: Tensor, block_rows: int, block_columns: int,
    row_splits: int,
) -> Tensor:  # fmt: skip
    _, count, rows, hidden = sources.shape
    grid = _grid(hidden, block_columns, row_splits)
    partial = sources.new_empty(grid[0] * grid[1] * grid[2], count, 4)  # dw_jf per program
    _triton_mixed_backward_accumulate(
        grad, out, sources, projection, weights, batch_stats, statistics, grad_sources, grad_projection, partial,
        False, block_rows, block_columns, row_splits,
    )  # fmt: skip
    return partial.sum(0)


def _triton_mixed_backward_accumulate(
    grad: Tensor, out: Tensor, sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool,
    statistics: Tensor, grad_sources: Tensor, grad_projection: Tensor, partial: Tensor, add_partial: bool,
    block_rows: int, block_columns: int, row_splits: int,
) -> None:  # fmt: skip
    _, count, rows, hidden = sources.shape
    _check_splits(row_splits, False)
    torch.library.wrap_triton(_mixed_backward_kernel)[_grid(hidden, block_columns, count * row_splits)](
        grad, grad.stride(0), grad.stride(1), out, out.stride(0), out.stride(1),
        projection, *projection.stride()[:3], sources, *sources.stride()[:3], weights, weights.stride(0), count,
        statistics, statistics.stride(0),
        grad_sources, *grad_sources.stride()[:3], grad_projection, *grad_projection.stride()[:3],
        partial, partial.stride(0), int(add_partial), rows, hidden, row_splits,
        BATCH_STATS=batch_stats, BLOCK_ROWS=block_rows, BLOCK_COLUMNS=block_columns,
    )  # fmt: skip


def _triton_mean_of_states(states: list[Tensor], block: int) -> Tensor:
    out = torch.empty_like(states[0])
    size = out.numel()
    for start in range(0, len(states), STATES_PER_LAUNCH):
        chunk = states[start : start + STATES_PER_LAUNCH]
        last = start + STATES_PER_LAUNCH >= len(states)
        padded = chunk + [None] * (STATES_PER_LAUNCH - len(chunk))
        torch.library.wrap_triton(_mean_of_states_kernel)[(-(-size // block),)](
            out, *padded, size, 1.0 / len(states) if last else 1.0,
            COUNT=len(chunk), ACCUMULATE=start > 0, BLOCK=block,
        )  # fmt: skip
    return out


_OPS = {  # op name: (implementation, the arguments it writes)
    "triton_node_forward": (_triton_node_forward, ("statistics", "out")),
    "triton_node_backward": (_triton_node_backward, ("grad_state", "grad_projection")),
    "triton_node_backward_accumulate": (
        _triton_node_backward_accumulate, ("grad_state", "grad_projection", "grad_weight", "grad_bias")
    ),
    "triton_mixed_forward": (_triton_mixed_forward, ("statistics", "out")),
    "triton_mixed_backward": (_triton_mixed_backward, ("grad_sources", "grad_projection")),
    "triton_mixed_backward_accumulate": (
        _triton_mixed_backward_accumulate, ("grad_sources", "grad_projection", "partial")
    ),
    "triton_mean_of_states": (_triton_mean_of_states, ()),
}

_STATE: dict = {"loaded": False, "interpret": False}
_LOCK = threading.Lock()


def _load() -> None:
    """On the first call: import Triton, make the device functions ``triton.jit`` functions, register the ops."""
    if _STATE["loaded"]:
        return
    with _LOCK:
        if _STATE["loaded"]:
            return
        if not triton_available():
            raise RuntimeError("dartsrenet.triton_nodes: Triton is not installed (pip install triton)")
        import triton
        import triton.language

        interpret = bool(triton.knobs.runtime.interpret)
        global tl
        tl = triton.language
        namespace = globals()
        namespace.update({name: triton.jit(namespace[name]) for name in _DEVICE_FUNCTIONS})
        for name, (implementation, mutated) in _OPS.items():
            torch.library.triton_op(f"dartsrenet::{name}", implementation, mutates_args=mutated)
        _STATE.update(loaded=True, interpret=interpret)


def interpreted() -> bool:
    """Whether the kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` at the first call); loads them."""
    _load()
    return _STATE["interpret"]


# --- the fused steps' interface: the signatures of the C kernels' wrappers ------------------


def _check(what: str, tensor: Tensor, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> None:
    """One clear line for a tensor the kernels cannot take (before any work)."""
    if tensor.shape != shape or tensor.dtype != dtype or tensor.device != device or tensor.stride(-1) != 1:
        raise ValueError(
            f"triton kernels: {what} is {tuple(tensor.shape)} {tensor.dtype} on {tensor.device} with last stride "
            f"{tensor.stride(-1)}; expected {shape} {dtype} on {device} with last stride 1"
        )


def _check_source(source: Tensor, dims: int) -> None:
    _load()
    if source.dim() != dims or source.shape[0] != 2:
        expected = "(2, i, B, h)" if dims == 4 else "(2, B, h)"
        raise ValueError(f"triton kernels: states must be {expected}, got {tuple(source.shape)}")
    if source.dtype not in DTYPES:
        raise ValueError(f"triton kernels: dtype {source.dtype} is not supported; valid: float32, float64")
    if source.stride(-1) != 1:
        raise ValueError(f"triton kernels: states need a contiguous last axis, got strides {source.stride()}")
    if source.device.type != "cuda" and not _STATE["interpret"]:
        raise ValueError(
            f"triton kernels: tensors on {source.device.type} need TRITON_INTERPRET=1 set before the first call; "
            f"compiled kernels take CUDA tensors"
        )


def _check_code(code: int) -> None:
    if code not in ACTIVATION_CODES.values():
        raise ValueError(f"triton kernels: activation code {code} is unknown; valid: {ACTIVATION_CODES}")


def _check_norm(norm: NormArguments, features: int, dtype: torch.dtype, device: torch.device) -> None:
    for what, tensor in (("γ", norm.weight), ("β", norm.bias), ("running mean", norm.running_mean),
                         ("running variance", norm.running_var)):  # fmt: skip
        if tensor is not None:
            _check(what, tensor, (features,), dtype, device)
    if not norm.batch_stats and (norm.running_mean is None or norm.running_var is None):
        raise ValueError("triton kernels: eval mode (batch_stats False) needs the running mean and variance")


def node_forward(
    source: Tensor, projection: Tensor, code: int, norm: NormArguments, statistics: Tensor, out: Tensor | None = None
) -> Tensor:
    """y = BN(s + σ(c) ⊙ (f(ĥ) − s)), into ``out`` or a new (2, B, h) tensor.

    ``statistics`` (3, 2h) receives the mean, biased variance and 1/√(var + ε) used.
    """
    _check_source(source, 3)
    _check_code(code)
    _, rows, hidden = source.shape
    dtype, device = source.dtype, source.device
    _check("projection", projection, (2, rows, 2 * hidden), dtype, device)
    _check("statistics", statistics, (3, 2 * hidden), dtype, device)
    _check_norm(norm, 2 * hidden, dtype, device)
    if out is None:
        out = source.new_empty(2, rows, hidden)
    _check("out", out, (2, rows, hidden), dtype, device)
    torch.ops.dartsrenet.triton_node_forward(
        source, projection, code, norm.weight, norm.bias, norm.batch_stats, norm.running_mean, norm.running_var,
        norm.eps, statistics, out, *layout(rows, hidden, splits=not norm.batch_stats),
    )  # fmt: skip
    return out


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
    affine_grads: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Backward of :func:`node_forward` for dy = grad_scale·grad + extra (either may be ``None``).

    Writes (or adds to) ``grad_state``, writes ``grad_projection``; returns (dγ, dβ) — or, with
    ``affine_grads`` (two (2h,) tensors), adds them there in the kernel and returns ``affine_grads``.
    """
    _check_source(source, 3)
    _check_code(code)
    _, rows, hidden = source.shape
    dtype, device = source.dtype, source.device
    if grad is None and extra is None:
        raise ValueError("triton kernels: node_backward needs grad or extra (both are None)")
    grad, extra = _inner_contiguous(grad), _inner_contiguous(extra)
    for what, tensor, shape in (
        ("grad", grad, source.shape), ("extra", extra, source.shape), ("projection", projection, (2, rows, 2 * hidden)),
        ("statistics", statistics, (3, 2 * hidden)), ("γ", weight, (2 * hidden,)), ("grad_state", grad_state, source.shape),
        ("grad_projection", grad_projection, (2, rows, 2 * hidden)),
        *(() if affine_grads is None else (("dγ", affine_grads[0], (2 * hidden,)), ("dβ", affine_grads[1], (2 * hidden,)))),
    ):  # fmt: skip
        if tensor is not None:
            _check(what, tensor, tuple(shape), dtype, device)
    if affine_grads is not None:
        torch.ops.dartsrenet.triton_node_backward_accumulate(
            grad, float(grad_scale), extra, source, projection, code, weight, bool(batch_stats), statistics,
            grad_state, bool(accumulate), grad_projection, affine_grads[0], affine_grads[1], True,
            *layout(rows, hidden),
        )  # fmt: skip
        return affine_grads
    return torch.ops.dartsrenet.triton_node_backward(
        grad, float(grad_scale), extra, source, projection, code, weight, bool(batch_stats), statistics,
        grad_state, bool(accumulate), grad_projection, *layout(rows, hidden),
    )  # fmt: skip


def mean_of_states(states: Sequence[Tensor]) -> Tensor:
    """The mean of contiguous tensors of one shape, in one pass (up to :data:`STATES_PER_LAUNCH` states)."""
    if not states:
        raise ValueError("triton kernels: mean_of_states needs at least one state")
    first = states[0]
    _load()
    if first.dtype not in DTYPES:
        raise ValueError(f"triton kernels: dtype {first.dtype} is not supported; valid: float32, float64")
    for index, state in enumerate(states):
        if (state.shape, state.dtype, state.device) != (first.shape, first.dtype, first.device) or not state.is_contiguous():
            raise ValueError(
                f"triton kernels: state {index} is {tuple(state.shape)} {state.dtype} on {state.device}"
                f"{'' if state.is_contiguous() else ', not contiguous'}; expected contiguous {tuple(first.shape)} "
                f"{first.dtype} on {first.device} like state 0"
            )
    return torch.ops.dartsrenet.triton_mean_of_states(list(states), min(_next_power_of_2(first.numel()), 1024))


def mixed_forward(
    sources: Tensor, projection: Tensor, weights: Tensor, norm: NormArguments, statistics: Tensor, out: Tensor
) -> None:
    """out = BN(Σ_j Σ_f w_jf · node_update(s_j, σ(c_j), f(ĥ_j))) (eq. 8) with the Triton kernel:
    the arguments and shapes of :func:`dartsrenet.fused_nodes.mixed_forward` (the norm's γ, β
    are not used), each checked here with one line naming it."""
    _check_source(sources, 4)
    _, count, rows, hidden = sources.shape
    dtype, device = sources.dtype, sources.device
    _check("projection", projection, (2, count, rows, 2 * hidden), dtype, device)
    _check("weights", weights, (count, 4), dtype, device)
    _check("statistics", statistics, (3, 2 * hidden), dtype, device)
    _check("out", out, (2, rows, hidden), dtype, device)
    _check_norm(NormArguments(None, None, norm.batch_stats, norm.running_mean, norm.running_var, norm.eps),
                2 * hidden, dtype, device)  # fmt: skip
    torch.ops.dartsrenet.triton_mixed_forward(
        sources, projection, weights, norm.batch_stats, norm.running_mean, norm.running_var, norm.eps,
        statistics, out, *layout(rows, hidden, splits=not norm.batch_stats),
    )  # fmt: skip


def mixed_backward(
    grad: Tensor, out: Tensor, sources: Tensor, projection: Tensor, weights: Tensor, batch_stats: bool,
    statistics: Tensor, scratch: Tensor | None, grad_sources: Tensor, grad_projection: Tensor,
    weight_grads: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """Backward of :func:`mixed_forward`: adds to ``grad_sources``, writes ``grad_projection``;
    returns the gradient of the mixing weights (i, 4) — or, with ``weight_grads`` (node i's rows
    ``[..., first_edge : first_edge + i, :]`` of a :func:`mixing_gradients` accumulator), adds
    each program's partial sums there in the kernel and returns ``weight_grads``. ``scratch``
    is not needed (it may be ``None``)."""
    _check_source(sources, 4)
    _, count, rows, hidden = sources.shape
    dtype, device = sources.dtype, sources.device
    grad = _inner_contiguous(grad)
    for what, tensor, shape in (
        ("grad", grad, (2, rows, hidden)), ("out", out, (2, rows, hidden)),
        ("projection", projection, (2, count, rows, 2 * hidden)), ("weights", weights, (count, 4)),
        ("statistics", statistics, (3, 2 * hidden)), ("grad_sources", grad_sources, tuple(sources.shape)),
        ("grad_projection", grad_projection, (2, count, rows, 2 * hidden)),
    ):  # fmt: skip
        _check(what, tensor, shape, dtype, device)
    if weight_grads is not None:
        programs = _programs(rows, hidden)
        _check("weight_grads", weight_grads, (programs, count, 4), dtype, device)
        if weight_grads.stride(1) != 4:
            raise ValueError(
                f"triton kernels: weight_grads needs rows of 4 contiguous values, got strides {weight_grads.stride()}"
            )
        torch.ops.dartsrenet.triton_mixed_backward_accumulate(
            grad, out, sources, projection, weights, bool(batch_stats), statistics, grad_sources, grad_projection,
            weight_grads, True, *layout(rows, hidden),
        )  # fmt: skip
        return weight_grads
    return torch.ops.dartsrenet.triton_mixed_backward(
        grad, out, sources, projection, weights, bool(batch_stats), statistics, grad_sources, grad_projection,
        *layout(rows, hidden),
    )  # fmt: skip


def _programs(rows: int, hidden: int) -> int:
    """How many (direction, column block, row range) programs a node's backward kernel on
    (2, ``rows``, ``hidden``) states runs per predecessor."""
    _, block_columns, splits = layout(rows, hidden)
    directions, blocks, _ = _grid(hidden, block_columns)
    return directions * blocks * splits


def mixing_gradients(rows: int, hidden: int, edges: int, like: Tensor) -> Tensor:
    """A zeroed accumulator for the mixing weights' gradient over many :func:`mixed_backward` calls
    on (2, ``rows``, ``hidden``) states: (programs, edges, 4), each program's partial sums (no
    atomics: deterministic); the rows of node i's edges are ``[..., first_edge : first_edge + i, :]``."""
    return like.new_zeros(_programs(rows, hidden), edges, 4)


def total_mixing_gradient(accumulator: Tensor) -> Tensor:
    """The (edges, 4) gradient a :func:`mixing_gradients` accumulator holds: its programs' partial sums added."""
    return accumulator.sum(0)
