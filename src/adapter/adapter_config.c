/* PEFT LoraConfig JSON (adapter_config.json and lora_adapter_create's config): strict types and
 * ranges; features liblora lacks are refused by name, PEFT's inert bookkeeping keys accepted. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/adapter.h"
#include "api/error.h"
#include "util/alloc.h"
#include "util/json_text.h"

#define MAX_RANK 65536
#define ALL_TARGETS ((1u << LORA_PROJ_COUNT) - 1)
#define ATTN_TARGETS ((1u << LORA_PROJ_Q) | (1u << LORA_PROJ_K) | (1u << LORA_PROJ_V) | \
                      (1u << LORA_PROJ_O))
#define FFN_TARGETS ((1u << LORA_PROJ_GATE) | (1u << LORA_PROJ_UP) | (1u << LORA_PROJ_DOWN))

typedef struct parse_ctx {
    const lora_config *c;
    lora_adapter_spec *s;
} parse_ctx;

typedef lora_status (*key_handler)(const char *key, json_t *v, parse_ctx *p);

static lora_status must_be(const char *key, const char *what)
{
    return lora__error(LORA_ERR_CONFIG, "key '%s' must be %s", key, what);
}

/* ---- numbers -------------------------------------------------------------------------------- */

static lora_status get_rank(const char *key, const json_t *v, int64_t *out)
{
    if (!json_is_integer(v))
        return must_be(key, "an integer");
    json_int_t x = json_integer_value(v);
    if (x < 1 || x > MAX_RANK)
        return lora__error(LORA_ERR_CONFIG, "key '%s' = %lld is outside 1..%d", key,
                           (long long)x, MAX_RANK);
    *out = x;
    return LORA_OK;
}

static lora_status get_alpha(const char *key, const json_t *v, double *out)
{
    if (!json_is_number(v))
        return must_be(key, "a number");
    double x = json_number_value(v);
    if (!(x > 0 && isfinite(x)))
        return lora__error(LORA_ERR_CONFIG, "key '%s' = %g must be a finite number > 0", key, x);
    *out = x;
    return LORA_OK;
}

static lora_status h_r(const char *key, json_t *v, parse_ctx *p)
{
    return get_rank(key, v, &p->s->r);
}

static lora_status h_alpha(const char *key, json_t *v, parse_ctx *p)
{
    return get_alpha(key, v, &p->s->lora_alpha);
}

static lora_status h_dropout(const char *key, json_t *v, parse_ctx *p)
{
    if (!json_is_number(v))
        return must_be(key, "a number");
    double x = json_number_value(v);
    if (!(x >= 0 && x < 1))
        return lora__error(LORA_ERR_CONFIG, "key '%s' = %g is outside [0, 1)", key, x);
    p->s->lora_dropout = x;
    return LORA_OK;
}

static lora_status h_rslora(const char *key, json_t *v, parse_ctx *p)
{
    if (!json_is_boolean(v))
        return must_be(key, "true or false");
    p->s->use_rslora = json_is_true(v);
    return LORA_OK;
}

/* ---- target_modules ------------------------------------------------------------------------- */

static unsigned target_bits(const char *name)
{
    if (strcmp(name, "attn") == 0)
        return ATTN_TARGETS;
    if (strcmp(name, "ffn") == 0)
        return FFN_TARGETS;
    if (strcmp(name, "all-linear") == 0)
        return ALL_TARGETS;
    for (int p = 0; p < LORA_PROJ_COUNT; p++)
        if (strcmp(name, lora__proj_name((lora_proj)p)) == 0)
            return 1u << p;
    return 0;
}

static lora_status h_targets(const char *key, json_t *v, parse_ctx *p)
{
    if (json_is_null(v))
        return LORA_OK; /* PEFT's default for these models: q_proj, v_proj */
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "all-linear") == 0) {
            p->s->targets = ALL_TARGETS;
            return LORA_OK;
        }
        return lora__error(LORA_ERR_CONFIG,
                           "key '%s' = \"%.64s\": the only string accepted is \"all-linear\" "
                           "(PEFT reads other strings as regular expressions, which liblora does "
                           "not support); give a list of module names", key,
                           json_string_value(v));
    }
    if (!json_is_array(v))
        return must_be(key, "a list of module names or the string \"all-linear\"");
    if (json_array_size(v) == 0)
        return lora__error(LORA_ERR_CONFIG, "key '%s' is an empty list", key);
    unsigned bits = 0;
    char unknown[512] = "";
    size_t used = 0, n_unknown = 0, i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e))
            return lora__error(LORA_ERR_CONFIG, "key '%s': element %zu is not a string", key, i);
        unsigned b = target_bits(json_string_value(e));
        if (b) {
            bits |= b;
            continue;
        }
        n_unknown++;
        if (used < sizeof unknown)
            used += (size_t)snprintf(unknown + used, sizeof unknown - used, "%s'%.64s'",
                                     used ? ", " : "", json_string_value(e));
    }
    if (n_unknown)
        return lora__error(LORA_ERR_CONFIG,
                           "key '%s': unknown module name%s %s; known: q_proj, k_proj, v_proj, "
                           "o_proj, gate_proj, up_proj, down_proj, the groups \"attn\" and "
                           "\"ffn\", or \"all-linear\" (lm_head and embeddings cannot be "
                           "targeted)", key, n_unknown > 1 ? "s" : "", unknown);
    p->s->targets = bits;
    return LORA_OK;
}

/* ---- layers_to_transform -------------------------------------------------------------------- */

static lora_status layer_index(const char *key, const json_t *e, parse_ctx *p)
{
    if (!json_is_integer(e))
        return must_be(key, "null, a layer index or a list of layer indices");
    json_int_t x = json_integer_value(e);
    if (x < 0 || x >= p->s->n_layers)
        return lora__error(LORA_ERR_CONFIG,
                           "key '%s': layer %lld is outside 0..%lld (the model has %lld layers)",
                           key, (long long)x, (long long)p->s->n_layers - 1,
                           (long long)p->s->n_layers);
    p->s->layer_on[x] = 1;
    return LORA_OK;
}

static lora_status h_layers(const char *key, json_t *v, parse_ctx *p)
{
    lora_adapter_spec *s = p->s;
    if (json_is_null(v)) {
        s->all_layers = true;
        memset(s->layer_on, 1, (size_t)s->n_layers);
        return LORA_OK;
    }
    s->all_layers = false;
    memset(s->layer_on, 0, (size_t)s->n_layers);
    if (!json_is_array(v))
        return layer_index(key, v, p);
    if (json_array_size(v) == 0)
        return lora__error(LORA_ERR_CONFIG, "key '%s' is an empty list: no layer is adapted",
                           key);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        lora_status st = layer_index(key, e, p);
        if (st)
            return st;
    }
    return LORA_OK;
}

/* ---- rank_pattern, alpha_pattern ------------------------------------------------------------ */

/* PEFT matches a pattern key against the module path "model.layers.3.self_attn.q_proj":
 * the key is the whole path or a dot-separated tail of it ("q_proj", "3.self_attn.q_proj"). */
static size_t key_match(const char *key, const char *path)
{
    size_t k = strlen(key), n = strlen(path);
    if (k == 0 || k > n || strcmp(path + n - k, key) != 0)
        return 0;
    return k == n || path[n - k - 1] == '.' ? k : 0;
}

static void module_path(int64_t layer, lora_proj p, char *buf, size_t cap)
{
    snprintf(buf, cap, "model.layers.%lld.%s.%s", (long long)layer, lora__proj_parent(p),
             lora__proj_name(p));
}

static int matches_some_module(const char *key, int64_t n_layers)
{
    char path[96];
    for (int64_t l = 0; l < n_layers; l++)
        for (int p = 0; p < LORA_PROJ_COUNT; p++) {
            module_path(l, (lora_proj)p, path, sizeof path);
            if (key_match(key, path))
                return 1;
        }
    return 0;
}

static lora_status get_pattern(const char *key, json_t *v, parse_ctx *p, int is_rank,
                               lora_adapter_pattern **out, size_t *n_out)
{
    if (json_is_null(v))
        return LORA_OK;
    if (!json_is_object(v))
        return must_be(key, "an object mapping module names or paths to values");
    size_t n = json_object_size(v), k = 0;
    lora_adapter_pattern *pat = n ? lora__calloc(n, sizeof *pat) : NULL;
    if (n && !pat)
        return lora__oom(key, n * sizeof *pat);
    *out = pat;
    const char *name;
    json_t *e;
    json_object_foreach(v, name, e) {
        char sub[160];
        snprintf(sub, sizeof sub, "%s.%.100s", key, name);
        if (!matches_some_module(name, p->s->n_layers))
            return lora__error(LORA_ERR_CONFIG,
                               "key '%s': '%.100s' matches no projection of this model (keys are "
                               "module names such as \"q_proj\" or paths such as "
                               "\"model.layers.0.self_attn.q_proj\"; regular expressions are not "
                               "supported)", key, name);
        int64_t r = 0;
        double x = 0;
        lora_status st = is_rank ? get_rank(sub, e, &r) : get_alpha(sub, e, &x);
        if (st)
            return st;
        if (!(pat[k].key = lora__strdup(name)))
            return lora__oom(key, strlen(name) + 1);
        pat[k].value = is_rank ? (double)r : x;
        *n_out = ++k;
    }
    return LORA_OK;
}

static void free_patterns(lora_adapter_pattern *pat, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(pat[i].key);
    free(pat);
}

static lora_status h_rank_pattern(const char *key, json_t *v, parse_ctx *p)
{
    free_patterns(p->s->rank_pattern, p->s->n_rank_pattern);
    p->s->rank_pattern = NULL;
    p->s->n_rank_pattern = 0;
    return get_pattern(key, v, p, 1, &p->s->rank_pattern, &p->s->n_rank_pattern);
}

static lora_status h_alpha_pattern(const char *key, json_t *v, parse_ctx *p)
{
    free_patterns(p->s->alpha_pattern, p->s->n_alpha_pattern);
    p->s->alpha_pattern = NULL;
    p->s->n_alpha_pattern = 0;
    return get_pattern(key, v, p, 0, &p->s->alpha_pattern, &p->s->n_alpha_pattern);
}

/* ---- features: accepted values and refusals ------------------------------------------------- */

static lora_status h_init(const char *key, json_t *v, parse_ctx *p)
{
    if (json_is_boolean(v)) {
        p->s->init = json_is_true(v) ? LORA_ADAPTER_INIT_KAIMING : LORA_ADAPTER_INIT_NONE;
        return LORA_OK;
    }
    if (!json_is_string(v))
        return must_be(key, "true, false or \"gaussian\"");
    const char *s = json_string_value(v);
    if (strcmp(s, "gaussian") == 0) {
        p->s->init = LORA_ADAPTER_INIT_GAUSSIAN;
        return LORA_OK;
    }
    return lora__error(LORA_ERR_UNSUPPORTED,
                       "key '%s' = \"%.64s\" is not supported (this version initialises with "
                       "true, false or \"gaussian\"; PiSSA, OLoRA, LoftQ, EVA, CorDA and "
                       "orthogonal initialisations are not implemented)", key, s);
}

static lora_status h_bias(const char *key, json_t *v, parse_ctx *p)
{
    if (!json_is_string(v))
        return must_be(key, "a string");
    if (strcmp(json_string_value(v), "none") == 0)
        return LORA_OK;
    return lora__error(LORA_ERR_UNSUPPORTED,
                       "key '%s' = \"%.32s\" is not supported: liblora trains no biases (use "
                       "\"none\")", key, json_string_value(v));
}

static lora_status h_peft_type(const char *key, json_t *v, parse_ctx *p)
{
    if (!json_is_string(v))
        return must_be(key, "the string \"LORA\"");
    if (strcmp(json_string_value(v), "LORA") == 0)
        return LORA_OK;
    return lora__error(LORA_ERR_UNSUPPORTED,
                       "key '%s' = \"%.32s\" is not supported: liblora reads LoRA adapters "
                       "(\"LORA\") only", key, json_string_value(v));
}

/* Bookkeeping strings (task_type, base_model_name_or_path, revision...): null or a string. */
static lora_status h_string(const char *key, json_t *v, parse_ctx *p)
{
    return json_is_null(v) || json_is_string(v) ? LORA_OK : must_be(key, "null or a string");
}

static lora_status h_bool(const char *key, json_t *v, parse_ctx *p)
{
    return json_is_boolean(v) ? LORA_OK : must_be(key, "true or false");
}

static lora_status h_int(const char *key, json_t *v, parse_ctx *p)
{
    return json_is_integer(v) ? LORA_OK : must_be(key, "an integer");
}

static lora_status h_any(const char *key, json_t *v, parse_ctx *p) { return LORA_OK; }

/* What a refused feature is, for the message. */
static const struct {
    const char *key;
    const char *feature;
} features[] = {
    {"use_dora", "DoRA (weight-decomposed LoRA)"},
    {"fan_in_fan_out", "fan_in_fan_out (Conv1D weights, as in GPT-2; these models use Linear)"},
    {"lora_bias", "a bias on lora_B"},
    {"use_qalora", "QALoRA"},
    {"modules_to_save", "modules_to_save (fully trained extra modules)"},
    {"exclude_modules", "exclude_modules"},
    {"target_parameters", "target_parameters (LoRA on nn.Parameter)"},
    {"layer_replication", "layer_replication"},
    {"megatron_config", "Megatron parallel layers"},
    {"eva_config", "EVA initialisation"},
    {"corda_config", "CorDA initialisation"},
    {"loftq_config", "LoftQ initialisation"},
    {"trainable_token_indices", "trainable token indices"},
    {"alora_invocation_tokens", "activated LoRA (aLoRA)"},
    {"arrow_config", "Arrow routing"},
    {"kasa_config", "KaSA (singular-value adaptation)"},
    {"lora_ga_config", "LoRA-GA initialisation"},
    {"monteclora_config", "MonteCLoRA (Monte Carlo sampling on LoRA)"},
    {"use_bdlora", "BD-LoRA (block-diagonal LoRA)"},
    {"velora_config", "VeLoRA (compressed activations in the backward)"},
    {"layers_pattern", "layers_pattern other than \"layers\""},
};

static lora_status refuse(const char *key, const json_t *v)
{
    const char *what = key;
    for (size_t i = 0; i < sizeof features / sizeof *features; i++)
        if (strcmp(key, features[i].key) == 0)
            what = features[i].feature;
    char *text = lora__json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    lora_status st = lora__error(LORA_ERR_UNSUPPORTED, "key '%s' = %.64s: %s is not supported by "
                                 "this version", key, text ? text : "?", what);
    free(text);
    return st;
}

/* use_dora, fan_in_fan_out, lora_bias, use_qalora: false only. */
static lora_status h_false_only(const char *key, json_t *v, parse_ctx *p)
{
    if (!json_is_boolean(v))
        return must_be(key, "true or false");
    return json_is_false(v) ? LORA_OK : refuse(key, v);
}

/* layer_replication, megatron_config, eva_config...: null only. */
static lora_status h_null_only(const char *key, json_t *v, parse_ctx *p)
{
    return json_is_null(v) ? LORA_OK : refuse(key, v);
}

/* modules_to_save, exclude_modules, target_parameters: null or an empty list. */
static lora_status h_null_or_empty(const char *key, json_t *v, parse_ctx *p)
{
    return json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0) ? LORA_OK
                                                                              : refuse(key, v);
}

/* loftq_config: PEFT writes {} when LoftQ is off. */
static lora_status h_null_or_empty_object(const char *key, json_t *v, parse_ctx *p)
{
    return json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0) ? LORA_OK
                                                                                : refuse(key, v);
}

/* layers_pattern only matters with layers_to_transform; "layers" is what these models use. */
static lora_status h_layers_pattern(const char *key, json_t *v, parse_ctx *p)
{
    if (json_is_null(v))
        return LORA_OK;
    if (json_is_string(v) && strcmp(json_string_value(v), "layers") == 0)
        return LORA_OK;
    if (json_is_array(v) && json_array_size(v) == 1 &&
        json_is_string(json_array_get(v, 0)) &&
        strcmp(json_string_value(json_array_get(v, 0)), "layers") == 0)
        return LORA_OK;
    return refuse(key, v);
}

static const struct {
    const char *key;
    key_handler fn;
} handlers[] = {
    {"r", h_r},
    {"lora_alpha", h_alpha},
    {"lora_dropout", h_dropout},
    {"use_rslora", h_rslora},
    {"target_modules", h_targets},
    {"layers_to_transform", h_layers},
    {"rank_pattern", h_rank_pattern},
    {"alpha_pattern", h_alpha_pattern},
    {"init_lora_weights", h_init},
    {"bias", h_bias},
    {"peft_type", h_peft_type},
    {"task_type", h_string},
    {"base_model_name_or_path", h_string},
    {"revision", h_string},
    {"megatron_core", h_string},
    {"peft_version", h_string},
    {"inference_mode", h_bool},
    {"ensure_weight_tying", h_bool},
    {"qalora_group_size", h_int},
    {"auto_mapping", h_any},
    {"runtime_config", h_any},
    {"use_dora", h_false_only},
    {"fan_in_fan_out", h_false_only},
    {"lora_bias", h_false_only},
    {"use_qalora", h_false_only},
    {"modules_to_save", h_null_or_empty},
    {"exclude_modules", h_null_or_empty},
    {"target_parameters", h_null_or_empty},
    {"layer_replication", h_null_only},
    {"megatron_config", h_null_only},
    {"eva_config", h_null_only},
    {"corda_config", h_null_only},
    {"trainable_token_indices", h_null_only},
    {"alora_invocation_tokens", h_null_only},
    {"arrow_config", h_null_only},
    {"kasa_config", h_null_only},
    {"lora_ga_config", h_null_only},
    {"monteclora_config", h_null_only},
    {"use_bdlora", h_null_only},
    {"velora_config", h_null_only},
    {"loftq_config", h_null_or_empty_object},
    {"layers_pattern", h_layers_pattern},
};

/* ---- the spec ------------------------------------------------------------------------------- */

void lora__adapter_spec_free(lora_adapter_spec *s)
{
    if (!s)
        return;
    free(s->layer_on);
    free_patterns(s->rank_pattern, s->n_rank_pattern);
    free_patterns(s->alpha_pattern, s->n_alpha_pattern);
    memset(s, 0, sizeof *s);
}

static lora_status parse_object(json_t *root, parse_ctx *p)
{
    if (!json_is_object(root))
        return lora__error(LORA_ERR_CONFIG, "the LoRA config must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        size_t i = 0;
        while (i < sizeof handlers / sizeof *handlers && strcmp(handlers[i].key, key) != 0)
            i++;
        if (i == sizeof handlers / sizeof *handlers)
            return lora__error(LORA_ERR_CONFIG, "unknown key '%.100s'", key);
        lora_status st = handlers[i].fn(key, v, p);
        if (st)
            return st;
    }
    return LORA_OK;
}

lora_status lora__adapter_spec_parse(const char *text, const lora_config *c,
                                     lora_status json_status, lora_adapter_spec *out)
{
    memset(out, 0, sizeof *out);
    out->r = 8;
    out->lora_alpha = 8;
    out->init = LORA_ADAPTER_INIT_KAIMING;
    out->targets = (1u << LORA_PROJ_Q) | (1u << LORA_PROJ_V);
    out->n_layers = c->n_layers;
    out->all_layers = true;
    out->layer_on = lora__malloc((size_t)c->n_layers);
    if (!out->layer_on)
        return lora__oom("layer list", (size_t)c->n_layers);
    memset(out->layer_on, 1, (size_t)c->n_layers);
    if (!text)
        return LORA_OK;
    json_error_t jerr;
    json_t *root = lora__json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    lora_status st;
    if (!root)
        st = lora__error(json_status, "line %d, column %d: %s", jerr.line, jerr.column,
                         jerr.text);
    else {
        parse_ctx p = {c, out};
        st = parse_object(root, &p);
    }
    json_decref(root);
    if (st)
        lora__adapter_spec_free(out);
    return st;
}

static double longest_match(const lora_adapter_pattern *pat, size_t n, const char *path,
                            double dflt)
{
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = key_match(pat[i].key, path);
        if (k > best) {
            best = k;
            dflt = pat[i].value;
        }
    }
    return dflt;
}

void lora__adapter_spec_module(const lora_adapter_spec *s, int64_t layer, lora_proj p,
                               int64_t *r, double *alpha)
{
    char path[96];
    module_path(layer, p, path, sizeof path);
    *r = (int64_t)longest_match(s->rank_pattern, s->n_rank_pattern, path, (double)s->r);
    *alpha = longest_match(s->alpha_pattern, s->n_alpha_pattern, path, s->lora_alpha);
}

float lora__adapter_scaling(double alpha, int64_t r, bool use_rslora)
{
    return (float)(use_rslora ? alpha / sqrt((double)r) : alpha / (double)r);
}

void lora__adapter_spec_count(const lora_adapter_spec *s, const lora_config *c,
                              uint64_t *modules, uint64_t *trainable)
{
    uint64_t n = 0, t = 0;
    for (int64_t l = 0; l < s->n_layers; l++) {
        if (!s->layer_on[l])
            continue;
        for (int p = 0; p < LORA_PROJ_COUNT; p++) {
            if (!(s->targets & (1u << p)))
                continue;
            int64_t r, out, in;
            double alpha;
            lora__adapter_spec_module(s, l, (lora_proj)p, &r, &alpha);
            lora__proj_shape(c, (lora_proj)p, &out, &in);
            n++;
            t += (uint64_t)r * (uint64_t)(in + out);
        }
    }
    *modules = n;
    *trainable = t;
}

lora_status lora__adapter_count(const lora_config *c, const char *lora_config_json,
                                uint64_t *modules, uint64_t *trainable)
{
    if (!c || !modules || !trainable)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__adapter_count: NULL argument");
    lora_adapter_spec s;
    lora_status st = lora__adapter_spec_parse(lora_config_json, c, LORA_ERR_CONFIG, &s);
    if (st)
        return lora__error_prefix(st, "lora__adapter_count");
    lora__adapter_spec_count(&s, c, modules, trainable);
    lora__adapter_spec_free(&s);
    return LORA_OK;
}

static json_t *pattern_object(const lora_adapter_pattern *pat, size_t n, int is_rank)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++)
        if (json_object_set_new(o, pat[i].key,
                                is_rank ? json_integer((json_int_t)pat[i].value)
                                        : lora__adapter_json_number(pat[i].value))) {
            json_decref(o);
            return NULL;
        }
    return o;
}

char *lora__adapter_spec_peft_json(const lora_adapter_spec *s)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_t *layers = json_null();
    if (!s->all_layers) {
        layers = json_array();
        for (int64_t l = 0; layers && l < s->n_layers; l++)
            if (s->layer_on[l] && json_array_append_new(layers, json_integer((json_int_t)l))) {
                json_decref(layers);
                layers = NULL;
            }
    }
    json_object_set_new(o, "peft_type", json_string("LORA"));
    json_object_set_new(o, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(o, "base_model_name_or_path", json_string(""));
    json_object_set_new(o, "r", json_integer((json_int_t)s->r));
    json_object_set_new(o, "lora_alpha", lora__adapter_json_number(s->lora_alpha));
    json_object_set_new(o, "lora_dropout", json_real(s->lora_dropout));
    json_object_set_new(o, "target_modules", lora__adapter_target_list(s->targets));
    json_object_set_new(o, "layers_to_transform", layers);
    json_object_set_new(o, "rank_pattern", pattern_object(s->rank_pattern, s->n_rank_pattern, 1));
    json_object_set_new(o, "alpha_pattern",
                        pattern_object(s->alpha_pattern, s->n_alpha_pattern, 0));
    json_object_set_new(o, "use_rslora", json_boolean(s->use_rslora));
    json_object_set_new(o, "use_dora", json_false());
    json_object_set_new(o, "bias", json_string("none"));
    json_object_set_new(o, "fan_in_fan_out", json_false());
    json_object_set_new(o, "inference_mode", json_true());
    json_object_set_new(o, "init_lora_weights", json_true());
    json_object_set_new(o, "modules_to_save", json_null());
    /* a NULL member (allocation failure) leaves the key out: caught below by the size */
    char *text = json_object_size(o) == 17
                     ? lora__json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return text;
}
