/* The output head (logits, cross-entropy and its backward), in row chunks. */
#include "api/error.h"
#include "model/session.h"

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
    /* a backend without host memory gets its own nll (and dnll) rows after the chunk */
    size_t own = op->host_memory ? 0 : (size_t)N * (dnll ? 2 : 1);
    size_t need = (size_t)(rows * V * (dnll ? 2 : 1) + rows) + own;
    size_t bytes = s->head_ws_floats * sizeof(float);
    lora_status st = lora__session_grow(s, (void **)&s->head_ws, &bytes, need * sizeof(float),
                                        "output head");
    s->head_ws_floats = bytes / sizeof(float);
    const int32_t *dtargets;
    if (st || (st = lora__stage_i32(s, LORA_STAGE_TARGETS, targets, (size_t)N, &dtargets)))
        return st;
    float *logits = s->head_ws, *lse = logits + rows * V, *dlogits = lse + rows;
    float *dev_nll = nll, *dev_dnll = (float *)dnll;
    if (own) {
        dev_nll = dlogits + (dnll ? rows * V : 0);
        dev_dnll = dnll ? dev_nll + N : NULL;
        if (dnll && (st = op->upload(s->be, dev_dnll, dnll, (size_t)N * sizeof(float))))
            return st;
    }
    const float *lm_head = lora__weight(s, s->model->lm_head);
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
        int64_t n = N - r0 < rows ? N - r0 : rows;
        const float *h = hidden + r0 * C;
        op->matmul_fwd(s->be, logits, h, lm_head, NULL, n, V, C);
        op->cross_entropy_fwd(s->be, dev_nll + r0, lse, logits, dtargets + r0, n, V);
        if (!dnll)
            continue;
        op->zero(s->be, dlogits, (size_t)(n * V) * sizeof(float));
        op->cross_entropy_bwd(s->be, dlogits, logits, lse, dtargets + r0, dev_dnll + r0, n, V);
        op->matmul_bwd(s->be, dhidden + r0 * C, dlm_head, NULL, dlogits, h, lm_head, n, V, C);
    }
    return own ? op->download(s->be, nll, dev_nll, (size_t)N * sizeof(float)) : LORA_OK;
}
