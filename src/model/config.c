#include "model/config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/file.h"
#include "util/json_text.h"

/* Bounds that no real checkpoint of the supported families comes near; they keep every size
 * product well inside int64 and refuse absurd configs before anything is allocated. */
#define MAX_VOCAB (1LL << 24)
#define MAX_HIDDEN (1LL << 16)
#define MAX_INTER (1LL << 20)
#define MAX_LAYERS 1024
#define MAX_HEADS 1024
#define MAX_HEAD_DIM 1024
#define MAX_POSITIONS (1LL << 24)
#define MAX_CONFIG_BYTES (16u << 20)

typedef struct parse_ctx {
    json_t *root;
    const char *label;
} parse_ctx;

/* Integer key: absent -> *v = dflt (or an error if required, dflt < 0). */
static lora_status get_int(parse_ctx *p, const char *key, long long dflt, long long lo,
                           long long hi, int64_t *v)
{
    json_t *j = json_object_get(p->root, key);
    if (!j || json_is_null(j)) {
        if (dflt < 0)
            return lora__error(LORA_ERR_CONFIG, "%s: required key '%s' is missing", p->label, key);
        *v = dflt;
        return LORA_OK;
    }
    if (!json_is_integer(j))
        return lora__error(LORA_ERR_CONFIG, "%s: key '%s' must be an integer", p->label, key);
    long long x = json_integer_value(j);
    if (x < lo || x > hi)
        return lora__error(LORA_ERR_CONFIG, "%s: key '%s' = %lld is outside %lld..%lld",
                           p->label, key, x, lo, hi);
    *v = x;
    return LORA_OK;
}

static lora_status get_real(parse_ctx *p, const char *key, double dflt, double lo, double hi,
                            double *v)
{
    json_t *j = json_object_get(p->root, key);
    if (!j || json_is_null(j)) {
        *v = dflt;
        return LORA_OK;
    }
    if (!json_is_number(j))
        return lora__error(LORA_ERR_CONFIG, "%s: key '%s' must be a number", p->label, key);
    double x = json_number_value(j);
    if (!(x > lo && x < hi))
        return lora__error(LORA_ERR_CONFIG, "%s: key '%s' = %g is outside (%g, %g)", p->label,
                           key, x, lo, hi);
    *v = x;
    return LORA_OK;
}

static lora_status get_bool(parse_ctx *p, const char *key, bool dflt, bool *v)
{
    json_t *j = json_object_get(p->root, key);
    if (!j || json_is_null(j)) {
        *v = dflt;
        return LORA_OK;
    }
    if (!json_is_boolean(j))
        return lora__error(LORA_ERR_CONFIG, "%s: key '%s' must be true or false", p->label, key);
    *v = json_is_true(j);
    return LORA_OK;
}

/* String key copied into buf; absent -> "". */
static lora_status get_str(parse_ctx *p, const char *key, char *buf, size_t cap)
{
    json_t *j = json_object_get(p->root, key);
    buf[0] = '\0';
    if (!j || json_is_null(j))
        return LORA_OK;
    if (!json_is_string(j))
        return lora__error(LORA_ERR_CONFIG, "%s: key '%s' must be a string", p->label, key);
    snprintf(buf, cap, "%s", json_string_value(j));
    return LORA_OK;
}

static lora_status parse_arch(parse_ctx *p, lora_config *c)
{
    json_t *mt = json_object_get(p->root, "model_type");
    if (!mt)
        return lora__error(LORA_ERR_CONFIG, "%s: required key 'model_type' is missing", p->label);
    if (!json_is_string(mt))
        return lora__error(LORA_ERR_CONFIG, "%s: key 'model_type' must be a string", p->label);
    const char *s = json_string_value(mt);
    if (strcmp(s, "qwen2") == 0)
        c->arch = LORA_ARCH_QWEN2;
    else if (strcmp(s, "qwen3") == 0)
        c->arch = LORA_ARCH_QWEN3;
    else if (strcmp(s, "llama") == 0)
        c->arch = LORA_ARCH_LLAMA;
    else
        return lora__error(LORA_ERR_UNSUPPORTED,
                           "%s: model_type '%.64s' is not supported (supported: qwen2, qwen3, llama)",
                           p->label, s);
    snprintf(c->model_type, sizeof c->model_type, "%s", s);
    return LORA_OK;
}

/* Keys whose non-default values change the math in ways this version does not implement. */
static lora_status refuse_unsupported(parse_ctx *p)
{
    json_t *j = json_object_get(p->root, "hidden_act");
    if (j && !(json_is_string(j) && strcmp(json_string_value(j), "silu") == 0))
        return lora__error(LORA_ERR_UNSUPPORTED,
                           "%s: key 'hidden_act' must be \"silu\" (the SwiGLU MLP)", p->label);
    j = json_object_get(p->root, "rope_scaling");
    if (j && !json_is_null(j))
        return lora__error(LORA_ERR_UNSUPPORTED,
                           "%s: key 'rope_scaling' is set; only plain RoPE is supported", p->label);
    static const char *const must_be_false[] = {"use_sliding_window", "mlp_bias"};
    for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++) {
        j = json_object_get(p->root, must_be_false[i]);
        if (j && !json_is_null(j) && !json_is_false(j))
            return lora__error(LORA_ERR_UNSUPPORTED, "%s: key '%s' must be false", p->label,
                               must_be_false[i]);
    }
    if (json_object_get(p->root, "quantization_config"))
        return lora__error(LORA_ERR_UNSUPPORTED,
                           "%s: key 'quantization_config': quantized checkpoints are not supported",
                           p->label);
    j = json_object_get(p->root, "layer_types");
    if (j && !json_is_null(j)) {
        size_t i;
        json_t *v;
        if (!json_is_array(j))
            return lora__error(LORA_ERR_CONFIG, "%s: key 'layer_types' must be a list", p->label);
        json_array_foreach(j, i, v) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "full_attention") != 0)
                return lora__error(LORA_ERR_UNSUPPORTED,
                                   "%s: key 'layer_types'[%zu]: only \"full_attention\" layers "
                                   "are supported", p->label, i);
        }
    }
    return LORA_OK;
}

static lora_status parse_dims(parse_ctx *p, lora_config *c)
{
    lora_status st;
    if ((st = get_int(p, "vocab_size", -1, 1, MAX_VOCAB, &c->vocab)) ||
        (st = get_int(p, "hidden_size", -1, 1, MAX_HIDDEN, &c->hidden)) ||
        (st = get_int(p, "intermediate_size", -1, 1, MAX_INTER, &c->inter)) ||
        (st = get_int(p, "num_hidden_layers", -1, 1, MAX_LAYERS, &c->n_layers)) ||
        (st = get_int(p, "num_attention_heads", -1, 1, MAX_HEADS, &c->n_heads)) ||
        (st = get_int(p, "num_key_value_heads", c->n_heads, 1, MAX_HEADS, &c->n_kv_heads)) ||
        (st = get_int(p, "max_position_embeddings", 2048, 1, MAX_POSITIONS, &c->max_pos)))
        return st;
    if (c->hidden % c->n_heads != 0)
        return lora__error(LORA_ERR_CONFIG,
                           "%s: num_attention_heads = %lld does not divide hidden_size = %lld",
                           p->label, (long long)c->n_heads, (long long)c->hidden);
    if (c->n_heads % c->n_kv_heads != 0)
        return lora__error(LORA_ERR_CONFIG,
                           "%s: num_key_value_heads = %lld does not divide num_attention_heads = %lld",
                           p->label, (long long)c->n_kv_heads, (long long)c->n_heads);
    /* Qwen3Config defaults head_dim to 128; the others derive it from the hidden size. */
    long long dflt_hd = c->arch == LORA_ARCH_QWEN3 ? 128 : c->hidden / c->n_heads;
    if ((st = get_int(p, "head_dim", dflt_hd, 2, MAX_HEAD_DIM, &c->head_dim)))
        return st;
    if (c->head_dim % 2 != 0)
        return lora__error(LORA_ERR_CONFIG, "%s: key 'head_dim' = %lld must be even for RoPE",
                           p->label, (long long)c->head_dim);
    return LORA_OK;
}

/* Newer transformers configs nest RoPE settings as "rope_parameters": {"rope_type": "default",
 * "rope_theta": ...}; older ones have a top-level rope_theta. */
static lora_status parse_rope(parse_ctx *p, lora_config *c)
{
    json_t *rp = json_object_get(p->root, "rope_parameters");
    if (!rp || json_is_null(rp))
        return get_real(p, "rope_theta", 10000.0, 0.0, 1e30, &c->rope_theta);
    if (!json_is_object(rp))
        return lora__error(LORA_ERR_CONFIG, "%s: key 'rope_parameters' must be an object", p->label);
    json_t *type = json_object_get(rp, "rope_type");
    if (type && !(json_is_string(type) && strcmp(json_string_value(type), "default") == 0))
        return lora__error(LORA_ERR_UNSUPPORTED,
                           "%s: key 'rope_parameters.rope_type' must be \"default\"; only plain "
                           "RoPE is supported", p->label);
    parse_ctx sub = {rp, p->label};
    return get_real(&sub, "rope_theta", 10000.0, 0.0, 1e30, &c->rope_theta);
}

static lora_status parse_flags(parse_ctx *p, lora_config *c)
{
    lora_status st;
    bool attention_bias = false;
    if ((st = get_real(p, "rms_norm_eps", 1e-6, 0.0, 1.0, &c->rms_eps)) ||
        (st = parse_rope(p, c)) ||
        (st = get_real(p, "initializer_range", 0.02, 0.0, 10.0, &c->init_range)) ||
        (st = get_bool(p, "tie_word_embeddings", false, &c->tie_embeddings)) ||
        (st = get_bool(p, "attention_bias", false, &attention_bias)))
        return st;
    /* Qwen2 always has q/k/v biases and none on o_proj; llama and qwen3 follow attention_bias. */
    c->qkv_bias = c->arch == LORA_ARCH_QWEN2 ? true : attention_bias;
    c->o_bias = c->arch == LORA_ARCH_QWEN2 ? false : attention_bias;
    c->qk_norm = c->arch == LORA_ARCH_QWEN3;
    if ((st = get_str(p, "torch_dtype", c->torch_dtype, sizeof c->torch_dtype)))
        return st;
    if (!c->torch_dtype[0] && (st = get_str(p, "dtype", c->torch_dtype, sizeof c->torch_dtype)))
        return st;
    return LORA_OK;
}

lora_status lora__config_parse(const char *text, size_t len, const char *label, lora_config *out)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = lora__json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return lora__error(LORA_ERR_FORMAT, "%s: line %d column %d: %s", label, jerr.line,
                           jerr.column, jerr.text);
    parse_ctx p = {root, label};
    lora_status st;
    if (!json_is_object(root))
        st = lora__error(LORA_ERR_FORMAT, "%s: not a JSON object", label);
    else if (!(st = parse_arch(&p, out)) && !(st = refuse_unsupported(&p)) &&
             !(st = parse_dims(&p, out)))
        st = parse_flags(&p, out);
    json_decref(root);
    return st;
}

lora_status lora__config_load(const char *path, lora_config *out)
{
    char *text;
    size_t len;
    lora_status st = lora__read_file(path, MAX_CONFIG_BYTES, &text, &len);
    if (st)
        return st;
    st = lora__config_parse(text, len, path, out);
    free(text);
    return st;
}

uint64_t lora__config_num_params(const lora_config *c)
{
    uint64_t C = (uint64_t)c->hidden, D = (uint64_t)c->head_dim;
    uint64_t q = (uint64_t)c->n_heads * D, kv = (uint64_t)c->n_kv_heads * D;
    uint64_t attn = C * q + 2 * C * kv + q * C;
    if (c->qkv_bias)
        attn += q + 2 * kv;
    if (c->o_bias)
        attn += C;
    if (c->qk_norm)
        attn += 2 * D;
    uint64_t mlp = 3 * C * (uint64_t)c->inter;
    uint64_t layer = attn + mlp + 2 * C;
    uint64_t embed = (uint64_t)c->vocab * C;
    return embed * (c->tie_embeddings ? 1 : 2) + (uint64_t)c->n_layers * layer + C;
}
