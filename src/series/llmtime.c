/* LLMTIME: a multivariate time series as text a language model can continue (Gruver et al.,
 * "Large Language Models Are Zero-Shot Time Series Forecasters"): each value times alpha with
 * fixed decimals, "," between the dimensions of a step, ";" between steps. */
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/error.h"
#include "util/json_text.h"
#include "util/strbuf.h"

#define ENC "lora_llmtime_encode"
#define DEC "lora_llmtime_decode"
#define MAX_DECIMALS 9

typedef struct enc_opts {
    int has_alpha;
    double alpha;
    double target;
    int decimals;
} enc_opts;

static lora_status positive(const char *key, const json_t *v, double *out)
{
    if (!json_is_number(v))
        return lora__error(LORA_ERR_CONFIG, ENC ": key '%s' must be a number", key);
    *out = json_number_value(v);
    if (!(*out > 0))
        return lora__error(LORA_ERR_CONFIG, ENC ": key '%s' = %g must be > 0", key, *out);
    return LORA_OK;
}

static lora_status parse_key(const char *key, const json_t *v, enc_opts *o, int *has_target)
{
    int known = !strcmp(key, "alpha") || !strcmp(key, "target") || !strcmp(key, "decimals");
    if (!known)
        return lora__error(LORA_ERR_CONFIG, ENC ": unknown key '%s' (alpha, target, decimals)",
                           key);
    if (json_is_null(v))
        return LORA_OK;
    if (!strcmp(key, "alpha")) {
        o->has_alpha = 1;
        return positive(key, v, &o->alpha);
    }
    if (!strcmp(key, "target")) {
        *has_target = 1;
        return positive(key, v, &o->target);
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > MAX_DECIMALS)
        return lora__error(LORA_ERR_CONFIG, ENC ": key 'decimals' must be an integer in 0..%d",
                           MAX_DECIMALS);
    o->decimals = (int)json_integer_value(v);
    return LORA_OK;
}

static lora_status parse_options(const char *json, enc_opts *o)
{
    *o = (enc_opts){.target = 10, .decimals = 2};
    if (!json)
        return LORA_OK;
    json_error_t err;
    json_t *root = lora__json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return lora__error(LORA_ERR_CONFIG, ENC ": options_json is not valid JSON: %s (line %d, "
                           "column %d)", err.text, err.line, err.column);
    lora_status st = json_is_object(root) ? LORA_OK
                     : lora__error(LORA_ERR_CONFIG, ENC ": options_json must be a JSON object");
    int has_target = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (st != LORA_OK)
            break;
        st = parse_key(key, v, o, &has_target);
    }
    json_decref(root);
    if (st == LORA_OK && o->has_alpha && has_target)
        return lora__error(LORA_ERR_CONFIG, ENC ": keys 'alpha' and 'target' exclude each "
                           "other: give one");
    return st;
}

/* The default alpha: target / max |value|, 1 for an all-zero series. */
static lora_status pick_alpha(const float *x, size_t n, enc_opts *o)
{
    double top = 0;
    for (size_t i = 0; i < n; i++)
        top = fmax(top, fabs((double)x[i]));
    if (o->has_alpha)
        return LORA_OK;
    o->alpha = top > 0 ? o->target / top : 1;
    if (!isfinite(o->alpha))
        return lora__error(LORA_ERR_NUMERIC, ENC ": alpha = target / max |value| = %g / %g is "
                           "not finite", o->target, top);
    return LORA_OK;
}

static lora_status check_finite(const float *x, size_t steps, size_t dims)
{
    for (size_t i = 0; i < steps * dims; i++)
        if (!isfinite(x[i]))
            return lora__error(LORA_ERR_NUMERIC, ENC ": value %g at step %zu, dim %zu is not "
                               "finite", (double)x[i], i / dims, i % dims);
    return LORA_OK;
}

static lora_status write_series(const float *x, size_t steps, size_t dims, const enc_opts *o,
                                lora__strbuf *b)
{
    /* the longest finite double in %.9f: 309 digits, sign, point, 9 decimals */
    char num[340];
    for (size_t i = 0; i < steps * dims; i++) {
        double y = (double)x[i] * o->alpha;
        if (!isfinite(y))
            return lora__error(LORA_ERR_NUMERIC, ENC ": value %g at step %zu, dim %zu times "
                               "alpha %g overflows", (double)x[i], i / dims, i % dims, o->alpha);
        if (i)
            lora__strbuf_adds(b, i % dims ? "," : ";");
        int k = snprintf(num, sizeof num, "%.*f", o->decimals, y);
        lora__strbuf_add(b, num, (size_t)k);
    }
    return lora__strbuf_status(b, "the LLMTIME text");
}

LORA_API lora_status lora_llmtime_encode(const float *values, size_t steps, size_t dims,
                                         const char *options_json, char **text_out,
                                         double *alpha_out)
{
    lora__error_clear();
    if (text_out)
        *text_out = NULL;
    if (!values || !text_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, ENC ": %s is NULL",
                           !values ? "values" : "text_out");
    if (!steps || !dims || steps > ((size_t)-1) / sizeof(float) / dims)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, ENC ": steps = %zu, dims = %zu: both must "
                           "be > 0 and their product an array size", steps, dims);
    enc_opts o;
    lora_status st = parse_options(options_json, &o);
    if (st == LORA_OK)
        st = check_finite(values, steps, dims);
    if (st == LORA_OK)
        st = pick_alpha(values, steps * dims, &o);
    lora__strbuf b = {0};
    if (st == LORA_OK)
        st = write_series(values, steps, dims, &o, &b);
    if (st == LORA_OK && !(*text_out = lora__strbuf_take(&b)))
        st = lora__oom("the LLMTIME text", b.len + 1);
    lora__strbuf_free(&b);
    if (st == LORA_OK && alpha_out)
        *alpha_out = o.alpha;
    return st;
}

/* ---- decoding ------------------------------------------------------------------------------ */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_space(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int digit(const cursor *c) { return c->p < c->end && *c->p >= '0' && *c->p <= '9'; }

/* [+-]digits[.digits], read without strtod (whose decimal point follows the locale). */
static int number(cursor *c, double *out, int *decimals)
{
    int neg = c->p < c->end && *c->p == '-';
    if (c->p < c->end && (*c->p == '-' || *c->p == '+'))
        c->p++;
    if (!digit(c))
        return 0;
    double m = 0;
    int k = 0;
    while (digit(c))
        m = 10 * m + (*c->p++ - '0');
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!digit(c))
            return 0;
        while (digit(c)) {
            m = 10 * m + (*c->p++ - '0');
            k++;
        }
    }
    *out = (neg ? -m : m) / pow(10, k);
    *decimals = k;
    return 1;
}

/* One step of dims numbers, stored in out when it is not NULL. Every number must have the
 * decimals of the text's first one (*decimals, -1 until then): the encoder writes fixed
 * decimals, so "3.3" where "3.33" belongs is a cut-off number. */
static int step(cursor *c, size_t dims, double alpha, int *decimals, float *out)
{
    for (size_t d = 0; d < dims; d++) {
        double v;
        int k;
        skip_space(c);
        if (!number(c, &v, &k) || (*decimals >= 0 && k != *decimals))
            return 0;
        *decimals = k;
        double x = v / alpha;
        if (!(fabs(x) <= FLT_MAX))
            return 0;
        if (out)
            out[d] = (float)x;
        skip_space(c);
        if (d + 1 < dims) {
            if (c->p == c->end || *c->p != ',')
                return 0;
            c->p++;
        }
    }
    if (c->p == c->end)
        return 1;
    if (*c->p != ';')
        return 0;
    c->p++;
    return 1;
}

LORA_API lora_status lora_llmtime_decode(const char *text, size_t len, double alpha,
                                         size_t dims, float *values, size_t cap,
                                         size_t *steps_out)
{
    lora__error_clear();
    if (steps_out)
        *steps_out = 0;
    if (!text || !steps_out || (cap && !values))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, DEC ": %s is NULL",
                           !text ? "text" : !steps_out ? "steps_out" : "values");
    if (!dims)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, DEC ": dims = 0");
    if (!(isfinite(alpha) && alpha > 0))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, DEC ": alpha = %g must be finite and > 0",
                           alpha);
    cursor c = {text, text + len};
    int decimals = -1;
    size_t n = 0;
    while (n < cap / dims) {
        cursor probe = c;
        int probe_decimals = decimals;
        if (!step(&probe, dims, alpha, &probe_decimals, NULL))
            break;
        step(&c, dims, alpha, &decimals, values + n * dims);
        n++;
        skip_space(&c);
        if (c.p == c.end)
            break;
    }
    *steps_out = n;
    return LORA_OK;
}
