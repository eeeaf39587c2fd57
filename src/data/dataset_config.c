/* lora_dataset_load's JSON options: strict types and ranges, errors naming the key. */
#include <jansson.h>
#include <string.h>

#include "api/error.h"
#include "util/json_config.h"
#include "data/dataset.h"

#define WHERE "lora_dataset_load"
/* Beyond any context window; packing keeps a table of max_length + 1 entries. */
#define MAX_LENGTH_LIMIT ((json_int_t)1 << 20)

typedef lora_status (*key_parser)(const char *key, const json_t *v, lora__dataset_config *cfg);

static lora_status bad(const char *key, const char *what)
{
    return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' %s", key, what);
}

static lora_status get_bool(const char *key, const json_t *v, int *out)
{
    if (!json_is_boolean(v))
        return bad(key, "must be true or false");
    *out = json_is_true(v);
    return LORA_OK;
}

static lora_status parse_format(const char *key, const json_t *v, lora__dataset_config *cfg)
{
    static const char *const NAMES[] = {"auto", "messages", "prompt_completion", "text"};
    const char *s = json_string_value(v);
    for (size_t i = 0; s && i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(s, NAMES[i]) == 0) {
            cfg->format = (lora__format)i;
            return LORA_OK;
        }
    return bad(key, "must be \"auto\", \"messages\", \"prompt_completion\" or \"text\"");
}

static lora_status parse_loss(const char *key, const json_t *v, lora__dataset_config *cfg)
{
    const char *s = json_string_value(v);
    if (s && (strcmp(s, "assistant") == 0 || strcmp(s, "all") == 0)) {
        cfg->loss_all = strcmp(s, "all") == 0;
        return LORA_OK;
    }
    return bad(key, "must be \"assistant\" or \"all\"");
}

static lora_status parse_max_length(const char *key, const json_t *v, lora__dataset_config *cfg)
{
    if (!json_is_integer(v))
        return bad(key, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < 1 || x > MAX_LENGTH_LIMIT)
        return lora__error(LORA_ERR_CONFIG, WHERE ": key '%s' = %" JSON_INTEGER_FORMAT
                           " is outside 1..%" JSON_INTEGER_FORMAT, key, x, MAX_LENGTH_LIMIT);
    cfg->max_length = (size_t)x;
    return LORA_OK;
}

static lora_status parse_packing(const char *key, const json_t *v, lora__dataset_config *cfg)
{
    return get_bool(key, v, &cfg->packing);
}

static lora_status parse_shuffle(const char *key, const json_t *v, lora__dataset_config *cfg)
{
    return get_bool(key, v, &cfg->shuffle);
}

static lora_status parse_strict(const char *key, const json_t *v, lora__dataset_config *cfg)
{
    return get_bool(key, v, &cfg->strict);
}

static lora_status parse_seed(const char *key, const json_t *v, lora__dataset_config *cfg)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return bad(key, "must be a non-negative integer");
    cfg->seed = (uint64_t)json_integer_value(v);
    return LORA_OK;
}

/* The chat renderer checks the keys themselves when the first conversation is rendered. */
static lora_status parse_chat(const char *key, const json_t *v, lora__dataset_config *cfg)
{
    if (!json_is_object(v))
        return bad(key, "must be a JSON object of lora_chat_render options");
    cfg->chat = json_incref((json_t *)v);
    return LORA_OK;
}

static const struct {
    const char *key;
    key_parser parse;
} KEYS[] = {
    {"format", parse_format},   {"loss", parse_loss},       {"max_length", parse_max_length},
    {"packing", parse_packing}, {"shuffle", parse_shuffle}, {"seed", parse_seed},
    {"strict", parse_strict},   {"chat", parse_chat},
};

static lora_status parse_object(const json_t *root, lora__dataset_config *cfg)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        size_t i = 0;
        while (i < sizeof KEYS / sizeof KEYS[0] && strcmp(key, KEYS[i].key) != 0)
            i++;
        if (i == sizeof KEYS / sizeof KEYS[0])
            return lora__error(LORA_ERR_CONFIG, WHERE ": unknown key '%s'", key);
        /* null means "unset", as in Hugging Face's configs: the default stays. */
        lora_status st = json_is_null(v) ? LORA_OK : KEYS[i].parse(key, v, cfg);
        if (st != LORA_OK)
            return st;
    }
    return LORA_OK;
}

lora_status lora__dataset_config_parse(const char *config_json, lora__dataset_config *cfg)
{
    *cfg = (lora__dataset_config){
        .format = LORA__FORMAT_AUTO,
        .max_length = 1024,
        .shuffle = 1,
        .strict = 1,
    };
    if (!config_json)
        return LORA_OK;
    json_t *root;
    lora_status st = lora__json_config_load(config_json, WHERE, &root);
    if (st != LORA_OK)
        return st;
    st = parse_object(root, cfg);
    json_decref(root);
    if (st != LORA_OK)
        lora__dataset_config_release(cfg);
    return st;
}

void lora__dataset_config_release(lora__dataset_config *cfg)
{
    json_decref(cfg->chat);
    cfg->chat = NULL;
}

void lora__dataset_config_copy(lora__dataset_config *dst, const lora__dataset_config *src)
{
    *dst = *src;
    if (dst->chat)
        json_incref(dst->chat);
}
