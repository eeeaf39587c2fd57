/* The optimizer step: global gradient norm, skip of non-finite steps, clipping, LoRA+ groups,
 * the schedule, and torch's AdamW / SGD updates (see optim.h for the formulas). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "cpu/cpu.h"
#include "train/optim.h"
#include "util/alloc.h"

#define WHERE "lora__optim_create"

int lora__optim_buffers_per_param(const lora_optim_config *cfg)
{
    if (cfg->kind == LORA_OPTIM_ADAMW)
        return 2;
    return cfg->momentum != 0 ? 1 : 0;
}

static lora_status check_param(const lora_param *params, size_t i)
{
    const lora_param *q = &params[i];
    if (!q->name || !q->name[0])
        return lora__error(LORA_ERR_INVALID_ARGUMENT, WHERE ": parameter %zu has no name", i);
    if (!q->p || !q->g)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, WHERE ": parameter '%s' has a NULL %s",
                           q->name, q->p ? "gradient" : "value pointer");
    if (q->n == 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, WHERE ": parameter '%s' has no elements",
                           q->name);
    if (q->lr_group != 0 && q->lr_group != 1)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, WHERE ": parameter '%s' has lr_group %d "
                           "(0 or 1)", q->name, q->lr_group);
    for (size_t j = 0; j < i; j++)
        if (strcmp(params[j].name, q->name) == 0)
            return lora__error(LORA_ERR_INVALID_ARGUMENT, WHERE ": parameters %zu and %zu are "
                               "both named '%s'", j, i, q->name);
    return LORA_OK;
}

/* Checks the list and sums the sizes. */
static lora_status check_params(const lora_param *params, size_t n, size_t *total)
{
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        lora_status st = check_param(params, i);
        if (st != LORA_OK)
            return st;
        if (__builtin_add_overflow(*total, params[i].n, total))
            return lora__error(LORA_ERR_INVALID_ARGUMENT, WHERE ": parameter sizes overflow");
    }
    return LORA_OK;
}

static lora_status alloc_state(lora_optim *o, size_t n)
{
    int bufs = lora__optim_buffers_per_param(&o->cfg);
    o->params = lora__calloc(n, sizeof *o->params);
    o->offset = lora__calloc(n, sizeof *o->offset);
    if (!o->params || !o->offset)
        return lora__oom("optimizer parameter list", n * (sizeof *o->params + sizeof(size_t)));
    /* Zero moments, as torch's lazily created state. */
    if (bufs >= 1)
        o->m = lora__calloc(o->total, sizeof(float));
    if (bufs >= 2)
        o->v = lora__calloc(o->total, sizeof(float));
    if ((bufs >= 1 && !o->m) || (bufs >= 2 && !o->v))
        return lora__oom("optimizer state", (size_t)bufs * o->total * sizeof(float));
    return LORA_OK;
}

static lora_status copy_params(lora_optim *o, const lora_param *params, size_t n)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        o->params[i] = params[i];
        o->params[i].name = lora__strdup(params[i].name);
        if (!o->params[i].name)
            return lora__oom("parameter name", strlen(params[i].name) + 1);
        o->offset[i] = at;
        at += params[i].n;
        o->n = i + 1;
    }
    return LORA_OK;
}

lora_status lora__optim_create(const lora_optim_config *cfg, const lora_param *params, size_t n,
                               lora_optim **out)
{
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, WHERE ": out is NULL");
    *out = NULL;
    if (!cfg || !params || n == 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, WHERE ": %s", !cfg ? "cfg is NULL"
                           : !params ? "params is NULL" : "no parameters");
    size_t total = 0;
    lora_status st = check_params(params, n, &total);
    if (st != LORA_OK)
        return st;
    lora_optim *o = lora__calloc(1, sizeof *o);
    if (!o)
        return lora__oom("optimizer", sizeof *o);
    o->cfg = *cfg;
    o->total = total;
    if ((st = alloc_state(o, n)) == LORA_OK)
        st = copy_params(o, params, n);
    if (st != LORA_OK) {
        lora__optim_free(o);
        return st;
    }
    *out = o;
    return LORA_OK;
}

void lora__optim_free(lora_optim *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++)
        free((char *)o->params[i].name);
    if (o->set)
        o->be->ops->tensor_set_free(o->be, o->set);
    free(o->params);
    free(o->offset);
    if (o->be && !o->be->ops->host_memory) {
        o->be->ops->mem_free(o->be, o->m, o->total * sizeof(float));
        o->be->ops->mem_free(o->be, o->v, o->total * sizeof(float));
    } else {
        free(o->m);
        free(o->v);
    }
    free(o);
}

/* The parameters as one tensor set of be, their moments in m and v. */
static lora_status make_set(lora_optim *o, lora_backend *be, float *m, float *v)
{
    lora_tensor_ref *t = lora__calloc(o->n, sizeof *t);
    if (!t)
        return lora__oom("optimizer tensor list", o->n * sizeof *t);
    for (size_t i = 0; i < o->n; i++)
        t[i] = (lora_tensor_ref){o->params[i].p, o->params[i].g, m + o->offset[i],
                                 v + o->offset[i], o->params[i].n, o->params[i].lr_group};
    lora_status st = be->ops->tensor_set_create(be, t, o->n, &o->set);
    free(t);
    return st;
}

lora_status lora__optim_use_backend(lora_optim *o, lora_backend *be)
{
    if (be->ops->host_memory) {
        o->be = be; /* the moments already are host memory */
        return LORA_OK;
    }
    int bufs = lora__optim_buffers_per_param(&o->cfg);
    size_t bytes = o->total * sizeof(float);
    float *m = NULL, *v = NULL;
    lora_status st = LORA_OK;
    if (bufs >= 1)
        st = be->ops->mem_alloc(be, bytes, "optimizer state", (void **)&m);
    if (!st && bufs >= 2)
        st = be->ops->mem_alloc(be, bytes, "optimizer state", (void **)&v);
    if (!st) {
        /* zero moments, as on the host */
        if (m)
            be->ops->zero(be, m, bytes);
        if (v)
            be->ops->zero(be, v, bytes);
        st = be->ops->sync(be);
    }
    if (!st && o->cfg.kind == LORA_OPTIM_ADAMW && be->ops->tensor_set_create)
        st = make_set(o, be, m, v);
    if (st) {
        be->ops->mem_free(be, m, bytes);
        be->ops->mem_free(be, v, bytes);
        return st;
    }
    free(o->m);
    free(o->v);
    o->m = m;
    o->v = v;
    o->be = be;
    return LORA_OK;
}

/* ---- queries --------------------------------------------------------------------------------- */

/* The scheduled lr of a group; group 1's base is lr * ratio, as LoRA+ builds its param groups. */
static double group_lr(const lora_optim *o, int group)
{
    double base = group ? o->cfg.lr * o->cfg.loraplus_lr_ratio : o->cfg.lr;
    return base * lora__optim_schedule_factor(&o->cfg, o->step);
}

double lora__optim_lr(const lora_optim *o)
{
    return group_lr(o, 0);
}

uint64_t lora__optim_step_count(const lora_optim *o)
{
    return o->step;
}

uint64_t lora__optim_skip_count(const lora_optim *o)
{
    return o->skips;
}

const lora_optim_config *lora__optim_config(const lora_optim *o)
{
    return &o->cfg;
}

lora_status lora__optim_set_lr(lora_optim *o, double lr)
{
    if (!o)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__optim_set_lr: optimizer is NULL");
    if (!(isfinite(lr) && lr > 0))
        return lora__error(LORA_ERR_CONFIG, "lora__optim_set_lr: lr = %g must be finite and "
                           "> 0", lr);
    o->cfg.lr = lr;
    return LORA_OK;
}

/* ---- the step -------------------------------------------------------------------------------- */

/* The backend's entries; a host optimizer runs the CPU's (which do not use the backend). */
static const lora_backend_ops *ops_of(const lora_optim *o)
{
    return o->be ? o->be->ops : &lora__cpu_ops;
}

static lora_status grad_norm(const lora_optim *o, double *norm)
{
    double sum = 0;
    if (o->set) {
        lora_status st = o->be->ops->sum_squares_set(o->be, o->set, &sum);
        if (st)
            return st;
        *norm = sqrt(sum);
        return LORA_OK;
    }
    for (size_t i = 0; i < o->n; i++) {
        lora_status st = ops_of(o)->sum_squares(o->be, o->params[i].g, o->params[i].n, &sum);
        if (st)
            return st;
    }
    *norm = sqrt(sum);
    return LORA_OK;
}

static lora_status update(lora_optim *o, double scale)
{
    double lr[2] = {group_lr(o, 0), group_lr(o, 1)};
    const lora_optim_config *c = &o->cfg;
    if (o->set) { /* AdamW on a device with a multi-tensor entry */
        lora_adamw_args a[2];
        for (int k = 0; k < 2; k++)
            a[k] = (lora_adamw_args){lr[k], c->beta1, c->beta2, c->eps, c->weight_decay, scale,
                                     o->step};
        o->be->ops->adamw_set(o->be, o->set, a);
        return o->be->ops->sync(o->be);
    }
    for (size_t i = 0; i < o->n; i++) {
        const lora_param *q = &o->params[i];
        float *m = o->m ? o->m + o->offset[i] : NULL;
        if (c->kind == LORA_OPTIM_ADAMW) {
            lora_adamw_args a = {lr[q->lr_group], c->beta1, c->beta2, c->eps, c->weight_decay,
                                 scale, o->step};
            ops_of(o)->adamw(o->be, q->p, q->g, m, o->v + o->offset[i], q->n, &a);
        } else {
            lora_sgd_args a = {lr[q->lr_group], c->momentum, c->dampening, c->weight_decay,
                               scale, c->nesterov, o->step};
            ops_of(o)->sgd(o->be, q->p, q->g, m, q->n, &a);
        }
    }
    return o->be ? o->be->ops->sync(o->be) : LORA_OK;
}

lora_status lora__optim_step(lora_optim *o, lora_optim_report *rep)
{
    if (!o)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__optim_step: optimizer is NULL");
    lora_optim_report r = {.clip_coef = 1.0, .lr = lora__optim_lr(o)};
    lora_status st = grad_norm(o, &r.grad_norm);
    if (st)
        return st;
    if (!isfinite(r.grad_norm)) {
        r.skipped = true;
        o->skips++;
        o->consecutive_skips++;
        if (o->consecutive_skips >= (uint64_t)o->cfg.max_consecutive_skips)
            st = lora__error(LORA_ERR_NUMERIC, "lora__optim_step: the gradient norm is %g, not "
                             "finite, %llu steps in a row (max_consecutive_skips %lld); "
                             "stopping", r.grad_norm, (unsigned long long)o->consecutive_skips,
                             (long long)o->cfg.max_consecutive_skips);
    } else {
        if (o->cfg.max_grad_norm > 0) {
            /* torch.nn.utils.clip_grad_norm_: clamp(max_norm / (norm + 1e-6), max=1). */
            double coef = o->cfg.max_grad_norm / (r.grad_norm + 1e-6);
            if (coef < 1.0)
                r.clip_coef = coef;
        }
        /* a device failure leaves the counters: the step did not happen as a whole */
        if ((st = update(o, r.clip_coef)))
            return st;
        o->step++;
        o->consecutive_skips = 0;
    }
    r.step = o->step;
    r.skips = o->skips;
    r.consecutive_skips = o->consecutive_skips;
    if (rep)
        *rep = r;
    return st;
}
