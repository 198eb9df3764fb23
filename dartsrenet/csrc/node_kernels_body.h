/*
 * The kernels of node_kernels.c for one scalar type. Included once per type with
 * SCALAR (float or double), SUFFIX (_f32, _f64), EXP and TANH defined.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)

/* f(x) for the activation code act (a constant after inlining, so the branches fold). */
static inline __attribute__((always_inline)) SCALAR FN(activate)(SCALAR x, int act)
{
    return act == ACT_TANH      ? TANH(x)
         : act == ACT_RELU      ? (x > 0 ? x : (SCALAR)0)
         : act == ACT_SIGMOID   ? (SCALAR)1 / ((SCALAR)1 + EXP(-x))
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

/* One direction of one row: u = s + σ(c) ⊙ (f(ĥ) − s), written to out; adds u and u² to the feature sums. */
static inline __attribute__((always_inline)) void FN(forward_row)(
    const SCALAR *restrict projection, const SCALAR *restrict state, int64_t h, int act,
    SCALAR *restrict update, double *restrict sum, double *restrict square)
{
#pragma omp simd
    for (int64_t k = 0; k < h; ++k) {
        SCALAR g = (SCALAR)1 / ((SCALAR)1 + EXP(-projection[k]));
        SCALAR a = FN(activate)(projection[h + k], act);
        SCALAR s = state[k];
        SCALAR u = s + g * (a - s);
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

/* Backward pass 1 for one direction of one row: g and a (kept in scratch), Σdy and Σdy·x̂. */
static inline __attribute__((always_inline)) void FN(backward_reduce_row)(
    const SCALAR *restrict grad, SCALAR grad_scale, const SCALAR *restrict extra,
    const SCALAR *restrict projection, const SCALAR *restrict state,
    int64_t h, int act, const SCALAR *restrict mean, const SCALAR *restrict invstd,
    SCALAR *restrict scratch, double *restrict sum, double *restrict dot)
{
#pragma omp simd
    for (int64_t k = 0; k < h; ++k) {
        SCALAR g = (SCALAR)1 / ((SCALAR)1 + EXP(-projection[k]));
        SCALAR a = FN(activate)(projection[h + k], act);
        SCALAR s = state[k];
        SCALAR xhat = (s + g * (a - s) - mean[k]) * invstd[k];
        SCALAR dy = FN(output_grad)(grad, grad_scale, extra, k);
        scratch[k] = g;
        scratch[h + k] = a;
        sum[k] += dy;
        dot[k] += (double)dy * xhat;
    }
}

/* Backward pass 2 for one direction of one row (see FN(node_backward)). */
static inline __attribute__((always_inline)) void FN(backward_row)(
    const SCALAR *restrict grad, SCALAR grad_scale, const SCALAR *restrict extra,
    const SCALAR *restrict scratch, const SCALAR *restrict state,
    int64_t h, int act, int accumulate, const SCALAR *restrict mean, const SCALAR *restrict invstd,
    const SCALAR *restrict scale, const SCALAR *restrict grad_mean, const SCALAR *restrict grad_xhat_mean,
    SCALAR *restrict grad_state, SCALAR *restrict grad_projection)
{
#pragma omp simd
    for (int64_t k = 0; k < h; ++k) {
        SCALAR g = scratch[k], a = scratch[h + k], s = state[k];
        SCALAR xhat = (s + g * (a - s) - mean[k]) * invstd[k];
        SCALAR dy = FN(output_grad)(grad, grad_scale, extra, k);
        SCALAR du = scale[k] * (dy - grad_mean[k] - xhat * grad_xhat_mean[k]);
        SCALAR ds = du * ((SCALAR)1 - g);
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
    SCALAR *affine = malloc(sizeof(SCALAR) * 2 * width);                     /* γ/σ, β − μγ/σ */
    if (partial == NULL || affine == NULL) {
        free(partial);
        free(affine);
        return 1;
    }
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
    /* pass 2: y = γ(u − μ)/σ + β, in place */
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
    free(partial);
    free(affine);
    return 0;
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
 * the forward pass wrote; scratch: B·2·2h values of work space (g and a);
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
    const SCALAR *weight, const SCALAR *mean, const SCALAR *invstd, int batch_stats, SCALAR *scratch,
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
    /* pass 1: g and a into scratch, the two reductions */
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
                    scratch + (b * 2 + d) * width, sum + d * h, dot + d * h))
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
                scratch + (b * 2 + d) * width,
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

/*
 * out = (1/count) Σ_i states[i] over `size` contiguous values (h_t = mean of the averaged
 * nodes, paper eq. 6), in one pass.
 */
void FN(mean_of_states)(const SCALAR *const *states, int count, int64_t size, SCALAR *out, int threads)
{
    const SCALAR scale = (SCALAR)1 / (SCALAR)count;
    const int64_t block = 4096;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t start = 0; start < size; start += block) {
        const int64_t stop = start + block < size ? start + block : size;
        SCALAR *restrict y = out + start;
        const SCALAR *restrict first = states[0] + start;
#pragma omp simd
        for (int64_t k = 0; k < stop - start; ++k)
            y[k] = first[k];
        for (int i = 1; i < count; ++i) {
            const SCALAR *restrict x = states[i] + start;
#pragma omp simd
            for (int64_t k = 0; k < stop - start; ++k)
                y[k] += x[k];
        }
#pragma omp simd
        for (int64_t k = 0; k < stop - start; ++k)
            y[k] *= scale;
    }
}

#undef CAT_
#undef CAT
#undef FN
#undef DISPATCH_ACTIVATION
