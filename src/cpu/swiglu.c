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
