/* A safetensors file: the validating reader over the input bytes, then every accessor, reading
 * each tensor's bytes so that ASan sees any range the validation let through wrongly. */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lora_st_file *f = NULL;
    if (lora__st_open_buffer(data, size, "fuzz.safetensors", &f) != LORA_OK)
        return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < lora__st_count(f); i++) {
        const lora_st_tensor *t = lora__st_at(f, i);
        if (lora__st_find(f, t->name) != t)
            fz_die("lora__st_find does not find a listed tensor");
        if (t->nbytes != t->numel * lora__st_dtype_size(t->dtype))
            fz_die("tensor byte size disagrees with its shape");
        for (uint64_t k = 0; k < t->nbytes; k++)
            sink ^= t->data[k];
    }
    (void)lora__st_metadata(f, "format");
    (void)sink;
    lora__st_close(f);
    return 0;
}
