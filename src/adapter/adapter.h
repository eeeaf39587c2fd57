/* A LoRA adapter: low-rank A, B pairs for some projections of a model, in PEFT's layout. */
#ifndef LORA_ADAPTER_ADAPTER_H
#define LORA_ADAPTER_ADAPTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"

/* The seven projections of a decoder layer, in PEFT's target_modules names. */
typedef enum lora_proj {
    LORA_PROJ_Q, LORA_PROJ_K, LORA_PROJ_V, LORA_PROJ_O,
    LORA_PROJ_GATE, LORA_PROJ_UP, LORA_PROJ_DOWN,
    LORA_PROJ_COUNT
} lora_proj;

/* "q_proj", ...; the attention part of the HF module path ("self_attn" or "mlp"). */
const char *lora__proj_name(lora_proj p);
const char *lora__proj_parent(lora_proj p);
/* (out, in) of projection p under config c. */
void lora__proj_shape(const lora_config *c, lora_proj p, int64_t *out, int64_t *in);

typedef struct lora_adapter_module {
    int64_t layer;
    lora_proj proj;
    int64_t r, in, out;
    float scaling;  /* lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora */
    float *A;       // (r, in)
    float *B;       // (out, r)
} lora_adapter_module;

struct lora_adapter {
    atomic_int refs;
    lora_model *model;              /* retained */
    lora_adapter_module *mods;      /* n_mods, ordered by layer then proj */
    size_t n_mods;
    lora_adapter_module **table;    /* (n_layers * LORA_PROJ_COUNT), NULL where not adapted */
    float *arena;                   /* every A and B, 64-byte aligned */
    size_t arena_floats;
    /* On a GPU model: the device copy of arena, the one sessions read and training updates;
     * NULL on the CPU. lora__adapter_upload copies arena to it; training leaves arena behind
     * (host_stale) until lora__adapter_host_sync, which the readers of arena call first. */
    float *dev_arena;
    bool host_stale;
    /* What adapter_config.json says, normalised; written back by save. */
    int64_t r;
    double lora_alpha;
    double lora_dropout;
    bool use_rslora;
    char *config_json;              /* the PEFT adapter_config.json this adapter saves */
    char *info_json;                /* lora_adapter_info_json */
    unsigned targets;               /* bit p set: projection p is a target module */
    uint64_t n_trainable;           /* sum of r * (in + out) over mods */
};

static inline lora_adapter_module *lora__adapter_module(const lora_adapter *a, int64_t layer,
                                                        lora_proj p)
{
    return a->table[layer * LORA_PROJ_COUNT + p];
}

/* Where a session's backend reads A or B (a pointer into arena). */
static inline const float *lora__adapter_mem(const lora_adapter *a, const float *p)
{
    return a->dev_arena ? a->dev_arena + (p - a->arena) : p;
}
static inline float *lora__adapter_mem_rw(lora_adapter *a, float *p)
{
    return a->dev_arena ? a->dev_arena + (p - a->arena) : p;
}

/* On a GPU model: allocates the device copy when there is none and copies arena to it, which
 * becomes current (upload); or brings arena up to date from the device copy after training
 * changed it (host_sync: a download only when host_stale). LORA_OK on the CPU. Statuses:
 * LORA_ERR_DEVICE, LORA_ERR_DEVICE_OUT_OF_MEMORY. */
lora_status lora__adapter_upload(lora_adapter *a);
lora_status lora__adapter_host_sync(lora_adapter *a);

void lora__adapter_retain(lora_adapter *a);
void lora__adapter_release(lora_adapter *a);

/* ---- adapter_config.json (adapter_config.c) ------------------------------------------------ */

/* init_lora_weights: true, "gaussian", false. */
typedef enum lora_adapter_init {
    LORA_ADAPTER_INIT_KAIMING, LORA_ADAPTER_INIT_GAUSSIAN, LORA_ADAPTER_INIT_NONE
} lora_adapter_init;

/* One rank_pattern / alpha_pattern entry: a module name or a path suffix and its value. */
typedef struct lora_adapter_pattern {
    char *key;
    double value;
} lora_adapter_pattern;

/* A PEFT LoraConfig, validated against a model's config and normalised. */
typedef struct lora_adapter_spec {
    int64_t r;
    double lora_alpha;
    double lora_dropout;
    bool use_rslora;
    lora_adapter_init init;
    unsigned targets;               /* bit p: projection p */
    int64_t n_layers;
    bool all_layers;                /* layers_to_transform was null */
    uint8_t *layer_on;              /* (n_layers) 1 where the layer is adapted */
    lora_adapter_pattern *rank_pattern, *alpha_pattern;
    size_t n_rank_pattern, n_alpha_pattern;
} lora_adapter_spec;

/* Parses LoraConfig JSON (NULL means every default) for a model of config c. Messages
 * name the key, without a prefix (callers add the function or file). A JSON syntax error
 * returns json_status (LORA_ERR_CONFIG for an option string, LORA_ERR_FORMAT for a file).
 * On failure *out holds nothing to free. */
lora_status lora__adapter_spec_parse(const char *text, const lora_config *c,
                                     lora_status json_status, lora_adapter_spec *out);
void lora__adapter_spec_free(lora_adapter_spec *s);
/* r and lora_alpha of one module after rank_pattern / alpha_pattern. */
void lora__adapter_spec_module(const lora_adapter_spec *s, int64_t layer, lora_proj p,
                               int64_t *r, double *alpha);
/* lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora. */
float lora__adapter_scaling(double alpha, int64_t r, bool use_rslora);
/* The PEFT adapter_config.json text that lora_adapter_save writes (malloc'd; NULL: no memory). */
char *lora__adapter_spec_peft_json(const lora_adapter_spec *s);
/* Modules and trainable parameters (sum of r * (in + out)) a spec gives under config c. */
void lora__adapter_spec_count(const lora_adapter_spec *s, const lora_config *c,
                              uint64_t *modules, uint64_t *trainable);
/* The same from LoraConfig JSON, without a model (describe-only paths and tests). */
lora_status lora__adapter_count(const lora_config *c, const char *lora_config_json,
                                uint64_t *modules, uint64_t *trainable);

/* ---- allocation and initialisation (adapter_init.c) ----------------------------------------- */

/* A new adapter of model m for spec s: every A and B zero in one arena, the module table,
 * config_json and info_json built; the adapter retains m. */
lora_status lora__adapter_build(lora_model *m, const lora_adapter_spec *s, lora_adapter **out);
/* Fills every A and B as PEFT initialises them; one random stream over the modules in order. */
void lora__adapter_init_weights(lora_adapter *a, lora_adapter_init init, uint64_t seed);

/* ---- names and descriptions (adapter.c) ----------------------------------------------------- */

/* "base_model.model.model.layers.{i}.{self_attn|mlp}.{proj}.lora_{A|B}.weight" into buf. */
void lora__adapter_tensor_name(int64_t layer, lora_proj p, char which, char *buf, size_t cap);
/* Integral values as JSON integers (PEFT writes lora_alpha 16, not 16.0), others as reals. */
struct json_t *lora__adapter_json_number(double x);
/* The names of the projections in targets, sorted (as PEFT saves its target_modules set). */
struct json_t *lora__adapter_target_list(unsigned targets);
/* Sets a->info_json from the modules and a->model. */
lora_status lora__adapter_info_build(lora_adapter *a);

#endif
