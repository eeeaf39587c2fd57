/* A model folder: config.json, then (after FZ_SEP) model.safetensors; a file the input leaves
 * out is absent. lora_model_load checks every tensor against the config before it converts any;
 * a model that loads has its description read. */
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "harness.h"
#include "lora.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_part parts[2];
    size_t n = fz_split(data, size, parts, 2);
    char dir[4096], path[4096 + 64];
    snprintf(dir, sizeof dir, "%s", fz_path("model"));
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/config.json", dir);
    fz_write_part(path, &parts[0]);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fz_write_part(path, n > 1 ? &parts[1] : NULL);
    lora_model *m = NULL;
    if (lora_model_load(dir, "{\"threads\": 1}", &m) == LORA_OK && !lora_model_info_json(m))
        fz_die("lora_model_info_json");
    lora_model_free(m);
    return 0;
}
