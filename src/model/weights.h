/* The list of tensors a config implies: Hugging Face names, shapes, how Hugging Face
 * initialises them, and where the loaded model keeps them. Loading, describing and writing
 * random checkpoints all walk this one list. */
#ifndef LORA_MODEL_WEIGHTS_H
#define LORA_MODEL_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "model/config.h"
#include "model/model.h"

typedef enum lora_init_kind { LORA_INIT_NORMAL, LORA_INIT_ZEROS, LORA_INIT_ONES } lora_init_kind;

typedef struct lora_weight_slot {
    char name[80];
    int ndim;
    int64_t shape[2];
    lora_init_kind init;
    float **dst;  /* where the model keeps it; NULL when built without a model */
} lora_weight_slot;

/* Fills a malloc'd array in checkpoint order; m may be NULL. */
lora_status lora__weight_slots(const lora_config *c, lora_model *m, lora_weight_slot **out,
                               size_t *n);
/* "[a, b]" into buf. */
const char *lora__shape_str(const int64_t *shape, int ndim, char *buf, size_t cap);
/* 1 for tensors real checkpoints carry that the model does not use (rotary inv_freq buffers,
 * an lm_head.weight next to tied embeddings). */
int lora__weight_ignorable(const lora_config *c, const char *name);

/* Checks the files against the slots: every slot present with its shape and a float dtype
 * (F32, BF16, F16), and no tensor the config does not account for. Sorts slots by name. */
struct lora_st_set;
lora_status lora__weights_check(const lora_config *c, const struct lora_st_set *set,
                                lora_weight_slot *slots, size_t n);

#endif
