/* Internal view of a sampler for lora_generate. */
#ifndef LORA_SAMPLE_SAMPLER_H
#define LORA_SAMPLE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "lora.h"

size_t lora__sampler_max_new_tokens(const lora_sampler *s);
/* 1 if the next token is the logits' first argmax, unchanged by any penalty (greedy decoding
 * without repetition, presence or frequency penalties): lora_generate may take it from the
 * device. */
int lora__sampler_plain_greedy(const lora_sampler *s);
/* 1 if token is one of eos_token_id. */
int lora__sampler_is_eos(const lora_sampler *s, int32_t token);
/* 1 if generated (n tokens, the newest last) now ends with one of stop_sequences. */
int lora__sampler_hits_stop(const lora_sampler *s, const int32_t *generated, size_t n);

/* ---- configuration (sampler_config.c) ---------------------------------------------------- */

/* The factors that scale or shift logits are floats: any finite float times or over another
 * stays finite in double, so the warpers can never turn a finite logit into an infinity or a
 * NaN, and lora_sampler_set_temperature takes a float anyway. */
typedef struct lora__sampler_config {
    int do_sample;
    float temperature;
    size_t top_k;                /* 0: off */
    double top_p;                /* 1: off */
    double min_p;                /* 0: off */
    float repetition_penalty;    /* 1: off */
    float presence_penalty;
    float frequency_penalty;
    uint64_t seed;
    size_t max_new_tokens;
    int32_t *eos;                /* n_eos ids */
    size_t n_eos;
    int32_t *stop_ids;           /* stop sequence i is stop_ids[stop_end[i-1] .. stop_end[i]) */
    size_t *stop_end;
    size_t n_stop;
} lora__sampler_config;

/* Fills cfg from config_json (NULL: every default). LORA_ERR_CONFIG names the key; on failure
 * cfg owns nothing. */
lora_status lora__sampler_config_parse(const char *config_json, lora__sampler_config *cfg);
void lora__sampler_config_release(lora__sampler_config *cfg);

/* ---- logit transforms (warpers.c), on a double copy of one row of V logits ---------------- */

/* A logit and its token id: top_p ranks candidates by logit, then id. */
typedef struct lora__ranked {
    double value;
    int32_t id;
} lora__ranked;

/* Hugging Face's repetition penalty over tokens (all in 0..V-1). Reads the original logits so
 * that a token seen many times is penalised once. */
void lora__warp_repetition(double *work, const float *logits, const int32_t *tokens, size_t n,
                           float penalty);
/* OpenAI's presence/frequency penalties over the generated tokens. counts (V) is all zero on
 * entry and on return. */
void lora__warp_presence_frequency(double *work, size_t *counts, const int32_t *generated,
                                   size_t n, float presence, float frequency);
void lora__warp_temperature(double *work, size_t n, float temperature);
/* First index of the largest value. */
size_t lora__argmax(const double *work, size_t n);
/* The filters set removed tokens to -inf; each keeps at least the most probable token.
 * scratch (n doubles) and order (n entries) are workspace. k = 0 and top_p = 1 are no-ops. */
void lora__warp_top_k(double *work, size_t n, size_t k, double *scratch);
void lora__warp_top_p(double *work, size_t n, double top_p, double *scratch,
                      lora__ranked *order);
void lora__warp_min_p(double *work, size_t n, double min_p);
/* Inverse CDF of softmax(work) at u in [0, 1); overwrites work with unnormalised weights. */
size_t lora__sample_softmax(double *work, size_t n, double u);

#endif
