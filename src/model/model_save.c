/* lora_model_save: the model's current weights as a Hugging Face folder. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "api/handle.h"
#include "model/checkpoint.h"
#include "util/file.h"

static void weight_values(void *ctx, const lora_weight_slot *s, size_t offset, float *out,
                          size_t n)
{
    (void)ctx;
    memcpy(out, *s->dst + offset, n * sizeof *out);
}

static lora_status save(lora_model *m, const char *dir, int bf16)
{
    lora_weight_slot *slots;
    size_t n;
    /* a GPU's full fine-tuning may have left the host arena behind */
    lora_status st = lora__model_host_sync(m);
    if (st || (st = lora__weight_slots(&m->cfg, m, &slots, &n)))
        return st;
    st = lora__write_hf_folder(dir, m->config_text, slots, n, bf16, weight_values, NULL);
    free(slots);
    return st;
}

LORA_API lora_status lora_model_save(const lora_model *model, const char *dir, const char *dtype)
{
    lora__error_clear();
    lora_status st = lora__handle_check(model, LORA__KIND_MODEL, "lora_model_save", "model");
    if (st)
        return st;
    if (!dir)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_model_save: dir is NULL");
    int bf16 = dtype && strcmp(dtype, "bf16") == 0;
    if (dtype && !bf16 && strcmp(dtype, "f32") != 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT,
                           "lora_model_save: dtype '%.16s' is not \"f32\" or \"bf16\"", dtype);
    /* the slots' dst pointers are the model's own fields; nothing is written through them */
    st = save((lora_model *)model, dir, bf16);
    return st ? lora__error_prefix(st, "lora_model_save") : LORA_OK;
}
