/* lora_model_merge / lora_model_unmerge. The delta s * B A of each adapted projection is added
 * with the backend's matmul backward (dW += dy^T x with dy = s B^T, x = A), the same op a full
 * fine-tuning step uses, so a GPU backend merges where its weights live. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/adapter.h"
#include "adapter/merge.h"
#include "api/error.h"
#include "api/handle.h"
#include "cpu/cpu.h"
#include "model/session.h"
#include "util/alloc.h"

struct lora_merge {
    lora_adapter *adapter; /* retained */
    float **weights;       /* (n) the changed weights */
    float *saved;          /* their original values, back to back */
    size_t n;
};

void lora__merge_free(struct lora_merge *mg)
{
    if (!mg)
        return;
    lora__adapter_release(mg->adapter);
    free(mg->weights);
    free(mg->saved);
    free(mg);
}

static float *weight_of(lora_model *m, const lora_adapter_module *mod)
{
    lora_layer_weights *w = &m->layers[mod->layer];
    float *const by_proj[LORA_PROJ_COUNT] = {w->wq, w->wk, w->wv, w->wo,
                                             w->w_gate, w->w_up, w->w_down};
    return by_proj[mod->proj];
}

/* Copies every weight the adapter changes. */
static lora_status save_originals(lora_model *m, lora_adapter *a, struct lora_merge **out)
{
    struct lora_merge *mg = lora__calloc(1, sizeof *mg);
    size_t total = 0;
    for (size_t k = 0; k < a->n_mods; k++)
        total += (size_t)(a->mods[k].out * a->mods[k].in);
    if (mg) {
        mg->weights = lora__malloc(a->n_mods * sizeof *mg->weights);
        mg->saved = lora__malloc(total * sizeof *mg->saved);
    }
    if (!mg || !mg->weights || !mg->saved) {
        lora__merge_free(mg);
        return lora__oom("unmerge copies of the adapted weights", total * sizeof(float));
    }
    float *dst = mg->saved;
    for (size_t k = 0; k < a->n_mods; k++) {
        size_t n = (size_t)(a->mods[k].out * a->mods[k].in);
        mg->weights[k] = weight_of(m, &a->mods[k]);
        memcpy(dst, mg->weights[k], n * sizeof *dst);
        dst += n;
    }
    mg->n = a->n_mods;
    lora__adapter_retain(a);
    mg->adapter = a;
    *out = mg;
    return LORA_OK;
}

static lora_status add_deltas(lora_model *m, lora_adapter *a, float scale)
{
    int64_t max_r = 0, max_out = 0;
    for (size_t k = 0; k < a->n_mods; k++) {
        max_r = a->mods[k].r > max_r ? a->mods[k].r : max_r;
        max_out = a->mods[k].out > max_out ? a->mods[k].out : max_out;
    }
    float *bt = lora__malloc((size_t)(max_r * max_out) * sizeof *bt);
    lora_backend *be;
    lora_status st = bt ? lora__cpu_backend_create(m->threads, &be)
                        : lora__oom("merge scratch", (size_t)(max_r * max_out) * sizeof *bt);
    if (st) {
        free(bt);
        return st;
    }
    for (size_t k = 0; k < a->n_mods; k++) {
        const lora_adapter_module *mod = &a->mods[k];
        float s = scale * mod->scaling;
        // bt (r, out) = s * B^T
        for (int64_t o = 0; o < mod->out; o++)
            for (int64_t j = 0; j < mod->r; j++)
                bt[j * mod->out + o] = s * mod->B[o * mod->r + j];
        // W (out, in) += bt^T (out, r) @ A (r, in)
        be->ops->matmul_bwd(be, NULL, weight_of(m, mod), NULL, bt, mod->A, NULL, mod->r,
                            mod->out, mod->in);
    }
    lora__cpu_backend_free(be);
    free(bt);
    return LORA_OK;
}

/* logits (n, V) of the probe through a temporary session, with a attached at scale (or none) */
static lora_status probe_logits(lora_model *m, lora_adapter *a, float scale, const int32_t *ids,
                                size_t n, float **out)
{
    *out = NULL;
    lora_session *s;
    lora_status st = lora_session_create(m, NULL, &s);
    if (st)
        return st;
    float *l = lora__malloc(n * (size_t)m->cfg.vocab * sizeof *l);
    if (!l)
        st = lora__oom("probe logits", n * (size_t)m->cfg.vocab * sizeof *l);
    else if (!(st = lora_session_set_adapters(s, &a, &scale, a ? 1 : 0)))
        st = lora_session_logits(s, ids, NULL, 1, n, l);
    lora_session_free(s);
    if (st)
        free(l);
    else
        *out = l;
    return st;
}

/* Puts back the weights a merge changed and frees mg. */
static void restore(struct lora_merge *mg)
{
    const float *src = mg->saved;
    for (size_t k = 0; k < mg->n; k++) {
        size_t len = (size_t)(mg->adapter->mods[k].out * mg->adapter->mods[k].in);
        memcpy(mg->weights[k], src, len * sizeof(float));
        src += len;
    }
    lora__merge_free(mg);
}

static lora_status merge(lora_model *m, lora_adapter *a, float scale, const int32_t *probe,
                         size_t n, float *max_change)
{
    float *before = NULL, *after = NULL;
    struct lora_merge *mg = NULL;
    lora_status st;
    /* the host arenas: the model's is what the deltas are added to and what is uploaded after,
     * the adapter's what they are made of */
    if ((st = lora__model_host_sync(m)) || (st = lora__adapter_host_sync(a)) ||
        (probe && (st = probe_logits(m, a, scale, probe, n, &before))))
        return st;
    if ((st = save_originals(m, a, &mg))) {
        free(before);
        return st;
    }
    /* on any failure nothing changed: put back what did (on a GPU model, its copy too) */
    if ((st = add_deltas(m, a, scale)) || (st = lora__model_upload(m))) {
        restore(mg);
        (void)lora__model_upload(m);
        free(before);
        return st;
    }
    if (probe && !(st = probe_logits(m, NULL, 0.0f, probe, n, &after))) {
        float worst = 0.0f;
        for (size_t i = 0; i < n * (size_t)m->cfg.vocab; i++)
            worst = fmaxf(worst, fabsf(after[i] - before[i]));
        if (max_change)
            *max_change = worst;
    }
    if (st) {
        restore(mg);
        (void)lora__model_upload(m);
    } else
        m->merge = mg;
    free(before);
    free(after);
    return st;
}

LORA_API lora_status lora_model_merge(lora_model *m, lora_adapter *a, float scale,
                                      const int32_t *probe, size_t n, float *max_logit_change)
{
    lora__error_clear();
    static const char fn[] = "lora_model_merge";
    if (max_logit_change)
        *max_logit_change = 0.0f;
    lora_status st = lora__handle_check(m, LORA__KIND_MODEL, fn, "model");
    if (!st)
        st = lora__handle_check(a, LORA__KIND_ADAPTER, fn, "adapter");
    if (st)
        return st;
    if (n && !probe)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: probe is NULL", fn);
    if (a->model != m)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: the adapter was made for another model",
                           fn);
    if (!isfinite(scale))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: scale is not finite", fn);
    if (m->merge)
        return lora__error(LORA_ERR_STATE, "%s: an adapter is already merged; unmerge it first",
                           fn);
    st = merge(m, a, scale, n ? probe : NULL, n, max_logit_change);
    return st ? lora__error_prefix(st, "%s", fn) : LORA_OK;
}

LORA_API lora_status lora_model_unmerge(lora_model *m)
{
    lora__error_clear();
    lora_status st = lora__handle_check(m, LORA__KIND_MODEL, "lora_model_unmerge", "model");
    if (st)
        return st;
    struct lora_merge *mg = m->merge;
    if (!mg)
        return lora__error(LORA_ERR_STATE, "lora_model_unmerge: no adapter is merged");
    if ((st = lora__model_host_sync(m)))
        return lora__error_prefix(st, "lora_model_unmerge");
    restore(mg);
    m->merge = NULL;
    st = lora__model_upload(m);
    return st ? lora__error_prefix(st, "lora_model_unmerge") : LORA_OK;
}
