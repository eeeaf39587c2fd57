/* lora_model_init_checkpoint: a randomly initialised checkpoint in Hugging Face layout,
 * streamed tensor by tensor so that even large configs need little memory. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/error.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/dtype.h"
#include "model/weights.h"
#include "util/file.h"
#include "util/rng.h"

typedef struct init_src {
    lora_rng rng;
    double std;
} init_src;

/* Hugging Face's initialisation, drawn in checkpoint order so a seed fixes every byte. */
static void init_values(void *ctx, const lora_weight_slot *s, size_t offset, float *out, size_t n)
{
    init_src *src = ctx;
    (void)offset;
    for (size_t i = 0; i < n; i++)
        out[i] = s->init == LORA_INIT_ZEROS ? 0.0f
                 : s->init == LORA_INIT_ONES ? 1.0f
                                             : (float)(lora__rng_normal(&src->rng) * src->std);
}

static lora_status init_checkpoint(const char *config_json, const char *out_dir, uint64_t seed,
                                   int bf16)
{
    lora_config c;
    lora_status st = lora__config_parse(config_json, strlen(config_json), "config", &c);
    if (st)
        return st;
    lora_weight_slot *slots;
    size_t n;
    if ((st = lora__weight_slots(&c, NULL, &slots, &n)))
        return st;
    init_src src;
    lora__rng_seed(&src.rng, seed);
    src.std = c.init_range;
    st = lora__write_hf_folder(out_dir, config_json, slots, n, bf16, init_values, &src);
    free(slots);
    return st;
}

LORA_API lora_status lora_model_init_checkpoint(const char *config_json, const char *out_dir,
                                                uint64_t seed, const char *dtype)
{
    lora__error_clear();
    if (!config_json || !out_dir)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_model_init_checkpoint: %s is NULL",
                           config_json ? "out_dir" : "config_json");
    int bf16 = 0;
    if (dtype && strcmp(dtype, "bf16") == 0)
        bf16 = 1;
    else if (dtype && strcmp(dtype, "f32") != 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT,
                           "lora_model_init_checkpoint: dtype '%.16s' is not \"f32\" or \"bf16\"",
                           dtype);
    lora_status st = init_checkpoint(config_json, out_dir, seed, bf16);
    return st ? lora__error_prefix(st, "lora_model_init_checkpoint") : LORA_OK;
}
