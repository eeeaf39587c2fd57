/* The JSON options every *_create call takes: parsed once, the same way, with the same errors. */
#ifndef LORA_UTIL_JSON_CONFIG_H
#define LORA_UTIL_JSON_CONFIG_H

#include <jansson.h>

#include "lora.h"

/* Parses config_json (duplicate keys refused) into *root, a JSON object to json_decref.
 * LORA_ERR_CONFIG "<where>: config_json is not valid JSON: ... (line L, column C)" or
 * "<where>: config_json must be a JSON object"; *root is NULL then. */
lora_status lora__json_config_load(const char *config_json, const char *where, json_t **root);

#endif
