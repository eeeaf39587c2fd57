/* Evaluation: answers of a model's output, pass@k, forecast errors, FLOPs. The public entry
 * points (src/api/eval.c) check arguments and call these; messages set here name no function
 * (the entry point prefixes its own). */
#ifndef LORA_EVAL_EVAL_H
#define LORA_EVAL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "adapter/adapter.h"
#include "model/config.h"

/* ---- answers (answer_normalize.c, answer_extract.c, answer_match.c) ------------------------- */

/* The normalised form of an answer of n bytes (rules in docs/evaluation.md): *out is malloc'd,
 * possibly "". */
lora_status lora__answer_normalize(const char *s, size_t n, char **out);

/* What a normalised answer spells: a canonical integer "-12", decimal "0.5", fraction "-1/2",
 * or none of them. */
typedef enum lora_answer_kind {
    LORA_ANSWER_TEXT, LORA_ANSWER_INTEGER, LORA_ANSWER_DECIMAL, LORA_ANSWER_FRACTION
} lora_answer_kind;
lora_answer_kind lora__answer_kind(const char *normalized);

/* The answer in a model's output, normalised; *out = NULL when there is none. */
lora_status lora__answer_extract(const char *text, size_t n, char **out);

/* Whether two normalised answers agree: integers exactly, other numbers within a relative
 * 1e-9, anything else byte for byte. */
int lora__answer_equal(const char *a, const char *b);

/* ---- pass@k (passk.c) ------------------------------------------------------------------------ */

/* 1 - C(n-c, k) / C(n, k) for 1 <= k <= n, c <= n. */
double lora__pass_at_k(uint64_t n, uint64_t c, uint64_t k);

/* The mean pass@k and avg@k for k = 1..rollouts over a (questions, rollouts) matrix of
 * outcomes (non-zero = correct), as JSON and as a printable table (either out may be NULL). */
lora_status lora__pass_at_k_table(const uint8_t *correct, size_t questions, size_t rollouts,
                                  char **json_out, char **text_out);

/* ---- forecasts (metrics.c) ------------------------------------------------------------------- */

/* MSE, MAE and R^2 of pred against truth (n >= 1 finite values each; outs may be NULL). */
lora_status lora__forecast_metrics(const float *pred, const float *truth, size_t n,
                                   double *mse, double *mae, double *r2);

/* ---- FLOPs (flops.c, flops_json.c) ------------------------------------------------------------ */

/* Floating-point operations per token, as multiply-adds times two; "forward" sums are the
 * mean over the positions of a causal context. */
typedef struct lora_flops {
    uint64_t context, batch, tokens_per_step;
    uint64_t parameters;        /* base model, tied embeddings once */
    uint64_t matmul_parameters; /* every weight matrix a token is multiplied by */
    uint64_t adapter_parameters;
    uint64_t per_layer[LORA_PROJ_COUNT]; /* one layer's projection, forward */
    uint64_t projections;       /* every layer's projections */
    uint64_t lm_head;
    uint64_t attention;         /* scores and weighted sum, mean over causal positions */
    uint64_t attention_full;    /* the same for a query that sees the whole context */
    uint64_t adapter;           /* the LoRA paths x A^T B^T */
    uint64_t forward;           /* projections + lm_head + attention + adapter */
    /* element-wise work of the forward, not in the sums above */
    uint64_t ew_rmsnorm, ew_rope, ew_swiglu, ew_softmax, ew_residual, ew_bias, ew_adapter,
        ew_total;
    int train_adapters;         /* 1: LoRA training (frozen base), 0: full fine-tuning */
    uint64_t backward, train;   /* per token; train = forward + backward */
    uint64_t forward_step, train_step; /* times tokens_per_step */
} lora_flops;

/* Counts for config c with adapter spec s (NULL: none, full fine-tuning), rows of context
 * tokens, batch rows per step. LORA_ERR_RANGE when a count passes 2^63. */
lora_status lora__flops_count(const lora_config *c, const lora_adapter_spec *s,
                              uint64_t context, uint64_t batch, lora_flops *f);

/* The JSON object of lora_flops_json (malloc'd). */
lora_status lora__flops_json(const lora_config *c, const lora_flops *f, char **out);

#endif
