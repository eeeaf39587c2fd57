/* A training checkpoint folder: trainer_state.json, optimizer.safetensors,
 * adapter_0/adapter_config.json and adapter_0/adapter_model.safetensors, in that order,
 * separated by FZ_SEP; a file the input leaves out is absent. It is loaded into an optimizer
 * made once per process over the tiny Qwen2 fixture model with one adapter. The adapter and
 * optimizer options are those of the seed maker (tests/fuzz/make_seeds.py), so that its seeds
 * load. */
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "harness.h"
#include "lora.h"

#define ADAPTER_CONFIG "{\"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\"], " \
                       "\"layers_to_transform\": [1]}"
#define OPTIMIZER_CONFIG "{\"lr\": 0.01, \"lr_scheduler_type\": \"linear\", " \
                         "\"num_training_steps\": 10}"

static lora_optimizer *opt;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    lora_model *m;
    lora_session *s;
    lora_adapter *a;
    float one = 1.0f;
    if (lora_model_load(fz_fixture("tiny-qwen2"), "{\"threads\": 1}", &m) != LORA_OK ||
        lora_session_create(m, NULL, &s) != LORA_OK ||
        lora_adapter_create(m, ADAPTER_CONFIG, 1, &a) != LORA_OK ||
        lora_session_set_adapters(s, &a, &one, 1) != LORA_OK ||
        lora_optimizer_create(s, OPTIMIZER_CONFIG, &opt) != LORA_OK)
        fz_die("optimizer setup");
    /* the optimizer holds the session, which holds the model and the adapter */
    lora_adapter_free(a);
    lora_session_free(s);
    lora_model_free(m);
    return 0;
}

static const char *const files[] = {
    "trainer_state.json",
    "optimizer.safetensors",
    "adapter_0/adapter_config.json",
    "adapter_0/adapter_model.safetensors",
};
#define N_FILES (sizeof files / sizeof files[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_part parts[N_FILES];
    size_t n = fz_split(data, size, parts, N_FILES);
    char dir[4096], path[4096 + 64];
    snprintf(dir, sizeof dir, "%s", fz_path("checkpoint"));
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/adapter_0", dir);
    mkdir(path, 0700);
    for (size_t i = 0; i < N_FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        fz_write_part(path, i < n ? &parts[i] : NULL);
    }
    uint64_t position;
    (void)lora_optimizer_load_checkpoint(opt, dir, &position);
    return 0;
}
