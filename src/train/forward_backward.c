#include "train/forward_backward.h"

#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/alloc.h"

#define IGNORE_INDEX (-100)

lora_status lora__check_packed_positions(const char *fn, const int32_t *position_ids, size_t B,
                                         size_t T)
{
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            int32_t p = position_ids[b * T + t];
            int32_t prev = t ? position_ids[b * T + t - 1] : -1;
            if (p != 0 && (t == 0 || p != prev + 1))
                return lora__error(LORA_ERR_RANGE, "%s: position_ids[%zu][%zu] is %d; a row "
                                   "starts at 0 and each id is 0 or the previous one plus 1",
                                   fn, b, t, p);
        }
    return LORA_OK;
}

lora_status lora__forward_backward(lora_session *s, const int32_t *ids, const int32_t *labels,
                                   const int32_t *position_ids, int64_t B, int64_t T,
                                   float loss_scale, bool recompute, const lora_grads *g,
                                   double *loss_out, size_t *counted)
{
    const lora_model *m = s->model;
    int64_t N = B * T, C = m->cfg.hidden;
    int32_t *targets = lora__malloc((size_t)N * sizeof *targets);
    int32_t *key0 = position_ids ? lora__malloc((size_t)N * sizeof *key0) : NULL;
    float *nll = lora__malloc((size_t)N * sizeof *nll);
    float *dnll = lora__malloc((size_t)N * sizeof *dnll);
    lora_status st = LORA_OK;
    if (!targets || !nll || !dnll || (position_ids && !key0)) {
        st = lora__oom("loss buffers", (size_t)N * 16);
        goto done;
    }
    size_t bytes = s->dhidden_floats * sizeof(float);
    st = lora__session_grow(s, (void **)&s->dhidden, &bytes, (size_t)(N * C) * sizeof(float),
                            "loss buffers");
    s->dhidden_floats = bytes / sizeof(float);
    if (st)
        goto done;
    float *dhidden = s->dhidden; /* the head writes every row */
    /* a sample that starts at column t0 has position ids 0, 1, ... from there */
    for (int64_t n = 0; position_ids && n < N; n++)
        key0[n] = (int32_t)(n % T) - position_ids[n];
    size_t count = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            int32_t lab = t + 1 < T ? labels[b * T + t + 1] : IGNORE_INDEX;
            targets[b * T + t] = lab;
            count += lab != IGNORE_INDEX;
        }
    for (int64_t n = 0; n < N; n++)
        dnll[n] = targets[n] == IGNORE_INDEX || !count ? 0.0f : loss_scale / (float)count;
    lora_train_acts acts;
    if ((st = lora__decoder_forward_train(s, ids, position_ids, key0, B, T, recompute, &acts)))
        goto done;
    float *dlm = g->base ? g->base + (m->lm_head - m->arena) : NULL;
    /* nothing of the session's shared workspace lives from the forward into the backward, so
     * the head's chunks take it (not a region of their own) */
    if ((st = lora__head_nll(s, &s->ws, &s->ws_floats, acts.h_final, N, targets, nll, dnll,
                             dhidden, dlm)))
        goto done;
    double sum = 0.0;
    for (int64_t n = 0; n < N; n++)
        sum += targets[n] == IGNORE_INDEX ? 0.0 : nll[n];
    *loss_out = count ? sum / (double)count : 0.0;
    *counted = count;
    /* a device reports its failures when waited for */
    if (count && !(st = lora__decoder_backward(s, &acts, dhidden, g)))
        st = s->be->ops->sync(s->be);
done:
    free(targets);
    free(key0);
    free(nll);
    free(dnll);
    return st;
}
