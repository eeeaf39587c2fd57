/* A decoder-only model's shape, read from a Hugging Face config.json and validated before any
 * allocation depends on it. */
#ifndef LORA_MODEL_CONFIG_H
#define LORA_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "lora.h"

typedef enum lora_arch { LORA_ARCH_QWEN2, LORA_ARCH_QWEN3, LORA_ARCH_LLAMA } lora_arch;

typedef struct lora_config {
    lora_arch arch;
    char model_type[16];
    int64_t vocab;        /* vocab_size */
    int64_t hidden;       /* hidden_size, C */
    int64_t inter;        /* intermediate_size, I */
    int64_t n_layers;     /* num_hidden_layers, L */
    int64_t n_heads;      /* num_attention_heads, H */
    int64_t n_kv_heads;   /* num_key_value_heads, KVH */
    int64_t head_dim;     /* D */
    int64_t max_pos;      /* max_position_embeddings */
    double rms_eps;
    double rope_theta;
    double init_range;    /* initializer_range, for lora init */
    bool tie_embeddings;
    bool qkv_bias;        /* q/k/v projections have a bias */
    bool o_bias;          /* o_proj has a bias (llama/qwen3 attention_bias) */
    bool qk_norm;         /* qwen3 per-head RMSNorm on q and k */
    char torch_dtype[16]; /* as written in the config, "" if absent */
} lora_config;

/* Parses and validates config.json text. label (the file path) starts every message. */
lora_status lora__config_parse(const char *text, size_t len, const char *label, lora_config *out);
/* Reads path (a config.json file) and parses it. */
lora_status lora__config_load(const char *path, lora_config *out);

/* Parameters of the base model, tied embeddings counted once. */
uint64_t lora__config_num_params(const lora_config *c);

#endif
