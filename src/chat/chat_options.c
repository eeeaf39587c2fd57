/* lora_chat_render's options: strict types, unknown keys named, null for "the default". */
#include <string.h>

#include "api/error.h"
#include "chat/render.h"

typedef lora_status (*key_parser)(const char *key, const json_t *v, lora__chat_opts *o);

static lora_status want_string(const char *key, const json_t *v, const char **out)
{
    if (!json_is_string(v))
        return lora__error(LORA_ERR_CONFIG, "key '%s' must be a string", key);
    *out = json_string_value(v);
    return LORA_OK;
}

static lora_status want_bool(const char *key, const json_t *v, int *out)
{
    if (!json_is_boolean(v))
        return lora__error(LORA_ERR_CONFIG, "key '%s' must be true or false", key);
    *out = json_is_true(v);
    return LORA_OK;
}

static lora_status parse_template(const char *key, const json_t *v, lora__chat_opts *o)
{
    lora__chat_style unused;
    lora_status st = want_string(key, v, &o->template_name);
    if (st == LORA_OK && !lora__chat_style_named(o->template_name, &unused))
        return lora__error(LORA_ERR_CONFIG, "key '%s': '%s' is not a built-in template (%s)",
                           key, o->template_name, lora__chat_builtin_names);
    return st;
}

static lora_status parse_format(const char *key, const json_t *v, lora__chat_opts *o)
{
    lora_status st = want_string(key, v, &o->format);
    if (st != LORA_OK)
        return st;
    o->format_len = json_string_length(v);
    if (lora__find(o->format, o->format_len, "{q}") == o->format_len)
        return lora__error(LORA_ERR_CONFIG, "key '%s' has no {q} for the user's text", key);
    return LORA_OK;
}

static lora_status parse_generation(const char *key, const json_t *v, lora__chat_opts *o)
{
    return want_bool(key, v, &o->add_generation_prompt);
}

static lora_status parse_thinking(const char *key, const json_t *v, lora__chat_opts *o)
{
    return want_bool(key, v, &o->enable_thinking);
}

static lora_status parse_date(const char *key, const json_t *v, lora__chat_opts *o)
{
    return want_string(key, v, &o->date_string);
}

static const struct {
    const char *key;
    key_parser parse;
} KEYS[] = {
    {"template", parse_template},
    {"format", parse_format},
    {"add_generation_prompt", parse_generation},
    {"enable_thinking", parse_thinking},
    {"date_string", parse_date},
};

static lora_status parse_key(const char *key, const json_t *v, lora__chat_opts *o)
{
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++)
        if (strcmp(key, KEYS[i].key) == 0)
            return json_is_null(v) ? LORA_OK : KEYS[i].parse(key, v, o);
    return lora__error(LORA_ERR_CONFIG, "unknown key '%s' (template, format, "
                       "add_generation_prompt, enable_thinking, date_string)", key);
}

lora_status lora__chat_options(const json_t *options, lora__chat_opts *o)
{
    *o = (lora__chat_opts){.enable_thinking = 1};
    if (!options)
        return LORA_OK;
    if (!json_is_object(options))
        return lora__error(LORA_ERR_CONFIG, "options must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)options, key, v) {
        lora_status st = parse_key(key, v, o);
        if (st != LORA_OK)
            return st;
    }
    if (o->template_name && o->format)
        return lora__error(LORA_ERR_CONFIG, "keys 'template' and 'format' exclude each other: "
                           "give one");
    return LORA_OK;
}
