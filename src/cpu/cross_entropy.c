#include <math.h>

#include "cpu/cpu.h"

typedef struct ce_job {
    float *nll, *lse;
    const float *logits;
    const int32_t *targets;
    int64_t V;
} ce_job;

static void ce_rows(void *ctx, int64_t r0, int64_t r1, int tid)
{
    const ce_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        const float *l = j->logits + r * j->V;
        float m = l[0];
        for (int64_t v = 1; v < j->V; v++)
            m = l[v] > m ? l[v] : m;
        double sum = 0.0;
        for (int64_t v = 0; v < j->V; v++)
            sum += exp((double)l[v] - m);
        double lse = m + log(sum);
        if (j->lse)
            j->lse[r] = (float)lse;
        int32_t t = j->targets[r];
        j->nll[r] = t == -100 ? 0.0f : (float)(lse - l[t]);
    }
}

// nll (N), lse (N) from logits (N, V) and targets (N); -100 targets give 0
void lora__cpu_cross_entropy_fwd(lora_backend *be, float *nll, float *lse, const float *logits,
                                 const int32_t *targets, int64_t N, int64_t V)
{
    ce_job j = {nll, lse, logits, targets, V};
    lora__pool_run(lora__cpu_pool(be), ce_rows, &j, N, lora__cpu_grain(V * 4));
}
