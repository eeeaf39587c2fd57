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

typedef struct ce_bwd_job {
    float *dlogits;
    const float *logits, *lse, *dnll;
    const int32_t *targets;
    int64_t V;
} ce_bwd_job;

static void ce_bwd_rows(void *ctx, int64_t r0, int64_t r1, int tid)
{
    const ce_bwd_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        int32_t t = j->targets[r];
        if (t == -100)
            continue;
        const float *l = j->logits + r * j->V;
        float *d = j->dlogits + r * j->V, g = j->dnll[r], lse = j->lse[r];
        /* softmax from the saved log-sum-exp: no second reduction over the row, and
         * exp(l - lse) <= 1 cannot overflow */
        for (int64_t v = 0; v < j->V; v++)
            d[v] += g * expf(l[v] - lse);
        d[t] -= g;
    }
}

// dlogits (N, V) += dnll (N) * (softmax(logits (N, V)) - onehot(targets (N))), lse (N) saved
void lora__cpu_cross_entropy_bwd(lora_backend *be, float *dlogits, const float *logits,
                                 const float *lse, const int32_t *targets, const float *dnll,
                                 int64_t N, int64_t V)
{
    ce_bwd_job j = {dlogits, logits, lse, dnll, targets, V};
    lora__pool_run(lora__cpu_pool(be), ce_bwd_rows, &j, N, lora__cpu_grain(V * 4));
}
