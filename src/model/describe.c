/* lora_model_describe: what a checkpoint folder holds, from config.json and the safetensors
 * headers, or what a GGUF file holds, from its metadata and tensor table; no tensor data is
 * read. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "gguf/gguf.h"
#include "io/safetensors.h"
#include "model/model_info.h"
#include "model/weights.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/json_text.h"

/* 1 or 0; -1 when out of memory */
static int has_weights(const char *dir)
{
    char *a = lora__path_join(dir, "model.safetensors");
    char *b = lora__path_join(dir, "model.safetensors.index.json");
    int yes = a && b ? lora__is_file(a) || lora__is_file(b) : -1;
    free(a);
    free(b);
    return yes;
}

/* Validates the headers against the config and adds stored_dtype / stored_bytes. */
static lora_status describe_weights(const char *dir, const lora_config *c, json_t *o)
{
    lora_st_set *set;
    lora_status st = lora__st_set_open(dir, &set);
    if (st)
        return st;
    lora_weight_slot *slots;
    size_t n;
    if (!(st = lora__weight_slots(c, NULL, &slots, &n))) {
        if (!(st = lora__weights_check(c, set, slots, n))) {
            uint64_t bytes = 0;
            for (size_t i = 0; i < n; i++)
                bytes += lora__st_set_find(set, slots[i].name)->nbytes;
            const lora_st_tensor *e = lora__st_set_find(set, "model.embed_tokens.weight");
            if (json_object_set_new(o, "stored_dtype",
                                    json_string(lora__st_dtype_name(e->dtype))) ||
                json_object_set_new(o, "stored_bytes", json_integer((json_int_t)bytes)))
                st = lora__oom("description", 1024);
        }
        free(slots);
    }
    lora__st_set_close(set);
    return st;
}

/* torch_dtype names in the safetensors spelling that describe_weights reports */
static const char *safetensors_dtype(const char *torch_dtype)
{
    static const char *const map[][2] = {
        {"float32", "F32"}, {"bfloat16", "BF16"}, {"float16", "F16"}, {"float64", "F64"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(torch_dtype, map[i][0]) == 0)
            return map[i][1];
    return torch_dtype;
}

/* "has_weights" and "weight_bytes" (the float32 bytes once loaded); nonzero when out of
 * memory. */
static int weight_keys(json_t *o, const lora_config *c, int has)
{
    return json_object_set_new(o, "has_weights", json_boolean(has)) ||
           json_object_set_new(o, "weight_bytes",
                               json_integer((json_int_t)(lora__config_num_params(c) *
                                                         sizeof(float))));
}

/* A GGUF file as lora_model_load would convert it: the converted config, and the stored
 * type and bytes of the tensors the model reads. */
static lora_status describe_gguf(const char *path, json_t **out)
{
    *out = NULL;
    lora_gguf_model *g;
    lora_status st = lora__gguf_model_open(path, &g);
    if (st)
        return st;
    lora_config c;
    if (!(st = lora__config_parse(g->config_json, strlen(g->config_json), path, &c))) {
        uint64_t bytes = 0;
        for (size_t i = 0; i < g->n; i++)
            bytes += g->src[i].t->nbytes;
        json_t *o = lora__config_to_json(&c);
        if (!o || weight_keys(o, &c, 1) ||
            json_object_set_new(o, "stored_dtype", json_string(lora__gguf_model_main_type(g))) ||
            json_object_set_new(o, "stored_bytes", json_integer((json_int_t)bytes))) {
            json_decref(o);
            st = lora__oom("description", 1024);
        } else
            *out = o;
    }
    lora__gguf_model_free(g);
    return st;
}

/* A checkpoint folder, or the path of a config.json (its folder may hold weights too). */
static lora_status describe_folder(const char *path, json_t **out)
{
    *out = NULL;
    int is_dir = lora__is_dir(path);
    char *dir = lora__strdup(path);
    if (!dir)
        return lora__oom("path", strlen(path) + 1);
    if (!is_dir) { /* a config.json: its folder may hold weights too */
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            strcpy(dir, ".");
    }
    char *cfg_path = is_dir ? lora__path_join(path, "config.json") : lora__strdup(path);
    lora_config c;
    lora_status st = cfg_path ? lora__config_load(cfg_path, &c) : lora__oom("path", 4096);
    free(cfg_path);
    json_t *o = st ? NULL : lora__config_to_json(&c);
    if (!st && !o)
        st = lora__oom("description", 1024);
    if (!st) {
        int w = has_weights(dir);
        if (w < 0 || weight_keys(o, &c, w))
            st = lora__oom("description", 1024);
        else if (w)
            st = describe_weights(dir, &c, o);
        else if (json_object_set_new(o, "stored_dtype",
                                     json_string(safetensors_dtype(c.torch_dtype))) ||
                 json_object_set_new(o, "stored_bytes", json_integer(0)))
            st = lora__oom("description", 1024);
    }
    free(dir);
    if (st)
        json_decref(o);
    else
        *out = o;
    return st;
}

static lora_status describe(const char *path, char **json_out)
{
    json_t *o;
    lora_status st = lora__gguf_is_gguf(path) ? describe_gguf(path, &o)
                                              : describe_folder(path, &o);
    if (!st && !(*json_out = lora__json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        st = lora__oom("description", 1024);
    json_decref(o);
    return st;
}

LORA_API lora_status lora_model_describe(const char *path, char **json_out)
{
    lora__error_clear();
    if (!json_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_model_describe: json_out is NULL");
    *json_out = NULL;
    if (!path)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_model_describe: path is NULL");
    lora_status st = describe(path, json_out);
    return st ? lora__error_prefix(st, "lora_model_describe") : LORA_OK;
}
