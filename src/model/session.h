/* A session: one thread's mutable state over a shared model. */
#ifndef LORA_MODEL_SESSION_H
#define LORA_MODEL_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "model/model.h"

struct lora_session {
    lora_model *model;
    lora_backend *be;
    int64_t max_ctx;
    int64_t pos;          /* tokens in the KV cache */
    int32_t *tokens;      // (max_ctx) the ids in the cache, for repetition penalties
    float *k_cache;       // (L, max_ctx, KVH, D)
    float *v_cache;       // (L, max_ctx, KVH, D)
    float *rope_cos;      // (rope_len, D/2)
    float *rope_sin;      // (rope_len, D/2)
    int64_t rope_len;
    float *ws;            /* activations, grown to the largest call */
    size_t ws_floats;
    int32_t *ws_ids;      /* ids, positions and targets of the current call */
    size_t ws_ids_cap;
};

/* Runs the decoder over ids (B, T), leaving the final-normed hidden states (B*T, C) in
 * *hidden (inside the workspace), and reserving extra_floats of scratch for the caller at
 * *extra (may be NULL when extra_floats is 0). With use_cache, B must be 1: the keys and values
 * are written to the cache at positions pos..pos+T-1 and attention reads the whole cache.
 * ids must be range-checked. */
lora_status lora__decoder_forward(lora_session *s, const int32_t *ids, int64_t B, int64_t T,
                                  bool use_cache, size_t extra_floats, float **hidden,
                                  float **extra);

#endif
