/* Writing Hugging Face checkpoint folders (lora init, lora_model_save). */
#ifndef LORA_MODEL_CHECKPOINT_H
#define LORA_MODEL_CHECKPOINT_H

#include <stddef.h>

#include "lora.h"
#include "model/weights.h"

/* config.json from config_text with torch_dtype naming what was written, atomically. */
lora_status lora__write_hf_config(const char *path, const char *config_text, int bf16);
/* Creates dir if missing; LORA_ERR_IO if it cannot be or is not a folder. */
lora_status lora__make_dir(const char *dir);

/* Fills out with n values of slot s starting at element offset. */
typedef void (*lora_fill_fn)(void *ctx, const lora_weight_slot *s, size_t offset, float *out,
                             size_t n);
/* model.safetensors with the slots' names and shapes, in F32 or BF16 (round to nearest
 * even), values streamed from fill in bounded chunks; atomic. */
lora_status lora__write_weights(const char *path, const lora_weight_slot *slots, size_t n,
                                int bf16, lora_fill_fn fill, void *ctx);
/* dir (created if missing) as a Hugging Face folder, model.safetensors and config.json, saved
 * as one transaction with a manifest (io/manifest.h): the folder holds the old pair or the new. */
lora_status lora__write_hf_folder(const char *dir, const char *config_json,
                                  const lora_weight_slot *slots, size_t n, int bf16,
                                  lora_fill_fn fill, void *ctx);

#endif
