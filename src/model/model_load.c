/* lora_model_load: config.json, then every tensor checked against the config's list and
 * converted to float32 into one arena. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/error.h"
#include "util/alloc.h"
#include "gguf/gguf.h"
#include "io/manifest.h"
#include "api/handle.h"
#include "io/safetensors.h"
#include "model/dtype.h"
#include "model/model.h"
#include "model/model_info.h"
#include "model/weights.h"
#include "adapter/merge.h"
#include "tokenizer/tokenizer.h"
#include "util/file.h"
#include "util/json_text.h"
#include "cpu/cpu.h"
#ifdef LORA_CUDA
#include "cuda/backend_cuda.h"
#endif

#define MAX_THREADS 64
#define ALIGN_FLOATS 16 /* 64-byte alignment for every tensor */

void lora__model_retain(lora_model *m) { atomic_fetch_add(&m->refs, 1); }

void lora__model_release(lora_model *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    lora__handle_remove(m);
    lora__model_device_free(m);
    if (m->dev)
        m->dev->ops->backend_free(m->dev);
    pthread_mutex_destroy(&m->dev_lock);
    free(m->arena);
    free(m->layers);
    free(m->info_json);
    free(m->config_text);
    lora__merge_free(m->merge);
    lora_tokenizer_free(m->tokenizer);
    pthread_mutex_destroy(&m->tokenizer_lock);
    free(m->path);
    free(m);
}

LORA_API void lora_model_free(lora_model *model)
{
    if (lora__handle_freeable(model, LORA__KIND_MODEL, "lora_model_free", "model"))
        lora__model_release(model);
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

/* What lora_model_load's options ask for: the CPU, or CUDA device ordinal (auto: if one is
 * usable), and the GPU's math mode. */
typedef struct load_opts {
    int threads;
    int ordinal;  /* -1: the CPU */
    bool autodev; /* "auto": device 0 when usable, else the CPU */
    int math;     /* lora_cuda_math; BF16 unless "cuda_math": "fp32" */
    char name[40]; /* the device as given, for messages */
} load_opts;

/* "cuda" or "cuda:N" into o->ordinal; without the backend in the build, LORA_ERR_DEVICE. */
static lora_status cuda_device(const char *d, load_opts *o)
{
#ifdef LORA_CUDA
    lora_status st = lora__cuda_parse_device(d, &o->ordinal);
    return st ? lora__error_prefix(st, "lora_model_load: device '%.32s'", d) : LORA_OK;
#else
    (void)o;
    return lora__error(LORA_ERR_DEVICE, "lora_model_load: device '%s': this build of liblora has "
                       "no CUDA backend (use \"cpu\" or \"auto\")", d);
#endif
}

static lora_status option(const char *key, json_t *v, load_opts *o)
{
    if (strcmp(key, "threads") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > MAX_THREADS)
            return lora__error(LORA_ERR_CONFIG, "lora_model_load: option 'threads' must be an "
                               "integer in 1..%d", MAX_THREADS);
        o->threads = (int)json_integer_value(v);
        return LORA_OK;
    }
    const char *d = json_is_string(v) ? json_string_value(v) : NULL;
    if (strcmp(key, "cuda_math") == 0) {
        if (!d || (strcmp(d, "bf16") != 0 && strcmp(d, "fp32") != 0))
            return lora__error(LORA_ERR_CONFIG, "lora_model_load: option 'cuda_math' must be "
                               "\"bf16\" or \"fp32\"");
        o->math = strcmp(d, "fp32") == 0;
        return LORA_OK;
    }
    if (strcmp(key, "device") != 0)
        return lora__error(LORA_ERR_CONFIG, "lora_model_load: unknown option '%s'", key);
    if (!d)
        return lora__error(LORA_ERR_CONFIG, "lora_model_load: option 'device' must be a string");
    o->ordinal = -1;
    o->autodev = strcmp(d, "auto") == 0;
    snprintf(o->name, sizeof o->name, "%.32s", d);
    if (strcmp(d, "cpu") == 0 || o->autodev)
        return LORA_OK;
    if (strncmp(d, "cuda", 4) == 0 && (d[4] == '\0' || d[4] == ':'))
        return cuda_device(d, o);
    return lora__error(LORA_ERR_CONFIG, "lora_model_load: option 'device' = '%.32s' is not one "
                       "of \"cpu\", \"auto\", \"cuda\", \"cuda:N\"", d);
}

/* {"device": ..., "threads": ..., "cuda_math": ...}; the CPU unless a device is asked for */
static lora_status parse_options(const char *json, load_opts *o)
{
    *o = (load_opts){default_threads(), -1, false, 0, "cpu"};
    if (!json)
        return LORA_OK;
    json_error_t jerr;
    json_t *obj = lora__json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return lora__error(LORA_ERR_CONFIG, "lora_model_load: options: %s", jerr.text);
    lora_status st = LORA_OK;
    const char *key;
    json_t *v;
    if (!json_is_object(obj))
        st = lora__error(LORA_ERR_CONFIG, "lora_model_load: options must be a JSON object");
    else
        json_object_foreach(obj, key, v) {
            if ((st = option(key, v, o)))
                break;
        }
    json_decref(obj);
    return st;
}

/* The model's GPU backend, before any weight is read: a missing device fails fast. "auto"
 * without a usable device is the CPU, its error forgotten. */
static lora_status open_device(lora_model *m, const load_opts *o)
{
    m->dev_ordinal = -1;
#ifdef LORA_CUDA
    if (o->ordinal < 0 && !o->autodev)
        return LORA_OK;
    int ordinal = o->autodev ? 0 : o->ordinal;
    lora_status st = lora__cuda_backend_create(ordinal, (lora_cuda_math)o->math, &m->dev);
    if (st && o->autodev) {
        lora__error_clear();
        return LORA_OK;
    }
    if (st)
        return lora__error_prefix(st, "device '%s'", o->name);
    m->dev_ordinal = ordinal;
    m->dev_math = o->math;
    return LORA_OK;
#else
    (void)o;
    return LORA_OK;
#endif
}

/* The device copy, once the weights are read: matrices in bfloat16 with the bf16 math mode
 * (its products round them so anyway), all float32 with fp32, for exact comparisons. */
static lora_status upload_weights(lora_model *m)
{
#ifdef LORA_CUDA
    if (m->dev)
        return lora__model_device_create(m, m->dev_math == LORA_CUDA_MATH_BF16);
#else
    (void)m;
#endif
    return LORA_OK;
}

lora_status lora__model_backend_create(lora_model *m, int n_threads, lora_backend **out)
{
#ifdef LORA_CUDA
    if (m->dev)
        return lora__cuda_backend_create(m->dev_ordinal, (lora_cuda_math)m->dev_math, out);
#endif
    return lora__cpu_backend_create(n_threads, out);
}

static size_t round_up(size_t x) { return (x + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

/* dtype already checked by lora__weights_check */
static void convert(const lora_st_tensor *t, float *dst)
{
    if (t->dtype == LORA_ST_BF16)
        lora__f32_from_bf16(dst, t->data, t->numel);
    else if (t->dtype == LORA_ST_F16)
        lora__f32_from_f16(dst, t->data, t->numel);
    else
        lora__f32_from_f32(dst, t->data, t->numel);
}

static size_t slot_numel(const lora_weight_slot *s)
{
    return (size_t)(s->shape[0] * (s->ndim == 2 ? s->shape[1] : 1));
}

/* One arena for every slot, 64-byte aligned each; *slots_out to free. With a safetensors set,
 * its tensors are checked first: a config's sizes are only trusted once the files hold them, so
 * that a small folder cannot ask for a huge arena (a GGUF's conversion did that check). */
static lora_status alloc_weights(lora_model *m, const lora_st_set *set,
                                 lora_weight_slot **slots_out, size_t *n_out)
{
    lora_weight_slot *slots;
    size_t n;
    lora_status st = lora__weight_slots(&m->cfg, m, &slots, &n);
    if (st)
        return st;
    if (set && (st = lora__weights_check(&m->cfg, set, slots, n))) {
        free(slots);
        return st;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += round_up(slot_numel(&slots[i]));
    m->arena_floats = total;
    m->arena = lora__aligned_alloc(64, total * sizeof(float));
    if (!m->arena) {
        free(slots);
        return lora__oom("model weights", total * sizeof(float));
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t numel = slot_numel(&slots[i]);
        *slots[i].dst = m->arena + off;
        off += round_up(numel);
        /* the alignment gap too: whole-arena copies and comparisons see defined bytes */
        memset(*slots[i].dst + numel, 0, (round_up(numel) - numel) * sizeof(float));
    }
    *slots_out = slots;
    *n_out = n;
    return LORA_OK;
}

static lora_status load_weights(lora_model *m, const lora_st_set *set)
{
    lora_weight_slot *slots;
    size_t n;
    lora_status st = alloc_weights(m, set, &slots, &n);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++)
        convert(lora__st_set_find(set, slots[i].name), *slots[i].dst);
    const lora_st_tensor *e = lora__st_set_find(set, "model.embed_tokens.weight");
    snprintf(m->stored_dtype, sizeof m->stored_dtype, "%s", lora__st_dtype_name(e->dtype));
    if (m->cfg.tie_embeddings)
        m->lm_head = m->embed;
    free(slots);
    return LORA_OK;
}

static lora_status load_config(lora_model *m, const char *text, size_t len, const char *label,
                               int threads)
{
    lora_status st = lora__config_parse(text, len, label, &m->cfg);
    if (st)
        return st;
    m->threads = threads;
    m->n_params = lora__config_num_params(&m->cfg);
    m->layers = lora__calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
    if (!m->layers)
        return lora__oom("layer table", (size_t)m->cfg.n_layers * sizeof *m->layers);
    return LORA_OK;
}

static lora_status load(const char *path, int threads, lora_model *m)
{
    lora_manifest *mf;
    char *cfg_path = NULL;
    lora_status st = lora__manifest_load(path, &mf);
    if (!st)
        st = lora__manifest_resolve(mf, path, "config.json", &cfg_path);
    lora__manifest_free(mf);
    if (st)
        return st;
    size_t len;
    st = lora__read_file(cfg_path, 16u << 20, &m->config_text, &len);
    if (!st)
        st = load_config(m, m->config_text, len, cfg_path, threads);
    free(cfg_path);
    if (st)
        return st;
    lora_st_set *set;
    if ((st = lora__st_set_open(path, &set)))
        return st;
    st = load_weights(m, set);
    lora__st_set_close(set);
    return st;
}

/* A GGUF file: the import's conversion, dequantized into the arena instead of written out;
 * the tokenizer is built now, since there is no folder to find it in later. */
static lora_status load_gguf(const char *path, int threads, lora_model *m)
{
    lora_gguf_model *g;
    lora_status st = lora__gguf_model_open(path, &g);
    if (st)
        return st;
    lora_weight_slot *slots = NULL;
    size_t n = 0;
    if (!(m->config_text = lora__strdup(g->config_json)))
        st = lora__oom("config", strlen(g->config_json));
    if (!st && !(st = load_config(m, g->config_json, strlen(g->config_json), path, threads)))
        st = alloc_weights(m, NULL, &slots, &n);
    /* the conversion checked that every slot has its source, of the slot's shape */
    for (size_t i = 0; i < n && !st; i++)
        lora__gguf_source_read(lora__gguf_model_find(g, slots[i].name), 0, *slots[i].dst,
                               slot_numel(&slots[i]));
    if (!st) {
        snprintf(m->stored_dtype, sizeof m->stored_dtype, "%s", lora__gguf_model_main_type(g));
        if (m->cfg.tie_embeddings)
            m->lm_head = m->embed;
        m->tokenizer = g->tokenizer;
        g->tokenizer = NULL;
    }
    free(slots);
    lora__gguf_model_free(g);
    return st;
}

LORA_API lora_status lora_model_load(const char *path, const char *config_json, lora_model **out)
{
    lora__error_clear();
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_model_load: path is NULL");
    load_opts opts;
    lora_status st = parse_options(config_json, &opts);
    if (st)
        return st;
    int gguf = lora__gguf_is_gguf(path);
    if (!gguf && !lora__is_dir(path))
        return lora__error(LORA_ERR_IO, "lora_model_load: %s: not a folder or a GGUF file", path);
    lora_model *m = lora__calloc(1, sizeof *m);
    if (!m)
        return lora__oom("model", sizeof *m);
    atomic_init(&m->refs, 1);
    pthread_mutex_init(&m->tokenizer_lock, NULL);
    pthread_mutex_init(&m->dev_lock, NULL);
    m->path = lora__strdup(path);
    st = !m->path ? lora__oom("path", strlen(path) + 1) : lora__handle_add(m, LORA__KIND_MODEL);
    if (!st)
        st = open_device(m, &opts);
    if (!st)
        st = gguf ? load_gguf(path, opts.threads, m) : load(path, opts.threads, m);
    if (!st)
        st = upload_weights(m);
    if (!st)
        st = lora__model_info_build(m);
    if (st) {
        lora__model_release(m);
        return lora__error_prefix(st, "lora_model_load");
    }
    *out = m;
    return LORA_OK;
}

LORA_API size_t lora_model_vocab_size(const lora_model *model)
{
    if (lora__handle_check(model, LORA__KIND_MODEL, "lora_model_vocab_size", "model"))
        return 0;
    return (size_t)model->cfg.vocab;
}

LORA_API uint64_t lora_model_num_parameters(const lora_model *model)
{
    if (lora__handle_check(model, LORA__KIND_MODEL, "lora_model_num_parameters", "model"))
        return 0;
    return model->n_params;
}

LORA_API const char *lora_model_info_json(const lora_model *model)
{
    if (lora__handle_check(model, LORA__KIND_MODEL, "lora_model_info_json", "model"))
        return NULL;
    return model->info_json;
}
