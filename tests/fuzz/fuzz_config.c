/* config.json: the parser and validator of Hugging Face model configs, then what is derived
 * from a config that passed (the parameter count, its JSON description, the LoRA modules a
 * default adapter would have). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "adapter/adapter.h"
#include "harness.h"
#include "model/config.h"
#include "model/model_info.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lora_config c;
    if (lora__config_parse((const char *)data, size, "config.json", &c) != LORA_OK)
        return 0;
    (void)lora__config_num_params(&c);
    json_t *j = lora__config_to_json(&c);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    free(text);
    json_decref(j);
    uint64_t modules, trainable;
    (void)lora__adapter_count(&c, "{\"target_modules\": \"all-linear\"}", &modules, &trainable);
    return 0;
}
