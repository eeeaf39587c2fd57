/* y = x w^T + b and its backward with OpenBLAS. The forward splits the output features across
 * the pool's threads: each thread multiplies by a contiguous block of weight rows, so the
 * weights stream from memory once. */
#include <cblas.h>

#include "cpu/cpu.h"

typedef struct matmul_job {
    float *y;
    const float *x, *w, *bias;
    int64_t N, Nout, K;
} matmul_job;

static void matmul_rows(void *ctx, int64_t n0, int64_t n1, int tid)
{
    const matmul_job *j = ctx;
    int64_t nc = n1 - n0;
    if (j->N == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)nc, (blasint)j->K, 1.0f,
                    j->w + n0 * j->K, (blasint)j->K, j->x, 1, 0.0f, j->y + n0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)j->N, (blasint)nc,
                    (blasint)j->K, 1.0f, j->x, (blasint)j->K, j->w + n0 * j->K, (blasint)j->K,
                    0.0f, j->y + n0, (blasint)j->Nout);
    if (j->bias)
        for (int64_t r = 0; r < j->N; r++)
            for (int64_t c = n0; c < n1; c++)
                j->y[r * j->Nout + c] += j->bias[c];
}

// y (N, Nout) = x (N, K) @ w (Nout, K)^T + bias (Nout)
void lora__cpu_matmul_fwd(lora_backend *be, float *y, const float *x, const float *w,
                          const float *bias, int64_t N, int64_t Nout, int64_t K)
{
    matmul_job j = {y, x, w, bias, N, Nout, K};
    /* 64-row blocks keep each thread's slice cache-line aligned and big enough to amortise
     * the dispatch; tiny products run on the caller's thread alone. */
    int64_t grain = N * Nout * K < (1 << 16) ? Nout : 64;
    lora__pool_run_blas(lora__cpu_pool(be), matmul_rows, &j, Nout, grain);
}

typedef struct matmul_bwd_job {
    float *dx, *dw, *dbias;
    const float *dy, *x, *w;
    int64_t N, Nout, K;
} matmul_bwd_job;

/* dx split by columns: each thread reads all of dy but only its column block of w. */
static void matmul_bwd_dx_cols(void *ctx, int64_t k0, int64_t k1, int tid)
{
    const matmul_bwd_job *j = ctx;
    int64_t kc = k1 - k0;
    if (j->N == 1)
        // dx (1, kc) += dy (1, Nout) @ w[:, k0:k1] (Nout, kc)
        cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)j->Nout, (blasint)kc, 1.0f, j->w + k0,
                    (blasint)j->K, j->dy, 1, 1.0f, j->dx + k0, 1);
    else
        // dx[:, k0:k1] (N, kc) += dy (N, Nout) @ w[:, k0:k1] (Nout, kc)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)j->N, (blasint)kc,
                    (blasint)j->Nout, 1.0f, j->dy, (blasint)j->Nout, j->w + k0, (blasint)j->K,
                    1.0f, j->dx + k0, (blasint)j->K);
}

/* dx split by rows: each thread reads its rows of dy but all of w. */
static void matmul_bwd_dx_rows(void *ctx, int64_t n0, int64_t n1, int tid)
{
    const matmul_bwd_job *j = ctx;
    // dx[n0:n1] (nr, K) += dy[n0:n1] (nr, Nout) @ w (Nout, K)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)(n1 - n0), (blasint)j->K,
                (blasint)j->Nout, 1.0f, j->dy + n0 * j->Nout, (blasint)j->Nout, j->w,
                (blasint)j->K, 1.0f, j->dx + n0 * j->K, (blasint)j->K);
}

/* dw and dbias split by output feature: a thread owns whole rows of dw and their bias entries,
 * so the reduction over tokens needs no synchronisation. */
static void matmul_bwd_dw(void *ctx, int64_t n0, int64_t n1, int tid)
{
    const matmul_bwd_job *j = ctx;
    int64_t nc = n1 - n0;
    if (j->dw)
        // dw[n0:n1] (nc, K) += dy[:, n0:n1]^T (nc, N) @ x (N, K)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)nc, (blasint)j->K,
                    (blasint)j->N, 1.0f, j->dy + n0, (blasint)j->Nout, j->x, (blasint)j->K, 1.0f,
                    j->dw + n0 * j->K, (blasint)j->K);
    if (j->dbias)
        for (int64_t r = 0; r < j->N; r++)
            for (int64_t c = n0; c < n1; c++)
                j->dbias[c] += j->dy[r * j->Nout + c];
}

// dx (N, K) += dy (N, Nout) @ w (Nout, K); dw (Nout, K) += dy^T @ x (N, K); dbias += sum_n dy
void lora__cpu_matmul_bwd(lora_backend *be, float *dx, float *dw, float *dbias, const float *dy,
                          const float *x, const float *w, int64_t N, int64_t Nout, int64_t K)
{
    matmul_bwd_job j = {dx, dw, dbias, dy, x, w, N, Nout, K};
    lora_pool *pool = lora__cpu_pool(be);
    /* same blocking rule as the forward: 64 columns or rows keep slices cache-line aligned */
    int tiny = N * Nout * K < (1 << 16);
    /* Every thread reads all of one operand: all of dy (N, Nout) when splitting dx's columns,
     * all of w (Nout, K) when splitting its rows; split so that the shared one is the smaller
     * (w, streamed once, unless there are more tokens than input features). */
    if (dx && N > K && !tiny)
        lora__pool_run_blas(pool, matmul_bwd_dx_rows, &j, N, 16);
    else if (dx)
        lora__pool_run_blas(pool, matmul_bwd_dx_cols, &j, K, tiny ? K : 64);
    if (dw || dbias)
        lora__pool_run_blas(pool, matmul_bwd_dw, &j, Nout, tiny ? Nout : 64);
}
