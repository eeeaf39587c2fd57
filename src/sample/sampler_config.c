/* lora_sampler_create's JSON: Hugging Face GenerationConfig names, strict types and ranges. */
#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/alloc.h"
#include "util/json_config.h"
#include "sample/sampler.h"

#define WHERE "lora_sampler_create"

typedef lora_status (*key_parser)(const char *key, const json_t *v, lora__sampler_config *cfg);

static lora_status bad(const char *key, const char *what)
{
    return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' %s", key, what);
}

/* A number that stays finite as a float (see lora__sampler_config). */
static lora_status get_float(const char *key, const json_t *v, float *out)
{
    if (!json_is_number(v))
        return bad(key, "must be a number");
    double x = json_number_value(v);
    if (!(fabs(x) <= FLT_MAX))
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = %g is not a finite float", key,
                           x);
    *out = (float)x;
    return LORA_OK;
}

/* A probability bound: lo < x <= 1, or lo <= x <= 1 when lo_open is 0. */
static lora_status get_fraction(const char *key, const json_t *v, int lo_open, double *out)
{
    if (!json_is_number(v))
        return bad(key, "must be a number");
    double x = json_number_value(v);
    if (!((lo_open ? x > 0.0 : x >= 0.0) && x <= 1.0))
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = %g is outside %s0, 1]", key, x,
                           lo_open ? "(" : "[");
    *out = x;
    return LORA_OK;
}

static lora_status get_int(const char *key, const json_t *v, json_int_t hi, json_int_t *out)
{
    if (!json_is_integer(v))
        return bad(key, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > hi)
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = %" JSON_INTEGER_FORMAT
                           " is outside 0..%" JSON_INTEGER_FORMAT, key, x, hi);
    *out = x;
    return LORA_OK;
}

static lora_status parse_do_sample(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    if (!json_is_boolean(v))
        return bad(key, "must be true or false");
    cfg->do_sample = json_is_true(v);
    return LORA_OK;
}

static lora_status parse_temperature(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    lora_status st = get_float(key, v, &cfg->temperature);
    if (st == LORA_OK && cfg->temperature < 0)
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = %g is negative", key,
                           json_number_value(v));
    return st;
}

static lora_status parse_top_k(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    json_int_t x = 0;
    lora_status st = get_int(key, v, LLONG_MAX, &x);
    if (st == LORA_OK)
        cfg->top_k = (size_t)x;
    return st;
}

static lora_status parse_top_p(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    return get_fraction(key, v, 1, &cfg->top_p);
}

static lora_status parse_min_p(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    return get_fraction(key, v, 0, &cfg->min_p);
}

static lora_status parse_repetition(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    lora_status st = get_float(key, v, &cfg->repetition_penalty);
    /* Tested after the float conversion, which turns tiny positive values into 0. */
    if (st == LORA_OK && !(cfg->repetition_penalty > 0))
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = %g must be > 0", key,
                           json_number_value(v));
    return st;
}

static lora_status parse_presence(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    return get_float(key, v, &cfg->presence_penalty);
}

static lora_status parse_frequency(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    return get_float(key, v, &cfg->frequency_penalty);
}

static lora_status parse_seed(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    json_int_t x = 0;
    lora_status st = get_int(key, v, LLONG_MAX, &x);
    if (st == LORA_OK)
        cfg->seed = (uint64_t)x;
    return st;
}

static lora_status parse_max_new(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    json_int_t x = 0;
    lora_status st = get_int(key, v, LLONG_MAX, &x);
    if (st == LORA_OK)
        cfg->max_new_tokens = (size_t)x;
    return st;
}

static int is_token_id(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 &&
           json_integer_value(v) <= INT32_MAX;
}

/* malloc that never answers NULL for an empty list. */
static void *alloc_list(size_t n, size_t size) { return lora__malloc((n ? n : 1) * size); }

static void copy_ids(const json_t *list, int32_t *ids)
{
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
        ids[i] = (int32_t)json_integer_value(item);
}

static lora_status parse_eos(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    if (!json_is_array(v) && !is_token_id(v))
        return bad(key, "must be a token id (an integer in 0..2147483647) or a list of them");
    size_t i, n = json_is_array(v) ? json_array_size(v) : 1;
    json_t *item;
    json_array_foreach(v, i, item)
        if (!is_token_id(item))
            return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s': item %zu is not a token id "
                               "(an integer in 0..%d)", key, i, INT32_MAX);
    cfg->eos = alloc_list(n, sizeof *cfg->eos);
    if (!cfg->eos)
        return lora__error_prefix(lora__oom("eos_token_id", n * sizeof *cfg->eos), WHERE);
    cfg->n_eos = n;
    if (json_is_array(v))
        copy_ids(v, cfg->eos);
    else
        cfg->eos[0] = (int32_t)json_integer_value(v);
    return LORA_OK;
}

/* Checks the shape and ids of stop_sequences and counts the ids. */
static lora_status check_stop(const char *key, const json_t *v, size_t *total)
{
    if (!json_is_array(v))
        return bad(key, "must be a list of lists of token ids");
    size_t i, j;
    json_t *seq, *item;
    *total = 0;
    json_array_foreach(v, i, seq) {
        if (!json_is_array(seq) || json_array_size(seq) == 0)
            return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s': item %zu is not a non-empty "
                               "list of token ids", key, i);
        json_array_foreach(seq, j, item)
            if (!is_token_id(item))
                return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s': item %zu, position %zu "
                                   "is not a token id (an integer in 0..%d)", key, i, j,
                                   INT32_MAX);
        *total += json_array_size(seq);
    }
    return LORA_OK;
}

static lora_status parse_stop(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    size_t total = 0;
    lora_status st = check_stop(key, v, &total);
    if (st != LORA_OK)
        return st;
    size_t n = json_array_size(v);
    cfg->stop_ids = alloc_list(total, sizeof *cfg->stop_ids);
    cfg->stop_end = alloc_list(n, sizeof *cfg->stop_end);
    if (!cfg->stop_ids || !cfg->stop_end)
        return lora__error_prefix(lora__oom("stop_sequences", total * sizeof *cfg->stop_ids),
                                  WHERE);
    cfg->n_stop = n;
    size_t i, at = 0;
    json_t *seq;
    json_array_foreach(v, i, seq) {
        copy_ids(seq, cfg->stop_ids + at);
        at += json_array_size(seq);
        cfg->stop_end[i] = at;
    }
    return LORA_OK;
}

static const struct {
    const char *key;
    key_parser parse;
} KEYS[] = {
    {"do_sample", parse_do_sample},
    {"temperature", parse_temperature},
    {"top_k", parse_top_k},
    {"top_p", parse_top_p},
    {"min_p", parse_min_p},
    {"repetition_penalty", parse_repetition},
    {"presence_penalty", parse_presence},
    {"frequency_penalty", parse_frequency},
    {"seed", parse_seed},
    {"max_new_tokens", parse_max_new},
    {"eos_token_id", parse_eos},
    {"stop_sequences", parse_stop},
};

static lora_status parse_key(const char *key, const json_t *v, lora__sampler_config *cfg)
{
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++) {
        if (strcmp(key, KEYS[i].key) != 0)
            continue;
        /* Hugging Face writes null for "unset": the default stays. */
        return json_is_null(v) ? LORA_OK : KEYS[i].parse(key, v, cfg);
    }
    return lora__error(LORA_ERR_CONFIG, WHERE ": unknown key '%s'", key);
}

static lora_status parse_object(json_t *root, lora__sampler_config *cfg)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        lora_status st = parse_key(key, v, cfg);
        if (st != LORA_OK)
            return st;
    }
    return LORA_OK;
}

lora_status lora__sampler_config_parse(const char *config_json, lora__sampler_config *cfg)
{
    *cfg = (lora__sampler_config){
        .temperature = 1.0f,
        .top_p = 1.0,
        .repetition_penalty = 1.0f,
        .max_new_tokens = 256,
    };
    if (!config_json)
        return LORA_OK;
    json_t *root;
    lora_status st = lora__json_config_load(config_json, WHERE, &root);
    if (st != LORA_OK)
        return st;
    st = parse_object(root, cfg);
    json_decref(root);
    if (st != LORA_OK)
        lora__sampler_config_release(cfg);
    return st;
}

void lora__sampler_config_release(lora__sampler_config *cfg)
{
    free(cfg->eos);
    free(cfg->stop_ids);
    free(cfg->stop_end);
    cfg->eos = cfg->stop_ids = NULL;
    cfg->stop_end = NULL;
    cfg->n_eos = cfg->n_stop = 0;
}
