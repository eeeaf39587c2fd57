/* tokenizer_config.json (special tokens, chat template), the load options, and the info JSON. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "api/handle.h"
#include "tokenizer/internal.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/json_text.h"

#define MAX_CONFIG_BYTES (64u << 20)

static const char *const special_keys[3] = {"bos_token", "eos_token", "pad_token"};
static const char *const builtin_templates[] = {"qwen2.5", "qwen3", "llama3", "chatml"};

int32_t lora__tokenizer_lookup(const lora_tokenizer *t, const char *text, size_t len)
{
    int64_t i = lora__strmap_get(&t->added_map, text, len);
    if (i >= 0)
        return t->added[i].id;
    return (int32_t)lora__strmap_get(&t->vocab, text, len);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = lora__malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* A special token: "text", {"content": "text", ...} or null. */
static lora_status read_special(lora_tokenizer *t, const json_t *root, int which,
                                const char *path)
{
    const char *key = special_keys[which];
    const json_t *v = json_object_get(root, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!v || json_is_null(v))
        return LORA_OK;
    if (!json_is_string(v))
        return lora__error(LORA_ERR_FORMAT, "%s: key '%s' must be a string, {\"content\": "
                           "string} or null", path, key);
    int32_t id = lora__tokenizer_lookup(t, json_string_value(v), json_string_length(v));
    if (id < 0)
        return lora__error(LORA_ERR_FORMAT, "%s: key '%s' = '%.64s' is not a token of "
                           "tokenizer.json", path, key, json_string_value(v));
    t->special_id[which] = id;
    t->special_text[which] = dup_n(json_string_value(v), json_string_length(v));
    return t->special_text[which] ? LORA_OK : lora__oom("special token", json_string_length(v));
}

/* A string, or a list of {"name", "template"} of which "default" is the one. */
static lora_status read_template(lora_tokenizer *t, const json_t *v, const char *path)
{
    if (!v || json_is_null(v))
        return LORA_OK;
    if (json_is_array(v)) {
        const json_t *chosen = NULL;
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *e = json_array_get(v, i);
            const json_t *name = json_object_get(e, "name");
            if (!json_is_string(name) || !json_is_string(json_object_get(e, "template")))
                return lora__error(LORA_ERR_FORMAT, "%s: key 'chat_template' entry %zu must be "
                                   "{\"name\": string, \"template\": string}", path, i);
            if (strcmp(json_string_value(name), "default") == 0)
                chosen = json_object_get(e, "template");
        }
        v = chosen;
        if (!v)
            return LORA_OK;
    } else if (!json_is_string(v)) {
        return lora__error(LORA_ERR_FORMAT, "%s: key 'chat_template' must be a string or a list "
                           "of named templates", path);
    }
    t->chat_template = dup_n(json_string_value(v), json_string_length(v));
    return t->chat_template ? LORA_OK : lora__oom("chat template", json_string_length(v));
}

lora_status lora__tokenizer_config_parse(lora_tokenizer *t, const char *text, size_t len,
                                         const char *path)
{
    json_error_t jerr;
    json_t *root = lora__json_loadb(text, len, 0, &jerr);
    if (!root)
        return lora__error(LORA_ERR_FORMAT, "%s: line %d column %d: %s", path, jerr.line,
                           jerr.column, jerr.text);
    lora_status st = LORA_OK;
    if (!json_is_object(root))
        st = lora__error(LORA_ERR_FORMAT, "%s: not a JSON object", path);
    for (int i = 0; i < 3 && !st; i++)
        st = read_special(t, root, i, path);
    if (!st)
        st = read_template(t, json_object_get(root, "chat_template"), path);
    json_decref(root);
    return st;
}

lora_status lora__tokenizer_config_read(lora_tokenizer *t, const char *path)
{
    if (!lora__is_file(path))
        return LORA_OK;
    char *text;
    size_t len;
    lora_status st = lora__read_file(path, MAX_CONFIG_BYTES, &text, &len);
    if (st)
        return st;
    st = lora__tokenizer_config_parse(t, text, len, path);
    free(text);
    return st;
}

lora_status lora__tokenizer_options(lora_tokenizer *t, const char *json)
{
    if (!json)
        return LORA_OK;
    json_error_t jerr;
    json_t *o = lora__json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return lora__error(LORA_ERR_CONFIG, "options: %s", jerr.text);
    lora_status st = LORA_OK;
    const char *key;
    json_t *v;
    if (!json_is_object(o))
        st = lora__error(LORA_ERR_CONFIG, "options must be a JSON object");
    else
        json_object_foreach(o, key, v) {
            if (strcmp(key, "chat_template") != 0) {
                st = lora__error(LORA_ERR_CONFIG, "unknown option '%s'", key);
                break;
            }
            const char *name = json_is_string(v) ? json_string_value(v) : NULL;
            int known = name && strcmp(name, "auto") == 0;
            for (size_t i = 0; name && i < sizeof builtin_templates / sizeof *builtin_templates; i++)
                if (strcmp(name, builtin_templates[i]) == 0) {
                    known = 1;
                    free(t->template_override);
                    if (!(t->template_override = dup_n(name, strlen(name))))
                        st = lora__oom("option", strlen(name));
                }
            if (!known) {
                st = lora__error(LORA_ERR_CONFIG, "option 'chat_template' must be \"auto\", "
                                 "\"qwen2.5\", \"qwen3\", \"llama3\" or \"chatml\"");
                break;
            }
            if (strcmp(name, "auto") == 0) {
                free(t->template_override);
                t->template_override = NULL;
            }
        }
    json_decref(o);
    return st;
}

lora_status lora__tokenizer_info_build(lora_tokenizer *t, const char *template_name)
{
    json_t *o = json_object();
    if (!o)
        return lora__oom("tokenizer info", 256);
    int bad = json_object_set_new(o, "vocab_size", json_integer((json_int_t)t->n_ids));
    for (int i = 0; !bad && i < 3; i++) {
        char k[32];
        snprintf(k, sizeof k, "%.3s_token_id", special_keys[i]);
        bad = json_object_set_new(o, k, t->special_id[i] >= 0 ? json_integer(t->special_id[i])
                                                              : json_null());
    }
    for (int i = 0; !bad && i < 3; i++)
        bad = json_object_set_new(o, special_keys[i], t->special_text[i]
                                                          ? json_string(t->special_text[i])
                                                          : json_null());
    bad = bad || json_object_set_new(o, "chat_template",
                                     template_name ? json_string(template_name) : json_null());
    t->info_json = bad ? NULL : lora__json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return t->info_json ? LORA_OK : lora__oom("tokenizer info", 256);
}

void lora__tokenizer_retain(lora_tokenizer *t) { atomic_fetch_add(&t->refs, 1); }

void lora__tokenizer_release(lora_tokenizer *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    lora__handle_remove(t);
    free(t->kind);
    free(t->raw_off);
    free(t->raw);
    lora__strmap_free(&t->vocab);
    lora__u64map_free(&t->merges);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    free(t->added_lens);
    lora__strmap_free(&t->added_map);
    lora__pretok_free(&t->pre);
    for (int i = 0; i < 3; i++)
        free(t->special_text[i]);
    free(t->chat_template);
    free(t->template_override);
    free(t->info_json);
    free(t);
}

int32_t lora__tokenizer_special_id(const lora_tokenizer *t, lora__special which)
{
    return t ? t->special_id[which] : -1;
}

const char *lora__tokenizer_special_text(const lora_tokenizer *t, lora__special which)
{
    return t ? t->special_text[which] : NULL;
}

const char *lora__tokenizer_chat_template(const lora_tokenizer *t)
{
    return t ? t->chat_template : NULL;
}

const char *lora__tokenizer_template_override(const lora_tokenizer *t)
{
    return t ? t->template_override : NULL;
}
