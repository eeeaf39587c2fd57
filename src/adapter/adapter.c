/* Adapter bookkeeping: projection names and shapes, the refcount, tensor names and the
 * PEFT-style description behind lora_adapter_info_json. */
#include <pthread.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/adapter.h"
#include "api/error.h"
#include "util/json_text.h"
#include "api/handle.h"

static const char *const proj_names[LORA_PROJ_COUNT] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
};

const char *lora__proj_name(lora_proj p)
{
    return (unsigned)p < LORA_PROJ_COUNT ? proj_names[p] : "?";
}

const char *lora__proj_parent(lora_proj p)
{
    return p <= LORA_PROJ_O ? "self_attn" : "mlp";
}

void lora__proj_shape(const lora_config *c, lora_proj p, int64_t *out, int64_t *in)
{
    int64_t q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    switch (p) {
    case LORA_PROJ_Q: *out = q; *in = c->hidden; return;
    case LORA_PROJ_K:
    case LORA_PROJ_V: *out = kv; *in = c->hidden; return;
    case LORA_PROJ_O: *out = c->hidden; *in = q; return;
    case LORA_PROJ_GATE:
    case LORA_PROJ_UP: *out = c->inter; *in = c->hidden; return;
    case LORA_PROJ_DOWN: *out = c->hidden; *in = c->inter; return;
    case LORA_PROJ_COUNT: break;
    }
    *out = *in = 0;
}

void lora__adapter_tensor_name(int64_t layer, lora_proj p, char which, char *buf, size_t cap)
{
    snprintf(buf, cap, "base_model.model.model.layers.%lld.%s.%s.lora_%c.weight",
             (long long)layer, lora__proj_parent(p), lora__proj_name(p), which);
}

void lora__adapter_retain(lora_adapter *a) { atomic_fetch_add(&a->refs, 1); }

void lora__adapter_release(lora_adapter *a)
{
    if (!a || atomic_fetch_sub(&a->refs, 1) != 1)
        return;
    lora__handle_remove(a);
    if (a->dev_arena) {
        pthread_mutex_lock(&a->model->dev_lock);
        a->model->dev->ops->mem_free(a->model->dev, a->dev_arena,
                                     a->arena_floats * sizeof(float));
        pthread_mutex_unlock(&a->model->dev_lock);
    }
    free(a->arena);
    free(a->mods);
    free(a->table);
    free(a->config_json);
    free(a->info_json);
    lora__model_release(a->model);
    free(a);
}

LORA_API void lora_adapter_free(lora_adapter *adapter)
{
    if (lora__handle_freeable(adapter, LORA__KIND_ADAPTER, "lora_adapter_free", "adapter"))
        lora__adapter_release(adapter);
}

LORA_API const char *lora_adapter_info_json(const lora_adapter *adapter)
{
    if (lora__handle_check(adapter, LORA__KIND_ADAPTER, "lora_adapter_info_json", "adapter"))
        return NULL;
    return adapter->info_json;
}

json_t *lora__adapter_json_number(double x)
{
    if (x == (double)(json_int_t)x && x > -9e15 && x < 9e15)
        return json_integer((json_int_t)x);
    return json_real(x);
}

json_t *lora__adapter_target_list(unsigned targets)
{
    static const lora_proj sorted[LORA_PROJ_COUNT] = {
        LORA_PROJ_DOWN, LORA_PROJ_GATE, LORA_PROJ_K, LORA_PROJ_O,
        LORA_PROJ_Q, LORA_PROJ_UP, LORA_PROJ_V,
    };
    json_t *list = json_array();
    for (int i = 0; list && i < LORA_PROJ_COUNT; i++)
        if ((targets & (1u << sorted[i])) &&
            json_array_append_new(list, json_string(lora__proj_name(sorted[i])))) {
            json_decref(list);
            return NULL;
        }
    return list;
}

lora_status lora__adapter_info_build(lora_adapter *a)
{
    uint64_t base = lora_model_num_parameters(a->model);
    uint64_t total = base + a->n_trainable;
    json_t *o = json_object();
    int bad = !o ||
        json_object_set_new(o, "modules", json_integer((json_int_t)a->n_mods)) ||
        json_object_set_new(o, "trainable_parameters", json_integer((json_int_t)a->n_trainable)) ||
        json_object_set_new(o, "total_parameters", json_integer((json_int_t)total)) ||
        json_object_set_new(o, "trainable_ratio",
                            json_real(total ? 100.0 * (double)a->n_trainable / (double)total
                                            : 0)) ||
        json_object_set_new(o, "r", json_integer((json_int_t)a->r)) ||
        json_object_set_new(o, "lora_alpha", lora__adapter_json_number(a->lora_alpha)) ||
        json_object_set_new(o, "scaling",
                            json_real(a->use_rslora ? a->lora_alpha / sqrt((double)a->r)
                                                    : a->lora_alpha / (double)a->r)) ||
        json_object_set_new(o, "target_modules", lora__adapter_target_list(a->targets));
    char *text = bad ? NULL : lora__json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return lora__oom("adapter description", 512);
    free(a->info_json);
    a->info_json = text;
    return LORA_OK;
}
