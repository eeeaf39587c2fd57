/* The output head (logits, cross-entropy and its backward), in chunks: of whole rows on a
 * backend with only the row cross-entropy (the CPU), of rows and possibly vocabulary columns
 * where the backend has the chunked one (a GPU), so that a training step holds neither (N, V)
 * logits nor their gradient at once. */
#include "api/error.h"
#include "model/session.h"

lora_head_plan lora__head_plan(int64_t N, int64_t V, int64_t cols_max, int64_t budget)
{
    lora_head_plan p;
    p.cols = cols_max >= 1 && cols_max < V ? cols_max : V;
    p.rows = budget / p.cols;
    p.rows = p.rows < 1 ? 1 : p.rows > N ? N : p.rows;
    return p;
}

/* The whole vocabulary saves the backward's second head product (2 N C V FLOPs, 4.5 TFLOP in a
 * 16k-token step of Qwen2.5-0.5B) for 256 MiB of logits and as much of their gradient; the
 * weight is read once per chunk of rows either way. */
lora_head_plan lora__head_plan_chunked(int64_t N, int64_t V, int64_t cols_max)
{
    if (cols_max > 0)
        return lora__head_plan(N, V, cols_max, LORA_HEAD_CHUNK_FLOATS);
    if (V * LORA_HEAD_MIN_ROWS <= LORA_HEAD_DEVICE_FLOATS)
        return lora__head_plan(N, V, V, LORA_HEAD_DEVICE_FLOATS);
    return lora__head_plan(N, V, LORA_HEAD_COLS, LORA_HEAD_CHUNK_FLOATS);
}

/* One chunk of rows (n of them from hidden row r0) over the vocabulary in column chunks: the
 * chunked cross-entropy's state through every chunk, nll and lse, then (with dnll) the
 * gradient chunk by chunk, the logits computed again unless one chunk holds them all. */
static void vocab_chunks(lora_session *s, const float *h, int64_t n, const int32_t *targets,
                         int64_t cols, double *state, float *logits, float *lse, float *dlogits,
                         float *nll, const float *dnll, float *dhidden, float *dlm_head)
{
    const lora_backend_ops *op = s->be->ops;
    const float *lm_head = s->model->lm_head;
    int64_t V = s->model->cfg.vocab, C = s->model->cfg.hidden;
    for (int64_t v0 = 0; v0 < V; v0 += cols) {
        int64_t k = V - v0 < cols ? V - v0 : cols;
        lora__base_fwd(s, logits, h, lm_head + v0 * C, NULL, n, k, C);
        op->ce_chunk_fwd(s->be, state, logits, targets, n, k, v0);
    }
    op->ce_chunk_finish(s->be, nll, lse, state, targets, n);
    if (!dnll)
        return;
    /* without the head's own gradient (full fine-tuning's), nothing reads the float32 one */
    bool rounded = !dlm_head && lora__model_mem_bf16(s->model, lm_head) != NULL;
    for (int64_t v0 = 0; v0 < V; v0 += cols) {
        int64_t k = V - v0 < cols ? V - v0 : cols;
        if (cols < V)
            lora__base_fwd(s, logits, h, lm_head + v0 * C, NULL, n, k, C);
        /* the chunk's gradient written (not added to), the first chunk's product writes
         * dhidden */
        if (rounded) { /* the product reads the gradient only in bfloat16 */
            op->ce_chunk_bwd(s->be, NULL, (lora_bf16 *)dlogits, logits, lse, targets, dnll, n,
                             k, v0);
            lora__base_bwd(s, dhidden, NULL, NULL, NULL, (const lora_bf16 *)dlogits, h,
                           lm_head + v0 * C, n, k, C, v0 > 0);
            continue;
        }
        op->ce_chunk_bwd(s->be, dlogits, NULL, logits, lse, targets, dnll, n, k, v0);
        lora__base_bwd(s, dhidden, dlm_head ? dlm_head + v0 * C : NULL, NULL, dlogits, NULL, h,
                       lm_head + v0 * C, n, k, C, v0 > 0);
    }
}

lora_status lora__head_nll(lora_session *s, float **ws, size_t *ws_floats, const float *hidden,
                           int64_t N, const int32_t *targets, float *nll, const float *dnll,
                           float *dhidden, float *dlm_head)
{
    const lora_config *c = &s->model->cfg;
    const lora_backend_ops *op = s->be->ops;
    int64_t V = c->vocab, C = c->hidden;
    bool chunked = op->ce_chunk_fwd != NULL;
    lora_head_plan plan = chunked ? lora__head_plan_chunked(N, V, s->head_cols)
                                  : lora__head_plan(N, V, V, LORA_HEAD_CHUNK_FLOATS);
    int64_t rows = plan.rows, cols = plan.cols;
    /* the chunked state first (3 doubles per row, so aligned), then logits, lse, dlogits; a
     * backend without host memory gets its own nll (and dnll) rows after them */
    size_t state = chunked ? (size_t)rows * 3 * sizeof(double) / sizeof(float) : 0;
    size_t own = op->host_memory ? 0 : (size_t)N * (dnll ? 2 : 1);
    size_t need = state + (size_t)(rows * cols * (dnll ? 2 : 1) + rows) + own;
    size_t bytes = *ws_floats * sizeof(float);
    lora_status st = lora__session_grow(s, (void **)ws, &bytes, need * sizeof(float),
                                        "output head");
    *ws_floats = bytes / sizeof(float);
    const int32_t *dtargets;
    if (st || (st = lora__stage_i32(s, LORA_STAGE_TARGETS, targets, (size_t)N, &dtargets)))
        return st;
    float *logits = *ws + state, *lse = logits + rows * cols, *dlogits = lse + rows;
    float *dev_nll = nll, *dev_dnll = (float *)dnll;
    if (own) {
        dev_nll = dlogits + (dnll ? rows * cols : 0);
        dev_dnll = dnll ? dev_nll + N : NULL;
        if (dnll && (st = op->upload(s->be, dev_dnll, dnll, (size_t)N * sizeof(float))))
            return st;
    }
    const float *lm_head = s->model->lm_head;
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
        int64_t n = N - r0 < rows ? N - r0 : rows;
        const float *h = hidden + r0 * C;
        if (chunked) {
            vocab_chunks(s, h, n, dtargets + r0, cols, (double *)(void *)*ws, logits,
                         lse, dlogits, dev_nll + r0, dnll ? dev_dnll + r0 : NULL,
                         dhidden ? dhidden + r0 * C : NULL, dlm_head);
            continue;
        }
        lora__base_fwd(s, logits, h, lm_head, NULL, n, V, C);
        op->cross_entropy_fwd(s->be, dev_nll + r0, lse, logits, dtargets + r0, n, V);
        if (!dnll)
            continue;
        op->zero(s->be, dlogits, (size_t)(n * V) * sizeof(float));
        op->cross_entropy_bwd(s->be, dlogits, logits, lse, dtargets + r0, dev_dnll + r0, n, V);
        lora__base_bwd(s, dhidden + r0 * C, dlm_head, NULL, dlogits, NULL, h, lm_head, n, V, C,
                       false);
    }
    return own ? op->download(s->be, nll, dev_nll, (size_t)N * sizeof(float)) : LORA_OK;
}
