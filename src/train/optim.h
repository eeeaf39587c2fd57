/* The optimizer: AdamW or SGD over a list of float32 parameter tensors, with gradient clipping,
 * LoRA+ learning-rate groups, Hugging Face's learning-rate schedules, skipping of non-finite
 * steps, and an exact save / load of its state. Internal; the public handle wraps it.
 *
 * Semantics follow torch.optim.AdamW / torch.optim.SGD (single-tensor, foreach=False math),
 * torch.nn.utils.clip_grad_norm_ and transformers' get_*_schedule_with_warmup (LambdaLR), to
 * about 1e-6 relative error. Per-element arithmetic is done in double and rounded to float32 on
 * store; the moment buffers are float32, as torch keeps them for float32 parameters.
 *
 * Files: optim_config.c (JSON config), schedule.c (the lr factor), optim.c (create, step),
 * optim_state.c (save / load). */
#ifndef LORA_TRAIN_OPTIM_H
#define LORA_TRAIN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "lora.h"

/* ---- configuration (optim_config.c) ------------------------------------------------------ */

typedef enum lora_optim_kind {
    LORA_OPTIM_ADAMW,
    LORA_OPTIM_SGD
} lora_optim_kind;

typedef enum lora_sched_kind {
    LORA_SCHED_CONSTANT,
    LORA_SCHED_LINEAR,
    LORA_SCHED_COSINE,
    LORA_SCHED_CONSTANT_WITH_WARMUP
} lora_sched_kind;

/* A parsed, validated and resolved configuration. JSON keys (null means the default; unknown
 * keys, wrong types and out-of-range values are LORA_ERR_CONFIG naming the key):
 *   "optimizer"          "adamw" (default) | "sgd"
 *   "lr"                 > 0, finite; default 1e-3
 *   "betas"              [b1, b2], each in [0, 1); default [0.9, 0.999]          (adamw only)
 *   "eps"                > 0; default 1e-8                                       (adamw only)
 *   "amsgrad"            false only; true is LORA_ERR_UNSUPPORTED                (adamw only)
 *   "weight_decay"       >= 0; default 0.01 for adamw (torch.optim.AdamW), 0 for sgd
 *   "momentum"           [0, 1); default 0                                       (sgd only)
 *   "dampening"          [0, 1]; default 0                                       (sgd only)
 *   "nesterov"           bool; default false; needs momentum > 0 and dampening 0 (sgd only)
 *   "loraplus_lr_ratio"  > 0; default 1: lr_group 1 parameters get lr * ratio
 *   "max_grad_norm"      >= 0; 0 (default) turns clipping off
 *   "lr_scheduler_type"  "constant" (default) | "linear" | "cosine" | "constant_with_warmup";
 *                        Hugging Face's other names are LORA_ERR_UNSUPPORTED
 *   "warmup_steps"       integer >= 0                 } at most one of the two; warmup with
 *   "warmup_ratio"       [0, 1] of num_training_steps } "constant" is refused (HF ignores it)
 *   "num_training_steps" integer >= 1; required by linear, cosine and warmup_ratio
 *   "max_consecutive_skips" integer >= 1; default 10
 * A key of the other optimizer ("momentum" for adamw, "betas" for sgd) is an error: torch's
 * constructors would refuse it too. warmup_ratio resolves as HF's get_warmup_steps does,
 * ceil(num_training_steps * warmup_ratio) in double (so 0.1 of 30 is 4, as in HF). */
typedef struct lora_optim_config {
    lora_optim_kind kind;
    double lr;                      /* base lr of group 0; group 1's is lr * loraplus_lr_ratio */
    double beta1, beta2, eps;       /* adamw */
    double weight_decay;
    double momentum, dampening;     /* sgd */
    bool nesterov;                  /* sgd */
    double loraplus_lr_ratio;
    double max_grad_norm;           /* 0: no clipping */
    lora_sched_kind scheduler;
    int64_t warmup_steps;           /* resolved, also when given as warmup_ratio */
    int64_t num_training_steps;     /* 0: not given */
    int64_t max_consecutive_skips;
} lora_optim_config;

/* Fills out from json (NULL: every default). LORA_ERR_CONFIG (or LORA_ERR_UNSUPPORTED) names
 * the key, with messages under "lora_optimizer_create: ". out holds no allocations. */
lora_status lora__optim_config_parse(const char *json, lora_optim_config *out);

/* The resolved configuration as a canonical JSON object (compact, sorted keys, doubles written
 * to round-trip exactly; warmup as "warmup_steps"); lora__optim_config_parse of it gives cfg
 * back bit for bit. *out is malloc'd; LORA_ERR_OUT_OF_MEMORY. */
lora_status lora__optim_config_to_json(const lora_optim_config *cfg, char **out);

/* The JSON key of the first field (other than lr) in which a and b differ, NULL if none. */
const char *lora__optim_config_diff(const lora_optim_config *a, const lora_optim_config *b);

/* ---- schedule (schedule.c) ------------------------------------------------------------------- */

/* The LambdaLR factor after `updates` updates, as transformers computes it (so the first update
 * uses factor(0), which is 0 with warmup). With w = warmup_steps, T = num_training_steps:
 *   warmup (t < w)   t / max(1, w)
 *   linear           max(0, (T - t) / max(1, T - w))
 *   cosine           max(0, 0.5 (1 + cos(pi * 2 * 0.5 * (t - w) / max(1, T - w))))  (rises
 *                    again past T, as in HF)
 *   constant_with_warmup and constant: 1 */
double lora__optim_schedule_factor(const lora_optim_config *cfg, uint64_t updates);

/* ---- the optimizer (optim.c) ----------------------------------------------------------------- */

/* One parameter tensor: n float32 values at p, their gradients at g. The optimizer copies the
 * name and keeps p and g (borrowed: they must stay valid, and keep their length, until
 * lora__optim_free). It reads g and writes p in lora__optim_step; g is never written, and never
 * zeroed (the caller zeroes it). */
typedef struct lora_param {
    const char *name;               /* unique; names the state tensors in saved files */
    float *p;
    float *g;
    size_t n;                       /* >= 1 */
    int lr_group;                   /* 0 normal, 1 LoRA+ "B" group (lr * loraplus_lr_ratio) */
} lora_param;

typedef struct lora_optim lora_optim;

/* What one lora__optim_step did. */
typedef struct lora_optim_report {
    double grad_norm;               /* global L2 norm of the gradients, before clipping (double
                                       accumulation); inf or NaN when skipped */
    double clip_coef;               /* factor the gradients were scaled by: 1 when not clipped */
    double lr;                      /* group-0 lr of the update (schedule applied), or the lr it
                                       would have used when skipped */
    bool skipped;                   /* the norm was not finite: nothing changed */
    uint64_t step;                  /* updates done, after this call */
    uint64_t skips;                 /* skipped steps in total */
    uint64_t consecutive_skips;     /* skipped steps since the last update */
} lora_optim_report;

/* A new optimizer over params[0..n) (n >= 1), moments zero, step 0. cfg is copied.
 * LORA_ERR_INVALID_ARGUMENT: NULL pointers, a parameter with no name, no elements, NULL p or g,
 * lr_group outside {0, 1}, a duplicate name. LORA_ERR_OUT_OF_MEMORY. */
lora_status lora__optim_create(const lora_optim_config *cfg, const lora_param *params, size_t n,
                               lora_optim **out);
void lora__optim_free(lora_optim *o);                      /* NULL is a no-op */

/* The group-0 lr the next update will use: base lr times the schedule factor at step(). */
double lora__optim_lr(const lora_optim *o);
uint64_t lora__optim_step_count(const lora_optim *o);      /* updates done */
uint64_t lora__optim_skip_count(const lora_optim *o);      /* skipped steps in total */
const lora_optim_config *lora__optim_config(const lora_optim *o); /* lr is the current base */

/* One step from the parameters' current gradients:
 *   1. norm = sqrt(sum g^2) over every parameter, accumulated in double.
 *   2. If norm is not finite: skip. Parameters, moments and the step count are untouched, the
 *      skip counters grow, and when the consecutive ones reach max_consecutive_skips the call
 *      returns LORA_ERR_NUMERIC (the counters stay; a later finite step succeeds and resets).
 *   3. With max_grad_norm > 0, coef = max_grad_norm / (norm + 1e-6) (clip_grad_norm_); when
 *      coef < 1 every gradient is scaled by it, on the fly (g itself is not rewritten).
 *   4. lr = group base lr * schedule factor(step); the AdamW or SGD update; step += 1.
 *      AdamW (decoupled decay): p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 *        p -= lr / (1 - b1^(t+1)) * m / (sqrt(v) / sqrt(1 - b2^(t+1)) + eps), t = steps before.
 *      SGD (coupled decay): g += wd p; with momentum, buf = g on the first update, else
 *        momentum buf + (1 - dampening) g, and g = nesterov ? g + momentum buf : buf; p -= lr g.
 * rep (may be NULL) is filled in every case but a NULL o. */
lora_status lora__optim_step(lora_optim *o, lora_optim_report *rep);

/* Runs the optimizer on backend be from now on (call it before the first step): the gradient
 * norm and the AdamW or SGD update through be's table (AdamW over all tensors in one launch
 * where be has the multi-tensor entries), the moments or momentum buffers in be's memory, and
 * p, g must be be's memory too. LORA_ERR_DEVICE_OUT_OF_MEMORY, LORA_ERR_DEVICE. Without this call
 * the optimizer works on host memory with the CPU backend's entries. With a device, a step
 * that fails on it returns LORA_ERR_DEVICE or LORA_ERR_DEVICE_OUT_OF_MEMORY, rep unfilled. */
lora_status lora__optim_use_backend(lora_optim *o, lora_backend *be);

/* Sets the base lr (> 0, finite; else LORA_ERR_CONFIG) from the next update on; group 1's base
 * becomes lr * loraplus_lr_ratio and the schedule factor still applies, as when a LambdaLR's
 * base_lrs are changed. */
lora_status lora__optim_set_lr(lora_optim *o, double lr);

/* ---- state files (optim_state.c) ------------------------------------------------------------- */

/* Writes the state atomically as safetensors: per parameter, in order, F32 tensors of shape [n]
 * "<name>.exp_avg" and "<name>.exp_avg_sq" (adamw) or "<name>.momentum_buffer" (sgd with
 * momentum; none without), and __metadata__ {"format": "liblora-optimizer", "format_version":
 * "1", "step", "skips", "consecutive_skips" (decimal), "lr" (the base lr, %.17g), "config" (the
 * canonical config JSON)}. LORA_ERR_IO; LORA_ERR_OUT_OF_MEMORY. */
lora_status lora__optim_save(const lora_optim *o, const char *path);

/* Restores a state saved by lora__optim_save into o, which must have the same configuration (lr
 * aside: the file's base lr is restored, as torch's load_state_dict does) and the same parameter
 * names and sizes. Everything is checked before anything changes: on failure o is untouched.
 * LORA_ERR_IO, LORA_ERR_FORMAT (not a safetensors file, not an optimizer state, bad metadata,
 * non-finite values or a negative exp_avg_sq), LORA_ERR_CONFIG (names the differing key),
 * LORA_ERR_SHAPE (a missing, extra, wrongly typed or sized tensor, named). */
lora_status lora__optim_load(lora_optim *o, const char *path);

/* ---- private to src/train/optim*.c ------------------------------------------------------------ */

struct lora_optim {
    lora_optim_config cfg;          /* cfg.lr: the current base lr (set_lr, load) */
    lora_param *params;             /* n, names owned */
    size_t n;
    lora_backend *be;               /* lora__optim_use_backend's, or NULL: the host */
    float *m;                       /* per parameter at offset[i]: exp_avg or momentum_buffer;
                                       in be's memory */
    float *v;                       /* exp_avg_sq (adamw), else NULL */
    size_t *offset;                 /* n: where parameter i starts in m and v */
    size_t total;                   /* sum of the parameters' n */
    lora_tensor_set *set;           /* every parameter in one set, when be has the multi-tensor
                                       entries (a GPU): one launch per reduction and update */
    uint64_t step;
    uint64_t skips;
    uint64_t consecutive_skips;
};

/* Number of state tensors per parameter: 2 (adamw), 1 (sgd with momentum), 0. */
int lora__optim_buffers_per_param(const lora_optim_config *cfg);

#endif
