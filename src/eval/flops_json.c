/* The FLOPs counts as the JSON object lora_flops_json returns. */
#include <jansson.h>

#include "api/error.h"
#include "eval/eval.h"
#include "util/json_text.h"

static int put(json_t *o, const char *key, uint64_t v)
{
    return json_object_set_new(o, key, json_integer((json_int_t)v));
}

static json_t *forward_object(const lora_flops *f)
{
    json_t *o = json_object(), *layer = json_object(), *ew = json_object();
    int bad = !o || !layer || !ew;
    bad = bad || put(o, "per_token", f->forward) || put(o, "per_step", f->forward_step) ||
          put(o, "projections", f->projections) || put(o, "lm_head", f->lm_head) ||
          put(o, "attention", f->attention) ||
          put(o, "attention_full_context", f->attention_full) || put(o, "adapter", f->adapter);
    for (int p = 0; !bad && p < LORA_PROJ_COUNT; p++)
        bad = put(layer, lora__proj_name((lora_proj)p), f->per_layer[p]);
    bad = bad || put(ew, "rmsnorm", f->ew_rmsnorm) || put(ew, "rope", f->ew_rope) ||
          put(ew, "swiglu", f->ew_swiglu) || put(ew, "softmax", f->ew_softmax) ||
          put(ew, "residual", f->ew_residual) || put(ew, "bias", f->ew_bias) ||
          put(ew, "adapter", f->ew_adapter) || put(ew, "total", f->ew_total);
    if (!bad) {
        bad = json_object_set_new(o, "per_layer", layer);
        layer = NULL;
    }
    if (!bad) {
        bad = json_object_set_new(o, "elementwise", ew);
        ew = NULL;
    }
    json_decref(layer);
    json_decref(ew);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *train_object(const lora_flops *f)
{
    json_t *o = json_object();
    if (o && !json_object_set_new(o, "mode", json_string(f->train_adapters ? "adapters"
                                                                            : "full")) &&
        !put(o, "per_token", f->train) && !put(o, "per_step", f->train_step) &&
        !put(o, "forward_per_token", f->forward) && !put(o, "backward_per_token", f->backward))
        return o;
    json_decref(o);
    return NULL;
}

/* The rules of thumb 2N and 6N, with N the parameter count; when N overflows them the
 * counts above already did too. */
static json_t *thumb_object(const lora_flops *f)
{
    json_t *o = json_object();
    if (o && !put(o, "forward_2N", 2 * f->parameters) && !put(o, "train_6N", 6 * f->parameters))
        return o;
    json_decref(o);
    return NULL;
}

lora_status lora__flops_json(const lora_config *c, const lora_flops *f, char **out)
{
    *out = NULL;
    json_t *o = json_object();
    int bad = !o || json_object_set_new(o, "model_type", json_string(c->model_type)) ||
              put(o, "context", f->context) || put(o, "batch", f->batch) ||
              put(o, "tokens_per_step", f->tokens_per_step) ||
              put(o, "parameters", f->parameters) ||
              put(o, "matmul_parameters", f->matmul_parameters) ||
              put(o, "adapter_parameters", f->adapter_parameters) ||
              json_object_set_new(o, "forward", forward_object(f)) ||
              json_object_set_new(o, "train", train_object(f)) ||
              json_object_set_new(o, "rule_of_thumb", thumb_object(f));
    if (!bad)
        *out = lora__json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return *out ? LORA_OK : lora__oom("the FLOPs JSON", 4096);
}
