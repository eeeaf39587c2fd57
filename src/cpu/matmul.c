/* y = x w^T + b with OpenBLAS, the output features split across the pool's threads: each thread
 * multiplies by a contiguous block of weight rows, so the weights stream from memory once. */
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
