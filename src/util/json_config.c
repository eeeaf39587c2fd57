#include "util/json_config.h"

#include "api/error.h"
#include "util/json_text.h"

lora_status lora__json_config_load(const char *config_json, const char *where, json_t **root)
{
    json_error_t err;
    *root = lora__json_loads(config_json, JSON_REJECT_DUPLICATES, &err);
    if (!*root)
        return lora__error(LORA_ERR_CONFIG, "%s: config_json is not valid JSON: %s (line %d, "
                           "column %d)", where, err.text, err.line, err.column);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return lora__error(LORA_ERR_CONFIG, "%s: config_json must be a JSON object", where);
    }
    return LORA_OK;
}
