#include "model/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/alloc.h"

typedef struct slot_list {
    lora_weight_slot *v;
    size_t n;
} slot_list;

static void add(slot_list *l, const char *name, int64_t d0, int64_t d1, lora_init_kind init,
                float **dst)
{
    lora_weight_slot *s = &l->v[l->n++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ndim = d1 ? 2 : 1;
    s->shape[0] = d0;
    s->shape[1] = d1;
    s->init = init;
    s->dst = dst;
}

#define DST(field) (lw ? &lw->field : NULL)

static void add_layer(slot_list *l, const lora_config *c, int64_t i, lora_layer_weights *lw)
{
    char nm[80];
    int64_t C = c->hidden, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
#define NAME(suffix) (snprintf(nm, sizeof nm, "model.layers.%lld.%s", (long long)i, suffix), nm)
    add(l, NAME("input_layernorm.weight"), C, 0, LORA_INIT_ONES, DST(attn_norm));
    add(l, NAME("self_attn.q_proj.weight"), q, C, LORA_INIT_NORMAL, DST(wq));
    if (c->qkv_bias)
        add(l, NAME("self_attn.q_proj.bias"), q, 0, LORA_INIT_ZEROS, DST(bq));
    add(l, NAME("self_attn.k_proj.weight"), kv, C, LORA_INIT_NORMAL, DST(wk));
    if (c->qkv_bias)
        add(l, NAME("self_attn.k_proj.bias"), kv, 0, LORA_INIT_ZEROS, DST(bk));
    add(l, NAME("self_attn.v_proj.weight"), kv, C, LORA_INIT_NORMAL, DST(wv));
    if (c->qkv_bias)
        add(l, NAME("self_attn.v_proj.bias"), kv, 0, LORA_INIT_ZEROS, DST(bv));
    add(l, NAME("self_attn.o_proj.weight"), C, q, LORA_INIT_NORMAL, DST(wo));
    if (c->o_bias)
        add(l, NAME("self_attn.o_proj.bias"), C, 0, LORA_INIT_ZEROS, DST(bo));
    if (c->qk_norm) {
        add(l, NAME("self_attn.q_norm.weight"), c->head_dim, 0, LORA_INIT_ONES, DST(q_norm));
        add(l, NAME("self_attn.k_norm.weight"), c->head_dim, 0, LORA_INIT_ONES, DST(k_norm));
    }
    add(l, NAME("post_attention_layernorm.weight"), C, 0, LORA_INIT_ONES, DST(mlp_norm));
    add(l, NAME("mlp.gate_proj.weight"), c->inter, C, LORA_INIT_NORMAL, DST(w_gate));
    add(l, NAME("mlp.up_proj.weight"), c->inter, C, LORA_INIT_NORMAL, DST(w_up));
    add(l, NAME("mlp.down_proj.weight"), C, c->inter, LORA_INIT_NORMAL, DST(w_down));
#undef NAME
}

#define MAX_SLOTS_PER_LAYER 15

lora_status lora__weight_slots(const lora_config *c, lora_model *m, lora_weight_slot **out,
                               size_t *n)
{
    size_t cap = 3 + (size_t)c->n_layers * MAX_SLOTS_PER_LAYER;
    slot_list l = {lora__calloc(cap, sizeof(lora_weight_slot)), 0};
    *out = NULL;
    *n = 0;
    if (!l.v)
        return lora__oom("weight list", cap * sizeof(lora_weight_slot));
    add(&l, "model.embed_tokens.weight", c->vocab, c->hidden, LORA_INIT_NORMAL,
        m ? &m->embed : NULL);
    for (int64_t i = 0; i < c->n_layers; i++)
        add_layer(&l, c, i, m ? &m->layers[i] : NULL);
    add(&l, "model.norm.weight", c->hidden, 0, LORA_INIT_ONES, m ? &m->final_norm : NULL);
    if (!c->tie_embeddings)
        add(&l, "lm_head.weight", c->vocab, c->hidden, LORA_INIT_NORMAL, m ? &m->lm_head : NULL);
    *out = l.v;
    *n = l.n;
    return LORA_OK;
}

const char *lora__shape_str(const int64_t *shape, int ndim, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap)
        snprintf(buf + k, cap - k, "]");
    return buf;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int lora__weight_ignorable(const lora_config *c, const char *name)
{
    return ends_with(name, ".rotary_emb.inv_freq") ||
           (c->tie_embeddings && strcmp(name, "lm_head.weight") == 0);
}
