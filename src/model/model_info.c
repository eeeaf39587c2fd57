#include "model/model_info.h"

#include <stdio.h>
#include <stdlib.h>

#include "api/error.h"
#include "util/json_text.h"

json_t *lora__config_to_json(const lora_config *c)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:b, s:b, s:b, "
                     "s:I}",
                     "model_type", c->model_type, "vocab_size", (json_int_t)c->vocab,
                     "hidden_size", (json_int_t)c->hidden, "intermediate_size",
                     (json_int_t)c->inter, "num_hidden_layers", (json_int_t)c->n_layers,
                     "num_attention_heads", (json_int_t)c->n_heads, "num_key_value_heads",
                     (json_int_t)c->n_kv_heads, "head_dim", (json_int_t)c->head_dim,
                     "max_position_embeddings", (json_int_t)c->max_pos, "rope_theta",
                     c->rope_theta, "rms_norm_eps", c->rms_eps, "tie_word_embeddings",
                     c->tie_embeddings, "attention_bias", c->qkv_bias || c->o_bias, "qk_norm",
                     c->qk_norm, "num_parameters", (json_int_t)lora__config_num_params(c));
}

lora_status lora__model_info_build(lora_model *m)
{
    json_t *o = lora__config_to_json(&m->cfg);
    char device[16] = "cpu";
    if (m->dev)
        snprintf(device, sizeof device, "cuda:%d", m->dev_ordinal);
    if (!o)
        return lora__oom("model info", 1024);
    int bad = json_object_set_new(o, "stored_dtype", json_string(m->stored_dtype)) ||
              json_object_set_new(o, "weight_bytes",
                                  json_integer((json_int_t)(m->arena_floats * sizeof(float)))) ||
              json_object_set_new(o, "device", json_string(device)) ||
              json_object_set_new(o, "threads", json_integer(m->threads));
    /* a GPU model: what its device copy of the weights takes, and in which dtype */
    if (!bad && m->dev)
        bad = json_object_set_new(o, "device_weight_bytes",
                                  json_integer((json_int_t)m->dev_bytes)) ||
              json_object_set_new(o, "device_weight_dtype",
                                  json_string(m->dev_bf16 ? "bf16" : "float32"));
    m->info_json = bad ? NULL : lora__json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return m->info_json ? LORA_OK : lora__oom("model info", 1024);
}
