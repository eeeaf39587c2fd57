/* The loaded base model: config, float32 weights in one arena, refcount. */
#ifndef LORA_MODEL_MODEL_H
#define LORA_MODEL_MODEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "model/config.h"

typedef struct lora_layer_weights {
    float *attn_norm;              // (C)
    float *wq, *wk, *wv, *wo;      // (H*D, C), (KVH*D, C), (KVH*D, C), (C, H*D)
    float *bq, *bk, *bv, *bo;      // (H*D), (KVH*D), (KVH*D), (C); NULL when absent
    float *q_norm, *k_norm;        // (D) qwen3 only
    float *mlp_norm;               // (C)
    float *w_gate, *w_up, *w_down; // (I, C), (I, C), (C, I)
} lora_layer_weights;

struct lora_model {
    atomic_int refs;
    lora_config cfg;
    int threads;
    float *embed;       // (V, C)
    float *lm_head;     // (V, C); == embed when tied
    float *final_norm;  // (C)
    lora_layer_weights *layers;
    float *arena;
    size_t arena_floats;
    uint64_t n_params;
    char stored_dtype[8];
    char *info_json;
    char *config_text;  /* config.json as loaded, for lora_model_save */
    struct lora_merge *merge; /* what lora_model_unmerge restores; NULL when not merged */
    char *path;         /* the folder it was loaded from */
    /* the folder's tokenizer, loaded by the first lora_model_tokenizer call */
    pthread_mutex_t tokenizer_lock;
    struct lora_tokenizer *tokenizer;
};

void lora__model_retain(lora_model *m);
void lora__model_release(lora_model *m);

#endif
