/* A PEFT adapter folder: adapter_config.json, then (after FZ_SEP) adapter_model.safetensors;
 * a file the input leaves out is absent. Loaded against the tiny Qwen2 fixture model, which is
 * loaded once per process. */
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "harness.h"
#include "lora.h"

static lora_model *model;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (lora_model_load(fz_fixture("tiny-qwen2"), "{\"threads\": 1}", &model) != LORA_OK)
        fz_die("lora_model_load");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_part parts[2];
    size_t n = fz_split(data, size, parts, 2);
    char dir[4096], path[4096 + 64];
    snprintf(dir, sizeof dir, "%s", fz_path("adapter"));
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    fz_write_part(path, &parts[0]);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    fz_write_part(path, n > 1 ? &parts[1] : NULL);
    lora_adapter *a = NULL;
    if (lora_adapter_load(model, dir, &a) == LORA_OK && !lora_adapter_info_json(a))
        fz_die("lora_adapter_info_json");
    lora_adapter_free(a);
    return 0;
}
