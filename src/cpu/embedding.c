#include <string.h>

#include "cpu/cpu.h"

// x (N, C) = table (V, C)[ids (N)]
void lora__cpu_embedding_fwd(lora_backend *be, float *x, const int32_t *ids, const float *table,
                             int64_t N, int64_t C)
{
    (void)be;
    for (int64_t n = 0; n < N; n++)
        memcpy(x + n * C, table + (int64_t)ids[n] * C, (size_t)C * sizeof *x);
}

typedef struct embedding_bwd_job {
    float *dtable;
    const float *dx;
    const int32_t *ids;
    int64_t N, C;
} embedding_bwd_job;

/* Split by columns, not tokens: a repeated id sends several tokens to one table row, and a
 * column block is owned by one thread, which adds the tokens in order (deterministic for any
 * thread count). */
static void embedding_bwd_cols(void *ctx, int64_t c0, int64_t c1, int tid)
{
    const embedding_bwd_job *j = ctx;
    for (int64_t n = 0; n < j->N; n++) {
        float *d = j->dtable + (int64_t)j->ids[n] * j->C;
        const float *s = j->dx + n * j->C;
        for (int64_t c = c0; c < c1; c++)
            d[c] += s[c];
    }
}

// dtable (V, C)[ids[n]] += dx (N, C)[n]
void lora__cpu_embedding_bwd(lora_backend *be, float *dtable, const float *dx,
                             const int32_t *ids, int64_t N, int64_t C)
{
    embedding_bwd_job j = {dtable, dx, ids, N, C};
    /* whole 64-byte lines per thread: neighbouring blocks never share a cache line */
    int64_t grain = (lora__cpu_grain(N) + 15) / 16 * 16;
    lora__pool_run(lora__cpu_pool(be), embedding_bwd_cols, &j, C, grain);
}
