/* lora_prompt_few_shot: worked examples, then the question, as a chat or as plain text. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "api/handle.h"
#include "chat/render.h"
#include "tokenizer/tokenizer.h"
#include "util/json_text.h"

#define WHERE "lora_prompt_few_shot"
#define DEFAULT_FORMAT "Question: {q}\nAnswer: {a}"

typedef struct few_opts {
    int chat;                 /* -1: not given */
    const char *system;
    const char *format;
    size_t format_len;
    json_t *chat_options;     /* the keys passed on to the chat template */
} few_opts;

/* jansson does not say how much it failed to allocate */
static lora_status no_memory(const char *what)
{
    return lora__error(LORA_ERR_OUT_OF_MEMORY, "out of memory building %s", what);
}

static const char *const CHAT_KEYS[] = {"template", "enable_thinking", "date_string"};

static lora_status want_string(const char *key, const json_t *v, const char **out)
{
    if (!json_is_string(v))
        return lora__error(LORA_ERR_CONFIG, "key '%s' must be a string", key);
    *out = json_string_value(v);
    return LORA_OK;
}

static lora_status parse_key(const char *key, json_t *v, few_opts *o)
{
    for (size_t i = 0; i < sizeof CHAT_KEYS / sizeof CHAT_KEYS[0]; i++)
        if (strcmp(key, CHAT_KEYS[i]) == 0)
            return json_is_null(v) || json_object_set(o->chat_options, key, v) == 0
                       ? LORA_OK : no_memory("the chat options");
    int known = !strcmp(key, "chat") || !strcmp(key, "system") || !strcmp(key, "format");
    if (!known)
        return lora__error(LORA_ERR_CONFIG, "unknown key '%s' (chat, system, format, template, "
                           "enable_thinking, date_string)", key);
    if (json_is_null(v))
        return LORA_OK;
    if (strcmp(key, "system") == 0)
        return want_string(key, v, &o->system);
    if (strcmp(key, "format") == 0) {
        o->format_len = json_string_length(v);
        return want_string(key, v, &o->format);
    }
    if (!json_is_boolean(v))
        return lora__error(LORA_ERR_CONFIG, "key '%s' must be true or false", key);
    o->chat = json_is_true(v);
    return LORA_OK;
}

static lora_status parse_options(json_t *root, few_opts *o)
{
    if (!root)
        return LORA_OK;
    if (!json_is_object(root))
        return lora__error(LORA_ERR_CONFIG, "options_json must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        lora_status st = parse_key(key, v, o);
        if (st != LORA_OK)
            return st;
    }
    return LORA_OK;
}

static lora_status check_examples(const json_t *ex)
{
    if (!json_is_array(ex))
        return lora__error(LORA_ERR_FORMAT, "examples_json must be a JSON array");
    size_t i;
    json_t *e;
    json_array_foreach(ex, i, e) {
        if (!json_is_object(e))
            return lora__error(LORA_ERR_FORMAT, "example %zu is not a JSON object", i);
        const char *key;
        json_t *v;
        json_object_foreach(e, key, v)
            if (strcmp(key, "q") != 0 && strcmp(key, "a") != 0)
                return lora__error(LORA_ERR_FORMAT, "example %zu: unknown key '%s' (q, a)", i,
                                   key);
        if (!json_is_string(json_object_get(e, "q")) ||
            !json_is_string(json_object_get(e, "a")))
            return lora__error(LORA_ERR_FORMAT, "example %zu: 'q' and 'a' must be strings", i);
    }
    return LORA_OK;
}

/* Whether the prompt is a chat: "chat" if given, else when a template is at hand. */
static lora_status decide_chat(const lora_tokenizer *t, few_opts *o)
{
    int template_keys = json_object_size(o->chat_options) > 0;
    if (o->chat < 0)
        o->chat = !o->format && t &&
                  (json_object_get(o->chat_options, "template") ||
                   lora__tokenizer_chat_template(t) || lora__tokenizer_template_override(t));
    if (o->chat && o->format)
        return lora__error(LORA_ERR_CONFIG, "key 'format' is for plain prompts (\"chat\": "
                           "false)");
    if (!o->chat && template_keys)
        return lora__error(LORA_ERR_CONFIG, "keys 'template', 'enable_thinking' and "
                           "'date_string' are for chat prompts (\"chat\": true)");
    if (o->chat && !t)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "tokenizer is NULL, and a chat prompt "
                           "needs its template");
    return LORA_OK;
}

static int push(json_t *messages, const char *role, json_t *content)
{
    json_t *m = json_pack("{s:s, s:O}", "role", role, "content", content);
    return m && json_array_append_new(messages, m) == 0;
}

static lora_status chat_prompt(const lora_tokenizer *t, const json_t *ex, json_t *q,
                               const few_opts *o, char **text)
{
    json_t *messages = json_array();
    int ok = messages && json_object_set_new(o->chat_options, "add_generation_prompt",
                                                  json_true()) == 0;
    if (ok && o->system) {
        json_t *s = json_string(o->system);
        ok = s && push(messages, "system", s);
        json_decref(s);
    }
    size_t i;
    json_t *e;
    json_array_foreach(ex, i, e)
        ok = ok && push(messages, "user", json_object_get(e, "q")) &&
             push(messages, "assistant", json_object_get(e, "a"));
    ok = ok && push(messages, "user", q);
    lora_status st = ok ? lora__chat_render(t, messages, o->chat_options, text, NULL, NULL)
                        : no_memory("the few-shot conversation");
    json_decref(messages);
    return st;
}

static void add_example(lora__strbuf *b, const char *fmt, size_t len, const json_t *e)
{
    const json_t *q = json_object_get(e, "q"), *a = json_object_get(e, "a");
    lora__placeholder ph[2] = {
        {"{q}", json_string_value(q), json_string_length(q)},
        {"{a}", json_string_value(a), json_string_length(a)},
    };
    lora__fill_placeholders(b, fmt, len, ph, 2);
    lora__strbuf_adds(b, "\n\n");
}

static lora_status plain_prompt(const json_t *ex, const char *question, const few_opts *o,
                                char **text)
{
    const char *fmt = o->format ? o->format : DEFAULT_FORMAT;
    size_t len = o->format ? o->format_len : strlen(DEFAULT_FORMAT);
    size_t at_a = lora__find(fmt, len, "{a}");
    if (at_a == len || lora__find(fmt, len, "{q}") >= at_a)
        return lora__error(LORA_ERR_CONFIG, "key 'format' needs {q}, then {a}");
    lora__strbuf b = {0};
    if (o->system) {
        lora__strbuf_adds(&b, o->system);
        lora__strbuf_adds(&b, "\n\n");
    }
    size_t i;
    json_t *e;
    json_array_foreach(ex, i, e)
        add_example(&b, fmt, len, e);
    /* the question ends where its answer would start, less the space a model writes itself */
    size_t head = at_a;
    while (head && (fmt[head - 1] == ' ' || fmt[head - 1] == '\t'))
        head--;
    lora__placeholder ph = {"{q}", question, strlen(question)};
    lora__fill_placeholders(&b, fmt, head, &ph, 1);
    lora_status st = lora__strbuf_status(&b, "the few-shot prompt");
    if (st == LORA_OK && !(*text = lora__strbuf_take(&b)))
        st = lora__oom("the few-shot prompt", b.len + 1);
    lora__strbuf_free(&b);
    return st;
}

static lora_status few_shot(const lora_tokenizer *t, const char *examples_json,
                            const char *question, const char *options_json, char **text)
{
    json_error_t err;
    json_t *ex = lora__json_loads(examples_json, JSON_REJECT_DUPLICATES, &err);
    if (!ex)
        return lora__error(LORA_ERR_FORMAT, "examples_json is not valid JSON: %s (line %d, "
                           "column %d)", err.text, err.line, err.column);
    json_t *root = NULL, *q = json_string(question);
    few_opts o = {.chat = -1, .chat_options = json_object()};
    lora_status st = o.chat_options ? check_examples(ex) : no_memory("the chat options");
    if (st == LORA_OK && !q)
        st = lora__error(LORA_ERR_FORMAT, "question is not valid UTF-8");
    if (st == LORA_OK && options_json &&
        !(root = lora__json_loads(options_json, JSON_REJECT_DUPLICATES, &err)))
        st = lora__error(LORA_ERR_CONFIG, "options_json is not valid JSON: %s (line %d, "
                         "column %d)", err.text, err.line, err.column);
    if (st == LORA_OK)
        st = parse_options(root, &o);
    if (st == LORA_OK)
        st = decide_chat(t, &o);
    if (st == LORA_OK)
        st = o.chat ? chat_prompt(t, ex, q, &o, text) : plain_prompt(ex, question, &o, text);
    json_decref(q);
    json_decref(o.chat_options);
    json_decref(root);
    json_decref(ex);
    return st;
}

LORA_API lora_status lora_prompt_few_shot(const lora_tokenizer *tokenizer,
                                          const char *examples_json, const char *question,
                                          const char *options_json, char **text_out)
{
    lora__error_clear();
    if (text_out)
        *text_out = NULL;
    if (!examples_json || !question || !text_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, WHERE ": %s is NULL",
                           !examples_json ? "examples_json" : !question ? "question"
                                                                        : "text_out");
    if (tokenizer && lora__handle_check(tokenizer, LORA__KIND_TOKENIZER, WHERE, "tokenizer"))
        return LORA_ERR_INVALID_ARGUMENT;
    lora_status st = few_shot(tokenizer, examples_json, question, options_json, text_out);
    return st == LORA_OK ? st : lora__error_prefix(st, WHERE);
}
