/* The loaded base model: config, float32 weights in one arena, refcount. */
#ifndef LORA_MODEL_MODEL_H
#define LORA_MODEL_MODEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend.h"
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
    /* On a GPU: the backend that holds the device copy of the arena (every weight at the
     * same offset as in arena; the host arena stays, for merges and saves), its device and
     * math mode. NULL / -1 on the CPU. */
    lora_backend *dev;
    float *dev_arena;
    int dev_ordinal;
    int dev_math;
    pthread_mutex_t dev_lock; /* dev is used by any thread: adapter uploads, merges */
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

/* Where a backend of the model reads weight p (a pointer into arena, or NULL). */
static inline const float *lora__model_mem(const lora_model *m, const float *p)
{
    return p && m->dev_arena ? m->dev_arena + (p - m->arena) : p;
}

/* Copies the host arena to the device copy (after a merge or an unmerge changed it); LORA_OK
 * without one. LORA_ERR_DEVICE, LORA_ERR_DEVICE_OUT_OF_MEMORY. */
lora_status lora__model_upload(lora_model *m);
/* A backend for a session on m: the CPU's with n_threads, or one on the model's GPU. */
lora_status lora__model_backend_create(lora_model *m, int n_threads, lora_backend **out);

void lora__model_retain(lora_model *m);
void lora__model_release(lora_model *m);

#endif
