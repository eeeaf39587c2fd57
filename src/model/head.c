/* The output head (logits, cross-entropy and its backward), in row chunks. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "model/session.h"
#include "util/alloc.h"

/* Bounds a chunk's logits to 16 MiB whatever the batch. */
#define HEAD_CHUNK_FLOATS (1u << 22)

lora_status lora__head_nll(lora_session *s, const float *hidden, int64_t N,
                           const int32_t *targets, float *nll, const float *dnll, float *dhidden,
                           float *dlm_head)
{
    const lora_config *c = &s->model->cfg;
    const lora_backend_ops *op = s->be->ops;
    int64_t V = c->vocab, C = c->hidden;
    int64_t rows = (int64_t)(HEAD_CHUNK_FLOATS / (size_t)V);
    rows = rows < 1 ? 1 : rows > N ? N : rows;
    size_t need = (size_t)(rows * V * (dnll ? 2 : 1) + rows);
    if (need > s->head_ws_floats) {
        float *p = lora__realloc(s->head_ws, need * sizeof(float));
        if (!p)
            return lora__oom("output head", need * sizeof(float));
        s->head_ws = p;
        s->head_ws_floats = need;
    }
    float *logits = s->head_ws, *lse = logits + rows * V, *dlogits = lse + rows;
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
        int64_t n = N - r0 < rows ? N - r0 : rows;
        const float *h = hidden + r0 * C;
        op->matmul_fwd(s->be, logits, h, s->model->lm_head, NULL, n, V, C);
        op->cross_entropy_fwd(s->be, nll + r0, lse, logits, targets + r0, n, V);
        if (!dnll)
            continue;
        memset(dlogits, 0, (size_t)(n * V) * sizeof(float));
        op->cross_entropy_bwd(s->be, dlogits, logits, lse, targets + r0, dnll + r0, n, V);
        op->matmul_bwd(s->be, dhidden + r0 * C, dlm_head, NULL, dlogits, h, s->model->lm_head, n,
                       V, C);
    }
    return LORA_OK;
}
