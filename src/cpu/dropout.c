#include "cpu/cpu.h"
#include "util/dropout.h"

typedef struct dropout_job {
    float *out;
    const float *in;
    int64_t n;
    float p;
    uint64_t seed, module;
    int accumulate;
} dropout_job;

static void dropout_rows(void *ctx, int64_t r0, int64_t r1, int tid)
{
    const dropout_job *j = ctx;
    float row[4096];
    for (int64_t r = r0; r < r1; r++) {
        float *o = j->out + r * j->n;
        const float *x = j->in + r * j->n;
        if (!j->accumulate) {
            lora__dropout_row(o, x, j->n, j->p, j->seed, j->module, (uint64_t)r);
            continue;
        }
        /* the backward in pieces of one stack buffer: row widths reach the MLP's */
        for (int64_t c0 = 0; c0 < j->n; c0 += 4096) {
            int64_t c = j->n - c0 < 4096 ? j->n - c0 : 4096;
            lora__dropout_row_part(row, x + c0, c0, c, j->p, j->seed, j->module, (uint64_t)r);
            for (int64_t i = 0; i < c; i++)
                o[c0 + i] += row[i];
        }
    }
}

// out (N, n) = mask * x / (1 - p)
void lora__cpu_dropout_fwd(lora_backend *be, float *out, const float *x, int64_t N, int64_t n,
                           float p, uint64_t seed, uint64_t module)
{
    dropout_job j = {out, x, n, p, seed, module, 0};
    lora__pool_run(lora__cpu_pool(be), dropout_rows, &j, N, lora__cpu_grain(n * 4));
}

// dx (N, n) += mask * dy / (1 - p)
void lora__cpu_dropout_bwd(lora_backend *be, float *dx, const float *dy, int64_t N, int64_t n,
                           float p, uint64_t seed, uint64_t module)
{
    dropout_job j = {dx, dy, n, p, seed, module, 1};
    lora__pool_run(lora__cpu_pool(be), dropout_rows, &j, N, lora__cpu_grain(n * 4));
}
