/* lora_adapter_create: the spec's modules laid out in one aligned arena, then initialised as
 * PEFT does it, from a seed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/adapter.h"
#include "api/error.h"
#include "util/alloc.h"
#include "api/handle.h"
#include "util/rng.h"

#define ALIGN_FLOATS 16 /* 64-byte alignment for every A and B */

static size_t round_up(size_t x) { return (x + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

/* Modules (layer, then q, k, v, o, gate, up, down) and the arena size they need. */
static lora_status lay_out(lora_adapter *a, const lora_adapter_spec *s, const lora_config *c)
{
    uint64_t n, trainable;
    lora__adapter_spec_count(s, c, &n, &trainable);
    a->mods = lora__calloc(n ? n : 1, sizeof *a->mods);
    a->table = lora__calloc((size_t)c->n_layers * LORA_PROJ_COUNT, sizeof *a->table);
    if (!a->mods || !a->table)
        return lora__oom("adapter module table",
                         n * sizeof *a->mods + (size_t)c->n_layers * LORA_PROJ_COUNT *
                                                    sizeof *a->table);
    size_t floats = 0, k = 0;
    for (int64_t l = 0; l < c->n_layers; l++) {
        if (!s->layer_on[l])
            continue;
        for (int p = 0; p < LORA_PROJ_COUNT; p++) {
            if (!(s->targets & (1u << p)))
                continue;
            lora_adapter_module *m = &a->mods[k++];
            double alpha;
            m->layer = l;
            m->proj = (lora_proj)p;
            lora__adapter_spec_module(s, l, m->proj, &m->r, &alpha);
            lora__proj_shape(c, m->proj, &m->out, &m->in);
            m->scaling = lora__adapter_scaling(alpha, m->r, s->use_rslora);
            floats += round_up((size_t)(m->r * m->in)) + round_up((size_t)(m->out * m->r));
            a->table[l * LORA_PROJ_COUNT + p] = m;
        }
    }
    a->n_mods = k;
    a->n_trainable = trainable;
    a->arena_floats = floats;
    a->arena = lora__aligned_alloc(64, (floats ? floats : ALIGN_FLOATS) * sizeof(float));
    if (!a->arena)
        return lora__oom("adapter weights", floats * sizeof(float));
    memset(a->arena, 0, floats * sizeof(float));
    /* a layer's A matrices back to back, then its Bs: projections of one input with one rank
     * (q/k/v, gate/up) then form one (n r, in) matrix where r in is a multiple of the
     * alignment, and a GPU's backward takes their dx and dA in one product each */
    size_t off = 0;
    for (size_t i = 0, j; i < a->n_mods; i = j) {
        for (j = i; j < a->n_mods && a->mods[j].layer == a->mods[i].layer; j++) {
            a->mods[j].A = a->arena + off;
            off += round_up((size_t)(a->mods[j].r * a->mods[j].in));
        }
        for (size_t b = i; b < j; b++) {
            a->mods[b].B = a->arena + off;
            off += round_up((size_t)(a->mods[b].out * a->mods[b].r));
        }
    }
    return LORA_OK;
}

lora_status lora__adapter_build(lora_model *m, const lora_adapter_spec *s, lora_adapter **out)
{
    *out = NULL;
    lora_adapter *a = lora__calloc(1, sizeof *a);
    if (!a)
        return lora__oom("adapter", sizeof *a);
    atomic_init(&a->refs, 1);
    lora_status st = lora__handle_add(a, LORA__KIND_ADAPTER);
    if (st) {
        free(a);
        return st;
    }
    lora__model_retain(m);
    a->model = m;
    a->r = s->r;
    a->lora_alpha = s->lora_alpha;
    a->lora_dropout = s->lora_dropout;
    a->use_rslora = s->use_rslora;
    a->targets = s->targets;
    st = lay_out(a, s, &m->cfg);
    if (!st && !(a->config_json = lora__adapter_spec_peft_json(s)))
        st = lora__oom("adapter_config.json", 4096);
    if (!st)
        st = lora__adapter_info_build(a);
    if (st) {
        lora__adapter_release(a);
        return st;
    }
    *out = a;
    return LORA_OK;
}

/* Uniform on [-bound, bound). */
static void fill_uniform(lora_rng *rng, float *x, size_t n, double bound)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((2.0 * lora__rng_uniform_f64(rng) - 1.0) * bound);
}

void lora__adapter_init_weights(lora_adapter *a, lora_adapter_init init, uint64_t seed)
{
    lora_rng rng;
    lora__rng_seed(&rng, seed);
    for (size_t i = 0; i < a->n_mods; i++) {
        lora_adapter_module *m = &a->mods[i];
        size_t na = (size_t)(m->r * m->in), nb = (size_t)(m->out * m->r);
        if (init == LORA_ADAPTER_INIT_GAUSSIAN) {
            /* PEFT: nn.init.normal_(lora_A, std=1 / r) */
            for (size_t j = 0; j < na; j++)
                m->A[j] = (float)(lora__rng_normal(&rng) / (double)m->r);
        } else {
            /* kaiming_uniform_(a=sqrt(5)): bound = sqrt(6 / ((1 + 5) fan_in)) = 1/sqrt(in) */
            fill_uniform(&rng, m->A, na, 1.0 / sqrt((double)m->in));
        }
        if (init == LORA_ADAPTER_INIT_NONE) /* nn.Linear(r, out)'s own init: fan_in = r */
            fill_uniform(&rng, m->B, nb, 1.0 / sqrt((double)m->r));
        else
            memset(m->B, 0, nb * sizeof *m->B);
    }
}

LORA_API lora_status lora_adapter_create(lora_model *model, const char *config_json,
                                         uint64_t seed, lora_adapter **out)
{
    lora__error_clear();
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_adapter_create: out is NULL");
    *out = NULL;
    lora_status st = lora__handle_check(model, LORA__KIND_MODEL, "lora_adapter_create", "model");
    if (st)
        return st;
    lora_adapter_spec s;
    st = lora__adapter_spec_parse(config_json, &model->cfg, LORA_ERR_CONFIG, &s);
    if (st)
        return lora__error_prefix(st, "lora_adapter_create");
    lora_adapter *a;
    st = lora__adapter_build(model, &s, &a);
    if (!st) {
        lora__adapter_init_weights(a, s.init, seed);
        if ((st = lora__adapter_upload(a)))
            lora__adapter_release(a);
    }
    lora__adapter_spec_free(&s);
    if (st)
        return lora__error_prefix(st, "lora_adapter_create");
    *out = a;
    return LORA_OK;
}
