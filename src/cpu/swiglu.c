#include <math.h>

#include "cpu/cpu.h"

typedef struct swiglu_job {
    float *h;
    const float *gate, *up;
} swiglu_job;

static void swiglu_range(void *ctx, int64_t i0, int64_t i1, int tid)
{
    const swiglu_job *j = ctx;
    for (int64_t i = i0; i < i1; i++) {
        float g = j->gate[i];
        j->h[i] = g / (1.0f + expf(-g)) * j->up[i];
    }
}

// h (N, n_inter) = silu(gate (N, n_inter)) * up (N, n_inter)
void lora__cpu_swiglu_fwd(lora_backend *be, float *h, const float *gate, const float *up,
                          int64_t N, int64_t n_inter)
{
    swiglu_job j = {h, gate, up};
    lora__pool_run(lora__cpu_pool(be), swiglu_range, &j, N * n_inter, 4096);
}

typedef struct swiglu_bwd_job {
    float *dgate, *dup;
    const float *dh, *gate, *up;
} swiglu_bwd_job;

static void swiglu_bwd_range(void *ctx, int64_t i0, int64_t i1, int tid)
{
    const swiglu_bwd_job *j = ctx;
    for (int64_t i = i0; i < i1; i++) {
        float g = j->gate[i], sg = 1.0f / (1.0f + expf(-g));
        if (j->dup)
            j->dup[i] += j->dh[i] * g * sg;
        /* silu'(g) = s(g) (1 + g (1 - s(g))): no second exp, and finite for any g */
        if (j->dgate)
            j->dgate[i] += j->dh[i] * j->up[i] * sg * (1.0f + g * (1.0f - sg));
    }
}

// dgate (N, n_inter) += dh * up * silu'(gate); dup (N, n_inter) += dh * silu(gate)
void lora__cpu_swiglu_bwd(lora_backend *be, float *dgate, float *dup, const float *dh,
                          const float *gate, const float *up, int64_t N, int64_t n_inter)
{
    swiglu_bwd_job j = {dgate, dup, dh, gate, up};
    lora__pool_run(lora__cpu_pool(be), swiglu_bwd_range, &j, N * n_inter, 4096);
}
