/* The tokenizer: exact against Hugging Face (golden files), added and special tokens, invalid
 * UTF-8, offsets, streaming, malformed files, misuse, threads, pathological inputs. */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lora.h"
#include "tokenizer/bytelevel.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/suite.h"

#define QWEN "tests/fixtures/qwen-tokenizer"

/* ---- helpers ------------------------------------------------------------------------------ */

static lora_tokenizer *qwen; /* loaded once per test case, before the tests fork */

static void load_qwen(void)
{
    lora_status st = lora_tokenizer_load(QWEN, NULL, &qwen);
    if (st != LORA_OK) {
        fprintf(stderr, "cannot load %s: %s\n", QWEN, lora_last_error());
        exit(1);
    }
}

static void free_qwen(void)
{
    lora_tokenizer_free(qwen);
    qwen = NULL;
}

static int32_t *encode(const lora_tokenizer *t, const char *s, size_t len, unsigned flags,
                       size_t *n)
{
    lora_status st = lora_tokenizer_encode(t, s, len, flags, NULL, 0, n);
    ck_assert_msg(st == LORA_OK || st == LORA_ERR_RANGE, "encode: %s", lora_last_error());
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    st = lora_tokenizer_encode(t, s, len, flags, ids, *n, n);
    ck_assert_msg(st == LORA_OK, "encode: %s", lora_last_error());
    return ids;
}

static char *decode(const lora_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                    size_t *len)
{
    char *text = NULL;
    lora_status st = lora_tokenizer_decode(t, ids, n, flags, &text, len);
    ck_assert_msg(st == LORA_OK, "decode: %s", lora_last_error());
    ck_assert_ptr_nonnull(text);
    return text;
}

static void assert_ids(const int32_t *got, size_t n, const int32_t *want, size_t m)
{
    ck_assert_msg(n == m, "%zu ids, expected %zu", n, m);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "id %zu: %d, expected %d", i, got[i], want[i]);
}

static void assert_encodes(const lora_tokenizer *t, const char *s, unsigned flags,
                           const int32_t *want, size_t m)
{
    size_t n;
    int32_t *ids = encode(t, s, strlen(s), flags, &n);
    assert_ids(ids, n, want, m);
    free(ids);
}

#define ENCODES(t, s, flags, ...)                                                                \
    do {                                                                                       \
        const int32_t want_[] = {__VA_ARGS__};                                                 \
        assert_encodes(t, s, flags, want_, sizeof want_ / sizeof want_[0]);                    \
    } while (0)

/* The cases of a golden JSONL file: every line's ids and decoded text; returns the count. */
static size_t check_golden(const lora_tokenizer *t, const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, cases = 0, lineno = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        lineno++;
        json_error_t jerr;
        json_t *c = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &jerr);
        ck_assert_msg(c != NULL, "%s:%zu: %s", path, lineno, jerr.text);
        const json_t *text = json_object_get(c, "text"), *ids = json_object_get(c, "ids");
        const json_t *dec = json_object_get(c, "decoded");
        size_t n;
        int32_t *mine = encode(t, json_string_value(text), json_string_length(text), 0, &n);
        ck_assert_msg(n == json_array_size(ids), "%s:%zu: %zu ids, expected %zu", path, lineno,
                      n, json_array_size(ids));
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(mine[i] == json_integer_value(json_array_get(ids, i)),
                          "%s:%zu: id %zu is %d, expected %lld", path, lineno, i, mine[i],
                          (long long)json_integer_value(json_array_get(ids, i)));
        size_t len;
        char *s = decode(t, mine, n, 0, &len);
        ck_assert_msg(len == json_string_length(dec) && memcmp(s, json_string_value(dec), len) == 0,
                      "%s:%zu: decoded text differs", path, lineno);
        lora_string_free(s);
        free(mine);
        json_decref(c);
        cases++;
    }
    free(line);
    fclose(f);
    return cases;
}

/* A temporary folder with files; removed by rm_dir. */
static char *make_dir(void)
{
    char *d = strdup("/tmp/lora-tok-XXXXXX");
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

static void write_file(const char *dir, const char *name, const char *text, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
}

static void copy_file(const char *from, const char *dir, const char *name)
{
    FILE *f = fopen(from, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", from);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    write_file(dir, name, buf, (size_t)n);
    free(buf);
}

static void rm_dir(char *dir)
{
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json",
                                        "config.json", "model.safetensors"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    free(dir);
}

/* A tiny byte-level BPE tokenizer.json: ids 0..255 are the bytes, then ab abc Ġa Ġab ĠĠ, and
 * added tokens <s> (special), <x> (lstrip), [W] (single_word), <y> (rstrip), <x>> (261..265);
 * Qwen's pre-tokenizer regex; merges as "a b" strings or ["a", "b"] pairs. */
static char *tiny_json(int pair_merges)
{
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char s[4];
        unsigned char byte = (unsigned char)b;
        size_t n = lora__bytelevel_encode(&byte, 1, s);
        s[n] = '\0';
        json_object_set_new(vocab, s, json_integer(b));
    }
    static const char *const extra[] = {"ab", "abc", "\xC4\xA0" "a", "\xC4\xA0" "ab",
                                        "\xC4\xA0\xC4\xA0"};
    for (int i = 0; i < 5; i++)
        json_object_set_new(vocab, extra[i], json_integer(256 + i));
    static const char *const merges[][2] = {{"a", "b"}, {"ab", "c"}, {"\xC4\xA0", "a"},
                                            {"\xC4\xA0" "a", "b"}, {"\xC4\xA0", "\xC4\xA0"}};
    json_t *m = json_array();
    for (int i = 0; i < 5; i++) {
        if (pair_merges) {
            json_array_append_new(m, json_pack("[ss]", merges[i][0], merges[i][1]));
        } else {
            char s[32];
            snprintf(s, sizeof s, "%s %s", merges[i][0], merges[i][1]);
            json_array_append_new(m, json_string(s));
        }
    }
    json_t *root = json_load_file(QWEN "/tokenizer.json", 0, NULL);
    ck_assert_ptr_nonnull(root);
    json_t *pre = json_incref(json_object_get(root, "pre_tokenizer"));
    json_decref(root);
    json_t *added = json_array();
    static const struct { const char *c; const char *flag; } at[] = {
        {"<s>", "special"}, {"<x>", "lstrip"}, {"[W]", "single_word"}, {"<y>", "rstrip"},
        {"<x>>", NULL}};
    for (int i = 0; i < 5; i++) {
        json_t *o = json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", 261 + i, "content", at[i].c,
                              "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0,
                              "special", 0);
        if (at[i].flag)
            json_object_set_new(o, at[i].flag, json_true());
        json_array_append_new(added, o);
    }
    json_t *t = json_pack("{s:s,s:o,s:{s:s},s:o,s:{s:s,s:b,s:b,s:b},s:{s:s,s:n,s:n,s:b,s:b,s:o,s:o}}",
                          "version", "1.0", "added_tokens", added, "normalizer", "type", "NFC",
                          "pre_tokenizer", pre, "decoder", "type", "ByteLevel",
                          "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 0, "model",
                          "type", "BPE", "dropout", "unk_token", "byte_fallback", 0,
                          "ignore_merges", 0, "vocab", vocab, "merges", m);
    ck_assert_ptr_nonnull(t);
    char *s = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    return s;
}

static lora_tokenizer *load_text(const char *json, const char *config, lora_status *st)
{
    char *dir = make_dir();
    write_file(dir, "tokenizer.json", json, strlen(json));
    if (config)
        write_file(dir, "tokenizer_config.json", config, strlen(config));
    lora_tokenizer *t = (lora_tokenizer *)1;
    *st = lora_tokenizer_load(dir, NULL, &t);
    if (*st != LORA_OK)
        ck_assert_ptr_null(t);
    rm_dir(dir);
    return t;
}

static lora_tokenizer *tiny(int pair_merges)
{
    char *json = tiny_json(pair_merges);
    lora_status st;
    lora_tokenizer *t = load_text(json, NULL, &st);
    free(json);
    ck_assert_msg(st == LORA_OK, "tiny: %s", lora_last_error());
    return t;
}

/* ---- golden ------------------------------------------------------------------------------- */

START_TEST(golden_encodings)
{
    ck_assert_uint_eq(check_golden(qwen, QWEN "/golden_encodings.jsonl"), 40);
}
END_TEST

START_TEST(golden_random)
{
    ck_assert_uint_ge(check_golden(qwen, QWEN "/golden_random.jsonl"), 2500);
}
END_TEST

START_TEST(accessors_and_info)
{
    ck_assert_uint_eq(lora_tokenizer_vocab_size(qwen), 151669);
    ck_assert_int_eq(lora__tokenizer_special_id(qwen, LORA__EOS), 151645);
    ck_assert_str_eq(lora__tokenizer_special_text(qwen, LORA__EOS), "<|im_end|>");
    ck_assert_int_eq(lora__tokenizer_special_id(qwen, LORA__PAD), 151643);
    ck_assert_str_eq(lora__tokenizer_special_text(qwen, LORA__PAD), "<|endoftext|>");
    ck_assert_int_eq(lora__tokenizer_special_id(qwen, LORA__BOS), -1);
    ck_assert_ptr_null(lora__tokenizer_special_text(qwen, LORA__BOS));
    const char *tmpl = lora__tokenizer_chat_template(qwen);
    ck_assert_ptr_nonnull(tmpl);
    ck_assert(strncmp(tmpl, "{%- if tools %}", 15) == 0);
    ck_assert_ptr_null(lora__tokenizer_template_override(qwen));
    json_t *info = json_loads(lora_tokenizer_info_json(qwen), 0, NULL);
    ck_assert_ptr_nonnull(info);
    ck_assert_int_eq(json_integer_value(json_object_get(info, "vocab_size")), 151669);
    ck_assert_int_eq(json_integer_value(json_object_get(info, "eos_token_id")), 151645);
    ck_assert_int_eq(json_integer_value(json_object_get(info, "pad_token_id")), 151643);
    ck_assert(json_is_null(json_object_get(info, "bos_token_id")));
    ck_assert(json_is_null(json_object_get(info, "bos_token")));
    ck_assert_str_eq(json_string_value(json_object_get(info, "eos_token")), "<|im_end|>");
    ck_assert_str_eq(json_string_value(json_object_get(info, "chat_template")), "qwen3");
    json_decref(info);
    int32_t id = -5;
    ck_assert_int_eq(lora_tokenizer_token_id(qwen, "<|im_end|>", &id), LORA_OK);
    ck_assert_int_eq(id, 151645);
    ck_assert_int_eq(lora_tokenizer_token_id(qwen, "\xC4\xA0the", &id), LORA_OK);
    ENCODES(qwen, " the", 0, id);
    ck_assert_int_eq(lora_tokenizer_token_id(qwen, "no such token at all", &id), LORA_ERR_RANGE);
    ck_assert_int_eq(id, -1);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "no such token"));
}
END_TEST

/* info_json names the renderer a folder's template gets: none, or "custom" for a template no
 * built-in renders. */
START_TEST(info_names_custom_templates)
{
    char *json = tiny_json(0);
    lora_status st;
    lora_tokenizer *t = load_text(json, "{\"chat_template\": \"{{ messages }}\"}", &st);
    ck_assert_msg(st == LORA_OK, "%s", lora_last_error());
    json_t *info = json_loads(lora_tokenizer_info_json(t), 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(info, "chat_template")), "custom");
    json_decref(info);
    lora_tokenizer_free(t);
    t = load_text(json, NULL, &st);
    ck_assert_int_eq(st, LORA_OK);
    info = json_loads(lora_tokenizer_info_json(t), 0, NULL);
    ck_assert(json_is_null(json_object_get(info, "chat_template")));
    json_decref(info);
    lora_tokenizer_free(t);
    free(json);
}
END_TEST

START_TEST(template_override_option)
{
    lora_tokenizer *t = NULL;
    ck_assert_int_eq(lora_tokenizer_load(QWEN "/tokenizer.json", "{\"chat_template\": \"qwen3\"}",
                                         &t), LORA_OK);
    ck_assert_str_eq(lora__tokenizer_template_override(t), "qwen3");
    json_t *info = json_loads(lora_tokenizer_info_json(t), 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(info, "chat_template")), "qwen3");
    json_decref(info);
    /* the config file beside a tokenizer.json path is read too */
    ck_assert_int_eq(lora__tokenizer_special_id(t, LORA__EOS), 151645);
    lora_tokenizer_free(t);
    ck_assert_int_eq(lora_tokenizer_load(QWEN, "{\"chat_template\": \"auto\"}", &t), LORA_OK);
    ck_assert_ptr_null(lora__tokenizer_template_override(t));
    lora_tokenizer_free(t);
}
END_TEST

/* ---- added and special tokens ------------------------------------------------------------- */

START_TEST(special_as_text)
{
    /* oracle: tokenizers with encode_special_tokens = True */
    ENCODES(qwen, "x<|im_end|>y", 0, 87, 151645, 88);
    ENCODES(qwen, "x<|im_end|>y", LORA_ENCODE_SPECIAL_AS_TEXT, 87, 27, 91, 318, 6213, 91, 29, 88);
    /* <tool_call> is an added token that is not special: still matched */
    ENCODES(qwen, "<tool_call><|im_start|>user", LORA_ENCODE_SPECIAL_AS_TEXT, 151657, 27, 91, 318,
            4906, 91, 29, 872);
}
END_TEST

START_TEST(merges_both_forms)
{
    for (int form = 0; form < 2; form++) {
        lora_tokenizer *t = tiny(form);
        /* oracle: tokenizers on the same file; "a b" ranks first, so " ab" is Ġ + ab */
        ENCODES(t, "abcab ab abc", 0, 257, 256, 32, 256, 32, 257);
        ck_assert_uint_eq(lora_tokenizer_vocab_size(t), 266);
        lora_tokenizer_free(t);
    }
}
END_TEST

START_TEST(added_token_flags)
{
    lora_tokenizer *t = tiny(0);
    /* oracle: tokenizers on the same file */
    ENCODES(t, "a  <x> b", 0, 97, 262, 32, 98);    /* lstrip takes both spaces */
    ENCODES(t, "  <x>", 0, 262);
    ENCODES(t, "x[W]y", 0, 120, 91, 87, 93, 121);  /* single_word: letters beside it */
    ENCODES(t, "x [W] y", 0, 120, 32, 263, 32, 121);
    ENCODES(t, "[W]", 0, 263);
    ENCODES(t, "_[W]", 0, 95, 91, 87, 93);
    ENCODES(t, "\xE4\xB8\xAD[W]", 0, 228, 184, 173, 91, 87, 93);
    ENCODES(t, "<y>  z", 0, 264, 122);             /* rstrip */
    ENCODES(t, "<x>>>", 0, 265, 62);               /* longest match */
    ENCODES(t, "<s>a<s>", 0, 261, 97, 261);
    ENCODES(t, "<s>a<x>", LORA_ENCODE_SPECIAL_AS_TEXT, 60, 115, 62, 97, 262);
    ENCODES(t, "a\xCC\x81" "b", 0, 195, 161, 98);  /* NFC: a + U+0301 is U+00E1 */
    size_t len;
    const int32_t ids[] = {261, 97, 262, 263};
    char *s = decode(t, ids, 4, 0, &len);
    ck_assert_str_eq(s, "<s>a<x>[W]");
    lora_string_free(s);
    s = decode(t, ids, 4, LORA_DECODE_SKIP_SPECIAL, &len);
    ck_assert_str_eq(s, "a<x>[W]");
    ck_assert_uint_eq(len, 7);
    lora_string_free(s);
    lora_tokenizer_free(t);
}
END_TEST

START_TEST(decode_skip_special)
{
    const char *text = "<|im_start|>user\nhi<tool_call><|im_end|>";
    size_t n, len;
    int32_t *ids = encode(qwen, text, strlen(text), 0, &n);
    char *s = decode(qwen, ids, n, 0, &len);
    ck_assert_str_eq(s, text);
    lora_string_free(s);
    s = decode(qwen, ids, n, LORA_DECODE_SKIP_SPECIAL, &len);
    ck_assert_str_eq(s, "user\nhi<tool_call>");
    lora_string_free(s);
    free(ids);
}
END_TEST

/* ---- invalid UTF-8 -------------------------------------------------------------------------- */

START_TEST(invalid_utf8_is_format_error)
{
    size_t n = 7;
    int32_t ids[8];
    ck_assert_int_eq(lora_tokenizer_encode(qwen, "abc\xFF" "d", 5, 0, ids, 8, &n), LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "byte 3"));
    ck_assert_int_eq(lora_tokenizer_encode(qwen, "\xE4\xB8", 2, 0, ids, 8, &n), LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "byte 0"));
    /* a surrogate and an overlong form are ill-formed too */
    ck_assert_int_eq(lora_tokenizer_encode(qwen, "x\xED\xA0\x80", 4, 0, ids, 8, &n), LORA_ERR_FORMAT);
    ck_assert_int_eq(lora_tokenizer_encode(qwen, "xy\xC0\xAF", 4, 0, ids, 8, &n), LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "byte 2"));
}
END_TEST

/* Encoding bad with UTF8_REPLACE equals encoding good (Python's errors="replace" of bad). */
static void assert_replaced(const char *bad, size_t bad_len, const char *good)
{
    size_t n, m;
    int32_t *a = encode(qwen, bad, bad_len, LORA_ENCODE_UTF8_REPLACE, &n);
    int32_t *b = encode(qwen, good, strlen(good), 0, &m);
    assert_ids(a, n, b, m);
    free(a);
    free(b);
}

START_TEST(invalid_utf8_replaced)
{
    const char *r = LORA__REPLACEMENT;
    char good[64];
    assert_replaced("ab\xFF" "cd", 5, "ab\xEF\xBF\xBD" "cd");
    /* a cut-off character is one maximal subpart: one U+FFFD */
    snprintf(good, sizeof good, "a%sx", r);
    assert_replaced("a\xE4\xB8x", 4, good);
    snprintf(good, sizeof good, "%s", r);
    assert_replaced("\xF0\x9F\x98", 3, good);
    /* C0 never starts a character; ED A0 is a surrogate's start: every byte is its own */
    snprintf(good, sizeof good, "%s%s!", r, r);
    assert_replaced("\xC0\xAF!", 3, good);
    snprintf(good, sizeof good, "%s%s%s", r, r, r);
    assert_replaced("\xED\xA0\x80", 3, good);
    ENCODES(qwen, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 0, 57332); /* oracle */
}
END_TEST

/* ---- decode range, streaming -------------------------------------------------------------- */

START_TEST(decode_out_of_range)
{
    char *s = (char *)1;
    const int32_t bad1[] = {9707, -1};
    ck_assert_int_eq(lora_tokenizer_decode(qwen, bad1, 2, 0, &s, NULL), LORA_ERR_RANGE);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "index 1"));
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "-1"));
    const int32_t bad2[] = {151669};
    ck_assert_int_eq(lora_tokenizer_decode(qwen, bad2, 1, 0, &s, NULL), LORA_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "151669"));
    const int32_t ok[] = {151668};
    ck_assert_int_eq(lora_tokenizer_decode(qwen, ok, 1, 0, &s, NULL), LORA_OK);
    lora_string_free(s);
}
END_TEST

START_TEST(decode_replaces_invalid_bytes)
{
    /* 11162 is " " plus the first two bytes of a four-byte character (oracle: " \uFFFD") */
    size_t len;
    const int32_t ids[] = {11162};
    char *s = decode(qwen, ids, 1, 0, &len);
    ck_assert_str_eq(s, " \xEF\xBF\xBD");
    lora_string_free(s);
}
END_TEST

/* Streams ids through a detokenizer: every piece is whole characters, the concatenation is the
 * decode; returns how many pushes held everything back. */
static int stream(const int32_t *ids, size_t n, unsigned flags)
{
    lora_detokenizer *d = NULL;
    ck_assert_int_eq(lora_detokenizer_create(qwen, flags, &d), LORA_OK);
    char *all = malloc(64 * n + 16);
    size_t total = 0;
    int held = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *piece = NULL;
        size_t len = 99;
        lora_status st = i < n ? lora_detokenizer_push(d, ids[i], &piece, &len)
                               : lora_detokenizer_flush(d, &piece, &len);
        ck_assert_msg(st == LORA_OK, "%s", lora_last_error());
        ck_assert_uint_eq(lora__utf8_first_invalid((const unsigned char *)piece, len), len);
        held += i < n && len == 0;
        memcpy(all + total, piece, len);
        total += len;
    }
    size_t dlen;
    char *want = decode(qwen, ids, n, flags, &dlen);
    ck_assert_uint_eq(total, dlen);
    ck_assert(memcmp(all, want, dlen) == 0);
    lora_string_free(want);
    free(all);
    lora_detokenizer_free(d);
    return held;
}

START_TEST(detokenizer_streams_whole_characters)
{
    const char *text = "flags \xF0\x9F\x87\xA8\xF0\x9F\x87\xB3 and \xE4\xB8\xAD\xE6\x96\x87 "
                       "<|im_end|> \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD done";
    size_t n;
    int32_t *ids = encode(qwen, text, strlen(text), 0, &n);
    ck_assert_int_gt(stream(ids, n, 0), 0); /* the flag's bytes are split across tokens */
    stream(ids, n, LORA_DECODE_SKIP_SPECIAL);
    free(ids);
    /* a stream that ends inside a character: the flush shows U+FFFD, as decode does */
    const int32_t cut[] = {9707, 11162};
    stream(cut, 2, 0);
    /* invalid byte sequences in the middle (continuation bytes alone) */
    const int32_t odd[] = {229, 101, 9707, 11162, 11162, 229};
    stream(odd, 6, 0);
}
END_TEST

START_TEST(detokenizer_range_and_reuse)
{
    lora_detokenizer *d = NULL;
    ck_assert_int_eq(lora_detokenizer_create(qwen, 0, &d), LORA_OK);
    const char *s;
    size_t len;
    ck_assert_int_eq(lora_detokenizer_push(d, 11162, &s, &len), LORA_OK);
    ck_assert_uint_eq(len, 1); /* " " shown, the two bytes held */
    ck_assert_int_eq(lora_detokenizer_push(d, 151669, &s, &len), LORA_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "151669"));
    ck_assert_int_eq(lora_detokenizer_push(d, -3, &s, &len), LORA_ERR_RANGE);
    /* nothing changed: the held bytes complete into U+1F1E8 with 229, 101 */
    ck_assert_int_eq(lora_detokenizer_push(d, 229, &s, &len), LORA_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(lora_detokenizer_push(d, 101, &s, &len), LORA_OK);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(s, "\xF0\x9F\x87\xA8", 4) == 0);
    ck_assert_int_eq(lora_detokenizer_flush(d, &s, &len), LORA_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(lora_detokenizer_push(d, 11162, &s, &len), LORA_OK);
    ck_assert_int_eq(lora_detokenizer_flush(d, &s, &len), LORA_OK);
    ck_assert_uint_eq(len, 3);
    ck_assert(memcmp(s, "\xEF\xBF\xBD", 3) == 0);
    /* the detokenizer keeps the tokenizer alive */
    lora_tokenizer *t = tiny(0);
    lora_detokenizer *d2 = NULL;
    ck_assert_int_eq(lora_detokenizer_create(t, LORA_DECODE_SKIP_SPECIAL, &d2), LORA_OK);
    lora_tokenizer_free(t);
    ck_assert_int_eq(lora_detokenizer_push(d2, 261, &s, &len), LORA_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(lora_detokenizer_push(d2, 257, &s, &len), LORA_OK);
    ck_assert_uint_eq(len, 3);
    ck_assert(memcmp(s, "abc", 3) == 0);
    lora_detokenizer_free(d2);
    lora_detokenizer_free(d);
}
END_TEST

/* ---- offsets ------------------------------------------------------------------------------ */

static lora__encoding encode_offsets(const lora_tokenizer *t, const char *s, size_t len,
                                     unsigned flags)
{
    lora__encoding e;
    lora_status st = lora__tokenizer_encode(t, s, len, flags, &e);
    ck_assert_msg(st == LORA_OK, "%s", lora_last_error());
    size_t n;
    int32_t *ids = encode(t, s, len, flags, &n);
    assert_ids(e.ids, e.n, ids, n);
    free(ids);
    return e;
}

static void assert_span(const lora__encoding *e, size_t k, size_t start, size_t end)
{
    ck_assert_msg(e->start[k] == start && e->end[k] == end, "token %zu spans [%zu, %zu), "
                  "expected [%zu, %zu)", k, e->start[k], e->end[k], start, end);
}

START_TEST(offsets_partition_plain_text)
{
    const char *text = "Hello world! It's <|im_end|>\n  def f(x):\n\treturn 42";
    lora__encoding e = encode_offsets(qwen, text, strlen(text), 0);
    size_t at = 0;
    for (size_t k = 0; k < e.n; k++) {
        ck_assert_uint_eq(e.start[k], at);
        size_t len;
        char *s = decode(qwen, &e.ids[k], 1, 0, &len);
        ck_assert_uint_eq(e.end[k] - e.start[k], len);
        ck_assert(memcmp(text + e.start[k], s, len) == 0);
        lora_string_free(s);
        at = e.end[k];
    }
    ck_assert_uint_eq(at, strlen(text));
    lora__encoding_free(&e);
}
END_TEST

START_TEST(offsets_through_nfc)
{
    /* "cafe" + U+0301 + " x": NFC makes U+00E9; the token holding it covers e and the mark */
    const char *text = "cafe\xCC\x81 x";
    lora__encoding e = encode_offsets(qwen, text, strlen(text), 0);
    ck_assert_uint_eq(e.n, 3);
    ck_assert_int_eq(e.ids[0], 924);
    ck_assert_int_eq(e.ids[1], 58858);
    assert_span(&e, 0, 0, 2); /* "ca" */
    assert_span(&e, 1, 2, 6); /* "f" + U+00E9, from f, e and the mark */
    assert_span(&e, 2, 6, 8);
    lora__encoding_free(&e);
}
END_TEST

START_TEST(offsets_whole_characters)
{
    /* the flags' bytes are split across tokens: spans widen to whole characters */
    const char *text = "flags \xF0\x9F\x87\xA8\xF0\x9F\x87\xB3!";
    size_t n = strlen(text);
    lora__encoding e = encode_offsets(qwen, text, n, 0);
    size_t covered = 0;
    for (size_t k = 0; k < e.n; k++) {
        ck_assert_uint_lt(e.start[k], e.end[k]);
        ck_assert_uint_le(e.end[k], n);
        ck_assert((text[e.start[k]] & 0xC0) != 0x80);
        ck_assert(e.end[k] == n || (text[e.end[k]] & 0xC0) != 0x80);
        ck_assert_uint_le(e.start[k], covered);
        if (k)
            ck_assert_uint_ge(e.start[k], e.start[k - 1]);
        covered = e.end[k] > covered ? e.end[k] : covered;
    }
    ck_assert_uint_eq(covered, n);
    ck_assert_int_eq(e.ids[e.n - 1], 0); /* "!" */
    assert_span(&e, e.n - 1, n - 1, n);
    lora__encoding_free(&e);
}
END_TEST

START_TEST(offsets_of_repaired_bytes)
{
    /* with UTF8_REPLACE a token of U+FFFD spans the invalid bytes of the caller's text */
    const char *text = "ab\xFF\xFE<|im_end|>c";
    size_t n = strlen(text);
    lora__encoding e = encode_offsets(qwen, text, n, LORA_ENCODE_UTF8_REPLACE);
    ck_assert_uint_ge(e.n, 3);
    ck_assert_uint_eq(e.start[0], 0);
    ck_assert_int_eq(e.ids[e.n - 2], 151645);
    assert_span(&e, e.n - 2, 4, 14);
    assert_span(&e, e.n - 1, 14, 15);
    ck_assert_uint_eq(e.end[e.n - 3], 4);
    lora__encoding_free(&e);
    lora__encoding empty;
    ck_assert_int_eq(lora__tokenizer_encode(qwen, "", 0, 0, &empty), LORA_OK);
    ck_assert_uint_eq(empty.n, 0);
    ck_assert_ptr_nonnull(empty.ids);
    lora__encoding_free(&empty);
}
END_TEST

/* ---- the model's tokenizer ---------------------------------------------------------------- */

START_TEST(model_tokenizer_lazy_and_shared)
{
    char *dir = make_dir();
    copy_file("tests/fixtures/tiny-qwen2/config.json", dir, "config.json");
    copy_file("tests/fixtures/tiny-qwen2/model.safetensors", dir, "model.safetensors");
    lora_model *m = NULL;
    ck_assert_int_eq(lora_model_load(dir, NULL, &m), LORA_OK);
    lora_tokenizer *t = (lora_tokenizer *)1;
    ck_assert_int_eq(lora_model_tokenizer(m, &t), LORA_ERR_IO);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "tokenizer.json"));
    char *json = tiny_json(1);
    write_file(dir, "tokenizer.json", json, strlen(json));
    free(json);
    /* found once it exists (failures are not cached), then the same one every time */
    lora_tokenizer *a = NULL, *b = NULL;
    ck_assert_int_eq(lora_model_tokenizer(m, &a), LORA_OK);
    ck_assert_int_eq(lora_model_tokenizer(m, &b), LORA_OK);
    ck_assert_ptr_eq(a, b);
    ENCODES(a, "abc", 0, 257);
    lora_model_free(m); /* the references outlive the model */
    ENCODES(b, "ab", 0, 256);
    lora_tokenizer_free(a);
    lora_tokenizer_free(b);
    rm_dir(dir);
}
END_TEST

/* ---- threads ------------------------------------------------------------------------------ */

typedef struct thread_job {
    lora_tokenizer *t;
    lora_model *m;
    lora_tokenizer *got;
    int mismatches;
} thread_job;

static void *encode_many(void *arg)
{
    thread_job *j = arg;
    static const char *const texts[] = {"Hello world! How are you doing today?",
                                        "\xE8\xAF\xB7\xE6\x8A\x8A emoji \xF0\x9F\x98\x80",
                                        "x<|im_end|>y", "cafe\xCC\x81 na\xC3\xAFve"};
    for (int r = 0; r < 200; r++)
        for (size_t i = 0; i < 4; i++) {
            int32_t a[64], b[64];
            size_t n, m;
            if (lora_tokenizer_encode(j->t, texts[i], strlen(texts[i]), 0, a, 64, &n) ||
                lora_tokenizer_encode(j->t, texts[i], strlen(texts[i]), 0, b, 64, &m) || n != m ||
                memcmp(a, b, n * sizeof *a) != 0)
                j->mismatches++;
        }
    return NULL;
}

START_TEST(threads_share_a_tokenizer)
{
    pthread_t th[2];
    thread_job jobs[2] = {{qwen, NULL, NULL, 0}, {qwen, NULL, NULL, 0}};
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, encode_many, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(jobs[0].mismatches + jobs[1].mismatches, 0);
    ENCODES(qwen, "Hello World", 0, 9707, 4337);
}
END_TEST

static void *model_tokenizer_thread(void *arg)
{
    thread_job *j = arg;
    if (lora_model_tokenizer(j->m, &j->got) != LORA_OK)
        j->mismatches++;
    return NULL;
}

START_TEST(threads_load_the_model_tokenizer_once)
{
    char *dir = make_dir();
    copy_file("tests/fixtures/tiny-qwen2/config.json", dir, "config.json");
    copy_file("tests/fixtures/tiny-qwen2/model.safetensors", dir, "model.safetensors");
    char *json = tiny_json(0);
    write_file(dir, "tokenizer.json", json, strlen(json));
    free(json);
    lora_model *m = NULL;
    ck_assert_int_eq(lora_model_load(dir, NULL, &m), LORA_OK);
    pthread_t th[4];
    thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){NULL, m, NULL, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, model_tokenizer_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(jobs[i].mismatches, 0);
        ck_assert_ptr_eq(jobs[i].got, jobs[0].got);
    }
    for (int i = 0; i < 4; i++)
        lora_tokenizer_free(jobs[i].got);
    lora_model_free(m);
    rm_dir(dir);
}
END_TEST

/* ---- limits ------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1 MiB of a repeated unit: encodes (timed, printed, never asserted) and decodes back to the
 * text, or to the unit's NFC repeated when nfc_unit is given. */
static void big_roundtrip(const char *name, const char *unit, const char *nfc_unit)
{
    size_t u = strlen(unit), n = (1u << 20) / u * u;
    char *text = malloc(n + 1);
    for (size_t i = 0; i < n; i += u)
        memcpy(text + i, unit, u);
    text[n] = '\0';
    double t0 = now_s();
    size_t k;
    int32_t *ids = encode(qwen, text, n, 0, &k);
    double t1 = now_s();
    size_t len;
    char *back = decode(qwen, ids, k, 0, &len);
    printf("limits: 1 MiB of %s: %zu ids, encode %.3f s\n", name, k, t1 - t0);
    if (nfc_unit) {
        size_t v = strlen(nfc_unit);
        ck_assert_uint_eq(len, n / u * v);
        for (size_t i = 0; i < len; i += v)
            ck_assert(memcmp(back + i, nfc_unit, v) == 0);
    } else {
        ck_assert_uint_eq(len, n);
        ck_assert(memcmp(back, text, n) == 0);
    }
    lora_string_free(back);
    free(ids);
    free(text);
}

START_TEST(pathological_inputs)
{
    big_roundtrip("one letter", "a", NULL);
    big_roundtrip("'^'", "^", NULL);
    big_roundtrip("spaces", " ", NULL);
    big_roundtrip("digits", "1234567890", NULL);
    big_roundtrip("CJK", "\xE4\xB8\xAD", NULL);
    big_roundtrip("prose without a newline", "The quick brown fox jumps over the lazy dog. ", NULL);
    big_roundtrip("whitespace and CRLF", " \t\r\n", NULL);
    /* NFC: e, U+0301, U+0323 is U+1EB9, U+0301 */
    big_roundtrip("combining marks", "e\xCC\x81\xCC\xA3", "\xE1\xBA\xB9\xCC\x81");
}
END_TEST

START_TEST(regex_limit_is_a_status)
{
    /* nested alternatives backtrack exponentially on a run of 'a' with no 'b' */
    char *json = tiny_json(0);
    const char *from = "\"Regex\":\"";
    char *at = strstr(json, from);
    ck_assert_ptr_nonnull(at);
    at += strlen(from);
    char *end = strstr(at, "\"},\"behavior\"");
    ck_assert_ptr_nonnull(end);
    const char *evil = "(?:a|aa)+b|c";
    size_t head = (size_t)(at - json);
    char *patched = malloc(strlen(json) + strlen(evil) + 1);
    memcpy(patched, json, head);
    strcpy(patched + head, evil);
    strcat(patched, end);
    free(json);
    lora_status st;
    lora_tokenizer *t = load_text(patched, NULL, &st);
    free(patched);
    ck_assert_msg(st == LORA_OK, "%s", lora_last_error());
    char text[64];
    memset(text, 'a', 60);
    size_t n;
    int32_t ids[64];
    ck_assert_int_eq(lora_tokenizer_encode(t, text, 60, 0, ids, 64, &n), LORA_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "regex"));
    ck_assert_int_eq(lora_tokenizer_encode(t, "cab", 3, 0, ids, 64, &n), LORA_OK);
    lora_tokenizer_free(t);
}
END_TEST

START_TEST(encode_cap_too_small)
{
    int32_t ids[2] = {-7, -7};
    size_t n = 0;
    ck_assert_int_eq(lora_tokenizer_encode(qwen, "Hello world! How", 16, 0, ids, 2, &n),
                     LORA_ERR_RANGE);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(ids[0], 9707);
    ck_assert_int_eq(ids[1], 1879);
    ck_assert_int_eq(lora_tokenizer_encode(qwen, "", 0, 0, NULL, 0, &n), LORA_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

/* ---- malformed files ---------------------------------------------------------------------- */

#define BPE_OK "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"
#define PRE_OK "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}"
#define DEC_OK "\"decoder\":{\"type\":\"ByteLevel\"}"

static const struct bad_case {
    const char *json;
    const char *config;  /* tokenizer_config.json, or NULL */
    lora_status status;
    const char *says;
} BAD[] = {
    {"{\"model\": {", NULL, LORA_ERR_FORMAT, "line 1"},
    {"[1, 2]", NULL, LORA_ERR_FORMAT, "not a JSON object"},
    {"{" PRE_OK "," DEC_OK "}", NULL, LORA_ERR_FORMAT, "'model' is missing"},
    {"{\"model\": 3," PRE_OK "," DEC_OK "}", NULL, LORA_ERR_FORMAT, "'model' must be"},
    {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}," PRE_OK "," DEC_OK "}", NULL,
     LORA_ERR_UNSUPPORTED, "'model.type' = 'WordPiece'"},
    {"{\"model\":{\"vocab\":{},\"merges\":[]}," PRE_OK "," DEC_OK "}", NULL, LORA_ERR_FORMAT,
     "'model.type'"},
    {"{\"model\":{\"type\":\"BPE\",\"merges\":[]}," PRE_OK "," DEC_OK "}", NULL, LORA_ERR_FORMAT,
     "'model.vocab' is missing"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":[\"a\"],\"merges\":[]}," PRE_OK "," DEC_OK "}", NULL,
     LORA_ERR_FORMAT, "'model.vocab' must be"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"0\"},\"merges\":[]}," PRE_OK "," DEC_OK "}",
     NULL, LORA_ERR_FORMAT, "entry 'a'"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}," PRE_OK "," DEC_OK "}",
     NULL, LORA_ERR_FORMAT, "entry 'a'"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}," PRE_OK "," DEC_OK
     "}", NULL, LORA_ERR_FORMAT, "id 0 is given to both"},
    /* one huge id in a small file (found by fuzz_tokenizer_load: 325 MB and seconds per load) */
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":13000000},\"merges\":[]},"
     PRE_OK "," DEC_OK "}", NULL, LORA_ERR_FORMAT, "largest token id is 13000000 for 2 tokens"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":"
     "9000000,\"content\":\"<x>\",\"special\":true}]," PRE_OK "," DEC_OK "}", NULL,
     LORA_ERR_FORMAT, "largest token id is 9000000 for 2 tokens"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}," PRE_OK "," DEC_OK "}", NULL,
     LORA_ERR_FORMAT, "'model.merges' is missing"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":{}}," PRE_OK "," DEC_OK "}", NULL,
     LORA_ERR_FORMAT, "'model.merges' must be"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"ab\"]},"
     PRE_OK "," DEC_OK "}", NULL, LORA_ERR_FORMAT, "'model.merges' entry 0"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\", [\"a\"]]},"
     PRE_OK "," DEC_OK "}", NULL, LORA_ERR_FORMAT, "'model.merges' entry 1"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a q\"]},"
     PRE_OK "," DEC_OK "}", NULL, LORA_ERR_FORMAT, "'q' is not in the vocabulary"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[[\"a\",\"b\"]]},"
     PRE_OK "," DEC_OK "}", NULL, LORA_ERR_FORMAT, "'ab' is not in the vocabulary"},
    {"{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{},\"merges\":[]}," PRE_OK "," DEC_OK
     "}", NULL, LORA_ERR_UNSUPPORTED, "'model.dropout'"},
    {"{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{},\"merges\":[]}," PRE_OK ","
     DEC_OK "}", NULL, LORA_ERR_UNSUPPORTED, "'model.byte_fallback'"},
    {"{\"model\":{\"type\":\"BPE\",\"fuse_unk\":1,\"vocab\":{},\"merges\":[]}," PRE_OK "," DEC_OK
     "}", NULL, LORA_ERR_FORMAT, "'model.fuse_unk'"},
    {"{\"model\":{\"type\":\"BPE\",\"unk_token\":\"zz\",\"vocab\":{},\"merges\":[]}," PRE_OK ","
     DEC_OK "}", NULL, LORA_ERR_FORMAT, "'model.unk_token'"},
    {"{" BPE_OK ",\"normalizer\":{\"type\":\"NFKC\"}," PRE_OK "," DEC_OK "}", NULL,
     LORA_ERR_UNSUPPORTED, "'normalizer.type' = 'NFKC'"},
    {"{" BPE_OK ",\"pre_tokenizer\":{\"type\":\"Whitespace\"}," DEC_OK "}", NULL,
     LORA_ERR_UNSUPPORTED, "'pre_tokenizer.type' = 'Whitespace'"},
    {"{" BPE_OK "," DEC_OK "}", NULL, LORA_ERR_UNSUPPORTED, "'pre_tokenizer'"},
    {"{" BPE_OK ",\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true}," DEC_OK "}",
     NULL, LORA_ERR_UNSUPPORTED, "add_prefix_space"},
    {"{" BPE_OK ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
     "\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Removed\"},{\"type\":\"ByteLevel\","
     "\"add_prefix_space\":false,\"use_regex\":false}]}," DEC_OK "}", NULL, LORA_ERR_UNSUPPORTED,
     "pretokenizers[0].behavior"},
    {"{" BPE_OK ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
     "\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\","
     "\"add_prefix_space\":false,\"use_regex\":false}]}," DEC_OK "}", NULL, LORA_ERR_FORMAT,
     "regex does not compile"},
    /* Digits: only individual digits, and only before ByteLevel's own GPT-2 split */
    {"{" BPE_OK ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\"}]},"
     DEC_OK "}", NULL, LORA_ERR_UNSUPPORTED, "pretokenizers[0].individual_digits' must be true"},
    {"{" BPE_OK ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\","
     "\"individual_digits\":true},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
     "\"use_regex\":false}]}," DEC_OK "}", NULL, LORA_ERR_UNSUPPORTED,
     "pretokenizers[1].use_regex' must be true after Digits"},
    {"{" BPE_OK ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\","
     "\"individual_digits\":true}]}," DEC_OK "}", NULL, LORA_ERR_UNSUPPORTED, "lacks a ByteLevel"},
    {"{" BPE_OK ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
     "\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Isolated\"}]}," DEC_OK "}", NULL,
     LORA_ERR_UNSUPPORTED, "lacks a ByteLevel"},
    {"{" BPE_OK "," PRE_OK "}", NULL, LORA_ERR_UNSUPPORTED, "'decoder.type'"},
    {"{" BPE_OK "," PRE_OK ",\"decoder\":{\"type\":\"WordPiece\"}}", NULL, LORA_ERR_UNSUPPORTED,
     "'decoder.type' = 'WordPiece'"},
    {"{" BPE_OK "," PRE_OK "," DEC_OK ",\"added_tokens\":{}}", NULL, LORA_ERR_FORMAT,
     "'added_tokens' must be"},
    {"{" BPE_OK "," PRE_OK "," DEC_OK ",\"added_tokens\":[{\"id\":5}]}", NULL, LORA_ERR_FORMAT,
     "'added_tokens[0].content'"},
    {"{" BPE_OK "," PRE_OK "," DEC_OK ",\"added_tokens\":[{\"id\":\"5\",\"content\":\"x\"}]}",
     NULL, LORA_ERR_FORMAT, "'added_tokens[0].id'"},
    {"{" BPE_OK "," PRE_OK "," DEC_OK ",\"added_tokens\":[{\"id\":5,\"content\":\"x\","
     "\"special\":\"yes\"}]}", NULL, LORA_ERR_FORMAT, "'added_tokens[0].special'"},
    {"{" BPE_OK "," PRE_OK "," DEC_OK ",\"added_tokens\":[{\"id\":5,\"content\":\"x\"},"
     "{\"id\":5,\"content\":\"y\"}]}", NULL, LORA_ERR_FORMAT, "id 5 is given to both"},
    {"{" BPE_OK "," PRE_OK "," DEC_OK "}", "{\"eos_token\": \"<none>\"}", LORA_ERR_FORMAT,
     "'eos_token' = '<none>'"},
    {"{" BPE_OK "," PRE_OK "," DEC_OK "}", "{\"bos_token\": 7}", LORA_ERR_FORMAT, "'bos_token'"},
    {"{" BPE_OK "," PRE_OK "," DEC_OK "}", "{\"chat_template\": 7}", LORA_ERR_FORMAT,
     "'chat_template'"},
    {"{" BPE_OK "," PRE_OK "," DEC_OK "}", "{\"eos_token\": ", LORA_ERR_FORMAT,
     "tokenizer_config.json: line 1"},
};

START_TEST(malformed_file_names_key)
{
    const struct bad_case *c = &BAD[_i];
    lora_status st;
    lora_tokenizer *t = load_text(c->json, c->config, &st);
    ck_assert_msg(st == c->status, "case %d: %s, expected %s (%s)", _i, lora_status_string(st),
                  lora_status_string(c->status), lora_last_error());
    ck_assert_msg(strstr(lora_last_error(), c->says) != NULL, "case %d: '%s' lacks '%s'", _i,
                  lora_last_error(), c->says);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_tokenizer_load"));
    lora_tokenizer_free(t);
}
END_TEST

START_TEST(well_formed_variants_load)
{
    /* bos/eos as {"content": ...} objects, a named template list, a bare ByteLevel with the
     * GPT-2 regex, no normalizer */
    const char *json = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\xC4\xA0\":3,"
                       "\"\xC4\xA0" "a\":4},\"merges\":[\"a b\",\"\xC4\xA0 a\"]},\"normalizer\":null,"
                       "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},"
                       DEC_OK ",\"added_tokens\":[{\"id\":5,\"content\":\"</s>\",\"special\":true}]}";
    const char *config = "{\"eos_token\":{\"content\":\"</s>\",\"lstrip\":false},\"bos_token\":null,"
                         "\"chat_template\":[{\"name\":\"tool_use\",\"template\":\"T\"},"
                         "{\"name\":\"default\",\"template\":\"D\"}]}";
    lora_status st;
    lora_tokenizer *t = load_text(json, config, &st);
    ck_assert_msg(st == LORA_OK, "%s", lora_last_error());
    ck_assert_int_eq(lora__tokenizer_special_id(t, LORA__EOS), 5);
    ck_assert_str_eq(lora__tokenizer_chat_template(t), "D");
    /* GPT-2's split: " a" is one piece; the bytes outside the vocabulary are dropped, as HF's
     * BPE without unk_token drops them */
    ENCODES(t, "ab a</s>", 0, 2, 4, 5);
    ENCODES(t, "aXb", 0, 2);
    lora_tokenizer_free(t);
}
END_TEST

START_TEST(missing_files)
{
    lora_tokenizer *t = (lora_tokenizer *)1;
    ck_assert_int_eq(lora_tokenizer_load("/nonexistent/tokenizer-dir", NULL, &t), LORA_ERR_IO);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "/nonexistent/tokenizer-dir"));
    char *dir = make_dir();
    ck_assert_int_eq(lora_tokenizer_load(dir, NULL, &t), LORA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "tokenizer.json"));
    rm_dir(dir);
}
END_TEST

START_TEST(bad_options)
{
    lora_tokenizer *t = (lora_tokenizer *)1;
    ck_assert_int_eq(lora_tokenizer_load(QWEN, "{\"chat_templat\": \"auto\"}", &t), LORA_ERR_CONFIG);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "'chat_templat'"));
    ck_assert_int_eq(lora_tokenizer_load(QWEN, "{\"chat_template\": \"jinja\"}", &t),
                     LORA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "chat_template"));
    ck_assert_int_eq(lora_tokenizer_load(QWEN, "[", &t), LORA_ERR_CONFIG);
}
END_TEST

/* ---- misuse ------------------------------------------------------------------------------- */

START_TEST(null_arguments)
{
    lora_tokenizer *t = NULL;
    ck_assert_int_eq(lora_tokenizer_load(QWEN, NULL, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_load(NULL, NULL, &t), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_model_tokenizer(NULL, &t), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_model_tokenizer(NULL, NULL), LORA_ERR_INVALID_ARGUMENT);
    lora_tokenizer_free(NULL);
    ck_assert_uint_eq(lora_tokenizer_vocab_size(NULL), 0);
    ck_assert_ptr_null(lora_tokenizer_info_json(NULL));
    int32_t ids[4];
    size_t n;
    ck_assert_int_eq(lora_tokenizer_encode(NULL, "a", 1, 0, ids, 4, &n), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_encode(qwen, NULL, 1, 0, ids, 4, &n), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_encode(qwen, "a", 1, 0, NULL, 4, &n), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_encode(qwen, "a", 1, 0, ids, 4, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_encode(qwen, "a", 1, 0x80, ids, 4, &n), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "flags"));
    char *s;
    ck_assert_int_eq(lora_tokenizer_decode(NULL, ids, 1, 0, &s, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_decode(qwen, NULL, 1, 0, &s, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_decode(qwen, ids, 1, 0, NULL, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_decode(qwen, ids, 1, 8, &s, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_decode(qwen, NULL, 0, 0, &s, &n), LORA_OK);
    ck_assert_str_eq(s, "");
    lora_string_free(s);
    int32_t id;
    ck_assert_int_eq(lora_tokenizer_token_id(NULL, "a", &id), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_token_id(qwen, NULL, &id), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_tokenizer_token_id(qwen, "a", NULL), LORA_ERR_INVALID_ARGUMENT);
    lora_detokenizer *d = NULL;
    ck_assert_int_eq(lora_detokenizer_create(NULL, 0, &d), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_detokenizer_create(qwen, 0, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_detokenizer_create(qwen, 4, &d), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(d);
    const char *text;
    ck_assert_int_eq(lora_detokenizer_push(NULL, 1, &text, &n), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_detokenizer_flush(NULL, &text, &n), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_detokenizer_create(qwen, 0, &d), LORA_OK);
    ck_assert_int_eq(lora_detokenizer_push(d, 1, NULL, &n), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_detokenizer_flush(d, &text, NULL), LORA_ERR_INVALID_ARGUMENT);
    lora_detokenizer_free(d);
    lora_detokenizer_free(NULL);
    lora__encoding e;
    ck_assert_int_eq(lora__tokenizer_encode(NULL, "a", 1, 0, &e), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora__tokenizer_encode(qwen, "a", 1, 0, NULL), LORA_ERR_INVALID_ARGUMENT);
    lora__encoding_free(NULL);
    ck_assert_int_eq(lora__tokenizer_special_id(NULL, LORA__EOS), -1);
    ck_assert_ptr_null(lora__tokenizer_chat_template(NULL));
    /* a success clears the last message */
    ck_assert_int_eq(lora_tokenizer_encode(qwen, "a", 1, 0, ids, 4, &n), LORA_OK);
    ck_assert_str_eq(lora_last_error(), "");
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *suite = suite_create("tokenizer");

    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_set_timeout(core, 120);
    tcase_add_unchecked_fixture(core, load_qwen, free_qwen);
    tcase_add_test(core, golden_encodings);
    tcase_add_test(core, golden_random);
    tcase_add_test(core, accessors_and_info);
    tcase_add_test(core, template_override_option);
    tcase_add_test(core, info_names_custom_templates);
    tcase_add_test(core, special_as_text);
    tcase_add_test(core, merges_both_forms);
    tcase_add_test(core, added_token_flags);
    tcase_add_test(core, decode_skip_special);
    tcase_add_test(core, invalid_utf8_is_format_error);
    tcase_add_test(core, invalid_utf8_replaced);
    tcase_add_test(core, decode_out_of_range);
    tcase_add_test(core, decode_replaces_invalid_bytes);
    tcase_add_test(core, detokenizer_streams_whole_characters);
    tcase_add_test(core, detokenizer_range_and_reuse);
    tcase_add_test(core, offsets_partition_plain_text);
    tcase_add_test(core, offsets_through_nfc);
    tcase_add_test(core, offsets_whole_characters);
    tcase_add_test(core, offsets_of_repaired_bytes);
    tcase_add_test(core, model_tokenizer_lazy_and_shared);
    tcase_add_test(core, threads_share_a_tokenizer);
    tcase_add_test(core, threads_load_the_model_tokenizer_once);
    tcase_add_test(core, well_formed_variants_load);
    suite_add_tcase(suite, core);

    TCase *lim = tcase_create("limits");
    tcase_set_tags(lim, "limits");
    tcase_set_timeout(lim, 300);
    tcase_add_unchecked_fixture(lim, load_qwen, free_qwen);
    tcase_add_test(lim, pathological_inputs);
    tcase_add_test(lim, regex_limit_is_a_status);
    tcase_add_test(lim, encode_cap_too_small);
    suite_add_tcase(suite, lim);

    TCase *mis = tcase_create("misuse");
    tcase_set_tags(mis, "misuse");
    tcase_set_timeout(mis, 60);
    tcase_add_unchecked_fixture(mis, load_qwen, free_qwen);
    tcase_add_loop_test(mis, malformed_file_names_key, 0, (int)(sizeof BAD / sizeof BAD[0]));
    tcase_add_test(mis, missing_files);
    tcase_add_test(mis, bad_options);
    tcase_add_test(mis, null_arguments);
    suite_add_tcase(suite, mis);
    return suite;
}

int main(void) { return tu_run_suite(tokenizer_suite()); }
