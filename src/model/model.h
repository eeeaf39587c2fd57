/* The loaded base model: config, float32 weights in one arena, refcount. */
#ifndef LORA_MODEL_MODEL_H
#define LORA_MODEL_MODEL_H

#include <pthread.h>
#include <stdbool.h>
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
    /* On a GPU: the backend that holds the device copy of the weights (one block, laid out by
     * lora__model_device_plan; the host arena stays, for merges and saves), its device and
     * math mode. NULL / -1 on the CPU. */
    lora_backend *dev;
    char *dev_mem;
    size_t dev_bytes;
    struct lora_dev_tensor *dev_tensors; /* by host offset */
    size_t n_dev_tensors;
    bool dev_bf16;      /* matrices in bfloat16 there (math mode bf16), the rest float32 */
    int dev_ordinal;
    int dev_math;
    pthread_mutex_t dev_lock; /* dev is used by any thread: adapter uploads, merges */
    /* Full fine-tuning on the GPU (model_master.c): float32 masters of the bfloat16 tensors,
     * held while a full-training optimizer lives; host_stale while the device copy is newer
     * than the host arena. */
    float *dev_master;
    size_t dev_master_floats;
    int master_users;
    bool host_stale;
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

/* One weight tensor's device copy: the host arena's floats off..off+numel-1, at byte dev_off
 * of the device block, in bfloat16 or float32. */
typedef struct lora_dev_tensor {
    size_t off, numel, dev_off;
    size_t master_off; /* floats into dev_master (bf16 tensors, while it exists) */
    bool bf16;
} lora_dev_tensor;

/* The device layout of m's weights (host arithmetic only): with bf16, every matrix (the seven
 * projections, the embedding, an untied lm_head) in bfloat16 and the vectors (norms, biases)
 * in float32, else all float32; each tensor 256-byte aligned. *out (malloc'd, by host offset),
 * *n, *bytes: the block's size. LORA_ERR_OUT_OF_MEMORY. */
lora_status lora__model_device_plan(lora_model *m, bool bf16, lora_dev_tensor **out, size_t *n,
                                    size_t *bytes);
/* Plans, allocates and fills the device copy of a model with a device backend. */
lora_status lora__model_device_create(lora_model *m, bool bf16);
void lora__model_device_free(lora_model *m);
/* Where a backend of the model reads weight p (a pointer into arena, or NULL) as float32: p
 * itself on the CPU, its device copy on a GPU; NULL when that copy is bfloat16. */
const float *lora__model_mem(const lora_model *m, const float *p);
/* The device tensor holding host float p (inside the arena); NULL if none. */
const lora_dev_tensor *lora__model_find_tensor(const lora_model *m, const float *p);
/* The bfloat16 device copy of weight p; NULL on the CPU and where the copy is float32. */
const lora_bf16 *lora__model_mem_bf16(const lora_model *m, const float *p);

/* Copies the host arena to the device copy (after a merge or an unmerge changed it), matrices
 * rounded to bfloat16 where the copy keeps them so, and to the float32 masters when they
 * exist; LORA_OK without one. The host arena must be current (lora__model_host_sync).
 * LORA_ERR_DEVICE, LORA_ERR_DEVICE_OUT_OF_MEMORY, LORA_ERR_OUT_OF_MEMORY. */
lora_status lora__model_upload(lora_model *m);

/* ---- full fine-tuning on a GPU (model_master.c) ---------------------------------------------
 * The optimizer updates float32 weights: the device copy itself where it is float32, a float32
 * master of each bfloat16 tensor otherwise, rounded into the bfloat16 copy after each update.
 * The host arena then lags until lora__model_host_sync, which every reader of the host weights
 * (saves, merges, checkpoints) calls first. On the CPU all four are no-ops (p itself). */

/* Takes a reference to the masters, made and filled from the host arena by the first.
 * LORA_ERR_DEVICE_OUT_OF_MEMORY, LORA_ERR_DEVICE. */
lora_status lora__model_master_acquire(lora_model *m);
/* Drops the reference; the last one brings the host arena up to date, then frees them. */
void lora__model_master_release(lora_model *m);
/* The float32 device memory an optimizer updates for weight p (a pointer into arena): its
 * master, or its float32 device copy; p on the CPU. Needs a reference. */
float *lora__model_param(lora_model *m, float *p);
/* After an update on backend be (ordered after it): the bfloat16 copies rounded from the
 * masters; the host arena becomes stale. LORA_ERR_DEVICE. */
lora_status lora__model_publish(lora_model *m, lora_backend *be);
/* Downloads the device weights into the host arena if it is stale. LORA_ERR_DEVICE. */
lora_status lora__model_host_sync(lora_model *m);
/* A backend for a session on m: the CPU's with n_threads, or one on the model's GPU. */
lora_status lora__model_backend_create(lora_model *m, int n_threads, lora_backend **out);

void lora__model_retain(lora_model *m);
void lora__model_release(lora_model *m);

#endif
