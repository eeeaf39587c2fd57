/* lora_optimizer: the public training handle. It owns the gradient arenas, feeds micro-batches
 * through lora__forward_backward and steps the optimizer of optim.h every
 * gradient_accumulation_steps micro-batches. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "api/handle.h"
#include "model/weights.h"
#include "train/bucket.h"
#include "train/forward_backward.h"
#include "train/trainer.h"
#include "util/alloc.h"
#include "util/dropout.h"
#include "util/json_text.h"

/* Splits off the keys this file owns; the rest goes to lora__optim_config_parse. */
static lora_status parse_own_keys(const char *json, lora_optimizer *o, char **rest)
{
    o->accum = 1;
    *rest = NULL;
    if (!json)
        return LORA_OK;
    json_error_t jerr;
    json_t *root = lora__json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return lora__error(LORA_ERR_CONFIG, "lora_optimizer_create: options: %s",
                           root ? "not a JSON object" : jerr.text);
    }
    lora_status st = LORA_OK;
    json_t *v;
    if ((v = json_object_get(root, "train")) && !json_is_null(v)) {
        const char *t = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(t, "full") == 0)
            o->full = true;
        else if (strcmp(t, "adapters") != 0)
            st = lora__error(LORA_ERR_CONFIG, "lora_optimizer_create: key 'train' must be "
                             "\"adapters\" or \"full\"");
    }
    if (!st && (v = json_object_get(root, "gradient_accumulation_steps")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
            st = lora__error(LORA_ERR_CONFIG, "lora_optimizer_create: key "
                             "'gradient_accumulation_steps' must be an integer in 1..1000000");
        else
            o->accum = json_integer_value(v);
    }
    if (!st && (v = json_object_get(root, "recompute")) && !json_is_null(v)) {
        if (!json_is_boolean(v))
            st = lora__error(LORA_ERR_CONFIG, "lora_optimizer_create: key 'recompute' must be "
                             "true or false");
        else
            o->recompute = json_is_true(v);
    }
    if (!st && (v = json_object_get(root, "seed")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            st = lora__error(LORA_ERR_CONFIG, "lora_optimizer_create: key 'seed' must be a "
                             "non-negative integer");
        else
            o->dropout_seed = (uint64_t)json_integer_value(v);
    }
    json_object_del(root, "seed");
    json_object_del(root, "train");
    json_object_del(root, "gradient_accumulation_steps");
    json_object_del(root, "recompute");
    if (!st && !(*rest = lora__json_dumps(root, JSON_COMPACT)))
        st = lora__oom("optimizer options", strlen(json));
    json_decref(root);
    return st;
}

/* The parameters: every base tensor (full), or every A and B of the adapters. Names are the
 * Hugging Face / PEFT tensor names (prefixed with the adapter's index when there are several),
 * so saved optimizer states read like checkpoints. */
static lora_status collect_params(lora_optimizer *o, lora_param **out, size_t *n_out)
{
    lora_model *m = o->s->model;
    size_t n = 0;
    lora_weight_slot *slots = NULL;
    size_t ns = 0;
    lora_status st;
    if (o->full && (st = lora__weight_slots(&m->cfg, m, &slots, &ns)))
        return st;
    size_t cap = o->full ? ns : 0;
    for (size_t i = 0; i < o->n_adapters; i++)
        cap += 2 * o->adapters[i]->n_mods;
    lora_param *p = lora__calloc(cap, sizeof *p);
    o->names = lora__calloc(cap, NAME_CAP);
    if (!p || !o->names) {
        free(p);
        free(slots);
        return lora__oom("parameter list", cap * (NAME_CAP + sizeof *p));
    }
    for (size_t i = 0; i < ns; i++, n++) {
        char *name = o->names + n * NAME_CAP;
        snprintf(name, NAME_CAP, "%s", slots[i].name);
        p[n] = (lora_param){name, lora__model_param(m, *slots[i].dst),
                            o->grads.base + (*slots[i].dst - m->arena),
                            (size_t)(slots[i].shape[0] * (slots[i].ndim == 2 ? slots[i].shape[1] : 1)),
                            0};
    }
    free(slots);
    for (size_t i = 0; i < o->n_adapters; i++) {
        const lora_adapter *a = o->adapters[i];
        for (size_t k = 0; k < a->n_mods; k++) {
            const lora_adapter_module *mod = &a->mods[k];
            for (int which = 0; which < 2; which++, n++) {
                char *name = o->names + n * NAME_CAP;
                int k0 = o->n_adapters > 1 ? snprintf(name, NAME_CAP, "%zu.", i) : 0;
                lora__adapter_tensor_name(mod->layer, mod->proj, which ? 'B' : 'A', name + k0,
                                          NAME_CAP - (size_t)k0);
                float *w = which ? mod->B : mod->A;
                p[n] = (lora_param){name, lora__adapter_mem_rw(o->adapters[i], w),
                                    o->grads.adapter[i] + (w - a->arena),
                                    (size_t)(mod->r * (which ? mod->out : mod->in)), which};
            }
        }
    }
    *out = p;
    *n_out = n;
    return LORA_OK;
}

/* A gradient arena of floats in the session backend's memory, zeroed. */
static lora_status alloc_grads(lora_optimizer *o, size_t floats, float **out)
{
    lora_backend *be = o->s->be;
    lora_status st = be->ops->mem_alloc(be, floats * sizeof(float), "gradients", (void **)out);
    if (!st) {
        be->ops->zero(be, *out, floats * sizeof(float));
        st = be->ops->sync(be);
    }
    return st;
}

static lora_status attach_state(lora_optimizer *o)
{
    lora_session *s = o->s;
    if (o->full) {
        lora_status st = lora__model_master_acquire(s->model);
        if (st)
            return st;
        o->master = true;
        o->grad_floats[LORA_MAX_ADAPTERS] = s->model->arena_floats;
        return alloc_grads(o, s->model->arena_floats, &o->grads.base);
    }
    if (s->n_adapters == 0)
        return lora__error(LORA_ERR_STATE, "lora_optimizer_create: \"train\": \"adapters\" but no "
                           "adapter is attached to the session (lora_session_set_adapters)");
    for (size_t i = 0; i < s->n_adapters; i++) {
        lora_adapter *a = s->adapters[i];
        o->dropout |= a->lora_dropout > 0;
        lora__adapter_retain(a);
        o->adapters[o->n_adapters++] = a;
        o->grad_floats[i] = a->arena_floats;
        lora_status st = alloc_grads(o, a->arena_floats, &o->grads.adapter[i]);
        if (st)
            return st;
    }
    return LORA_OK;
}

LORA_API void lora_optimizer_free(lora_optimizer *o)
{
    if (!lora__handle_freeable(o, LORA__KIND_OPTIMIZER, "lora_optimizer_free", "optimizer"))
        return;
    lora__handle_remove(o);
    lora__optim_free(o->optim);
    lora_backend *be = o->s->be;
    for (size_t i = 0; i < o->n_adapters; i++) {
        be->ops->mem_free(be, o->grads.adapter[i], o->grad_floats[i] * sizeof(float));
        lora__adapter_release(o->adapters[i]);
    }
    be->ops->mem_free(be, o->grads.base, o->grad_floats[LORA_MAX_ADAPTERS] * sizeof(float));
    if (o->master)
        lora__model_master_release(o->s->model);
    free(o->names);
    free(o->stats);
    lora__session_release(o->s);
    free(o);
}

LORA_API lora_status lora_optimizer_create(lora_session *session, const char *config_json,
                                           lora_optimizer **out)
{
    lora__error_clear();
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_optimizer_create: out is NULL");
    *out = NULL;
    lora_status st = lora__handle_check(session, LORA__KIND_SESSION, "lora_optimizer_create",
                                        "session");
    if (st)
        return st;
    lora_optimizer *o = lora__calloc(1, sizeof *o);
    if (!o)
        return lora__oom("optimizer", sizeof *o);
    if ((st = lora__handle_add(o, LORA__KIND_OPTIMIZER))) {
        free(o);
        return lora__error_prefix(st, "lora_optimizer_create");
    }
    lora__session_retain(session);
    o->s = session;
    char *rest = NULL;
    lora_optim_config cfg;
    lora_param *params = NULL;
    size_t n = 0;
    if (!(st = parse_own_keys(config_json, o, &rest)) &&
        !(st = lora__optim_config_parse(rest, &cfg)) && !(st = attach_state(o)) &&
        !(st = collect_params(o, &params, &n)) &&
        !(st = lora__optim_create(&cfg, params, n, &o->optim)))
        st = lora__optim_use_backend(o->optim, session->be);
    free(rest);
    free(params);
    if (st) {
        lora_optimizer_free(o);
        return st;
    }
    *out = o;
    return LORA_OK;
}

static bool adapters_unchanged(const lora_optimizer *o)
{
    if (o->full)
        return true;
    if (o->s->n_adapters != o->n_adapters)
        return false;
    for (size_t i = 0; i < o->n_adapters; i++)
        if (o->s->adapters[i] != o->adapters[i])
            return false;
    return true;
}

static void zero_grads(lora_optimizer *o)
{
    lora_backend *be = o->s->be;
    for (size_t i = 0; i < o->n_adapters; i++)
        be->ops->zero(be, o->grads.adapter[i], o->grad_floats[i] * sizeof(float));
    if (o->grads.base)
        be->ops->zero(be, o->grads.base, o->grad_floats[LORA_MAX_ADAPTERS] * sizeof(float));
}

/* After an update on a device: the host copies of the trained weights are behind, and follow
 * when something reads them (saves, merges, checkpoints). Full training's weights are the
 * model's: its bfloat16 copies follow now. */
static lora_status pull_weights(lora_optimizer *o)
{
    if (o->full)
        return lora__model_publish(o->s->model, o->s->be);
    for (size_t i = 0; i < o->n_adapters; i++)
        o->adapters[i]->host_stale = o->adapters[i]->dev_arena != NULL;
    return LORA_OK;
}

static lora_status train_step(const char *fn, lora_optimizer *o, const int32_t *ids,
                              const int32_t *labels, const int32_t *position_ids, size_t batch,
                              size_t seq, float *loss_out)
{
    lora_status st = lora__handle_check(o, LORA__KIND_OPTIMIZER, fn, "optimizer");
    if (st)
        return st;
    if (!labels)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: labels is NULL", fn);
    if (!adapters_unchanged(o))
        return lora__error(LORA_ERR_STATE, "%s: the session's attached adapters changed since "
                           "the optimizer was made", fn);
    int32_t *clean;
    st = lora__batch_ids(fn, o->s, ids, NULL, batch, seq, &clean);
    if (st)
        return st;
    if ((st = lora__check_labels(fn, o->s, labels, batch, seq)) ||
        (position_ids && (st = lora__check_packed_positions(fn, position_ids, batch, seq)))) {
        free(clean);
        return st;
    }
    /* on a device, rows padded to a bucket's length: few shapes, few plans (bucket.h) */
    int64_t T = (int64_t)seq, T2 = T;
    int32_t *ids2 = NULL, *labels2 = NULL, *pos2 = NULL;
    if (!o->s->be->ops->host_memory)
        T2 = lora__seq_bucket(T, o->s->model->cfg.max_pos);
    if (T2 != T && (st = lora__pad_batch(clean, labels, position_ids, (int64_t)batch, T, T2,
                                         &ids2, &labels2, &pos2))) {
        free(clean);
        return st;
    }
    double loss;
    size_t counted;
    /* each micro-batch its own masks, from a stream a checkpoint can resume */
    o->s->dropout_on = o->dropout;
    o->s->dropout_seed = lora__mix64(o->dropout_seed ^ lora__mix64(o->micro_total++));
    st = lora__forward_backward(o->s, ids2 ? ids2 : clean, ids2 ? labels2 : labels,
                                ids2 ? pos2 : position_ids, (int64_t)batch, T2,
                                1.0f / (float)o->accum, o->recompute, &o->grads, &loss, &counted);
    o->s->dropout_on = false;
    free(clean);
    free(ids2), free(labels2), free(pos2);
    if (st)
        return lora__error_prefix(st, "%s", fn);
    o->last_loss = loss;
    o->tokens += counted;
    if (loss_out)
        *loss_out = (float)loss;
    if (++o->micro < o->accum)
        return LORA_OK;
    o->micro = 0;
    st = lora__optim_step(o->optim, &o->last);
    zero_grads(o); /* also after a skipped step: its non-finite gradients are dropped */
    if (!st && !o->last.skipped)
        st = pull_weights(o);
    return st ? lora__error_prefix(st, "%s", fn) : LORA_OK;
}

LORA_API lora_status lora_train_step(lora_optimizer *o, const int32_t *ids,
                                     const int32_t *labels, size_t batch, size_t seq,
                                     float *loss_out)
{
    lora__error_clear();
    return train_step("lora_train_step", o, ids, labels, NULL, batch, seq, loss_out);
}

LORA_API lora_status lora_train_step_packed(lora_optimizer *o, const int32_t *ids,
                                            const int32_t *labels, const int32_t *position_ids,
                                            size_t batch, size_t seq, float *loss_out)
{
    lora__error_clear();
    return train_step("lora_train_step_packed", o, ids, labels, position_ids, batch, seq,
                      loss_out);
}

LORA_API lora_status lora_optimizer_set_lr(lora_optimizer *o, double lr)
{
    lora__error_clear();
    lora_status st = lora__handle_check(o, LORA__KIND_OPTIMIZER, "lora_optimizer_set_lr",
                                        "optimizer");
    if (st)
        return st;
    st = lora__optim_set_lr(o->optim, lr);
    return st ? lora__error_prefix(st, "lora_optimizer_set_lr") : LORA_OK;
}

LORA_API const char *lora_optimizer_stats_json(lora_optimizer *o)
{
    lora__error_clear();
    if (lora__handle_check(o, LORA__KIND_OPTIMIZER, "lora_optimizer_stats_json", "optimizer"))
        return NULL;
    bool any = lora__optim_step_count(o->optim) > 0 || o->last.skipped;
    json_t *j = json_pack("{s:I, s:I, s:f, s:f, s:o, s:b, s:I, s:I, s:f}", "step",
                          (json_int_t)lora__optim_step_count(o->optim), "micro_step",
                          (json_int_t)o->micro, "lr", lora__optim_lr(o->optim), "last_lr",
                          o->last.lr, "grad_norm",
                          any && isfinite(o->last.grad_norm) ? json_real(o->last.grad_norm)
                                                              : json_null(),
                          "skipped", o->last.skipped, "skips",
                          (json_int_t)lora__optim_skip_count(o->optim), "tokens",
                          (json_int_t)o->tokens, "last_loss",
                          isfinite(o->last_loss) ? o->last_loss : 0.0);
    char *text = j ? lora__json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!text) {
        lora__oom("lora_optimizer_stats_json", 256);
        return NULL;
    }
    free(o->stats);
    o->stats = text;
    return text;
}
