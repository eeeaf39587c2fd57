/* tokenizer.json and tokenizer_config.json rebuilt from a GGUF's tokenizer.* metadata, as the
 * Hugging Face tokenizer that llama.cpp's converter read would have them: byte-level BPE with
 * the pre-tokenizer that tokenizer.ggml.pre names. */
#include "gguf/gguf.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/json_text.h"

/* llama.cpp's token types */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static const char qwen2_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static json_t *bytelevel(int use_regex, int trim_offsets)
{
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                     "trim_offsets", trim_offsets, "use_regex", use_regex);
}

static json_t *split_then_bytelevel(const char *regex)
{
    return json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence",
                     "pretokenizers", "type", "Split", "pattern", "Regex", regex, "behavior",
                     "Isolated", "invert", 0, bytelevel(0, 0));
}

/* normalizer and pre_tokenizer of each tokenizer.ggml.pre value this version knows. */
static lora_status pre_tokenizer(const lora_gguf_file *f, json_t *root)
{
    lora_gguf_str pre;
    int found;
    lora_status st = lora__gguf_get_str(f, "tokenizer.ggml.pre", &pre, &found);
    if (st)
        return st;
    if (!found)
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key 'tokenizer.ggml.pre' is missing: the "
                           "pre-tokenizer is unknown (supported: qwen2, llama-bpe, smollm, gpt2)",
                           lora__gguf_path(f));
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(pre.len < 63 ? pre.len : 63), pre.p);
    json_t *normalizer = json_null(), *p = NULL;
    if (pre.len == strlen(name) && strcmp(name, "qwen2") == 0) {
        normalizer = json_pack("{s:s}", "type", "NFC");
        p = split_then_bytelevel(qwen2_regex);
    } else if (pre.len == strlen(name) && strcmp(name, "llama-bpe") == 0) {
        p = split_then_bytelevel(llama3_regex);
    } else if (pre.len == strlen(name) && strcmp(name, "smollm") == 0) {
        p = json_pack("{s:s, s:[{s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type",
                      "Digits", "individual_digits", 1, bytelevel(1, 1));
    } else if (pre.len == strlen(name) && strcmp(name, "gpt2") == 0) {
        p = bytelevel(1, 1);
    } else {
        json_decref(normalizer);
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key 'tokenizer.ggml.pre' = '%s': this "
                           "pre-tokenizer is not supported (supported: qwen2, llama-bpe, smollm, "
                           "gpt2)", lora__gguf_path(f), name);
    }
    int bad = json_object_set_new(root, "normalizer", normalizer);
    bad |= json_object_set_new(root, "pre_tokenizer", p);
    return bad ? lora__oom("tokenizer.json pre_tokenizer", 1024) : LORA_OK;
}

static lora_status bad_text(const lora_gguf_file *f, const char *key, uint64_t i)
{
    return lora__error(LORA_ERR_FORMAT, "%s: key '%s' element %" PRIu64 " is not valid UTF-8",
                       lora__gguf_path(f), key, i);
}

/* model.vocab (every token but the unused ones) and added_tokens (control tokens special,
 * user-defined ones not), in id order. */
static lora_status vocab_and_added(const lora_gguf_file *f, const lora_gguf_kv *tokens,
                                   const lora_gguf_kv *types, json_t *vocab, json_t *added)
{
    const char *path = lora__gguf_path(f);
    if (types && types->n != tokens->n)
        return lora__error(LORA_ERR_FORMAT, "%s: key 'tokenizer.ggml.token_type' has %" PRIu64
                           " entries for %" PRIu64 " tokens", path, types->n, tokens->n);
    if (tokens->n > INT32_MAX)
        return lora__error(LORA_ERR_FORMAT, "%s: key 'tokenizer.ggml.tokens' has %" PRIu64
                           " entries", path, tokens->n);
    for (uint64_t i = 0; i < tokens->n; i++) {
        int64_t type = types ? lora__gguf_array_int(types, i) : TT_NORMAL;
        if (type < TT_NORMAL || type > TT_BYTE)
            return lora__error(LORA_ERR_FORMAT, "%s: key 'tokenizer.ggml.token_type' element %"
                               PRIu64 " = %" PRId64 " is not a token type", path, i, type);
        if (type == TT_UNUSED)
            continue;
        json_t *s = json_stringn(tokens->strs[i].p, tokens->strs[i].len);
        if (!s)
            return bad_text(f, "tokenizer.ggml.tokens", i);
        const char *text = json_string_value(s);
        if (strlen(text) != tokens->strs[i].len || json_object_get(vocab, text)) {
            /* text is s's: the message is made before s goes */
            lora_status st = lora__error(LORA_ERR_FORMAT, "%s: key 'tokenizer.ggml.tokens' "
                                         "element %" PRIu64 " '%.64s' %s", path, i, text,
                                         strlen(text) != tokens->strs[i].len
                                             ? "contains a NUL byte" : "is listed twice");
            json_decref(s);
            return st;
        }
        int bad = json_object_set_new(vocab, text, json_integer((json_int_t)i));
        if (!bad && (type == TT_CONTROL || type == TT_USER))
            bad = json_array_append_new(added, json_pack("{s:I, s:O, s:b, s:b, s:b, s:b, s:b}", "id",
                                                   (json_int_t)i, "content", s, "single_word", 0,
                                                   "lstrip", 0, "rstrip", 0, "normalized",
                                                   type == TT_USER, "special",
                                                   type == TT_CONTROL));
        json_decref(s);
        if (bad)
            return lora__oom("tokenizer.json vocabulary", 64);
    }
    return LORA_OK;
}

static lora_status merges_of(const lora_gguf_file *f, json_t *merges)
{
    const lora_gguf_kv *m;
    int found;
    lora_status st = lora__gguf_get_array(f, "tokenizer.ggml.merges", LORA_GGUF_STRING, &m, &found);
    for (uint64_t i = 0; !st && found && i < m->n; i++) {
        json_t *s = json_stringn(m->strs[i].p, m->strs[i].len);
        if (!s)
            return bad_text(f, "tokenizer.ggml.merges", i);
        if (json_array_append_new(merges, s))
            return lora__oom("tokenizer.json merges", 64);
    }
    return st;
}

static lora_status build_tokenizer(const lora_gguf_file *f, const lora_gguf_kv *tokens,
                                   char **out)
{
    const lora_gguf_kv *types;
    int found;
    lora_status st = lora__gguf_get_array(f, "tokenizer.ggml.token_type", LORA_GGUF_I32, &types,
                                          &found);
    if (st)
        return st;
    json_t *vocab = json_object(), *added = json_array(), *merges = json_array();
    json_t *root = json_object();
    if (!vocab || !added || !merges || !root) {
        st = lora__oom("tokenizer.json", 4096);
        goto done;
    }
    if ((st = vocab_and_added(f, tokens, found ? types : NULL, vocab, added)) ||
        (st = merges_of(f, merges)) || (st = pre_tokenizer(f, root)))
        goto done;
    int bad = 0; /* a member that could not be added (out of memory) */
    bad |= json_object_set_new(root, "version", json_string("1.0"));
    bad |= json_object_set_new(root, "truncation", json_null());
    bad |= json_object_set_new(root, "padding", json_null());
    bad |= json_object_set(root, "added_tokens", added);
    bad |= json_object_set_new(root, "post_processor", bytelevel(0, 0));
    bad |= json_object_set_new(root, "decoder", bytelevel(1, 1));
    json_t *model = json_pack("{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:b, s:O, s:O}", "type", "BPE",
                              "dropout", "unk_token", "continuing_subword_prefix", "",
                              "end_of_word_suffix", "", "fuse_unk", 0, "byte_fallback", 0,
                              "ignore_merges", 0, "vocab", vocab, "merges", merges);
    bad |= json_object_set_new(root, "model", model);
    if (bad || !(*out = lora__json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER |
                                                 JSON_ENSURE_ASCII)))
        st = lora__oom("tokenizer.json text", 1u << 20);
done:
    json_decref(vocab);
    json_decref(added);
    json_decref(merges);
    json_decref(root);
    return st;
}

/* "bos_token" etc.: the text of the token an id key names, or null. */
static lora_status special(const lora_gguf_file *f, const lora_gguf_kv *tokens, const char *key,
                           json_t *cfg, const char *hf_key)
{
    int64_t id;
    int found;
    lora_status st = lora__gguf_get_int(f, key, 0, INT32_MAX, &id, &found);
    if (st)
        return st;
    if (found && (uint64_t)id >= tokens->n)
        return lora__error(LORA_ERR_FORMAT, "%s: key '%s' = %" PRId64 " is not a token id "
                           "(there are %" PRIu64 ")", lora__gguf_path(f), key, id, tokens->n);
    if (json_object_set_new(cfg, hf_key, found ? json_stringn(tokens->strs[id].p,
                                                              tokens->strs[id].len)
                                               : json_null()))
        return lora__oom("tokenizer_config.json", 256);
    return LORA_OK;
}

static lora_status build_config(const lora_gguf_file *f, const lora_gguf_kv *tokens, char **out)
{
    json_t *cfg = json_object();
    if (!cfg)
        return lora__oom("tokenizer_config.json", 1024);
    lora_gguf_str tmpl;
    int found, add_bos;
    lora_status st;
    if ((st = special(f, tokens, "tokenizer.ggml.bos_token_id", cfg, "bos_token")) ||
        (st = special(f, tokens, "tokenizer.ggml.eos_token_id", cfg, "eos_token")) ||
        (st = special(f, tokens, "tokenizer.ggml.padding_token_id", cfg, "pad_token")) ||
        (st = special(f, tokens, "tokenizer.ggml.unknown_token_id", cfg, "unk_token")) ||
        (st = lora__gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos, &found)))
        goto done;
    if (json_object_set_new(cfg, "add_bos_token", json_boolean(found && add_bos))) {
        st = lora__oom("tokenizer_config.json", 256);
        goto done;
    }
    if ((st = lora__gguf_get_str(f, "tokenizer.chat_template", &tmpl, &found)))
        goto done;
    if (found) {
        json_t *t = json_stringn(tmpl.p, tmpl.len);
        if (!t) {
            st = lora__error(LORA_ERR_FORMAT, "%s: key 'tokenizer.chat_template' is not valid "
                             "UTF-8", lora__gguf_path(f));
            goto done;
        }
        if (json_object_set_new(cfg, "chat_template", t)) {
            st = lora__oom("tokenizer_config.json", tmpl.len);
            goto done;
        }
    }
    if (json_object_set_new(cfg, "tokenizer_class", json_string("PreTrainedTokenizerFast")) ||
        !(*out = lora__json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER)))
        st = lora__oom("tokenizer_config.json text", 4096);
done:
    json_decref(cfg);
    return st;
}

lora_status lora__gguf_tokenizer_build(const lora_gguf_file *f, char **tokenizer_json,
                                       char **tokenizer_config_json)
{
    const char *path = lora__gguf_path(f);
    lora_gguf_str model;
    lora_status st = lora__gguf_get_str(f, "tokenizer.ggml.model", &model, NULL);
    if (st)
        return st;
    if (!(model.len == 4 && memcmp(model.p, "gpt2", 4) == 0))
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key 'tokenizer.ggml.model' = '%.*s': only "
                           "byte-level BPE (\"gpt2\") tokenizers are supported", path,
                           (int)(model.len > 32 ? 32 : model.len), model.p);
    const lora_gguf_kv *tokens;
    if ((st = lora__gguf_get_array(f, "tokenizer.ggml.tokens", LORA_GGUF_STRING, &tokens, NULL)))
        return st;
    if ((st = build_tokenizer(f, tokens, tokenizer_json)))
        return st;
    if ((st = build_config(f, tokens, tokenizer_config_json))) {
        free(*tokenizer_json);
        *tokenizer_json = NULL;
    }
    return st;
}
