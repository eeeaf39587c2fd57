/* lora_model_load: config.json, then every tensor checked against the config's list and
 * converted to float32 into one arena. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/error.h"
#include "api/handle.h"
#include "io/safetensors.h"
#include "model/dtype.h"
#include "model/model.h"
#include "model/model_info.h"
#include "model/weights.h"
#include "adapter/merge.h"
#include "util/file.h"

#define MAX_THREADS 64
#define ALIGN_FLOATS 16 /* 64-byte alignment for every tensor */

void lora__model_retain(lora_model *m) { atomic_fetch_add(&m->refs, 1); }

void lora__model_release(lora_model *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    lora__handle_remove(m);
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

/* {"device": ..., "threads": ...} */
static lora_status parse_options(const char *json, int *threads)
{
    *threads = default_threads();
    if (!json)
        return LORA_OK;
    json_error_t jerr;
    json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return lora__error(LORA_ERR_CONFIG, "lora_model_load: options: %s", jerr.text);
    lora_status st = LORA_OK;
    const char *key;
    json_t *v;
    if (!json_is_object(o))
        st = lora__error(LORA_ERR_CONFIG, "lora_model_load: options must be a JSON object");
    else
        json_object_foreach(o, key, v) {
            if (strcmp(key, "threads") == 0) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                    json_integer_value(v) > MAX_THREADS) {
                    st = lora__error(LORA_ERR_CONFIG,
                                     "lora_model_load: option 'threads' must be an integer in 1..%d",
                                     MAX_THREADS);
                    break;
                }
                *threads = (int)json_integer_value(v);
            } else if (strcmp(key, "device") == 0) {
                const char *d = json_is_string(v) ? json_string_value(v) : NULL;
                if (!d) {
                    st = lora__error(LORA_ERR_CONFIG,
                                     "lora_model_load: option 'device' must be a string");
                    break;
                }
                if (strcmp(d, "cpu") == 0 || strcmp(d, "auto") == 0)
                    continue;
                if (strncmp(d, "cuda", 4) == 0 && (d[4] == '\0' || d[4] == ':')) {
                    st = lora__error(LORA_ERR_DEVICE,
                                     "lora_model_load: device '%s': this build of liblora has no "
                                     "CUDA backend (use \"cpu\" or \"auto\")", d);
                    break;
                }
                st = lora__error(LORA_ERR_CONFIG,
                                 "lora_model_load: option 'device' = '%.32s' is not one of "
                                 "\"cpu\", \"auto\", \"cuda\", \"cuda:N\"", d);
                break;
            } else {
                st = lora__error(LORA_ERR_CONFIG, "lora_model_load: unknown option '%s'", key);
                break;
            }
        }
    json_decref(o);
    return st;
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

static lora_status load_weights(lora_model *m, const lora_st_set *set)
{
    lora_weight_slot *slots;
    size_t n;
    lora_status st = lora__weight_slots(&m->cfg, m, &slots, &n);
    if (st)
        return st;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += round_up((size_t)(slots[i].shape[0] * (slots[i].ndim == 2 ? slots[i].shape[1] : 1)));
    m->arena_floats = total;
    m->arena = aligned_alloc(64, total * sizeof(float));
    if (!m->arena) {
        free(slots);
        return lora__oom("model weights", total * sizeof(float));
    }
    size_t off = 0;
    st = lora__weights_check(&m->cfg, set, slots, n);
    for (size_t i = 0; i < n && !st; i++) {
        size_t numel = (size_t)(slots[i].shape[0] * (slots[i].ndim == 2 ? slots[i].shape[1] : 1));
        *slots[i].dst = m->arena + off;
        off += round_up(numel);
        convert(lora__st_set_find(set, slots[i].name), *slots[i].dst);
        /* the alignment gap too: whole-arena copies and comparisons see defined bytes */
        memset(*slots[i].dst + numel, 0, (round_up(numel) - numel) * sizeof(float));
    }
    if (!st) {
        const lora_st_tensor *e = lora__st_set_find(set, "model.embed_tokens.weight");
        snprintf(m->stored_dtype, sizeof m->stored_dtype, "%s", lora__st_dtype_name(e->dtype));
    }
    if (m->cfg.tie_embeddings)
        m->lm_head = m->embed;
    free(slots);
    return st;
}

static lora_status load(const char *path, int threads, lora_model *m)
{
    char *cfg_path = lora__path_join(path, "config.json");
    if (!cfg_path)
        return lora__oom("path", strlen(path) + 16);
    size_t len;
    lora_status st = lora__read_file(cfg_path, 16u << 20, &m->config_text, &len);
    if (!st)
        st = lora__config_parse(m->config_text, len, cfg_path, &m->cfg);
    free(cfg_path);
    if (st)
        return st;
    m->threads = threads;
    m->n_params = lora__config_num_params(&m->cfg);
    m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
    if (!m->layers)
        return lora__oom("layer table", (size_t)m->cfg.n_layers * sizeof *m->layers);
    lora_st_set *set;
    if ((st = lora__st_set_open(path, &set)))
        return st;
    st = load_weights(m, set);
    lora__st_set_close(set);
    if (!st)
        st = lora__model_info_build(m);
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
    int threads;
    lora_status st = parse_options(config_json, &threads);
    if (st)
        return st;
    if (!lora__is_dir(path))
        return lora__error(LORA_ERR_IO, "lora_model_load: %s: not a folder", path);
    lora_model *m = calloc(1, sizeof *m);
    if (!m)
        return lora__oom("model", sizeof *m);
    atomic_init(&m->refs, 1);
    pthread_mutex_init(&m->tokenizer_lock, NULL);
    m->path = strdup(path);
    st = !m->path ? lora__oom("path", strlen(path) + 1) : lora__handle_add(m, LORA__KIND_MODEL);
    if (!st)
        st = load(path, threads, m);
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
