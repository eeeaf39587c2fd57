/* Optimizer state files: the moment buffers as safetensors, the counters and the configuration
 * in __metadata__. Loading checks everything before it changes anything. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "io/safetensors.h"
#include "train/optim.h"
#include "util/alloc.h"
#include "util/json_text.h"

#define FORMAT_NAME "liblora-optimizer"
#define FORMAT_VERSION "1"

/* Suffix of state tensor b (0 or 1) of a parameter. */
static const char *suffix(const lora_optim_config *cfg, int b)
{
    if (cfg->kind == LORA_OPTIM_SGD)
        return ".momentum_buffer";
    return b ? ".exp_avg_sq" : ".exp_avg";
}

static float *buffer(const lora_optim *o, size_t i, int b)
{
    return (b ? o->v : o->m) + o->offset[i];
}

/* ---- save ------------------------------------------------------------------------------------ */

static void free_names(lora_st_decl *decls, size_t n)
{
    for (size_t i = 0; decls && i < n; i++)
        free((char *)decls[i].name);
    free(decls);
}

/* The declarations, in parameter order; NULL (and an error set) when out of memory. */
static lora_st_decl *make_decls(const lora_optim *o, size_t count)
{
    int per = lora__optim_buffers_per_param(&o->cfg);
    lora_st_decl *decls = lora__calloc(count ? count : 1, sizeof *decls);
    if (!decls) {
        lora__oom("optimizer state declarations", count * sizeof *decls);
        return NULL;
    }
    for (size_t i = 0, k = 0; i < o->n; i++)
        for (int b = 0; b < per; b++, k++) {
            char *name = NULL;
            if (lora__asprintf(&name, "%s%s", o->params[i].name, suffix(&o->cfg, b)) < 0) {
                lora__oom("state tensor name", strlen(o->params[i].name) + 16);
                free_names(decls, count);
                return NULL;
            }
            decls[k] = (lora_st_decl){.name = name, .dtype = LORA_ST_F32, .ndim = 1,
                                      .shape = {(int64_t)o->params[i].n}};
        }
    return decls;
}

static int set_str(json_t *meta, const char *key, const char *fmt, ...) LORA__PRINTF(3, 4);

static int set_str(json_t *meta, const char *key, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return json_object_set_new(meta, key, json_string(buf));
}

/* The __metadata__ object as JSON text, malloc'd; NULL (and an error set) on failure. */
static char *make_metadata(const lora_optim *o)
{
    char *config = NULL, *text = NULL;
    if (lora__optim_config_to_json(&o->cfg, &config) != LORA_OK)
        return NULL;
    json_t *meta = json_object();
    int fail = !meta;
    if (!fail) {
        fail |= json_object_set_new(meta, "format", json_string(FORMAT_NAME));
        fail |= json_object_set_new(meta, "format_version", json_string(FORMAT_VERSION));
        fail |= set_str(meta, "step", "%" PRIu64, o->step);
        fail |= set_str(meta, "skips", "%" PRIu64, o->skips);
        fail |= set_str(meta, "consecutive_skips", "%" PRIu64, o->consecutive_skips);
        fail |= set_str(meta, "lr", "%.17g", o->cfg.lr);
        fail |= json_object_set_new(meta, "config", json_string(config));
    }
    if (!fail)
        text = lora__json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(meta);
    free(config);
    if (!text)
        lora__oom("optimizer state metadata", 1024);
    return text;
}

/* On a device the buffers come to the host one tensor at a time, through host. */
static bool on_device(const lora_optim *o) { return o->be && !o->be->ops->host_memory; }

static lora_status write_buffers(const lora_optim *o, lora_st_writer *w)
{
    int per = lora__optim_buffers_per_param(&o->cfg);
    size_t most = 0;
    for (size_t i = 0; i < o->n; i++)
        most = o->params[i].n > most ? o->params[i].n : most;
    float *host = on_device(o) ? lora__malloc(most * sizeof(float)) : NULL;
    if (on_device(o) && !host)
        return lora__oom("optimizer state", most * sizeof(float));
    lora_status st = LORA_OK;
    for (size_t i = 0; i < o->n && !st; i++)
        for (int b = 0; b < per && !st; b++) {
            size_t bytes = o->params[i].n * sizeof(float);
            const float *src = buffer(o, i, b);
            if (host && !(st = o->be->ops->download(o->be, host, src, bytes)))
                src = host;
            if (!st)
                st = lora__st_writer_write(w, src, bytes);
        }
    free(host);
    return st;
}

lora_status lora__optim_save(const lora_optim *o, const char *path)
{
    if (!o || !path)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__optim_save: %s is NULL",
                           o ? "path" : "optimizer");
    size_t count = o->n * (size_t)lora__optim_buffers_per_param(&o->cfg);
    lora_st_decl *decls = make_decls(o, count);
    if (!decls)
        return LORA_ERR_OUT_OF_MEMORY;
    char *meta = make_metadata(o);
    if (!meta) {
        free_names(decls, count);
        return LORA_ERR_OUT_OF_MEMORY;
    }
    lora_st_writer *w = NULL;
    lora_status st = lora__st_writer_begin(path, decls, count, meta, &w);
    free_names(decls, count);
    free(meta);
    if (st != LORA_OK)
        return st;
    if ((st = write_buffers(o, w)) != LORA_OK) {
        lora__st_writer_abort(w);
        return st;
    }
    return lora__st_writer_commit(w);
}

/* ---- load ------------------------------------------------------------------------------------ */

/* What a file holds, checked, before it is copied in. */
typedef struct loaded {
    uint64_t step, skips, consecutive_skips;
    double lr;
    const lora_st_tensor **tensors;     /* per parameter and buffer, in save order */
} loaded;

static lora_status meta_missing(const char *path, const char *key)
{
    return lora__error(LORA_ERR_FORMAT, "%s: __metadata__ has no '%s': not an optimizer state "
                       "saved by liblora", path, key);
}

static lora_status meta_u64(const lora_st_file *f, const char *key, uint64_t *out)
{
    const char *path = lora__st_path(f), *s = lora__st_metadata(f, key);
    if (!s)
        return meta_missing(path, key);
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end || errno)
        return lora__error(LORA_ERR_FORMAT, "%s: __metadata__ '%s' = \"%s\" is not a count",
                           path, key, s);
    *out = x;
    return LORA_OK;
}

static lora_status read_counters(const lora_st_file *f, loaded *l)
{
    const char *path = lora__st_path(f);
    const char *fmt = lora__st_metadata(f, "format");
    const char *ver = lora__st_metadata(f, "format_version");
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0)
        return lora__error(LORA_ERR_FORMAT, "%s: not an optimizer state (__metadata__ 'format' "
                           "is %s%s%s, not \"" FORMAT_NAME "\")", path, fmt ? "\"" : "",
                           fmt ? fmt : "missing", fmt ? "\"" : "");
    if (!ver || strcmp(ver, FORMAT_VERSION) != 0)
        return lora__error(LORA_ERR_FORMAT, "%s: optimizer state format_version %s is not "
                           FORMAT_VERSION, path, ver ? ver : "(missing)");
    lora_status st;
    if ((st = meta_u64(f, "step", &l->step)) || (st = meta_u64(f, "skips", &l->skips)) ||
        (st = meta_u64(f, "consecutive_skips", &l->consecutive_skips)))
        return st;
    if (l->consecutive_skips > l->skips)
        return lora__error(LORA_ERR_FORMAT, "%s: __metadata__ 'consecutive_skips' %" PRIu64
                           " exceeds 'skips' %" PRIu64, path, l->consecutive_skips, l->skips);
    const char *s = lora__st_metadata(f, "lr");
    if (!s)
        return meta_missing(path, "lr");
    char *end = NULL;
    l->lr = strtod(s, &end);
    if (end == s || *end || !isfinite(l->lr) || !(l->lr > 0))
        return lora__error(LORA_ERR_FORMAT, "%s: __metadata__ 'lr' = \"%s\" is not a finite "
                           "number > 0", path, s);
    return LORA_OK;
}

static lora_status check_config(const lora_optim *o, const lora_st_file *f)
{
    const char *path = lora__st_path(f), *s = lora__st_metadata(f, "config");
    if (!s)
        return meta_missing(path, "config");
    lora_optim_config saved;
    if (lora__optim_config_parse(s, &saved) != LORA_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", lora_last_error());
        return lora__error(LORA_ERR_FORMAT, "%s: __metadata__ 'config' is not a valid optimizer "
                           "configuration: %s", path, why);
    }
    const char *key = lora__optim_config_diff(&o->cfg, &saved);
    if (key)
        return lora__error(LORA_ERR_CONFIG, "%s: key '%s' of the optimizer's configuration "
                           "differs from the file's (%s)", path, key, s);
    return LORA_OK;
}

static int expected_name(const lora_optim *o, const char *name)
{
    int per = lora__optim_buffers_per_param(&o->cfg);
    for (size_t i = 0; i < o->n; i++) {
        size_t len = strlen(o->params[i].name);
        if (strncmp(name, o->params[i].name, len) != 0)
            continue;
        for (int b = 0; b < per; b++)
            if (strcmp(name + len, suffix(&o->cfg, b)) == 0)
                return 1;
    }
    return 0;
}

/* Finite values; exp_avg_sq also >= 0. */
static lora_status check_values(const char *path, const lora_st_tensor *t, int nonneg)
{
    for (uint64_t k = 0; k < t->numel; k++) {
        float x;
        memcpy(&x, t->data + k * sizeof x, sizeof x);
        if (!isfinite(x) || (nonneg && x < 0))
            return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s' element %" PRIu64 " is %g",
                               path, t->name, k, (double)x);
    }
    return LORA_OK;
}

static lora_status find_tensor(const lora_optim *o, const lora_st_file *f, size_t i, int b,
                               const lora_st_tensor **out)
{
    const char *path = lora__st_path(f);
    char *name = NULL;
    if (lora__asprintf(&name, "%s%s", o->params[i].name, suffix(&o->cfg, b)) < 0)
        return lora__oom("state tensor name", strlen(o->params[i].name) + 16);
    const lora_st_tensor *t = lora__st_find(f, name);
    lora_status st = LORA_OK;
    if (!t)
        st = lora__error(LORA_ERR_SHAPE, "%s: tensor '%s' is missing", path, name);
    else if (t->dtype != LORA_ST_F32 || t->ndim != 1 || t->shape[0] != (int64_t)o->params[i].n)
        st = lora__error(LORA_ERR_SHAPE, "%s: tensor '%s' is %s with %d dims (first %" PRId64
                         "); expected F32 [%zu]", path, name, lora__st_dtype_name(t->dtype),
                         t->ndim, t->ndim ? t->shape[0] : 0, o->params[i].n);
    else
        st = check_values(path, t, o->cfg.kind == LORA_OPTIM_ADAMW && b == 1);
    free(name);
    *out = t;
    return st;
}

static lora_status check_tensors(const lora_optim *o, const lora_st_file *f, loaded *l)
{
    int per = lora__optim_buffers_per_param(&o->cfg);
    for (size_t i = 0, k = 0; i < o->n; i++)
        for (int b = 0; b < per; b++, k++) {
            lora_status st = find_tensor(o, f, i, b, &l->tensors[k]);
            if (st != LORA_OK)
                return st;
        }
    for (size_t j = 0; j < lora__st_count(f); j++) {
        const lora_st_tensor *t = lora__st_at(f, j);
        if (!expected_name(o, t->name))
            return lora__error(LORA_ERR_SHAPE, "%s: tensor '%s' is not a state tensor of this "
                               "optimizer's parameters", lora__st_path(f), t->name);
    }
    return LORA_OK;
}

/* Only a device can fail here (its upload): the counters then stay. */
static lora_status apply(lora_optim *o, const loaded *l)
{
    int per = lora__optim_buffers_per_param(&o->cfg);
    for (size_t i = 0, k = 0; i < o->n; i++)
        for (int b = 0; b < per; b++, k++) {
            size_t bytes = o->params[i].n * sizeof(float);
            if (!on_device(o))
                memcpy(buffer(o, i, b), l->tensors[k]->data, bytes);
            else {
                lora_status st = o->be->ops->upload(o->be, buffer(o, i, b), l->tensors[k]->data,
                                                    bytes);
                if (st)
                    return st;
            }
        }
    o->step = l->step;
    o->skips = l->skips;
    o->consecutive_skips = l->consecutive_skips;
    o->cfg.lr = l->lr;
    return LORA_OK;
}

lora_status lora__optim_load(lora_optim *o, const char *path)
{
    if (!o || !path)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__optim_load: %s is NULL",
                           o ? "path" : "optimizer");
    lora_st_file *f = NULL;
    lora_status st = lora__st_open(path, &f);
    if (st != LORA_OK)
        return st;
    size_t count = o->n * (size_t)lora__optim_buffers_per_param(&o->cfg);
    loaded l = {.tensors = lora__calloc(count ? count : 1, sizeof *l.tensors)};
    if (!l.tensors)
        st = lora__oom("optimizer state list", count * sizeof *l.tensors);
    if (st == LORA_OK)
        st = read_counters(f, &l);
    if (st == LORA_OK)
        st = check_config(o, f);
    if (st == LORA_OK)
        st = check_tensors(o, f, &l);
    if (st == LORA_OK)
        st = apply(o, &l);
    free(l.tensors);
    lora__st_close(f);
    return st;
}
