/* The JSON descriptions behind lora_model_info_json and lora_model_describe. */
#ifndef LORA_MODEL_MODEL_INFO_H
#define LORA_MODEL_MODEL_INFO_H

#include <jansson.h>

#include "model/config.h"
#include "model/model.h"

/* The config's keys as a new JSON object (model_type, dimensions, flags, num_parameters). */
json_t *lora__config_to_json(const lora_config *c);
/* Sets m->info_json. */
lora_status lora__model_info_build(lora_model *m);

#endif
