/* A sharded checkpoint folder: model.safetensors.index.json, then (separated by FZ_SEP) the
 * bytes of model-00001-of-00002.safetensors and model-00002-of-00002.safetensors; a shard the
 * input leaves out is absent. The folder is opened as one tensor set and every tensor looked up. */
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "harness.h"
#include "io/safetensors.h"

static const char *const files[] = {
    "model.safetensors.index.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
};
#define N_FILES (sizeof files / sizeof files[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_part parts[N_FILES];
    size_t n = fz_split(data, size, parts, N_FILES);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", fz_path("model"));
    mkdir(dir, 0700);
    for (size_t i = 0; i < N_FILES; i++) {
        char path[4096 + 64];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        fz_write_part(path, i < n ? &parts[i] : NULL);
    }
    lora_st_set *s = NULL;
    if (lora__st_set_open(dir, &s) != LORA_OK)
        return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < lora__st_set_count(s); i++) {
        const lora_st_tensor *t = lora__st_set_at(s, i);
        if (lora__st_set_find(s, t->name) != t || !lora__st_set_file_of(s, t->name))
            fz_die("lora__st_set_find does not find a listed tensor");
        if (t->nbytes)
            sink ^= t->data[0] ^ t->data[t->nbytes - 1];
    }
    (void)sink;
    lora__st_set_close(s);
    return 0;
}
