/* The optimizer's JSON configuration: torch's AdamW / SGD argument names and Hugging Face's
 * TrainingArguments names, strict types and ranges, every error naming its key. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/json_config.h"
#include "train/optim.h"
#include "util/json_text.h"

#define WHERE "lora_optimizer_create"

/* What the keys said before defaults and cross-key checks; given_* is 1 for a non-null key. */
typedef struct raw_config {
    lora_optim_config cfg;
    int given_betas, given_eps, given_amsgrad, given_wd;
    int given_momentum, given_dampening, given_nesterov;
    int given_warmup_steps, given_warmup_ratio, given_steps;
    double warmup_ratio;
} raw_config;

typedef lora_status (*key_parser)(const char *key, const json_t *v, raw_config *rc);

static lora_status bad(const char *key, const char *what)
{
    return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' %s", key, what);
}

/* A finite number in [lo, hi] (or (lo, hi] / [lo, hi) as lo_open / hi_open say). */
static lora_status get_number(const char *key, const json_t *v, double lo, int lo_open,
                              double hi, int hi_open, double *out)
{
    if (!json_is_number(v))
        return bad(key, "must be a number");
    double x = json_number_value(v);
    if (!isfinite(x))
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = %g is not finite", key, x);
    if ((lo_open ? !(x > lo) : !(x >= lo)) || (hi_open ? !(x < hi) : !(x <= hi))) {
        if (isinf(hi))
            return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = %g must be %s %g", key, x,
                               lo_open ? ">" : ">=", lo);
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = %g is outside %s%g, %g%s", key,
                           x, lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
    }
    *out = x;
    return LORA_OK;
}

static lora_status get_int(const char *key, const json_t *v, json_int_t lo, int64_t *out)
{
    if (!json_is_integer(v))
        return bad(key, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo)
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = %" JSON_INTEGER_FORMAT
                           " must be >= %" JSON_INTEGER_FORMAT, key, x, lo);
    *out = (int64_t)x;
    return LORA_OK;
}

static lora_status get_bool(const char *key, const json_t *v, bool *out)
{
    if (!json_is_boolean(v))
        return bad(key, "must be true or false");
    *out = json_is_true(v);
    return LORA_OK;
}

/* ---- one parser per key ---------------------------------------------------------------------- */

static lora_status parse_optimizer(const char *key, const json_t *v, raw_config *rc)
{
    const char *s = json_string_value(v);
    if (!s)
        return bad(key, "must be a string: \"adamw\" or \"sgd\"");
    if (strcmp(s, "adamw") == 0)
        rc->cfg.kind = LORA_OPTIM_ADAMW;
    else if (strcmp(s, "sgd") == 0)
        rc->cfg.kind = LORA_OPTIM_SGD;
    else
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = \"%s\" is not \"adamw\" or "
                           "\"sgd\"", key, s);
    return LORA_OK;
}

static lora_status parse_lr(const char *key, const json_t *v, raw_config *rc)
{
    return get_number(key, v, 0, 1, INFINITY, 0, &rc->cfg.lr);
}

static lora_status parse_betas(const char *key, const json_t *v, raw_config *rc)
{
    if (!json_is_array(v) || json_array_size(v) != 2)
        return bad(key, "must be a list of two numbers [beta1, beta2]");
    for (size_t i = 0; i < 2; i++) {
        const json_t *b = json_array_get(v, i);
        if (!json_is_number(b))
            return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s': item %zu is not a number",
                               key, i);
        double x = json_number_value(b);
        if (!(x >= 0 && x < 1))
            return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s': item %zu = %g is outside "
                               "[0, 1)", key, i, x);
        *(i ? &rc->cfg.beta2 : &rc->cfg.beta1) = x;
    }
    rc->given_betas = 1;
    return LORA_OK;
}

static lora_status parse_eps(const char *key, const json_t *v, raw_config *rc)
{
    rc->given_eps = 1;
    return get_number(key, v, 0, 1, INFINITY, 0, &rc->cfg.eps);
}

static lora_status parse_amsgrad(const char *key, const json_t *v, raw_config *rc)
{
    bool on = false;
    lora_status st = get_bool(key, v, &on);
    if (st != LORA_OK)
        return st;
    if (on)
        return lora__error(LORA_ERR_UNSUPPORTED, WHERE ": key '%s' = true is not supported "
                           "(AMSGrad); use false or leave it out", key);
    rc->given_amsgrad = 1;
    return LORA_OK;
}

static lora_status parse_wd(const char *key, const json_t *v, raw_config *rc)
{
    rc->given_wd = 1;
    return get_number(key, v, 0, 0, INFINITY, 0, &rc->cfg.weight_decay);
}

static lora_status parse_momentum(const char *key, const json_t *v, raw_config *rc)
{
    rc->given_momentum = 1;
    return get_number(key, v, 0, 0, 1, 1, &rc->cfg.momentum);
}

static lora_status parse_dampening(const char *key, const json_t *v, raw_config *rc)
{
    rc->given_dampening = 1;
    return get_number(key, v, 0, 0, 1, 0, &rc->cfg.dampening);
}

static lora_status parse_nesterov(const char *key, const json_t *v, raw_config *rc)
{
    rc->given_nesterov = 1;
    return get_bool(key, v, &rc->cfg.nesterov);
}

static lora_status parse_loraplus(const char *key, const json_t *v, raw_config *rc)
{
    return get_number(key, v, 0, 1, INFINITY, 0, &rc->cfg.loraplus_lr_ratio);
}

static lora_status parse_max_grad_norm(const char *key, const json_t *v, raw_config *rc)
{
    return get_number(key, v, 0, 0, INFINITY, 0, &rc->cfg.max_grad_norm);
}

static const struct {
    const char *name;
    lora_sched_kind kind;
} SCHEDULERS[] = {
    {"constant", LORA_SCHED_CONSTANT},
    {"linear", LORA_SCHED_LINEAR},
    {"cosine", LORA_SCHED_COSINE},
    {"constant_with_warmup", LORA_SCHED_CONSTANT_WITH_WARMUP},
};

/* transformers' SchedulerType values this version does not implement. */
static const char *const OTHER_HF_SCHEDULERS[] = {
    "cosine_with_restarts", "polynomial", "inverse_sqrt", "reduce_lr_on_plateau",
    "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay",
};

static lora_status parse_scheduler(const char *key, const json_t *v, raw_config *rc)
{
    const char *s = json_string_value(v);
    if (!s)
        return bad(key, "must be a string: \"constant\", \"linear\", \"cosine\" or "
                   "\"constant_with_warmup\"");
    for (size_t i = 0; i < sizeof SCHEDULERS / sizeof SCHEDULERS[0]; i++)
        if (strcmp(s, SCHEDULERS[i].name) == 0) {
            rc->cfg.scheduler = SCHEDULERS[i].kind;
            return LORA_OK;
        }
    for (size_t i = 0; i < sizeof OTHER_HF_SCHEDULERS / sizeof OTHER_HF_SCHEDULERS[0]; i++)
        if (strcmp(s, OTHER_HF_SCHEDULERS[i]) == 0)
            return lora__error(LORA_ERR_UNSUPPORTED, WHERE ": key '%s' = \"%s\" is not "
                               "supported; use \"constant\", \"linear\", \"cosine\" or "
                               "\"constant_with_warmup\"", key, s);
    return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = \"%s\" is not \"constant\", "
                       "\"linear\", \"cosine\" or \"constant_with_warmup\"", key, s);
}

static lora_status parse_warmup_steps(const char *key, const json_t *v, raw_config *rc)
{
    rc->given_warmup_steps = 1;
    return get_int(key, v, 0, &rc->cfg.warmup_steps);
}

static lora_status parse_warmup_ratio(const char *key, const json_t *v, raw_config *rc)
{
    rc->given_warmup_ratio = 1;
    return get_number(key, v, 0, 0, 1, 0, &rc->warmup_ratio);
}

static lora_status parse_steps(const char *key, const json_t *v, raw_config *rc)
{
    rc->given_steps = 1;
    return get_int(key, v, 1, &rc->cfg.num_training_steps);
}

static lora_status parse_max_skips(const char *key, const json_t *v, raw_config *rc)
{
    return get_int(key, v, 1, &rc->cfg.max_consecutive_skips);
}

static const struct {
    const char *key;
    key_parser parse;
} KEYS[] = {
    {"optimizer", parse_optimizer},
    {"lr", parse_lr},
    {"betas", parse_betas},
    {"eps", parse_eps},
    {"amsgrad", parse_amsgrad},
    {"weight_decay", parse_wd},
    {"momentum", parse_momentum},
    {"dampening", parse_dampening},
    {"nesterov", parse_nesterov},
    {"loraplus_lr_ratio", parse_loraplus},
    {"max_grad_norm", parse_max_grad_norm},
    {"lr_scheduler_type", parse_scheduler},
    {"warmup_steps", parse_warmup_steps},
    {"warmup_ratio", parse_warmup_ratio},
    {"num_training_steps", parse_steps},
    {"max_consecutive_skips", parse_max_skips},
};

static lora_status parse_key(const char *key, const json_t *v, raw_config *rc)
{
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++) {
        if (strcmp(key, KEYS[i].key) != 0)
            continue;
        /* null keeps the default, as in Hugging Face's configs. */
        return json_is_null(v) ? LORA_OK : KEYS[i].parse(key, v, rc);
    }
    return lora__error(LORA_ERR_CONFIG, WHERE ": unknown key '%s'", key);
}

/* ---- defaults and checks across keys --------------------------------------------------------- */

static lora_status wrong_optimizer(const char *key, const char *owner, const char *kind)
{
    return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' applies to optimizer \"%s\" only "
                       "(optimizer is \"%s\")", key, owner, kind);
}

static lora_status check_optimizer_keys(const raw_config *rc)
{
    const lora_optim_config *c = &rc->cfg;
    if (c->kind == LORA_OPTIM_SGD) {
        const char *k = rc->given_betas ? "betas" : rc->given_eps ? "eps"
                        : rc->given_amsgrad ? "amsgrad" : NULL;
        return k ? wrong_optimizer(k, "adamw", "sgd") : LORA_OK;
    }
    const char *k = rc->given_momentum ? "momentum" : rc->given_dampening ? "dampening"
                    : rc->given_nesterov ? "nesterov" : NULL;
    return k ? wrong_optimizer(k, "sgd", "adamw") : LORA_OK;
}

static const char *scheduler_name(lora_sched_kind k)
{
    for (size_t i = 0; i < sizeof SCHEDULERS / sizeof SCHEDULERS[0]; i++)
        if (SCHEDULERS[i].kind == k)
            return SCHEDULERS[i].name;
    return "?";
}

static lora_status resolve_schedule(raw_config *rc)
{
    lora_optim_config *c = &rc->cfg;
    if (rc->given_warmup_steps && rc->given_warmup_ratio)
        return lora__error(LORA_ERR_CONFIG, WHERE ": keys 'warmup_steps' and 'warmup_ratio' "
                           "are both given; give one");
    if ((c->scheduler == LORA_SCHED_LINEAR || c->scheduler == LORA_SCHED_COSINE) &&
        !rc->given_steps)
        return lora__error(LORA_ERR_CONFIG, WHERE ": key 'num_training_steps' is required by "
                           "lr_scheduler_type \"%s\"", scheduler_name(c->scheduler));
    if (rc->given_warmup_ratio) {
        if (!rc->given_steps)
            return lora__error(LORA_ERR_CONFIG, WHERE ": key 'warmup_ratio' needs key "
                               "'num_training_steps'");
        /* transformers' TrainingArguments.get_warmup_steps: math.ceil(steps * ratio). */
        c->warmup_steps = (int64_t)ceil((double)c->num_training_steps * rc->warmup_ratio);
    }
    if (c->scheduler == LORA_SCHED_CONSTANT && c->warmup_steps > 0)
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' asks for warmup, which "
                           "lr_scheduler_type \"constant\" does not do; use "
                           "\"constant_with_warmup\"",
                           rc->given_warmup_ratio ? "warmup_ratio" : "warmup_steps");
    return LORA_OK;
}

static lora_status finish(raw_config *rc)
{
    lora_optim_config *c = &rc->cfg;
    lora_status st = check_optimizer_keys(rc);
    if (st != LORA_OK)
        return st;
    if (!rc->given_wd)
        c->weight_decay = c->kind == LORA_OPTIM_ADAMW ? 0.01 : 0.0;
    if (c->nesterov && !(c->momentum > 0 && c->dampening == 0))
        return lora__error(LORA_ERR_CONFIG, WHERE ": key 'nesterov' = true requires a "
                           "'momentum' > 0 and a 'dampening' of 0 (momentum %g, dampening %g)",
                           c->momentum, c->dampening);
    return resolve_schedule(rc);
}

lora_status lora__optim_config_parse(const char *json, lora_optim_config *out)
{
    raw_config rc = {
        .cfg = {
            .kind = LORA_OPTIM_ADAMW,
            .lr = 1e-3,
            .beta1 = 0.9,
            .beta2 = 0.999,
            .eps = 1e-8,
            .loraplus_lr_ratio = 1.0,
            .scheduler = LORA_SCHED_CONSTANT,
            .max_consecutive_skips = 10,
        },
    };
    lora_status st = LORA_OK;
    if (json) {
        json_t *root;
        if ((st = lora__json_config_load(json, WHERE, &root)) != LORA_OK)
            return st;
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            if ((st = parse_key(key, v, &rc)) != LORA_OK)
                break;
        }
        json_decref(root);
        if (st != LORA_OK)
            return st;
    }
    if ((st = finish(&rc)) != LORA_OK)
        return st;
    *out = rc.cfg;
    return LORA_OK;
}

/* ---- canonical form -------------------------------------------------------------------------- */

static int set_real(json_t *o, const char *key, double x)
{
    return json_object_set_new(o, key, json_real(x));
}

static int fill_json(json_t *o, const lora_optim_config *c)
{
    int fail = 0;
    fail |= json_object_set_new(o, "optimizer",
                                json_string(c->kind == LORA_OPTIM_ADAMW ? "adamw" : "sgd"));
    fail |= set_real(o, "lr", c->lr);
    if (c->kind == LORA_OPTIM_ADAMW) {
        fail |= json_object_set_new(o, "betas", json_pack("[f, f]", c->beta1, c->beta2));
        fail |= set_real(o, "eps", c->eps);
    } else {
        fail |= set_real(o, "momentum", c->momentum);
        fail |= set_real(o, "dampening", c->dampening);
        fail |= json_object_set_new(o, "nesterov", json_boolean(c->nesterov));
    }
    fail |= set_real(o, "weight_decay", c->weight_decay);
    fail |= set_real(o, "loraplus_lr_ratio", c->loraplus_lr_ratio);
    fail |= set_real(o, "max_grad_norm", c->max_grad_norm);
    fail |= json_object_set_new(o, "lr_scheduler_type",
                                json_string(scheduler_name(c->scheduler)));
    fail |= json_object_set_new(o, "warmup_steps", json_integer(c->warmup_steps));
    if (c->num_training_steps > 0)
        fail |= json_object_set_new(o, "num_training_steps",
                                    json_integer(c->num_training_steps));
    fail |= json_object_set_new(o, "max_consecutive_skips",
                                json_integer(c->max_consecutive_skips));
    return fail;
}

lora_status lora__optim_config_to_json(const lora_optim_config *cfg, char **out)
{
    *out = NULL;
    json_t *o = json_object();
    char *s = NULL;
    if (o && fill_json(o, cfg) == 0)
        s = lora__json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!s)
        return lora__oom("optimizer config JSON", 1024);
    *out = s;
    return LORA_OK;
}

/* Bitwise equality, so that a config read back from a file compares equal only when exact. */
static int same(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

const char *lora__optim_config_diff(const lora_optim_config *a, const lora_optim_config *b)
{
    if (a->kind != b->kind)
        return "optimizer";
    if (!same(a->beta1, b->beta1) || !same(a->beta2, b->beta2))
        return "betas";
    if (!same(a->eps, b->eps))
        return "eps";
    if (!same(a->weight_decay, b->weight_decay))
        return "weight_decay";
    if (!same(a->momentum, b->momentum))
        return "momentum";
    if (!same(a->dampening, b->dampening))
        return "dampening";
    if (a->nesterov != b->nesterov)
        return "nesterov";
    if (!same(a->loraplus_lr_ratio, b->loraplus_lr_ratio))
        return "loraplus_lr_ratio";
    if (!same(a->max_grad_norm, b->max_grad_norm))
        return "max_grad_norm";
    if (a->scheduler != b->scheduler)
        return "lr_scheduler_type";
    if (a->warmup_steps != b->warmup_steps)
        return "warmup_steps";
    if (a->num_training_steps != b->num_training_steps)
        return "num_training_steps";
    if (a->max_consecutive_skips != b->max_consecutive_skips)
        return "max_consecutive_skips";
    return NULL;
}
