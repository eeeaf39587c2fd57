/* A Llama / Qwen2 / Qwen3 GGUF as a Hugging Face model: config.json from the architecture's
 * metadata, tensors renamed from llama.cpp's names (blk.N.attn_q.weight) to Hugging Face's
 * (model.layers.N.self_attn.q_proj.weight), the converter's q/k row permutation undone for
 * Llama, and the whole checked against the tensor list that config implies. */
#include "gguf/gguf.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/json_text.h"
#include "util/alloc.h"
#include "model/config.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

typedef struct arch_info {
    const char *name;         /* general.architecture */
    const char *hf_class;
    int permute_qk;           /* llama.cpp's converter permutes q/k rows for Llama only */
} arch_info;

static const arch_info archs[] = {
    {"llama", "LlamaForCausalLM", 1},
    {"qwen2", "Qwen2ForCausalLM", 0},
    {"qwen3", "Qwen3ForCausalLM", 0},
};

/* llama.cpp's per-layer tensor names and Hugging Face's. */
static const struct {
    const char *gguf, *hf;
} layer_names[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

static const struct {
    const char *gguf, *hf;
} global_names[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

typedef struct dims {
    int64_t layers, hidden, inter, heads, kv_heads, head_dim, context, vocab;
    double rope_theta, rms_eps;
} dims;

/* Hugging Face's name for a GGUF tensor name; 0 when there is none. */
static int hf_name(const char *g, int64_t n_layers, char *out, size_t cap)
{
    for (size_t i = 0; i < sizeof global_names / sizeof *global_names; i++)
        if (strcmp(g, global_names[i].gguf) == 0) {
            snprintf(out, cap, "%s", global_names[i].hf);
            return 1;
        }
    unsigned long layer;
    int used = 0;
    if (sscanf(g, "blk.%lu.%n", &layer, &used) != 1 || used == 0 || (int64_t)layer >= n_layers)
        return 0;
    char digits[24];
    snprintf(digits, sizeof digits, "blk.%lu.", layer);
    if (strncmp(g, digits, strlen(digits)) != 0)   /* "blk.01." is not layer 1's name */
        return 0;
    for (size_t i = 0; i < sizeof layer_names / sizeof *layer_names; i++)
        if (strcmp(g + used, layer_names[i].gguf) == 0) {
            snprintf(out, cap, "model.layers.%lu.%s", layer, layer_names[i].hf);
            return 1;
        }
    return 0;
}

static lora_status arch_key_int(const lora_gguf_file *f, const char *arch, const char *key,
                                int64_t dflt, int64_t hi, int64_t *v)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    int found;
    lora_status st = lora__gguf_get_int(f, k, 1, hi, v, dflt < 0 ? NULL : &found);
    if (!st && dflt >= 0 && !found)
        *v = dflt;
    return st;
}

static lora_status arch_key_real(const lora_gguf_file *f, const char *arch, const char *key,
                                 double dflt, double *v)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    int found;
    lora_status st = lora__gguf_get_real(f, k, v, &found);
    if (!st && !found)
        *v = dflt;
    if (!st && !(*v > 0 && *v < 1e30))
        return lora__error(LORA_ERR_FORMAT, "%s: key '%s' = %g must be positive",
                           lora__gguf_path(f), k, *v);
    return st;
}

static lora_status read_dims(const lora_gguf_file *f, const char *arch, dims *d)
{
    const char *path = lora__gguf_path(f);
    lora_status st;
    int64_t rope_dims, v_len;
    if ((st = arch_key_int(f, arch, "block_count", -1, 1 << 20, &d->layers)) ||
        (st = arch_key_int(f, arch, "embedding_length", -1, 1 << 20, &d->hidden)) ||
        (st = arch_key_int(f, arch, "feed_forward_length", -1, 1 << 24, &d->inter)) ||
        (st = arch_key_int(f, arch, "attention.head_count", -1, 1 << 16, &d->heads)) ||
        (st = arch_key_int(f, arch, "attention.head_count_kv", d->heads, 1 << 16, &d->kv_heads)) ||
        (st = arch_key_int(f, arch, "context_length", 2048, INT32_MAX, &d->context)) ||
        (st = arch_key_int(f, arch, "attention.key_length", d->hidden / d->heads, 1 << 16,
                           &d->head_dim)) ||
        (st = arch_key_int(f, arch, "attention.value_length", d->head_dim, 1 << 16, &v_len)) ||
        (st = arch_key_int(f, arch, "rope.dimension_count", d->head_dim, 1 << 16, &rope_dims)) ||
        (st = arch_key_real(f, arch, "rope.freq_base", 10000.0, &d->rope_theta)) ||
        (st = arch_key_real(f, arch, "attention.layer_norm_rms_epsilon", 1e-6, &d->rms_eps)))
        return st;
    if (v_len != d->head_dim)
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key '%s.attention.value_length' = %" PRId64
                           " differs from the key length %" PRId64, path, arch, v_len,
                           d->head_dim);
    if (rope_dims != d->head_dim)
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key '%s.rope.dimension_count' = %" PRId64
                           ": only RoPE over the whole head (%" PRId64 ") is supported", path,
                           arch, rope_dims, d->head_dim);
    char k[128];
    lora_gguf_str s;
    int found;
    snprintf(k, sizeof k, "%s.rope.scaling.type", arch);
    if ((st = lora__gguf_get_str(f, k, &s, &found)))
        return st;
    if (found && !(s.len == 4 && memcmp(s.p, "none", 4) == 0))
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key '%s' = '%.*s': only plain RoPE is "
                           "supported", path, k, (int)(s.len > 32 ? 32 : s.len), s.p);
    return LORA_OK;
}

/* Shortest decimal that reads back as the same float32: GGUF stores eps and theta in float32,
 * and 1e-05 reads better (and means the same to the model) than 9.999999747378752e-06. */
static json_t *real_of_f32(double x)
{
    char buf[32];
    float want = (float)x;
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, x);
        if (strtof(buf, NULL) == want)
            break;
    }
    return json_real(strtod(buf, NULL));
}

static lora_status special_id(const lora_gguf_file *f, const char *key, json_t *cfg,
                              const char *hf_key)
{
    int64_t id;
    int found;
    lora_status st = lora__gguf_get_int(f, key, 0, INT32_MAX, &id, &found);
    if (!st && json_object_set_new(cfg, hf_key, found ? json_integer(id) : json_null()))
        st = lora__oom("config", 64);
    return st;
}

static lora_status build_config(const lora_gguf_file *f, const arch_info *a, const dims *d,
                                int tied, int bias, char **out)
{
    json_t *c = json_object();
    if (!c)
        return lora__oom("config", 1024);
    int bad = 0; /* a member that could not be added (out of memory) */
    bad |= json_object_set_new(c, "architectures", json_pack("[s]", a->hf_class));
    bad |= json_object_set_new(c, "model_type", json_string(a->name));
    bad |= json_object_set_new(c, "vocab_size", json_integer(d->vocab));
    bad |= json_object_set_new(c, "hidden_size", json_integer(d->hidden));
    bad |= json_object_set_new(c, "intermediate_size", json_integer(d->inter));
    bad |= json_object_set_new(c, "num_hidden_layers", json_integer(d->layers));
    bad |= json_object_set_new(c, "num_attention_heads", json_integer(d->heads));
    bad |= json_object_set_new(c, "num_key_value_heads", json_integer(d->kv_heads));
    bad |= json_object_set_new(c, "head_dim", json_integer(d->head_dim));
    bad |= json_object_set_new(c, "max_position_embeddings", json_integer(d->context));
    bad |= json_object_set_new(c, "rms_norm_eps", real_of_f32(d->rms_eps));
    bad |= json_object_set_new(c, "rope_theta", real_of_f32(d->rope_theta));
    bad |= json_object_set_new(c, "tie_word_embeddings", json_boolean(tied));
    if (strcmp(a->name, "qwen2") != 0)
        bad |= json_object_set_new(c, "attention_bias", json_boolean(bias));
    bad |= json_object_set_new(c, "hidden_act", json_string("silu"));
    bad |= json_object_set_new(c, "torch_dtype", json_string("float32"));
    lora_status st = bad ? lora__oom("config", 1024)
                         : special_id(f, "tokenizer.ggml.bos_token_id", c, "bos_token_id");
    if (!st)
        st = special_id(f, "tokenizer.ggml.eos_token_id", c, "eos_token_id");
    if (!st && !(*out = lora__json_dumps(c, JSON_INDENT(2) | JSON_REAL_PRECISION(17))))
        st = lora__oom("config text", 4096);
    json_decref(c);
    return st;
}

static lora_status build_generation_config(const char *config_json, char **out)
{
    json_t *c = lora__json_loads(config_json, 0, NULL), *g = json_object();
    lora_status st = LORA_OK;
    if (!c || !g)
        st = lora__oom("generation config", 256);
    else if (json_object_set(g, "bos_token_id", json_object_get(c, "bos_token_id")) ||
             json_object_set(g, "eos_token_id", json_object_get(c, "eos_token_id")) ||
             !(*out = lora__json_dumps(g, JSON_INDENT(2))))
        st = lora__oom("generation config", 256);
    json_decref(c);
    json_decref(g);
    return st;
}

static int cmp_source(const void *a, const void *b)
{
    return strcmp(((const lora_gguf_source *)a)->name, ((const lora_gguf_source *)b)->name);
}

/* Every GGUF tensor gets its Hugging Face name, shape and permutation. */
static lora_status map_tensors(lora_gguf_model *g, const arch_info *a, const dims *d)
{
    const lora_gguf_file *f = g->file;
    const char *path = lora__gguf_path(f);
    g->n = lora__gguf_tensor_count(f);
    g->src = lora__calloc(g->n ? g->n : 1, sizeof *g->src);
    if (!g->src)
        return lora__oom("GGUF tensor map", g->n * sizeof *g->src);
    for (size_t i = 0; i < g->n; i++) {
        const lora_gguf_tensor *t = lora__gguf_tensor_at(f, i);
        lora_gguf_source *s = &g->src[i];
        if (!hf_name(t->name, d->layers, s->name, sizeof s->name))
            return lora__error(LORA_ERR_UNSUPPORTED, "%s: tensor '%s' has no counterpart in a "
                               "Hugging Face %s model%s", path, t->name, a->name,
                               strcmp(t->name, "rope_freqs.weight") == 0
                               ? " (rope_freqs: RoPE scaling is not supported)" : "");
        if (!lora__gguf_type_supported(t->type))
            return lora__error(LORA_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which this "
                               "version cannot dequantize", path, t->name,
                               lora__gguf_type_name(t->type));
        if (t->ndim > 2)
            return lora__error(LORA_ERR_SHAPE, "%s: tensor '%s' has %d dimensions (at most 2)",
                               path, t->name, t->ndim);
        s->t = t;
        s->ndim = t->ndim;
        s->shape[0] = t->ndim == 2 ? t->ne[1] : t->ne[0];
        s->shape[1] = t->ndim == 2 ? t->ne[0] : 0;
        const char *dot = strstr(s->name, ".self_attn.");
        if (a->permute_qk && dot && (strncmp(dot, ".self_attn.q_proj.", 18) == 0 ||
                                     strncmp(dot, ".self_attn.k_proj.", 18) == 0)) {
            s->permute_heads = dot[11] == 'q' ? d->heads : d->kv_heads;
            if (s->shape[0] % (2 * s->permute_heads) != 0)
                return lora__error(LORA_ERR_SHAPE, "%s: tensor '%s': %" PRId64 " rows do not "
                                   "split into %" PRId64 " heads of even size", path, t->name,
                                   s->shape[0], s->permute_heads);
        }
    }
    qsort(g->src, g->n, sizeof *g->src, cmp_source);
    return LORA_OK;
}

/* The tensors against the list the config implies: each present once with its shape, nothing
 * else (an output.weight beside tied embeddings would be dropped silently otherwise). */
static lora_status check_against_config(const lora_gguf_model *g)
{
    const char *path = lora__gguf_path(g->file);
    lora_config c;
    lora_status st = lora__config_parse(g->config_json, strlen(g->config_json), path, &c);
    if (st)
        return st;
    lora_weight_slot *slots;
    size_t n;
    if ((st = lora__weight_slots(&c, NULL, &slots, &n)))
        return st;
    for (size_t i = 0; i < n && !st; i++) {
        const lora_gguf_source *s = lora__gguf_model_find(g, slots[i].name);
        char want[48], got[48];
        if (!s)
            st = lora__error(LORA_ERR_SHAPE, "%s: tensor for '%s' is missing", path,
                             slots[i].name);
        else if (s->ndim != slots[i].ndim || s->shape[0] != slots[i].shape[0] ||
                 (s->ndim == 2 && s->shape[1] != slots[i].shape[1]))
            st = lora__error(LORA_ERR_SHAPE, "%s: tensor '%s' (%s) has shape %s, the config "
                             "implies %s", path, s->t->name, s->name,
                             lora__shape_str(s->shape, s->ndim, got, sizeof got),
                             lora__shape_str(slots[i].shape, slots[i].ndim, want, sizeof want));
    }
    if (!st && g->n != n)
        for (size_t i = 0; i < g->n && !st; i++) {
            size_t k = 0;
            while (k < n && strcmp(slots[k].name, g->src[i].name) != 0)
                k++;
            if (k == n)
                st = lora__error(LORA_ERR_SHAPE, "%s: tensor '%s' (%s) is not part of the "
                                 "model the metadata describes", path, g->src[i].t->name,
                                 g->src[i].name);
        }
    free(slots);
    return st;
}

static lora_status convert(lora_gguf_model *g)
{
    const lora_gguf_file *f = g->file;
    const char *path = lora__gguf_path(f);
    lora_gguf_str name;
    lora_status st = lora__gguf_get_str(f, "general.architecture", &name, NULL);
    if (st)
        return st;
    const arch_info *a = NULL;
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++)
        if (name.len == strlen(archs[i].name) && memcmp(name.p, archs[i].name, name.len) == 0)
            a = &archs[i];
    if (!a)
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key 'general.architecture' = '%.*s' is not "
                           "supported (supported: llama, qwen2, qwen3)", path,
                           (int)(name.len > 64 ? 64 : name.len), name.p);
    dims d;
    if ((st = read_dims(f, a->name, &d)) || (st = map_tensors(g, a, &d)))
        return st;
    const lora_gguf_source *emb = lora__gguf_model_find(g, "model.embed_tokens.weight");
    if (!emb || emb->ndim != 2)
        return lora__error(LORA_ERR_SHAPE, "%s: tensor 'token_embd.weight' is %s", path,
                           emb ? "not a matrix" : "missing");
    d.vocab = emb->shape[0];
    int64_t vocab;
    int found;
    char k[128];
    snprintf(k, sizeof k, "%s.vocab_size", a->name);
    if ((st = lora__gguf_get_int(f, k, 1, INT32_MAX, &vocab, &found)))
        return st;
    if (found && vocab != d.vocab)
        return lora__error(LORA_ERR_SHAPE, "%s: key '%s' = %" PRId64 " but token_embd.weight has "
                           "%" PRId64 " rows", path, k, vocab, d.vocab);
    int tied = !lora__gguf_model_find(g, "lm_head.weight");
    int bias = lora__gguf_model_find(g, "model.layers.0.self_attn.q_proj.bias") != NULL;
    if ((st = build_config(f, a, &d, tied, bias, &g->config_json)) ||
        (st = check_against_config(g)) ||
        (st = build_generation_config(g->config_json, &g->generation_config_json)) ||
        (st = lora__gguf_tokenizer_build(f, &g->tokenizer_json, &g->tokenizer_config_json)))
        return st;
    /* parsed here, not only by a load, so that an import never writes a tokenizer.json that
     * its folder's load would refuse */
    char label[4200];
    snprintf(label, sizeof label, "%s (tokenizer.ggml.* as tokenizer.json)", path);
    return lora__tokenizer_from_text(g->tokenizer_json, g->tokenizer_config_json, label,
                                     &g->tokenizer);
}

lora_status lora__gguf_model_open(const char *path, lora_gguf_model **out)
{
    *out = NULL;
    lora_gguf_model *g = lora__calloc(1, sizeof *g);
    if (!g)
        return lora__oom("GGUF model", sizeof *g);
    lora_status st = lora__gguf_open(path, &g->file);
    if (!st)
        st = convert(g);
    if (st) {
        lora__gguf_model_free(g);
        return st;
    }
    *out = g;
    return LORA_OK;
}

void lora__gguf_model_free(lora_gguf_model *g)
{
    if (!g)
        return;
    lora__gguf_close(g->file);
    free(g->config_json);
    free(g->tokenizer_json);
    free(g->tokenizer_config_json);
    lora_tokenizer_free(g->tokenizer);
    free(g->generation_config_json);
    free(g->src);
    free(g);
}

const lora_gguf_source *lora__gguf_model_find(const lora_gguf_model *g, const char *hf_name_)
{
    lora_gguf_source key;
    snprintf(key.name, sizeof key.name, "%s", hf_name_);
    return bsearch(&key, g->src, g->n, sizeof *g->src, cmp_source);
}

/* The stored type holding most of the model's values: a quantized file keeps some tensors
 * (the embedding, norms) in other types. */
const char *lora__gguf_model_main_type(const lora_gguf_model *g)
{
    uint64_t best = 0;
    const char *name = "F32";
    for (size_t i = 0; i < g->n; i++) {
        uint64_t sum = 0;
        for (size_t j = 0; j < g->n; j++)
            if (g->src[j].t->type == g->src[i].t->type)
                sum += g->src[j].t->numel;
        if (sum > best) {
            best = sum;
            name = lora__gguf_source_type(&g->src[i]);
        }
    }
    return name;
}

const char *lora__gguf_source_type(const lora_gguf_source *s)
{
    return lora__gguf_type_name(s->t->type);
}

/* The stored row that holds Hugging Face row r. The converter reshaped each head's rows as
 * (2, D/2) and swapped the axes, so stored row 2i + j of a head is Hugging Face row j*D/2 + i. */
static int64_t stored_row(const lora_gguf_source *s, int64_t r)
{
    if (!s->permute_heads)
        return r;
    int64_t head_rows = s->shape[0] / s->permute_heads, half = head_rows / 2;
    int64_t h = r / head_rows, j = r % head_rows / half, i = r % half;
    return h * head_rows + 2 * i + j;
}

void lora__gguf_source_read(const lora_gguf_source *s, size_t offset, float *dst, size_t n)
{
    const lora_gguf_tensor *t = s->t;
    size_t cols = (size_t)t->ne[0], blk = lora__gguf_type_block(t->type);
    size_t bytes = lora__gguf_type_bytes(t->type), row_bytes = cols / blk * bytes;
    float tmp[256];
    if (s->ndim == 1 && s->permute_heads) {
        /* a permuted bias: every element is a row of its own */
        for (size_t i = 0; i < n; i++) {
            size_t e = (size_t)stored_row(s, (int64_t)(offset + i));
            lora__gguf_dequant(t->type, t->data + e / blk * bytes, 1, tmp);
            dst[i] = tmp[e % blk];
        }
        return;
    }
    while (n) {
        size_t r = offset / cols, c = offset % cols, len = cols - c < n ? cols - c : n;
        const uint8_t *row = t->data + (size_t)stored_row(s, (int64_t)r) * row_bytes;
        offset += len;
        n -= len;
        while (len) {
            size_t b = c / blk, w = c % blk, adv;
            if (w == 0 && len >= blk) {
                adv = len / blk * blk;
                lora__gguf_dequant(t->type, row + b * bytes, len / blk, dst);
            } else {
                lora__gguf_dequant(t->type, row + b * bytes, 1, tmp);
                adv = blk - w < len ? blk - w : len;
                memcpy(dst, tmp + w, adv * sizeof *dst);
            }
            dst += adv;
            c += adv;
            len -= adv;
        }
    }
}
