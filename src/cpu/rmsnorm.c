#include <math.h>

#include "cpu/cpu.h"

typedef struct rmsnorm_job {
    float *y, *rstd;
    const float *x, *w;
    int64_t C;
    float eps;
} rmsnorm_job;

static void rmsnorm_rows(void *ctx, int64_t r0, int64_t r1, int tid)
{
    const rmsnorm_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * j->C;
        float *yr = j->y + r * j->C;
        /* double accumulation: the mean of squares over thousands of values is the one place
         * where float32 summation error would show at the 1e-6 level */
        double ss = 0.0;
        for (int64_t c = 0; c < j->C; c++)
            ss += (double)xr[c] * xr[c];
        float s = (float)(1.0 / sqrt(ss / (double)j->C + (double)j->eps));
        if (j->rstd)
            j->rstd[r] = s;
        for (int64_t c = 0; c < j->C; c++)
            yr[c] = xr[c] * s * j->w[c];
    }
}

// y (N, C) = x (N, C) * rsqrt(mean(x^2) + eps) * w (C)
void lora__cpu_rmsnorm_fwd(lora_backend *be, float *y, float *rstd, const float *x,
                           const float *w, int64_t N, int64_t C, float eps)
{
    rmsnorm_job j = {y, rstd, x, w, C, eps};
    lora__pool_run(lora__cpu_pool(be), rmsnorm_rows, &j, N, lora__cpu_grain(C));
}

typedef struct rmsnorm_bwd_job {
    float *dx, *dw;
    const float *dy, *x, *w, *rstd;
    int64_t N, C;
} rmsnorm_bwd_job;

/* With s = rstd and g = dy * w: dx = s * g - x * s^3 / C * sum(g * x), the second term being
 * the gradient through the mean of squares. */
static void rmsnorm_bwd_rows(void *ctx, int64_t r0, int64_t r1, int tid)
{
    const rmsnorm_bwd_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * j->C, *dyr = j->dy + r * j->C;
        float *dxr = j->dx + r * j->C;
        double s = j->rstd[r], gx = 0.0; /* double: a sum over C terms, as in the forward */
        for (int64_t c = 0; c < j->C; c++)
            gx += (double)dyr[c] * j->w[c] * xr[c];
        float fs = (float)s, k = (float)(gx * s * s * s / (double)j->C);
        for (int64_t c = 0; c < j->C; c++)
            dxr[c] += fs * j->w[c] * dyr[c] - xr[c] * k;
    }
}

#define DW_TILE 64

/* dw is a sum over all rows, so it is split by columns instead: each thread owns a column
 * block and sums its rows in double, one tile of DW_TILE columns (four cache lines) at a time. */
static void rmsnorm_bwd_dw_cols(void *ctx, int64_t c0, int64_t c1, int tid)
{
    const rmsnorm_bwd_job *j = ctx;
    for (int64_t cb = c0; cb < c1; cb += DW_TILE) {
        int64_t ce = cb + DW_TILE < c1 ? cb + DW_TILE : c1;
        double acc[DW_TILE] = {0};
        for (int64_t r = 0; r < j->N; r++) {
            const float *xr = j->x + r * j->C, *dyr = j->dy + r * j->C;
            double s = j->rstd[r];
            for (int64_t c = cb; c < ce; c++)
                acc[c - cb] += (double)dyr[c] * xr[c] * s;
        }
        for (int64_t c = cb; c < ce; c++)
            j->dw[c] += (float)acc[c - cb];
    }
}

// dx (N, C) += d/dx of y = x * rstd (N) * w (C), given dy (N, C); dw (C) += sum_n dy * x * rstd
void lora__cpu_rmsnorm_bwd(lora_backend *be, float *dx, float *dw, const float *dy,
                           const float *x, const float *w, const float *rstd, int64_t N,
                           int64_t C)
{
    rmsnorm_bwd_job j = {dx, dw, dy, x, w, rstd, N, C};
    lora_pool *pool = lora__cpu_pool(be);
    if (dx)
        lora__pool_run(pool, rmsnorm_bwd_rows, &j, N, lora__cpu_grain(C * 3));
    if (dw)
        lora__pool_run(pool, rmsnorm_bwd_dw_cols, &j, C, (lora__cpu_grain(N * 2) + 15) / 16 * 16);
}
