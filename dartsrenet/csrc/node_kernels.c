/*
 * Fused CPU kernels for one DARTS node followed by its BatchNorm (docs/architecture.md §2–§3), forward
 * and backward, in float and double.
 *
 * Forward, for a node with predecessor state s, projection [c, ĥ] = s·W and activation f
 * (paper eq. 5, then the node's BatchNorm over the 2h features of both directions):
 *
 *     g = σ(c),  a = f(ĥ),  u = s + g ⊙ (a − s),
 *     x̂ = (u − μ) / √(σ² + ε),  y = γ ⊙ x̂ + β,
 *
 * with μ, σ² the batch mean and biased variance of every feature (training mode) or the
 * given running statistics (eval mode). Eager PyTorch makes about a dozen passes over
 * memory for this and twice as many in the backward pass; here the forward pass is two
 * passes and the backward pass two.
 *
 * Layouts. Every (2, B, ·) tensor — states (2, B, h), projections (2, B, 2h) with [c ‖ ĥ]
 * along the last axis, and their gradients — is passed as a pointer with its direction
 * and row strides; the last axis is contiguous. So direction-major and batch-major
 * memory, and views, work without copies. The BatchNorm's 2h channels are the features
 * [forward ‖ backward] of a row b.
 *
 * Nothing but the statistics is kept for the backward pass: it recomputes g, a and x̂
 * from the projection and the state (two exp per element) instead of reading three
 * saved tensors back from memory.
 *
 * Reductions accumulate in double, per thread, then across threads. Built and loaded by
 * dartsrenet/kernels/native_build.py, called (ctypes) by dartsrenet/kernels/native.py;
 * dartsrenet/cells/fused_sweep.py runs them inside its autograd functions.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/*
 * Vectorised exp and tanh without -ffast-math. The kernels are compiled with IEEE
 * semantics for inf and NaN (no -ffinite-math-only: it lets the compiler assume neither
 * occurs, which turned σ of a large negative input into NaN), and glibc's math.h declares
 * its vector versions (libmvec) only under __FAST_MATH__. So declare them here: GCC then
 * calls libmvec's _ZGV…expf/tanhf inside `omp simd` loops, which are as accurate as the
 * scalar functions (≤ 4 ulp) and handle ±inf, NaN and denormals. tanh's vector versions
 * came with glibc 2.35.
 */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) && !defined(__FAST_MATH__)
#define VECTOR_MATH __attribute__((__simd__("notinbranch")))
VECTOR_MATH float expf(float);
VECTOR_MATH double exp(double);
#if __GLIBC_PREREQ(2, 35)
VECTOR_MATH float tanhf(float);
VECTOR_MATH double tanh(double);
#endif
#endif

enum { ACT_TANH = 0, ACT_RELU = 1, ACT_SIGMOID = 2, ACT_IDENTITY = 3 };

/* Rows [first, last) of B handled by this thread. */
static void thread_rows(int64_t rows, int64_t *first, int64_t *last, int *thread, int *threads)
{
#ifdef _OPENMP
    *thread = omp_get_thread_num();
    *threads = omp_get_num_threads();
#else
    *thread = 0;
    *threads = 1;
#endif
    *first = rows * *thread / *threads;
    *last = rows * (*thread + 1) / *threads;
}

#define SCALAR float
#define SUFFIX _f32
#define EXP expf
#define TANH tanhf
#define FABS fabsf
#include "node_kernels_body.h"
#undef SCALAR
#undef SUFFIX
#undef EXP
#undef TANH
#undef FABS

#define SCALAR double
#define SUFFIX _f64
#define EXP exp
#define TANH tanh
#define FABS fabs
#include "node_kernels_body.h"
