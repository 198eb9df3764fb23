/*
 * The kernels of node_kernels.c for one scalar type. Included once per type with
 * SCALAR (float or double), SUFFIX (_f32, _f64), EXP, TANH and FABS defined.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)

/*
 * σ(x) that never overflows: e = exp(−|x|) lies in [0, 1], so 1 + e never becomes inf and
 * no inf·0 can arise; σ = 1/(1 + e) for x ≥ 0 and e/(1 + e) below. Exact at ±inf (1 and 0),
 * NaN stays NaN, and for x ≲ −88 it gives exp(x)'s denormals as PyTorch does.
 */
static inline __attribute__((always_inline)) SCALAR FN(sigmoid)(SCALAR x)
{
    const SCALAR e = EXP(-FABS(x));
    const SCALAR r = (SCALAR)1 / ((SCALAR)1 + e);
    return x >= 0 ? r : e * r;
}

/*
 * f(x) for the activation code act (a constant after inlining, so the branches fold).
 * relu is written x < 0 ? 0 : x so that a NaN stays NaN, as in torch.relu.
 */
static inline __attribute__((always_inline)) SCALAR FN(activate)(SCALAR x, int act)
{
    return act == ACT_TANH      ? TANH(x)
         : act == ACT_RELU      ? (x < 0 ? (SCALAR)0 : x)
         : act == ACT_SIGMOID   ? FN(sigmoid)(x)
         :                        x;
}

/* f'(x) written with a = f(x), so the backward pass needs no exp. */
static inline __attribute__((always_inline)) SCALAR FN(derivative)(SCALAR a, int act)
{
    return act == ACT_TANH      ? (SCALAR)1 - a * a
         : act == ACT_RELU      ? (a > 0 ? (SCALAR)1 : (SCALAR)0)
         : act == ACT_SIGMOID   ? a * ((SCALAR)1 - a)
         :                        (SCALAR)1;
}

/*
 * Feature k of a node (paper eq. 5) from its projection row [c ‖ ĥ] and predecessor state
 * s: sets g = σ(c) and a = f(ĥ), returns u = s + g(a − s). Every pass calls this rather
 * than keeping g and a in memory.
 */
static inline __attribute__((always_inline)) SCALAR FN(node_at)(
    const SCALAR *restrict projection, int64_t h, int64_t k, SCALAR s, int act, SCALAR *g, SCALAR *a)
{
    *g = FN(sigmoid)(projection[k]);
    *a = FN(activate)(projection[h + k], act);
    return s + *g * (*a - s);
}

/* One direction of one row: u = s + σ(c) ⊙ (f(ĥ) − s), written to out; adds u and u² to the feature sums. */
static inline __attribute__((always_inline)) void FN(forward_row)(
    const SCALAR *restrict projection, const SCALAR *restrict state, int64_t h, int act,
    SCALAR *restrict update, double *restrict sum, double *restrict square)
{
#pragma omp simd
    for (int64_t k = 0; k < h; ++k) {
        SCALAR g, a;
        const SCALAR u = FN(node_at)(projection, h, k, state[k], act, &g, &a);
        update[k] = u;
        sum[k] += u;
        square[k] += (double)u * u;
    }
}

/* dy = grad_scale·grad + extra, either term absent when its pointer is NULL (folds after inlining). */
static inline __attribute__((always_inline)) SCALAR FN(output_grad)(
    const SCALAR *restrict grad, SCALAR grad_scale, const SCALAR *restrict extra, int64_t k)
{
    return (grad ? grad_scale * grad[k] : (SCALAR)0) + (extra ? extra[k] : (SCALAR)0);
}

/* Backward pass 1 for one direction of one row: Σdy and Σdy·x̂ (x̂ recomputed from the projection). */
static inline __attribute__((always_inline)) void FN(backward_reduce_row)(
    const SCALAR *restrict grad, SCALAR grad_scale, const SCALAR *restrict extra,
    const SCALAR *restrict projection, const SCALAR *restrict state,
    int64_t h, int act, const SCALAR *restrict mean, const SCALAR *restrict invstd,
    double *restrict sum, double *restrict dot)
{
#pragma omp simd
    for (int64_t k = 0; k < h; ++k) {
        SCALAR g, a;
        const SCALAR xhat = (FN(node_at)(projection, h, k, state[k], act, &g, &a) - mean[k]) * invstd[k];
        const SCALAR dy = FN(output_grad)(grad, grad_scale, extra, k);
        sum[k] += dy;
        dot[k] += (double)dy * xhat;
    }
}

/* Backward pass 2 for one direction of one row (see FN(node_backward)). */
static inline __attribute__((always_inline)) void FN(backward_row)(
    const SCALAR *restrict grad, SCALAR grad_scale, const SCALAR *restrict extra,
    const SCALAR *restrict projection, const SCALAR *restrict state,
    int64_t h, int act, int accumulate, const SCALAR *restrict mean, const SCALAR *restrict invstd,
    const SCALAR *restrict scale, const SCALAR *restrict grad_mean, const SCALAR *restrict grad_xhat_mean,
    SCALAR *restrict grad_state, SCALAR *restrict grad_projection)
{
#pragma omp simd
    for (int64_t k = 0; k < h; ++k) {
        SCALAR g, a;
        const SCALAR s = state[k];
        const SCALAR xhat = (FN(node_at)(projection, h, k, s, act, &g, &a) - mean[k]) * invstd[k];
        const SCALAR dy = FN(output_grad)(grad, grad_scale, extra, k);
        const SCALAR du = scale[k] * (dy - grad_mean[k] - xhat * grad_xhat_mean[k]);
        const SCALAR ds = du * ((SCALAR)1 - g);
        grad_state[k] = accumulate ? grad_state[k] + ds : ds;
        grad_projection[k] = du * (a - s) * g * ((SCALAR)1 - g);
        grad_projection[h + k] = du * g * FN(derivative)(a, act);
    }
}

/* CALL specialised for the activation code act, as act_ (so each loop is compiled per activation). */
#define DISPATCH_ACTIVATION(CALL)                                    \
    switch (act) {                                                   \
    case ACT_TANH: { const int act_ = ACT_TANH; CALL; break; }       \
    case ACT_RELU: { const int act_ = ACT_RELU; CALL; break; }       \
    case ACT_SIGMOID: { const int act_ = ACT_SIGMOID; CALL; break; } \
    default: { const int act_ = ACT_IDENTITY; CALL; break; }         \
    }

/* CALL specialised for which of grad (as grad_) and extra (as extra_) are present. */
#define DISPATCH_GRADS(CALL)                                                                   \
    if (grad && extra) { const SCALAR *grad_ = grad, *extra_ = extra; DISPATCH_ACTIVATION(CALL) } \
    else if (grad) { const SCALAR *grad_ = grad, *extra_ = NULL; DISPATCH_ACTIVATION(CALL) }      \
    else { const SCALAR *grad_ = NULL, *extra_ = extra; DISPATCH_ACTIVATION(CALL) }

/* Σ over threads of the per-thread sums (rows of `partial`, 2·width doubles per thread). */
static inline void FN(sum_partials)(const double *partial, int threads, int64_t width, int64_t c,
                                    double *first, double *second)
{
    double a = 0, b = 0;
    for (int t = 0; t < threads; ++t) {
        a += partial[(int64_t)t * 2 * width + c];
        b += partial[(int64_t)t * 2 * width + width + c];
    }
    *first = a;
    *second = b;
}

/*
 * The BatchNorm of a forward pass, once u is in out and the per-thread Σu, Σu² are in
 * partial: the statistics (batch or running), then y = γ(u − μ)/σ + β in place.
 */
static int FN(finish_norm)(
    const double *partial, int threads, int64_t rows, int64_t h, const SCALAR *weight, const SCALAR *bias,
    int batch_stats, const SCALAR *running_mean, const SCALAR *running_var, double eps,
    SCALAR *out, int64_t out_dir, int64_t out_row, SCALAR *mean, SCALAR *var, SCALAR *invstd)
{
    const int64_t width = 2 * h;
    SCALAR *affine = malloc(sizeof(SCALAR) * 2 * width); /* γ/σ, β − μγ/σ */
    if (affine == NULL)
        return 1;
    SCALAR *scale = affine, *shift = affine + width;
    for (int64_t c = 0; c < width; ++c) {
        double mu, sigma2;
        if (batch_stats) {
            double total, total_square;
            FN(sum_partials)(partial, threads, width, c, &total, &total_square);
            mu = total / (double)rows;
            sigma2 = total_square / (double)rows - mu * mu;
            if (sigma2 < 0)
                sigma2 = 0;
        } else {
            mu = running_mean[c];
            sigma2 = running_var[c];
        }
        const double inv = 1.0 / sqrt(sigma2 + eps);
        const double gamma = weight ? weight[c] : 1.0, beta = bias ? bias[c] : 0.0;
        mean[c] = (SCALAR)mu;
        var[c] = (SCALAR)sigma2;
        invstd[c] = (SCALAR)inv;
        scale[c] = (SCALAR)(gamma * inv);
        shift[c] = (SCALAR)(beta - mu * gamma * inv);
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < rows; ++b) {
        for (int d = 0; d < 2; ++d) {
            SCALAR *restrict y = out + d * out_dir + b * out_row;
            const SCALAR *restrict a = scale + d * h, *restrict c = shift + d * h;
#pragma omp simd
            for (int64_t k = 0; k < h; ++k)
                y[k] = y[k] * a[k] + c[k];
        }
    }
    free(affine);
    return 0;
}

/*
 * Forward pass of node + BatchNorm over `rows` = B rows.
 *
 * projection: [c ‖ ĥ] (2, B, 2h) and state: s (2, B, h), each with its (direction, row)
 * strides; weight, bias: γ, β (2h) or NULL (a BatchNorm without affine parameters);
 * batch_stats: 1 normalises with the batch's statistics, 0 with running_mean/var;
 * out: y (2, B, h) with its strides, written; mean, var, invstd: (2h), written: the
 * statistics used (var biased) and 1/√(var + ε). Nothing else is kept: the backward pass
 * recomputes g, a and x̂ from the projection and the state.
 * Returns 0, or 1 when memory ran out.
 */
int FN(node_forward)(
    const SCALAR *projection, int64_t projection_dir, int64_t projection_row,
    const SCALAR *state, int64_t state_dir, int64_t state_row,
    int64_t rows, int64_t h, int act,
    const SCALAR *weight, const SCALAR *bias,
    int batch_stats, const SCALAR *running_mean, const SCALAR *running_var, double eps,
    SCALAR *out, int64_t out_dir, int64_t out_row,
    SCALAR *mean, SCALAR *var, SCALAR *invstd, int threads)
{
    const int64_t width = 2 * h;
    double *partial = calloc((size_t)threads * 2 * width, sizeof(double)); /* per thread: Σu, Σu² */
    if (partial == NULL)
        return 1;
    /* pass 1: u (into out) and the per-thread feature sums */
#pragma omp parallel num_threads(threads)
    {
        int64_t first, last;
        int thread, team;
        thread_rows(rows, &first, &last, &thread, &team);
        double *sum = partial + (int64_t)thread * 2 * width, *square = sum + width;
        for (int64_t b = first; b < last; ++b) {
            for (int d = 0; d < 2; ++d) {
                DISPATCH_ACTIVATION(FN(forward_row)(
                    projection + d * projection_dir + b * projection_row, state + d * state_dir + b * state_row,
                    h, act_, out + d * out_dir + b * out_row, sum + d * h, square + d * h))
            }
        }
    }
    const int status = FN(finish_norm)(partial, threads, rows, h, weight, bias, batch_stats, running_mean,
                                       running_var, eps, out, out_dir, out_row, mean, var, invstd);
    free(partial);
    return status;
}

/*
 * Backward pass of FN(node_forward). With dy the gradient of y, N = B and per feature
 * Σdy, Σdy·x̂ over the batch:
 *
 *     dγ = Σdy·x̂,  dβ = Σdy,
 *     du = γ/σ · (dy − Σdy/N − x̂·Σdy·x̂/N)      (batch statistics; else du = γ/σ · dy)
 *     ds = du ⊙ (1 − g),  dc = du ⊙ (a − s) ⊙ g(1 − g),  dĥ = du ⊙ g ⊙ f'(ĥ).
 *
 * grad, extra: dy = grad_scale·grad + extra, (2, B, h) each, either NULL when absent
 * (not both); projection and state as in the forward pass; mean, invstd: what
 * the forward pass wrote (g, a and x̂ are recomputed from projection and state: cheaper
 * than writing and reading them back);
 * grad_state: ds (2, B, h), written, or added to when accumulate is 1; grad_projection:
 * [dc ‖ dĥ] (2, B, 2h), written; each with its (direction, row) strides; grad_weight,
 * grad_bias: dγ, dβ (2h), written. Returns 0, or 1 when memory ran out.
 */
int FN(node_backward)(
    const SCALAR *grad, int64_t grad_dir, int64_t grad_row, double grad_scale_,
    const SCALAR *extra, int64_t extra_dir, int64_t extra_row,
    const SCALAR *projection, int64_t projection_dir, int64_t projection_row,
    const SCALAR *state, int64_t state_dir, int64_t state_row,
    int64_t rows, int64_t h, int act,
    const SCALAR *weight, const SCALAR *mean, const SCALAR *invstd, int batch_stats,
    SCALAR *grad_state, int64_t grad_state_dir, int64_t grad_state_row, int accumulate,
    SCALAR *grad_projection, int64_t grad_projection_dir, int64_t grad_projection_row,
    SCALAR *grad_weight, SCALAR *grad_bias, int threads)
{
    const int64_t width = 2 * h;
    const SCALAR grad_scale = (SCALAR)grad_scale_;
    double *partial = calloc((size_t)threads * 2 * width, sizeof(double)); /* per thread: Σdy, Σdy·x̂ */
    SCALAR *terms = malloc(sizeof(SCALAR) * 3 * width);                      /* γ/σ, Σdy/N, Σdy·x̂/N */
    if (partial == NULL || terms == NULL) {
        free(partial);
        free(terms);
        return 1;
    }
    /* pass 1: the two reductions */
#pragma omp parallel num_threads(threads)
    {
        int64_t first, last;
        int thread, team;
        thread_rows(rows, &first, &last, &thread, &team);
        double *sum = partial + (int64_t)thread * 2 * width, *dot = sum + width;
        for (int64_t b = first; b < last; ++b) {
            for (int d = 0; d < 2; ++d) {
                const int64_t grad_at = d * grad_dir + b * grad_row, extra_at = d * extra_dir + b * extra_row;
                DISPATCH_GRADS(FN(backward_reduce_row)(
                    grad_ ? grad_ + grad_at : NULL, grad_scale, extra_ ? extra_ + extra_at : NULL,
                    projection + d * projection_dir + b * projection_row,
                    state + d * state_dir + b * state_row, h, act_, mean + d * h, invstd + d * h,
                    sum + d * h, dot + d * h))
            }
        }
    }
    SCALAR *scale = terms, *grad_mean = terms + width, *grad_xhat_mean = terms + 2 * width;
    for (int64_t c = 0; c < width; ++c) {
        double total, total_dot;
        FN(sum_partials)(partial, threads, width, c, &total, &total_dot);
        grad_bias[c] = (SCALAR)total;
        grad_weight[c] = (SCALAR)total_dot;
        scale[c] = (SCALAR)((weight ? weight[c] : 1.0) * invstd[c]);
        grad_mean[c] = batch_stats ? (SCALAR)(total / (double)rows) : (SCALAR)0;
        grad_xhat_mean[c] = batch_stats ? (SCALAR)(total_dot / (double)rows) : (SCALAR)0;
    }
    /* pass 2: du, then the gradients of the state and the projection */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < rows; ++b) {
        for (int d = 0; d < 2; ++d) {
            const int64_t grad_at = d * grad_dir + b * grad_row, extra_at = d * extra_dir + b * extra_row;
            DISPATCH_GRADS(FN(backward_row)(
                grad_ ? grad_ + grad_at : NULL, grad_scale, extra_ ? extra_ + extra_at : NULL,
                projection + d * projection_dir + b * projection_row,
                state + d * state_dir + b * state_row, h, act_, accumulate, mean + d * h, invstd + d * h,
                scale + d * h, grad_mean + d * h, grad_xhat_mean + d * h,
                grad_state + d * grad_state_dir + b * grad_state_row,
                grad_projection + d * grad_projection_dir + b * grad_projection_row))
        }
    }
    free(partial);
    free(terms);
    return 0;
}

/* ---- search-cell nodes: the mixture of eq. 8 over all predecessors, then an affine-free BatchNorm ---- */

/* One direction of one row: u = Σ_j [K_j s_j + g_j (m_j − K_j s_j)], m_j = Σ_f w_jf f(ĥ_j), K_j = Σ_f w_jf. */
static inline __attribute__((always_inline)) void FN(mixed_forward_row)(
    const SCALAR *restrict projection, int64_t projection_source, const SCALAR *restrict state,
    int64_t state_source, int sources, int64_t h, const SCALAR *restrict weights,
    SCALAR *restrict update, double *restrict sum, double *restrict square)
{
#pragma omp simd
    for (int64_t k = 0; k < h; ++k)
        update[k] = 0;
    for (int j = 0; j < sources; ++j) {
        const SCALAR *restrict p = projection + j * projection_source, *restrict s = state + j * state_source;
        const SCALAR w_tanh = weights[4 * j], w_relu = weights[4 * j + 1];
        const SCALAR w_sigmoid = weights[4 * j + 2], w_identity = weights[4 * j + 3];
        const SCALAR kept = w_tanh + w_relu + w_sigmoid + w_identity;
#pragma omp simd
        for (int64_t k = 0; k < h; ++k) {
            const SCALAR g = FN(sigmoid)(p[k]);
            const SCALAR x = p[h + k];
            const SCALAR mixed = w_tanh * FN(activate)(x, ACT_TANH) + w_relu * FN(activate)(x, ACT_RELU)
                               + w_sigmoid * FN(activate)(x, ACT_SIGMOID) + w_identity * x;
            const SCALAR held = kept * s[k];
            update[k] += held + g * (mixed - held);
        }
    }
#pragma omp simd
    for (int64_t k = 0; k < h; ++k) {
        sum[k] += update[k];
        square[k] += (double)update[k] * update[k];
    }
}

/*
 * Forward pass of a search node + BatchNorm without affine parameters (docs/architecture.md §3).
 *
 * state: s_0 … s_{i−1} (2, i, B, h) and projection: [c_j ‖ ĥ_j] = s_j·W_i (2, i, B, 2h), each
 * with (direction, source, row) strides; weights: w_jf = softmax(α)[j→i, f] (i, 4) for
 * f = tanh, relu, sigmoid, identity (contiguous); other arguments as FN(node_forward).
 */
int FN(mixed_forward)(
    const SCALAR *projection, int64_t projection_dir, int64_t projection_source, int64_t projection_row,
    const SCALAR *state, int64_t state_dir, int64_t state_source, int64_t state_row,
    int sources, int64_t rows, int64_t h, const SCALAR *weights,
    int batch_stats, const SCALAR *running_mean, const SCALAR *running_var, double eps,
    SCALAR *out, int64_t out_dir, int64_t out_row,
    SCALAR *mean, SCALAR *var, SCALAR *invstd, int threads)
{
    const int64_t width = 2 * h;
    double *partial = calloc((size_t)threads * 2 * width, sizeof(double));
    if (partial == NULL)
        return 1;
#pragma omp parallel num_threads(threads)
    {
        int64_t first, last;
        int thread, team;
        thread_rows(rows, &first, &last, &thread, &team);
        double *sum = partial + (int64_t)thread * 2 * width, *square = sum + width;
        for (int64_t b = first; b < last; ++b)
            for (int d = 0; d < 2; ++d)
                FN(mixed_forward_row)(
                    projection + d * projection_dir + b * projection_row, projection_source,
                    state + d * state_dir + b * state_row, state_source, sources, h, weights,
                    out + d * out_dir + b * out_row, sum + d * h, square + d * h);
    }
    const int status = FN(finish_norm)(partial, threads, rows, h, NULL, NULL, batch_stats, running_mean,
                                       running_var, eps, out, out_dir, out_row, mean, var, invstd);
    free(partial);
    return status;
}

/*
 * Backward pass of FN(mixed_forward). Without affine parameters x̂ = y, the output itself.
 * With du = (1/σ)(dy − Σdy/N − y·Σdy·y/N) (batch statistics; else du = dy/σ), per source j:
 *
 *     ds_j += du ⊙ K_j (1 − g_j),   dc_j = du ⊙ (m_j − K_j s_j) ⊙ g_j (1 − g_j),
 *     dĥ_j = du ⊙ g_j ⊙ Σ_f w_jf f'(ĥ_j),   dw_jf = Σ du ⊙ (s_j (1 − g_j) + g_j f(ĥ_j)).
 *
 * grad: dy (2, B, h); out: y as the forward pass wrote it; grad_state: (2, i, B, h), added
 * to; grad_projection: (2, i, B, 2h), written; grad_weights: (i, 4), written; scratch:
 * B·2·h values of work space; strides as in the forward pass.
 */
int FN(mixed_backward)(
    const SCALAR *grad, int64_t grad_dir, int64_t grad_row,
    const SCALAR *out, int64_t out_dir, int64_t out_row,
    const SCALAR *projection, int64_t projection_dir, int64_t projection_source, int64_t projection_row,
    const SCALAR *state, int64_t state_dir, int64_t state_source, int64_t state_row,
    int sources, int64_t rows, int64_t h, const SCALAR *weights,
    const SCALAR *invstd, int batch_stats, SCALAR *scratch,
    SCALAR *grad_state, int64_t grad_state_dir, int64_t grad_state_source, int64_t grad_state_row,
    SCALAR *grad_projection, int64_t grad_projection_dir, int64_t grad_projection_source,
    int64_t grad_projection_row, SCALAR *grad_weights, int threads)
{
    const int64_t width = 2 * h;
    double *partial = calloc((size_t)threads * 2 * width, sizeof(double));      /* Σdy, Σdy·y */
    double *weight_partial = calloc((size_t)threads * 4 * sources, sizeof(double)); /* dw_jf per thread */
    SCALAR *terms = malloc(sizeof(SCALAR) * 2 * width);                           /* Σdy/N, Σdy·y/N */
    if (partial == NULL || weight_partial == NULL || terms == NULL) {
        free(partial);
        free(weight_partial);
        free(terms);
        return 1;
    }
#pragma omp parallel num_threads(threads)
    {
        int64_t first, last;
        int thread, team;
        thread_rows(rows, &first, &last, &thread, &team);
        double *sum = partial + (int64_t)thread * 2 * width, *dot = sum + width;
        for (int64_t b = first; b < last; ++b)
            for (int d = 0; d < 2; ++d) {
                const SCALAR *restrict dy = grad + d * grad_dir + b * grad_row, *restrict y = out + d * out_dir + b * out_row;
                double *restrict s = sum + d * h, *restrict p = dot + d * h;
#pragma omp simd
                for (int64_t k = 0; k < h; ++k) {
                    s[k] += dy[k];
                    p[k] += (double)dy[k] * y[k];
                }
            }
    }
    SCALAR *grad_mean = terms, *grad_y_mean = terms + width;
    for (int64_t c = 0; c < width; ++c) {
        double total, total_dot;
        FN(sum_partials)(partial, threads, width, c, &total, &total_dot);
        grad_mean[c] = batch_stats ? (SCALAR)(total / (double)rows) : (SCALAR)0;
        grad_y_mean[c] = batch_stats ? (SCALAR)(total_dot / (double)rows) : (SCALAR)0;
    }
#pragma omp parallel num_threads(threads)
    {
        int64_t first, last;
        int thread, team;
        thread_rows(rows, &first, &last, &thread, &team);
        double *restrict weight_sums = weight_partial + (int64_t)thread * 4 * sources;
        for (int64_t b = first; b < last; ++b)
            for (int d = 0; d < 2; ++d) {
                const SCALAR *restrict dy = grad + d * grad_dir + b * grad_row, *restrict y = out + d * out_dir + b * out_row;
                const SCALAR *restrict inv = invstd + d * h, *restrict gm = grad_mean + d * h, *restrict gym = grad_y_mean + d * h;
                SCALAR *restrict du = scratch + (b * 2 + d) * h;
#pragma omp simd
                for (int64_t k = 0; k < h; ++k)
                    du[k] = inv[k] * (dy[k] - gm[k] - y[k] * gym[k]);
                for (int j = 0; j < sources; ++j) {
                    const SCALAR *restrict p = projection + d * projection_dir + j * projection_source + b * projection_row;
                    const SCALAR *restrict s = state + d * state_dir + j * state_source + b * state_row;
                    SCALAR *restrict gs = grad_state + d * grad_state_dir + j * grad_state_source + b * grad_state_row;
                    SCALAR *restrict gp = grad_projection + d * grad_projection_dir + j * grad_projection_source
                                        + b * grad_projection_row;
                    const SCALAR w_tanh = weights[4 * j], w_relu = weights[4 * j + 1];
                    const SCALAR w_sigmoid = weights[4 * j + 2], w_identity = weights[4 * j + 3];
                    const SCALAR kept = w_tanh + w_relu + w_sigmoid + w_identity;
                    double d_tanh = 0, d_relu = 0, d_sigmoid = 0, d_identity = 0;
#pragma omp simd reduction(+ : d_tanh, d_relu, d_sigmoid, d_identity)
                    for (int64_t k = 0; k < h; ++k) {
                        const SCALAR g = FN(sigmoid)(p[k]);
                        const SCALAR x = p[h + k];
                        const SCALAR t = FN(activate)(x, ACT_TANH), r = FN(activate)(x, ACT_RELU);
                        const SCALAR q = FN(activate)(x, ACT_SIGMOID);
                        const SCALAR mixed = w_tanh * t + w_relu * r + w_sigmoid * q + w_identity * x;
                        const SCALAR held = kept * s[k], u = du[k];
                        const SCALAR slope = w_tanh * FN(derivative)(t, ACT_TANH) + w_relu * FN(derivative)(r, ACT_RELU)
                                           + w_sigmoid * FN(derivative)(q, ACT_SIGMOID) + w_identity;
                        gs[k] += u * kept * ((SCALAR)1 - g);
                        gp[k] = u * (mixed - held) * g * ((SCALAR)1 - g);
                        gp[h + k] = u * g * slope;
                        const SCALAR common = u * s[k] * ((SCALAR)1 - g), ug = u * g;
                        d_tanh += common + ug * t;
                        d_relu += common + ug * r;
                        d_sigmoid += common + ug * q;
                        d_identity += common + ug * x;
                    }
                    weight_sums[4 * j] += d_tanh;
                    weight_sums[4 * j + 1] += d_relu;
                    weight_sums[4 * j + 2] += d_sigmoid;
                    weight_sums[4 * j + 3] += d_identity;
                }
            }
    }
    for (int64_t e = 0; e < 4 * (int64_t)sources; ++e) {
        double total = 0;
        for (int t = 0; t < threads; ++t)
            total += weight_partial[(int64_t)t * 4 * sources + e];
        grad_weights[e] = (SCALAR)total;
    }
    free(partial);
    free(weight_partial);
    free(terms);
    return 0;
}

#undef CAT_
#undef CAT
#undef FN
#undef DISPATCH_ACTIVATION
