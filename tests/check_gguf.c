/* GGUF import: dequantization against gguf-py's, models against their originals, tokenizers
 * against Hugging Face's `tokenizers`, and malformed files. The fixtures come from
 * tests/fixtures/gguf/make_fixtures.py (llama.cpp's gguf-py writer). */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "io/safetensors.h"
#include "lora.h"
#include "model/dtype.h"
#include "tokenizer/tokenizer.h"
#include "util/file.h"
#include "util/st_build.h"
#include "util/suite.h"

#define FIX "tests/fixtures/gguf/"

static uint8_t *slurp(const char *path, size_t *len)
{
    char *text;
    ck_assert_msg(lora__read_file(path, 64u << 20, &text, len) == LORA_OK, "%s", lora_last_error());
    return (uint8_t *)text;
}

static lora_gguf_file *open_ok(const char *path)
{
    lora_gguf_file *f;
    ck_assert_msg(lora__gguf_open(path, &f) == LORA_OK, "%s", lora_last_error());
    return f;
}

/* --- dequantization ------------------------------------------------------------------------ */

START_TEST(dequant_equals_gguf_py)
{
    lora_gguf_file *q = open_ok(FIX "dequant.gguf"), *ref = open_ok(FIX "dequant_ref.gguf");
    static const char *const want[] = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                       "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
    ck_assert_uint_eq(lora__gguf_tensor_count(q), sizeof want / sizeof *want);
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const lora_gguf_tensor *t = lora__gguf_find_tensor(q, want[i]);
        const lora_gguf_tensor *r = lora__gguf_find_tensor(ref, want[i]);
        ck_assert_ptr_nonnull(t);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(lora__gguf_type_name(t->type), want[i]);
        ck_assert_str_eq(lora__gguf_type_name(r->type), "F32");
        ck_assert_uint_eq(t->numel, r->numel);
        float *y = malloc(t->numel * sizeof *y);
        lora__gguf_dequant(t->type, t->data, t->numel / lora__gguf_type_block(t->type), y);
        /* bit for bit, every element (the reference is float32 bytes in the file) */
        ck_assert_msg(memcmp(y, r->data, t->numel * sizeof *y) == 0, "%s differs", want[i]);
        free(y);
    }
    lora__gguf_close(q);
    lora__gguf_close(ref);
}
END_TEST

/* Partial reads (any offset, any length) are the same values as one whole read. */
START_TEST(source_ranges_match_whole)
{
    lora_gguf_file *q = open_ok(FIX "dequant.gguf");
    static const char *const names[] = {"Q4_K", "Q6_K", "Q8_0", "BF16"};
    for (size_t k = 0; k < 4; k++) {
        lora_gguf_source s = {.t = lora__gguf_find_tensor(q, names[k]), .ndim = 2};
        s.shape[0] = s.t->ne[1];
        s.shape[1] = s.t->ne[0];
        size_t n = s.t->numel;
        float *whole = malloc(n * sizeof *whole), *part = malloc(n * sizeof *part);
        lora__gguf_source_read(&s, 0, whole, n);
        static const size_t cuts[][2] = {{0, 1}, {3, 700}, {255, 2}, {511, 514}, {1000, 1048}};
        for (size_t c = 0; c < 5; c++) {
            lora__gguf_source_read(&s, cuts[c][0], part, cuts[c][1]);
            ck_assert_msg(memcmp(part, whole + cuts[c][0], cuts[c][1] * sizeof *part) == 0,
                          "%s [%zu, +%zu)", names[k], cuts[c][0], cuts[c][1]);
        }
        free(whole);
        free(part);
    }
    lora__gguf_close(q);
}
END_TEST

/* --- models -------------------------------------------------------------------------------- */

static const int32_t ids[] = {344, 12, 40, 7, 200, 90, 33, 1, 0, 150, 345, 17, 60, 99, 5, 250};
#define N_IDS (sizeof ids / sizeof *ids)

static char *import_ok(const char *gguf, const char *options)
{
    char *dir = tu_st_mkdtemp();
    char out[512];
    snprintf(out, sizeof out, "%s/model", dir);
    ck_assert_msg(lora_gguf_import(gguf, out, options) == LORA_OK, "%s", lora_last_error());
    char *p = strdup(out);
    free(dir);
    return p;
}

static void remove_import(char *out)
{
    char *slash = strrchr(out, '/');
    *slash = '\0';
    tu_st_rmtree(out);
    free(out);
}

/* The Llama GGUF holds its q/k rows permuted as llama.cpp's converter writes them; loading it
 * must undo that exactly: the same logits, bit for bit, as the Hugging Face twin. */
START_TEST(llama_gguf_logits_equal_original)
{
    size_t v1, v2, v3;
    float *want = tu_logits(FIX "llama-hf", ids, N_IDS, &v1);
    float *direct = tu_logits(FIX "llama-f16.gguf", ids, N_IDS, &v2);
    char *out = import_ok(FIX "llama-f16.gguf", NULL);
    float *imported = tu_logits(out, ids, N_IDS, &v3);
    ck_assert_uint_eq(v1, 384);
    ck_assert_uint_eq(v2, v1);
    ck_assert_uint_eq(v3, v1);
    ck_assert(memcmp(direct, want, N_IDS * v1 * sizeof *want) == 0);
    ck_assert(memcmp(imported, want, N_IDS * v1 * sizeof *want) == 0);
    free(want);
    free(direct);
    free(imported);
    remove_import(out);
}
END_TEST

/* Every imported tensor equals the original's, q_proj and k_proj (weights and biases) among
 * them; a permuted row would show here before it showed in the logits. */
START_TEST(llama_permutation_round_trip)
{
    char *out = import_ok(FIX "llama-f16.gguf", NULL);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    lora_st_file *a, *b;
    ck_assert_msg(lora__st_open(path, &a) == LORA_OK, "%s", lora_last_error());
    ck_assert_msg(lora__st_open(FIX "llama-hf/model.safetensors", &b) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_uint_eq(lora__st_count(a), lora__st_count(b));
    int permuted = 0;
    for (size_t i = 0; i < lora__st_count(b); i++) {
        const lora_st_tensor *w = lora__st_at(b, i), *g = lora__st_find(a, w->name);
        ck_assert_msg(g != NULL, "%s missing", w->name);
        ck_assert_int_eq(g->dtype, LORA_ST_F32);
        ck_assert_uint_eq(g->numel, w->numel);
        float *x = malloc(w->numel * sizeof *x);
        if (w->dtype == LORA_ST_F16)
            lora__f32_from_f16(x, w->data, w->numel);
        else
            lora__f32_from_f32(x, w->data, w->numel);
        ck_assert_msg(memcmp(x, g->data, w->numel * sizeof *x) == 0, "%s", w->name);
        permuted += strstr(w->name, "q_proj") || strstr(w->name, "k_proj");
        free(x);
    }
    ck_assert_int_eq(permuted, 8);
    lora__st_close(a);
    lora__st_close(b);
    remove_import(out);
}
END_TEST

/* models/tiny quantized to Q4_0 / Q4_1 / Q8_0: close to the original, not equal. The bound is
 * what 4-bit weights cost this model (measured 0.050 on this prompt), with room; on a question the model was
 * trained on, the next token agrees at every position of the answer's prefix. */
START_TEST(tiny_q4_logits_close)
{
    lora_tokenizer *t;
    ck_assert_int_eq(lora_tokenizer_load("models/tiny", NULL, &t), LORA_OK);
    static const char prompt[] = "<|im_start|>user\nWhat is 12 + 7?<|im_end|>\n<|im_start|>"
                                 "assistant\n12 + 7 = 19";
    int32_t q[64];
    size_t n;
    ck_assert_msg(lora_tokenizer_encode(t, prompt, strlen(prompt), 0, q, 64, &n) == LORA_OK, "%s",
                  lora_last_error());
    lora_tokenizer_free(t);
    size_t v1, v2;
    float *want = tu_logits("models/tiny", q, n, &v1);
    float *got = tu_logits(FIX "tiny-q4.gguf", q, n, &v2);
    ck_assert_uint_eq(v1, v2);
    double err = tu_max_rel_err(got, want, n * v1);
    ck_assert_msg(err < 0.1 && err > 0, "max relative error %g", err);
    size_t same = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = 0, b = 0;
        for (size_t k = 1; k < v1; k++) {
            a = got[i * v1 + k] > got[i * v1 + a] ? k : a;
            b = want[i * v1 + k] > want[i * v1 + b] ? k : b;
        }
        same += a == b;
    }
    ck_assert_msg(same + 1 >= n, "argmax agrees at %zu of %zu positions", same, n);
    free(want);
    free(got);
}
END_TEST

START_TEST(import_writes_hf_folder)
{
    char *out = import_ok(FIX "tiny-q4.gguf", "{\"dtype\": \"bf16\"}");
    char path[600];
    lora_model *m;
    ck_assert_msg(lora_model_load(out, NULL, &m) == LORA_OK, "%s", lora_last_error());
    json_t *info = json_loads(lora_model_info_json(m), 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(info, "stored_dtype")), "BF16");
    ck_assert_str_eq(json_string_value(json_object_get(info, "model_type")), "qwen2");
    ck_assert(json_is_true(json_object_get(info, "tie_word_embeddings")));
    json_decref(info);
    lora_tokenizer *t;
    ck_assert_msg(lora_model_tokenizer(m, &t) == LORA_OK, "%s", lora_last_error());
    /* the chat template came along: the turn markers render */
    char *text;
    ck_assert_msg(lora_chat_render(t, "[{\"role\": \"user\", \"content\": \"hi\"}]", NULL, &text)
                  == LORA_OK, "%s", lora_last_error());
    ck_assert_str_eq(text, "<|im_start|>user\nhi<|im_end|>\n");
    lora_string_free(text);
    lora_tokenizer_free(t);
    lora_model_free(m);
    snprintf(path, sizeof path, "%s/generation_config.json", out);
    ck_assert(lora__is_file(path));
    remove_import(out);
}
END_TEST

/* A model loaded from a GGUF path carries its tokenizer and reports the stored type: the one
 * of most values (tiny-q4.gguf is Q4_1 with its embedding in Q8_0). */
START_TEST(load_gguf_directly)
{
    lora_model *m;
    ck_assert_msg(lora_model_load(FIX "tiny-q4.gguf", NULL, &m) == LORA_OK, "%s", lora_last_error());
    json_t *info = json_loads(lora_model_info_json(m), 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(info, "stored_dtype")), "Q4_1");
    ck_assert_int_eq(json_integer_value(json_object_get(info, "vocab_size")), 384);
    json_decref(info);
    lora_tokenizer *t;
    ck_assert_msg(lora_model_tokenizer(m, &t) == LORA_OK, "%s", lora_last_error());
    /* tokens 346..383 are the converter's unused [PADn] padding: not tokens to Hugging Face */
    ck_assert_uint_eq(lora_tokenizer_vocab_size(t), 346);
    lora_tokenizer_free(t);
    lora_model_free(m);
}
END_TEST

/* lora_model_describe on a GGUF file: the loaded model's description, without the load. */
START_TEST(describe_gguf)
{
    char *d;
    ck_assert_msg(lora_model_describe(FIX "tiny-q4.gguf", &d) == LORA_OK, "%s", lora_last_error());
    json_t *got = json_loads(d, 0, NULL);
    lora_string_free(d);
    lora_model *m;
    ck_assert_msg(lora_model_load(FIX "tiny-q4.gguf", NULL, &m) == LORA_OK, "%s", lora_last_error());
    json_t *want = json_loads(lora_model_info_json(m), 0, NULL);
    lora_model_free(m);
    const char *key;
    json_t *v;
    json_object_foreach(want, key, v) {
        if (strcmp(key, "device") == 0 || strcmp(key, "threads") == 0)
            continue;
        ck_assert_msg(json_equal(json_object_get(got, key), v), "key %s differs", key);
    }
    ck_assert(json_is_true(json_object_get(got, "has_weights")));
    /* Q4_1 blocks (20 bytes per 32) for most tensors: far less than float32 */
    json_int_t stored = json_integer_value(json_object_get(got, "stored_bytes"));
    json_int_t f32 = json_integer_value(json_object_get(got, "weight_bytes"));
    ck_assert_int_gt(stored, f32 / 8);
    ck_assert_int_lt(stored, f32 / 4);
    json_decref(got);
    json_decref(want);
    /* a GGUF that holds no model is refused as the load refuses it */
    lora_status st = lora_model_load(FIX "dequant.gguf", NULL, &m);
    ck_assert_int_ne(st, LORA_OK);
    ck_assert_int_eq(lora_model_describe(FIX "dequant.gguf", &d), st);
    ck_assert_ptr_null(d);
}
END_TEST

/* --- tokenizers ---------------------------------------------------------------------------- */

static const char *const pres[] = {"qwen2", "llama-bpe", "smollm", "gpt2"};

/* Each tokenizer.ggml.pre rebuilt from metadata encodes as Hugging Face's tokenizers does with
 * the tokenizer.json it stands for (tokenize.json, written by make_fixtures.py). */
START_TEST(tokenizer_matches_hf)
{
    json_t *expected = json_load_file(FIX "tokenize.json", 0, NULL);
    ck_assert_ptr_nonnull(expected);
    char path[128];
    snprintf(path, sizeof path, FIX "tok-%s.gguf", pres[_i]);
    lora_gguf_file *f = open_ok(path);
    char *tj, *cj;
    ck_assert_msg(lora__gguf_tokenizer_build(f, &tj, &cj) == LORA_OK, "%s", lora_last_error());
    lora_tokenizer *t;
    ck_assert_msg(lora__tokenizer_from_text(tj, cj, path, &t) == LORA_OK, "%s", lora_last_error());
    json_t *cases = json_object_get(expected, pres[_i]);
    ck_assert_uint_gt(json_array_size(cases), 4);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const char *text = json_string_value(json_array_get(json_array_get(cases, i), 0));
        json_t *want = json_array_get(json_array_get(cases, i), 1);
        lora__encoding e;
        ck_assert_msg(lora__tokenizer_encode(t, text, strlen(text), 0, &e) == LORA_OK, "%s",
                      lora_last_error());
        ck_assert_msg(e.n == json_array_size(want), "%s: '%s': %zu ids, want %zu", pres[_i],
                      text, e.n, json_array_size(want));
        for (size_t k = 0; k < e.n; k++)
            ck_assert_msg(e.ids[k] == json_integer_value(json_array_get(want, k)),
                          "%s: '%s': id %zu", pres[_i], text, k);
        lora__encoding_free(&e);
    }
    ck_assert_int_eq(lora__tokenizer_special_id(t, LORA__EOS), 345);
    ck_assert_ptr_nonnull(lora__tokenizer_chat_template(t));
    lora_tokenizer_free(t);
    free(tj);
    free(cj);
    lora__gguf_close(f);
    json_decref(expected);
}
END_TEST

/* --- malformed files: a small writer for crafted headers ------------------------------------ */

typedef struct gb {
    uint8_t *p;
    size_t n, cap;
} gb;

static void put(gb *b, const void *x, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}

static void u32(gb *b, uint32_t v) { put(b, &v, 4); }
static void u64(gb *b, uint64_t v) { put(b, &v, 8); }
static void str(gb *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void kv_u32(gb *b, const char *k, uint32_t v) { str(b, k); u32(b, 4); u32(b, v); }
static void kv_str(gb *b, const char *k, const char *v) { str(b, k); u32(b, 8); str(b, v); }
static void header(gb *b, uint64_t tensors, uint64_t kvs)
{
    put(b, "GGUF", 4);
    u32(b, 3);
    u64(b, tensors);
    u64(b, kvs);
}
static void tinfo(gb *b, const char *name, uint64_t ne0, uint64_t ne1, uint32_t type,
                  uint64_t off)
{
    str(b, name);
    u32(b, ne1 ? 2 : 1);
    u64(b, ne0);
    if (ne1)
        u64(b, ne1);
    u32(b, type);
    u64(b, off);
}
static void pad(gb *b, size_t align)
{
    while (b->n % align)
        put(b, "", 1);
}
static void zeros(gb *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(b, "", 1);
}

static void expect(gb *b, lora_status want, const char *substr)
{
    lora_gguf_file *f = (lora_gguf_file *)&f;
    lora_status st = lora__gguf_open_buffer(b->p, b->n, "crafted.gguf", &f);
    ck_assert_msg(st == want, "status %d, want %d: %s", st, want, lora_last_error());
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(lora_last_error(), substr), "'%s' lacks '%s'", lora_last_error(), substr);
    ck_assert_msg(strstr(lora_last_error(), "crafted.gguf"), "%s", lora_last_error());
    free(b->p);
    *b = (gb){0};
}

/* The end of the last byte a parse must see: the end of the last value or tensor. */
static size_t parsed_end(const lora_gguf_file *f, const uint8_t *base)
{
    static const uint8_t size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    const uint8_t *end = base;
    for (size_t i = 0; i < lora__gguf_kv_count(f); i++) {
        const lora_gguf_kv *kv = lora__gguf_kv_at(f, i);
        const uint8_t *e;
        uint64_t len;
        if (kv->type == LORA_GGUF_STRING) {
            memcpy(&len, kv->data, 8);
            e = kv->data + 8 + len;
        } else if (kv->type != LORA_GGUF_ARRAY)
            e = kv->data + size[kv->type];
        else if (kv->elem == LORA_GGUF_STRING)
            e = kv->n ? (const uint8_t *)kv->strs[kv->n - 1].p + kv->strs[kv->n - 1].len : kv->data;
        else
            e = kv->data + kv->n * size[kv->elem];
        end = e > end ? e : end;
    }
    for (size_t i = 0; i < lora__gguf_tensor_count(f); i++) {
        const lora_gguf_tensor *t = lora__gguf_tensor_at(f, i);
        end = t->data + t->nbytes > end ? t->data + t->nbytes : end;
    }
    return (size_t)(end - base);
}

/* Cut anywhere before its last value or tensor ends, a file is refused with a message, never
 * read past (each cut is copied into a buffer of exactly its size, for ASan). */
START_TEST(truncated_everywhere)
{
    static const char *const files[] = {FIX "tok-smollm.gguf", FIX "llama-f16.gguf"};
    for (int k = 0; k < 2; k++) {
        size_t len;
        uint8_t *full = slurp(files[k], &len);
        lora_gguf_file *f;
        ck_assert_int_eq(lora__gguf_open_buffer(full, len, "full.gguf", &f), LORA_OK);
        size_t end = parsed_end(f, full), checked = 0;
        lora__gguf_close(f);
        ck_assert_uint_gt(end, len - 64);
        for (size_t cut = 0; cut < end; cut += cut < 12000 ? 1 : 997) {
            uint8_t *copy = malloc(cut ? cut : 1);
            memcpy(copy, full, cut);
            lora_gguf_file *g;
            lora_status st = lora__gguf_open_buffer(copy, cut, "cut.gguf", &g);
            ck_assert_msg(st == LORA_ERR_FORMAT, "%s cut at %zu: status %d", files[k], cut, st);
            ck_assert_ptr_null(g);
            ck_assert(strstr(lora_last_error(), "cut.gguf"));
            free(copy);
            checked++;
        }
        ck_assert_uint_gt(checked, 7000);
        free(full);
    }
}
END_TEST

START_TEST(huge_counts_and_lengths)
{
    gb b = {0};
    header(&b, 0, UINT64_MAX);
    expect(&b, LORA_ERR_FORMAT, "metadata count");
    header(&b, 1ull << 62, 0);
    expect(&b, LORA_ERR_FORMAT, "tensor count");
    header(&b, 0, 1);
    u64(&b, 1ull << 60);
    put(&b, "general.name", 12);
    expect(&b, LORA_ERR_FORMAT, "past the end");
    header(&b, 0, 1);
    str(&b, "k");
    u32(&b, 8);
    u64(&b, UINT64_MAX);
    expect(&b, LORA_ERR_FORMAT, "past the end");
    header(&b, 0, 1);
    str(&b, "tokens");
    u32(&b, 9);
    u32(&b, 8);
    u64(&b, 1ull << 61);
    expect(&b, LORA_ERR_FORMAT, "strings run past the end");
    header(&b, 0, 1);
    str(&b, "scores");
    u32(&b, 9);
    u32(&b, 6);
    u64(&b, (1ull << 62) + 1);   /* times 4 wraps around to 4 */
    u32(&b, 0);
    expect(&b, LORA_ERR_FORMAT, "float32 elements run past the end");
    header(&b, 1, 0);
    tinfo(&b, "t", 1ull << 30, 1ull << 30, 0, 0);
    zeros(&b, 64);
    expect(&b, LORA_ERR_FORMAT, "past its end");
    header(&b, 1, 0);
    str(&b, "t");
    u32(&b, 2);
    u64(&b, 1ull << 62);
    u64(&b, 1ull << 62);
    expect(&b, LORA_ERR_FORMAT, "overflows");
}
END_TEST

START_TEST(bad_structure)
{
    gb b = {0};
    put(&b, "GGUX", 4);
    zeros(&b, 20);
    expect(&b, LORA_ERR_FORMAT, "not a GGUF file");
    put(&b, "GGUF", 4);
    u32(&b, 1);
    zeros(&b, 16);
    expect(&b, LORA_ERR_UNSUPPORTED, "version 1");
    put(&b, "GGUF", 4);
    u32(&b, 0x03000000);
    zeros(&b, 16);
    expect(&b, LORA_ERR_FORMAT, "big-endian");
    header(&b, 0, 1);
    str(&b, "k");
    u32(&b, 13);
    u32(&b, 0);
    expect(&b, LORA_ERR_FORMAT, "value type 13");
    header(&b, 0, 1);
    str(&b, "k");
    u32(&b, 7);
    put(&b, "\2", 1);
    expect(&b, LORA_ERR_FORMAT, "bool value 2");
    header(&b, 0, 1);
    str(&b, "k");
    u32(&b, 9);
    u32(&b, 9);
    u64(&b, 0);
    expect(&b, LORA_ERR_UNSUPPORTED, "arrays of arrays");
    header(&b, 0, 1);
    str(&b, "");
    u32(&b, 4);
    u32(&b, 0);
    expect(&b, LORA_ERR_FORMAT, "empty");
    header(&b, 0, 2);
    kv_u32(&b, "general.alignment", 32);
    kv_u32(&b, "general.alignment", 64);
    expect(&b, LORA_ERR_FORMAT, "'general.alignment' appears twice");
    header(&b, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    expect(&b, LORA_ERR_FORMAT, "power of two");
    header(&b, 1, 0);
    str(&b, "t");
    u32(&b, 5);
    zeros(&b, 64);
    expect(&b, LORA_ERR_FORMAT, "n_dims 5");
    header(&b, 1, 0);
    tinfo(&b, "t", 0, 0, 0, 0);
    expect(&b, LORA_ERR_FORMAT, "is zero");
    header(&b, 1, 0);
    tinfo(&b, "t", 64, 0, 99, 0);
    expect(&b, LORA_ERR_FORMAT, "type id 99 is not a ggml type");
    header(&b, 1, 0);
    tinfo(&b, "t", 48, 0, 12, 0);
    expect(&b, LORA_ERR_FORMAT, "not a multiple of the Q4_K block of 256");
}
END_TEST

START_TEST(bad_layout)
{
    gb b = {0};
    header(&b, 2, 0);
    tinfo(&b, "a", 8, 0, 0, 0);
    tinfo(&b, "a", 8, 0, 0, 32);
    pad(&b, 32);
    zeros(&b, 64);
    expect(&b, LORA_ERR_FORMAT, "tensor name 'a' appears twice");
    header(&b, 1, 0);
    tinfo(&b, "a", 8, 0, 0, 16);
    pad(&b, 32);
    zeros(&b, 64);
    expect(&b, LORA_ERR_FORMAT, "offset 16 is not a multiple of the alignment 32");
    header(&b, 2, 0);
    tinfo(&b, "a", 16, 0, 0, 0);
    tinfo(&b, "b", 8, 0, 0, 32);
    pad(&b, 32);
    zeros(&b, 96);
    expect(&b, LORA_ERR_FORMAT, "overlap");
    header(&b, 1, 0);
    tinfo(&b, "a", 8, 0, 0, 32);
    pad(&b, 32);
    zeros(&b, 40);
    expect(&b, LORA_ERR_FORMAT, "run past its end");
    header(&b, 1, 1);
    kv_u32(&b, "general.alignment", 64);
    tinfo(&b, "a", 8, 0, 0, 0);
    zeros(&b, 8);   /* the data section would start at 64, past the end */
    expect(&b, LORA_ERR_FORMAT, "past the end");
    /* the same file, well formed, opens */
    header(&b, 2, 0);
    tinfo(&b, "a", 8, 0, 0, 0);
    tinfo(&b, "b", 8, 0, 0, 32);
    pad(&b, 32);
    zeros(&b, 64);
    lora_gguf_file *f;
    ck_assert_msg(lora__gguf_open_buffer(b.p, b.n, "ok.gguf", &f) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_uint_eq(lora__gguf_tensor_count(f), 2);
    lora__gguf_close(f);
    free(b.p);
}
END_TEST

/* A Llama-shaped header (arch named) whose one tensor has the given type, written to a file for the model
 * open; the conversion stops at the tensor, before the (absent) tokenizer. */
static char *model_file(const char *dir, const char *arch, uint32_t type, const char *extra_key,
                        const char *val)
{
    gb b = {0};
    header(&b, 1, 6 + (extra_key != NULL));
    kv_str(&b, "general.architecture", arch);
    kv_u32(&b, "llama.block_count", 1);
    kv_u32(&b, "llama.embedding_length", 256);
    kv_u32(&b, "llama.feed_forward_length", 256);
    kv_u32(&b, "llama.attention.head_count", 2);
    kv_u32(&b, "llama.context_length", 64);
    if (extra_key)
        kv_str(&b, extra_key, val);
    tinfo(&b, "token_embd.weight", 256, 4, type, 0);
    pad(&b, 32);
    zeros(&b, 4 * lora__gguf_type_bytes(type) * (256 / lora__gguf_type_block(type)));
    char *path = malloc(strlen(dir) + 16);
    sprintf(path, "%s/m.gguf", dir);
    ck_assert_int_eq(lora__write_file_atomic(path, b.p, b.n), LORA_OK);
    free(b.p);
    return path;
}

START_TEST(unsupported_refused_by_name)
{
    char *dir = tu_st_mkdtemp();
    lora_model *m = (lora_model *)&m;
    char *p = model_file(dir, "llama", 16, NULL, NULL);
    ck_assert_int_eq(lora_model_load(p, NULL, &m), LORA_ERR_UNSUPPORTED);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(lora_last_error(), "'token_embd.weight' has type IQ2_XXS"), "%s",
                  lora_last_error());
    free(p);
    p = model_file(dir, "llama", 0, "llama.rope.scaling.type", "yarn");
    ck_assert_int_eq(lora_gguf_import(p, dir, NULL), LORA_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lora_last_error(), "'yarn'"), "%s", lora_last_error());
    free(p);
    p = model_file(dir, "mamba", 0, NULL, NULL);
    ck_assert_int_eq(lora_gguf_import(p, dir, NULL), LORA_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lora_last_error(), "'general.architecture' = 'mamba'"), "%s",
                  lora_last_error());
    free(p);
    tu_st_rmtree(dir);
    free(dir);
}
END_TEST

/* Tokenizer metadata this version cannot rebuild is refused by name. */
START_TEST(unsupported_tokenizer_refused)
{
    size_t len;
    uint8_t *buf = slurp(FIX "tok-qwen2.gguf", &len);
    /* same length replacements keep the layout valid */
    static const char *const swaps[][3] = {
        {"qwen2", "qwen9", "'tokenizer.ggml.pre' = 'qwen9'"},
        {"gpt2", "bert", "'tokenizer.ggml.model' = 'bert'"},
    };
    for (int k = 0; k < 2; k++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        /* the value follows its key: find "tokenizer.ggml.pre"/".model", then the value */
        const char *key = k == 0 ? "tokenizer.ggml.pre" : "tokenizer.ggml.model";
        uint8_t *at = memmem(copy, len, key, strlen(key));
        ck_assert_ptr_nonnull(at);
        at = memmem(at, len - (size_t)(at - copy), swaps[k][0], strlen(swaps[k][0]));
        ck_assert_ptr_nonnull(at);
        memcpy(at, swaps[k][1], strlen(swaps[k][1]));
        lora_gguf_file *f;
        ck_assert_int_eq(lora__gguf_open_buffer(copy, len, "tok.gguf", &f), LORA_OK);
        char *tj = NULL, *cj = NULL;
        ck_assert_int_eq(lora__gguf_tokenizer_build(f, &tj, &cj), LORA_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(lora_last_error(), swaps[k][2]), "%s", lora_last_error());
        ck_assert_ptr_null(tj);
        lora__gguf_close(f);
        free(copy);
    }
    free(buf);
}
END_TEST

/* The bytes of element i of a string array key, in a GGUF held in memory. */
static uint8_t *array_string(uint8_t *buf, size_t len, const char *key, uint64_t i)
{
    uint8_t *at = memmem(buf, len, key, strlen(key));
    ck_assert_ptr_nonnull(at);
    at += strlen(key) + 16; /* the value type, the element type, the count */
    for (uint64_t k = 0;; k++) {
        uint64_t n;
        memcpy(&n, at, 8);
        if (k == i)
            return at + 8;
        at += 8 + n;
    }
}

/* Tokenizer metadata that would make a tokenizer.json its folder could not load is refused
 * alike by the load, the import (which leaves the folder as it was) and the description: a
 * token listed twice, a token holding a NUL byte, a merge of tokens not in the vocabulary. */
START_TEST(tokenizer_metadata_checked)
{
    static const struct {
        const char *key;
        uint64_t element;
        const char *bytes; /* as long as the element they replace */
        const char *message;
    } cases[] = {
        {"tokenizer.ggml.tokens", 1, "\xc4\x80", "element 1 '\xc4\x80' is listed twice"},
        {"tokenizer.ggml.tokens", 1, "a\0", "element 1 'a' contains a NUL byte"},
        {"tokenizer.ggml.merges", 2, "i Z", "key 'model.merges' entry 2"},
    };
    size_t len;
    uint8_t *buf = slurp(FIX "llama-f16.gguf", &len);
    char *dir = tu_st_mkdtemp(), path[4096], out[4096 + 8], kept[4096 + 32];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(lora_gguf_import(FIX "llama-f16.gguf", out, NULL), LORA_OK);
    snprintf(kept, sizeof kept, "%s/tokenizer.json", out);
    char *before;
    size_t before_len;
    ck_assert_int_eq(lora__read_file(kept, 1u << 24, &before, &before_len), LORA_OK);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        uint8_t *at = array_string(copy, len, cases[k].key, cases[k].element);
        memcpy(at, cases[k].bytes, strlen(cases[k].bytes) + (cases[k].bytes[0] == 'a'));
        ck_assert_int_eq(lora__write_file_atomic(path, copy, len), LORA_OK);
        free(copy);
        lora_model *m = (lora_model *)&m;
        ck_assert_int_eq(lora_model_load(path, NULL, &m), LORA_ERR_FORMAT);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(lora_last_error(), cases[k].message), "%zu: %s", k, lora_last_error());
        ck_assert_int_eq(lora_gguf_import(path, out, NULL), LORA_ERR_FORMAT);
        ck_assert_msg(strstr(lora_last_error(), cases[k].message), "%zu: %s", k, lora_last_error());
        char *d = NULL;
        ck_assert_int_eq(lora_model_describe(path, &d), LORA_ERR_FORMAT);
        ck_assert_ptr_null(d);
        char *after;
        size_t after_len;
        ck_assert_int_eq(lora__read_file(kept, 1u << 24, &after, &after_len), LORA_OK);
        ck_assert(after_len == before_len && memcmp(after, before, before_len) == 0);
        free(after);
    }
    free(before);
    free(buf);
    tu_st_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(import_misuse)
{
    ck_assert_int_eq(lora_gguf_import(NULL, "x", NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_gguf_import(FIX "tiny-q4.gguf", NULL, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_gguf_import(FIX "tiny-q4.gguf", "/tmp/x", "{\"dtype\": \"q4\"}"),
                     LORA_ERR_CONFIG);
    ck_assert_int_eq(lora_gguf_import(FIX "tiny-q4.gguf", "/tmp/x", "{\"dtyp\": \"f32\"}"),
                     LORA_ERR_CONFIG);
    ck_assert(strstr(lora_last_error(), "'dtyp'"));
    ck_assert_int_eq(lora_gguf_import("tests/fixtures/gguf/none.gguf", "/tmp/x", NULL),
                     LORA_ERR_IO);
    ck_assert_int_eq(lora_gguf_import(FIX "tok-qwen2.gguf", "/tmp/x", NULL), LORA_ERR_FORMAT);
    ck_assert_msg(strstr(lora_last_error(), "'llama.block_count' is missing"), "%s",
                  lora_last_error());
    /* a safetensors file is not a GGUF, and not a folder */
    lora_model *m;
    ck_assert_int_eq(lora_model_load(FIX "llama-hf/model.safetensors", NULL, &m), LORA_ERR_IO);
}
END_TEST

static TCase *tcase(Suite *s, const char *name, const char *tags)
{
    TCase *tc = tcase_create(name);
    tcase_set_tags(tc, tags);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *gguf_suite(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase(s, "dequant", "core");
    tcase_add_test(tc, dequant_equals_gguf_py);
    tcase_add_test(tc, source_ranges_match_whole);
    tc = tcase(s, "models", "core");
    tcase_add_test(tc, llama_gguf_logits_equal_original);
    tcase_add_test(tc, llama_permutation_round_trip);
    tcase_add_test(tc, tiny_q4_logits_close);
    tcase_add_test(tc, import_writes_hf_folder);
    tcase_add_test(tc, load_gguf_directly);
    tcase_add_test(tc, describe_gguf);
    tc = tcase(s, "tokenizer", "core");
    tcase_add_loop_test(tc, tokenizer_matches_hf, 0, 4);
    tc = tcase(s, "malformed", "limits");
    tcase_add_test(tc, truncated_everywhere);
    tcase_add_test(tc, huge_counts_and_lengths);
    tcase_add_test(tc, bad_structure);
    tcase_add_test(tc, bad_layout);
    tc = tcase(s, "refusals", "misuse");
    tcase_add_test(tc, unsupported_refused_by_name);
    tcase_add_test(tc, unsupported_tokenizer_refused);
    tcase_add_test(tc, tokenizer_metadata_checked);
    tcase_add_test(tc, import_misuse);
    return s;
}

int main(void) { return tu_run_suite(gguf_suite()); }
