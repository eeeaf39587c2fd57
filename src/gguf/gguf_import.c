/* lora_gguf_import: a GGUF file to a Hugging Face folder (config.json, model.safetensors,
 * tokenizer.json, tokenizer_config.json, generation_config.json), each file written atomically. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/json_text.h"
#include "gguf/gguf.h"
#include "io/manifest.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/weights.h"
#include "util/file.h"
#include "util/json_config.h"

#define WHERE "lora_gguf_import"

/* {"dtype": "f32" | "bf16"}; *bf16 = 1 for "bf16". */
static lora_status parse_options(const char *json, int *bf16)
{
    *bf16 = 0;
    if (!json)
        return LORA_OK;
    json_t *o;
    lora_status st = lora__json_config_load(json, WHERE, &o);
    if (st)
        return st;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "dtype") != 0) {
            st = lora__error(LORA_ERR_CONFIG, WHERE ": unknown option '%s'", key);
            break;
        }
        const char *d = json_string_value(v);
        if (!d || (strcmp(d, "f32") != 0 && strcmp(d, "bf16") != 0)) {
            st = lora__error(LORA_ERR_CONFIG, WHERE ": option 'dtype' must be \"f32\" or "
                             "\"bf16\"");
            break;
        }
        *bf16 = strcmp(d, "bf16") == 0;
    }
    json_decref(o);
    return st;
}

static void fill_from_gguf(void *ctx, const lora_weight_slot *s, size_t offset, float *out,
                           size_t n)
{
    /* the conversion checked that every slot has its source */
    lora__gguf_source_read(lora__gguf_model_find(ctx, s->name), offset, out, n);
}

static lora_status write_text(lora_txn *t, const char *name, const char *text)
{
    const char *path;
    lora_status st = lora__txn_file(t, name, &path);
    return st ? st : lora__write_file_atomic(path, text, strlen(text));
}

static lora_status write_weights(const lora_gguf_model *g, lora_txn *t, int bf16)
{
    lora_config c;
    lora_status st = lora__config_parse(g->config_json, strlen(g->config_json), "config", &c);
    if (st)
        return st;
    lora_weight_slot *slots;
    size_t n;
    if ((st = lora__weight_slots(&c, NULL, &slots, &n)))
        return st;
    const char *path;
    if (!(st = lora__txn_file(t, "model.safetensors", &path)))
        st = lora__write_weights(path, slots, n, bf16, fill_from_gguf, (void *)g);
    free(slots);
    return st;
}

/* Every file staged, then committed together (io/manifest.h): an import that fails or is
 * killed leaves the folder as it was, never weights without their config. */
static lora_status import(const char *gguf_path, const char *out_dir, int bf16)
{
    lora_gguf_model *g;
    lora_status st = lora__gguf_model_open(gguf_path, &g);
    if (st)
        return st;
    lora_txn *t = NULL;
    const char *cfg;
    if (!(st = lora__txn_begin(out_dir, &t)) && !(st = write_weights(g, t, bf16)) &&
        !(st = write_text(t, "tokenizer.json", g->tokenizer_json)) &&
        !(st = write_text(t, "tokenizer_config.json", g->tokenizer_config_json)) &&
        !(st = write_text(t, "generation_config.json", g->generation_config_json)) &&
        !(st = lora__txn_file(t, "config.json", &cfg)) &&
        !(st = lora__write_hf_config(cfg, g->config_json, bf16))) {
        st = lora__txn_commit(t);
        t = NULL;
    }
    lora__txn_abort(t);
    lora__gguf_model_free(g);
    return st;
}

LORA_API lora_status lora_gguf_import(const char *gguf_path, const char *out_dir,
                                      const char *options_json)
{
    lora__error_clear();
    if (!gguf_path || !out_dir)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, WHERE ": %s is NULL",
                           !gguf_path ? "gguf_path" : "out_dir");
    int bf16;
    lora_status st = parse_options(options_json, &bf16);
    if (st)
        return st;
    st = import(gguf_path, out_dir, bf16);
    return st ? lora__error_prefix(st, WHERE) : LORA_OK;
}
