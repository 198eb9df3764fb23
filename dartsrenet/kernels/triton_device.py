"""The Triton backend's device code: every ``@triton.jit`` function of the node kernels (paper eq. 5–8).

Activation codes as :data:`~dartsrenet.kernels.protocol.ACTIVATION_CODES`: tanh 0, relu 1,
sigmoid 2, identity 3.

Importing this module imports Triton and compiles nothing; ``triton.jit`` reads there
whether the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``), so
:mod:`dartsrenet.kernels.triton_backend` imports it (through :mod:`dartsrenet.kernels.triton_ops`)
only at the first kernel call. The device code uses none of the ``triton.jit`` functions of
Triton's own library, such as ``tl.sum``: those are compiled or interpreted as set when
triton was first imported (``torch._dynamo`` imports it), which this module does not control.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _sum(x, axis: tl.constexpr):
    """x summed over ``axis`` (what ``tl.sum`` does for floats; that one is a ``triton.jit`` function of
    Triton's library, compiled or interpreted as Triton was first imported, which this module does not
    control: it may not run in the interpreter)."""
    return tl.reduce(x, axis, _add)


@triton.jit
def _fill(value, like):
    """A tensor like ``like`` filled with the float ``value`` in its dtype. (Not ``tl.cast(value, …)``:
    Triton's interpreter rounds a Python float through float32 there, which float64 must not.)"""
    return (tl.full(like.shape, 0.0, like.dtype) + value).to(like.dtype)


@triton.jit
def _row_range(split, splits, rows, BLOCK_ROWS: tl.constexpr):
    """The rows [start, end) of row range ``split`` of ``splits``: whole blocks, the last range
    ragged (or empty when there are more ranges than blocks)."""
    per_range = (rows + splits - 1) // splits  # (not tl.cdiv: a triton.jit function of Triton's library)
    span = (per_range + BLOCK_ROWS - 1) // BLOCK_ROWS * BLOCK_ROWS
    start = tl.minimum(split * span, rows)
    return start, tl.minimum(start + span, rows)


@triton.jit
def _forward_program(out, hidden, splits, rows, BLOCK_ROWS: tl.constexpr, BLOCK_COLUMNS: tl.constexpr):
    """Where a forward program (direction, column block, row range) works — direction, its
    columns and which of them exist, its row range [start, end) — and its column statistics
    (count, shift, mean of u − shift, m2 for :func:`_fold_block`), empty, in ``out``'s dtype."""
    direction = tl.program_id(0)
    columns = tl.program_id(1) * BLOCK_COLUMNS + tl.arange(0, BLOCK_COLUMNS)
    split = tl.program_id(2)
    start, end = _row_range(split, splits, rows, BLOCK_ROWS)
    zero = tl.full([BLOCK_COLUMNS], 0.0, dtype=out.dtype.element_ty)
    return direction, columns, columns < hidden, split, start, end, zero, zero, zero, zero


@triton.jit
def _divide(numerator, denominator):
    """numerator / denominator, IEEE-rounded (float32 ``/`` on a GPU is a 2-ulp approximation)."""
    if denominator.dtype == tl.float64:
        quotient = numerator / denominator
    else:
        quotient = tl.div_rn(numerator, denominator)
    return quotient


@triton.jit
def _inverse_sqrt(x):
    """1/√x, IEEE-rounded square root and division."""
    if x.dtype == tl.float64:
        root = tl.sqrt(x)
    else:
        root = tl.sqrt_rn(x)
    return _divide(tl.full(x.shape, 1.0, x.dtype), root)


@triton.jit
def _sigmoid(x):
    """σ(x) from e = exp(−|x|) ∈ [0, 1]: 1/(1 + e) for x ≥ 0, e/(1 + e) below."""
    e = tl.exp(-tl.abs(x))
    r = _divide(tl.full(x.shape, 1.0, x.dtype), 1.0 + e)
    return tl.where(x >= 0, r, e * r)


@triton.jit
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


@triton.jit
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


@triton.jit
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


@triton.jit
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


@triton.jit
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


@triton.jit
def node_forward_kernel(
    projection, projection_dir, projection_row, source, source_dir, source_row, out, out_dir, out_row,
    weight, bias, running_mean, running_var, statistics, statistics_stride, rows, hidden, splits, eps: tl.float64,
    ACTIVATION: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, BATCH_STATS: tl.constexpr,
    BLOCK_ROWS: tl.constexpr, BLOCK_COLUMNS: tl.constexpr,
):  # fmt: skip
    """Program (direction, column block, row range): pass 1 u = s + σ(c)(f(ĥ) − s) into ``out`` and
    the column statistics, pass 2 the BatchNorm in place (:func:`_normalise`). Batch statistics
    need one row range (all rows); running statistics let ``splits`` ranges run side by side."""
    direction, columns, in_columns, split, start, end, count, shift, mean, m2 = _forward_program(
        out, hidden, splits, rows, BLOCK_ROWS, BLOCK_COLUMNS
    )
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


@triton.jit
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


@triton.jit
def node_backward_kernel(
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


@triton.jit
def _mixed_update(gate, candidate, state, w_tanh, w_relu, w_sigmoid, w_identity):
    """One predecessor's term of eq. 8: K·s + g(m − K·s) with g = σ(c), m = Σ_f w_f f(ĥ), K = Σ_f w_f."""
    mixed = (
        w_tanh * _tanh(candidate) + w_relu * tl.where(candidate < 0, 0.0, candidate)
        + w_sigmoid * _sigmoid(candidate) + w_identity * candidate
    )  # fmt: skip
    held = (w_tanh + w_relu + w_sigmoid + w_identity) * state
    return held + _sigmoid(gate) * (mixed - held)


@triton.jit
def mixed_forward_kernel(
    projection, projection_dir, projection_source, projection_row,
    source, source_dir, source_source, source_row, weights, weights_stride, sources,
    out, out_dir, out_row, running_mean, running_var, statistics, statistics_stride, rows, hidden, splits,
    eps: tl.float64, BATCH_STATS: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_COLUMNS: tl.constexpr,
):  # fmt: skip
    """Program (direction, column block, row range): pass 1 u = Σ_j [K_j s_j + g_j (m_j − K_j s_j)]
    into ``out`` and the column statistics, pass 2 the affine-free BatchNorm in place (row ranges
    as in :func:`node_forward_kernel`)."""
    direction, columns, in_columns, split, start, end, count, shift, mean, m2 = _forward_program(
        out, hidden, splits, rows, BLOCK_ROWS, BLOCK_COLUMNS
    )
    for first in tl.range(start, end, BLOCK_ROWS):
        row = first + tl.arange(0, BLOCK_ROWS)
        mask = (row < end)[:, None] & in_columns[None, :]
        row = row.to(tl.int64)[:, None]
        update = tl.full([BLOCK_ROWS, BLOCK_COLUMNS], 0.0, dtype=out.dtype.element_ty)
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


@triton.jit
def mixed_backward_kernel(
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
