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
