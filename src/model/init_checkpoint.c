/* lora_model_init_checkpoint: a randomly initialised checkpoint in Hugging Face layout,
 * streamed tensor by tensor so that even large configs need little memory. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/error.h"
#include "io/safetensors.h"
#include "model/dtype.h"
#include "model/weights.h"
#include "util/file.h"
#include "util/rng.h"

#define CHUNK 65536 /* elements generated per write */

typedef struct init_out {
    lora_st_writer *w;
    lora_rng rng;
    double std;
    int bf16;
    float vals[CHUNK];
    uint16_t halves[CHUNK];
} init_out;

static float init_value(init_out *o, lora_init_kind kind)
{
    switch (kind) {
    case LORA_INIT_ZEROS: return 0.0f;
    case LORA_INIT_ONES: return 1.0f;
    case LORA_INIT_NORMAL: break;
    }
    return (float)(lora__rng_normal(&o->rng) * o->std);
}

static lora_status write_slot(init_out *o, const lora_weight_slot *s)
{
    size_t numel = (size_t)s->shape[0] * (size_t)(s->ndim == 2 ? s->shape[1] : 1);
    for (size_t done = 0; done < numel;) {
        size_t n = numel - done < CHUNK ? numel - done : CHUNK;
        for (size_t i = 0; i < n; i++)
            o->vals[i] = init_value(o, s->init);
        lora_status st;
        if (o->bf16) {
            for (size_t i = 0; i < n; i++)
                o->halves[i] = lora__bf16_from_f32(o->vals[i]);
            st = lora__st_writer_write(o->w, o->halves, n * sizeof(uint16_t));
        } else
            st = lora__st_writer_write(o->w, o->vals, n * sizeof(float));
        if (st)
            return st;
        done += n;
    }
    return LORA_OK;
}

static lora_status write_weights(const char *path, const lora_config *c, uint64_t seed, int bf16)
{
    lora_weight_slot *slots;
    size_t n;
    lora_status st = lora__weight_slots(c, NULL, &slots, &n);
    if (st)
        return st;
    lora_st_decl *decls = calloc(n, sizeof *decls);
    init_out *o = calloc(1, sizeof *o);
    if (!decls || !o) {
        st = lora__oom("checkpoint writer", sizeof *o + n * sizeof *decls);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        decls[i].name = slots[i].name;
        decls[i].dtype = bf16 ? LORA_ST_BF16 : LORA_ST_F32;
        decls[i].ndim = slots[i].ndim;
        memcpy(decls[i].shape, slots[i].shape, sizeof slots[i].shape);
    }
    lora__rng_seed(&o->rng, seed);
    o->std = c->init_range;
    o->bf16 = bf16;
    if ((st = lora__st_writer_begin(path, decls, n, "{\"format\": \"pt\"}", &o->w)))
        goto done;
    for (size_t i = 0; i < n && !st; i++)
        st = write_slot(o, &slots[i]);
    if (st)
        lora__st_writer_abort(o->w);
    else
        st = lora__st_writer_commit(o->w);
done:
    free(o);
    free(decls);
    free(slots);
    return st;
}

/* config.json as given, with torch_dtype naming what was written. */
static lora_status write_config(const char *path, const char *config_json, int bf16)
{
    json_t *o = json_loads(config_json, 0, NULL);
    if (!o)
        return lora__oom("config", strlen(config_json));
    json_object_set_new(o, "torch_dtype", json_string(bf16 ? "bfloat16" : "float32"));
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return lora__oom("config", strlen(config_json));
    lora_status st = lora__write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

static lora_status init_checkpoint(const char *config_json, const char *out_dir, uint64_t seed,
                                   int bf16)
{
    lora_config c;
    lora_status st = lora__config_parse(config_json, strlen(config_json), "config", &c);
    if (st)
        return st;
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST)
        return lora__error(LORA_ERR_IO, "%s: %s", out_dir, strerror(errno));
    if (!lora__is_dir(out_dir))
        return lora__error(LORA_ERR_IO, "%s: not a folder", out_dir);
    char *weights = lora__path_join(out_dir, "model.safetensors");
    char *cfg = lora__path_join(out_dir, "config.json");
    if (!weights || !cfg)
        st = lora__oom("path", strlen(out_dir) + 32);
    /* weights first: a folder whose config.json exists is complete */
    else if (!(st = write_weights(weights, &c, seed, bf16)))
        st = write_config(cfg, config_json, bf16);
    free(weights);
    free(cfg);
    return st;
}

LORA_API lora_status lora_model_init_checkpoint(const char *config_json, const char *out_dir,
                                                uint64_t seed, const char *dtype)
{
    lora__error_clear();
    if (!config_json || !out_dir)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_model_init_checkpoint: %s is NULL",
                           config_json ? "out_dir" : "config_json");
    int bf16 = 0;
    if (dtype && strcmp(dtype, "bf16") == 0)
        bf16 = 1;
    else if (dtype && strcmp(dtype, "f32") != 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT,
                           "lora_model_init_checkpoint: dtype '%.16s' is not \"f32\" or \"bf16\"",
                           dtype);
    lora_status st = init_checkpoint(config_json, out_dir, seed, bf16);
    return st ? lora__error_prefix(st, "lora_model_init_checkpoint") : LORA_OK;
}
