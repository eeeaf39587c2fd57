/* The fused LoRA path y += scale * (x A^T) B^T and its backward, with OpenBLAS. A (r, in) and
 * B (out, r) are small (r is 4..64), so unlike the base matmul the forward splits tokens: every
 * thread reads all of A and B (they stay in cache) and keeps its rows of t to itself. */
#include <cblas.h>

#include "cpu/cpu.h"

typedef struct lora_fwd_job {
    float *y, *t;
    const float *x, *A, *B;
    int64_t N, in, r, out;
    float scale;
} lora_fwd_job;

typedef struct lora_bwd_job {
    float *dx, *dA, *dB, *u;
    const float *dy, *x, *t, *A, *B;
    int64_t N, in, r, out;
    float scale;
} lora_bwd_job;

/* Rows per chunk: at least 16 so a BLAS call has a block worth its dispatch; tiny products
 * run on one thread. */
static int64_t lora_grain(int64_t N, int64_t cost_per_row)
{
    if (N * cost_per_row < (1 << 16))
        return N;
    int64_t g = lora__cpu_grain(cost_per_row);
    return g < 16 ? 16 : g;
}

static void lora_fwd_rows(void *ctx, int64_t n0, int64_t n1, int tid)
{
    const lora_fwd_job *j = ctx;
    blasint nr = (blasint)(n1 - n0), in = (blasint)j->in, r = (blasint)j->r, out = (blasint)j->out;
    float *t = j->t + n0 * j->r;
    // t[n0:n1] (nr, r) = x[n0:n1] (nr, in) @ A (r, in)^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, r, in, 1.0f, j->x + n0 * j->in, in,
                j->A, in, 0.0f, t, r);
    // y[n0:n1] (nr, out) += scale * t[n0:n1] (nr, r) @ B (out, r)^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, out, r, j->scale, t, r, j->B, r,
                1.0f, j->y + n0 * j->out, out);
}

// t (N, r) = x (N, in) @ A (r, in)^T;  y (N, out) += scale * t @ B (out, r)^T
void lora__cpu_lora_fwd(lora_backend *be, float *y, float *t, const float *x, const float *A,
                        const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                        float scale)
{
    lora_fwd_job j = {y, t, x, A, B, N, in, r, out, scale};
    lora__pool_run_blas(lora__cpu_pool(be), lora_fwd_rows, &j, N,
                        lora_grain(N, 2 * r * (in + out)));
}

/* u and dx are per-token, so they split by rows like the forward. */
static void lora_bwd_rows(void *ctx, int64_t n0, int64_t n1, int tid)
{
    const lora_bwd_job *j = ctx;
    blasint nr = (blasint)(n1 - n0), in = (blasint)j->in, r = (blasint)j->r, out = (blasint)j->out;
    float *u = j->u + n0 * j->r;
    // u[n0:n1] (nr, r) = scale * dy[n0:n1] (nr, out) @ B (out, r)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, r, out, j->scale,
                j->dy + n0 * j->out, out, j->B, r, 0.0f, u, r);
    if (j->dx)
        // dx[n0:n1] (nr, in) += u[n0:n1] (nr, r) @ A (r, in)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, in, r, 1.0f, u, r, j->A, in,
                    1.0f, j->dx + n0 * j->in, in);
}

/* dA and dB are sums over tokens, so they split by output element instead: items [0, in) are
 * columns of dA, items [in, in + out) rows of dB; a thread owns whole columns / rows. */
static void lora_bwd_weights(void *ctx, int64_t i0, int64_t i1, int tid)
{
    const lora_bwd_job *j = ctx;
    blasint N = (blasint)j->N, in = (blasint)j->in, r = (blasint)j->r, out = (blasint)j->out;
    int64_t a1 = i1 < j->in ? i1 : j->in;
    if (j->dA && i0 < a1)
        // dA[:, i0:a1] (r, ic) += u^T (r, N) @ x[:, i0:a1] (N, ic)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, (blasint)(a1 - i0), N, 1.0f,
                    j->u, r, j->x + i0, in, 1.0f, j->dA + i0, in);
    int64_t o0 = (i0 > j->in ? i0 : j->in) - j->in, o1 = i1 - j->in;
    if (j->dB && o0 < o1)
        // dB[o0:o1] (oc, r) += scale * dy[:, o0:o1]^T (oc, N) @ t (N, r)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)(o1 - o0), r, N, j->scale,
                    j->dy + o0, out, j->t, r, 1.0f, j->dB + o0 * j->r, r);
}

// u (N, r) = scale * dy (N, out) @ B (out, r);  dx (N, in) += u @ A (r, in);
// dA (r, in) += u^T @ x (N, in);  dB (out, r) += scale * dy^T @ t (N, r)
void lora__cpu_lora_bwd(lora_backend *be, float *dx, float *dA, float *dB, float *u,
                        const float *dy, const float *x, const float *t, const float *A,
                        const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                        float scale)
{
    lora_bwd_job j = {dx, dA, dB, u, dy, x, t, A, B, N, in, r, out, scale};
    lora_pool *pool = lora__cpu_pool(be);
    /* u is only an intermediate of dx and dA; dB needs t alone */
    if (dx || dA)
        lora__pool_run_blas(pool, lora_bwd_rows, &j, N, lora_grain(N, 2 * r * (in + out)));
    if (!dA && !dB)
        return;
    /* blocks of 16 dA columns (a 64-byte line per row) keep false sharing to block edges */
    int64_t grain = N * r * (in + out) < (1 << 16) ? in + out : 16;
    lora__pool_run_blas(pool, lora_bwd_weights, &j, in + out, grain);
}
