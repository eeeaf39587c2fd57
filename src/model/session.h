/* A session: one thread's mutable state over a shared model. */
#ifndef LORA_MODEL_SESSION_H
#define LORA_MODEL_SESSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "adapter/adapter.h"
#include "backend.h"
#include "model/model.h"

#define LORA_MAX_ADAPTERS 8 /* attached to one session at once */

/* The tensors of one layer's activations a training forward keeps rounded to bfloat16 (a
 * model with bfloat16 weights on a backend with the kept-set ops, lora__kept_ops): the
 * attention and SwiGLU read them where they are; the backward widens the rest into a float32
 * set in the session's shared workspace and rebuilds h1, h2, their rstd and act from them
 * (kept.c). The q/k norms' rstd
 * and the LoRA intermediates t stay float32, in the layer's lora_layer_acts. */
typedef struct lora_layer_bf16 {
    lora_bf16 *x_in, *x_mid;   // (N, C)
    lora_bf16 *q_lin, *k_lin;  // (N, H*D), (N, KVH*D) with q/k RMSNorm (qwen3), else NULL
    lora_bf16 *q, *k, *v;      // (N, H*D), (N, KVH*D), (N, KVH*D) after RoPE
    lora_bf16 *att;            // (N, H*D)
    lora_bf16 *gate, *up;      // (N, I)
    float *att_stats;          // (N*H) float32: attention_bf16_fwd's stats, for its backward
} lora_layer_bf16;

/* One decoder layer's activations. At inference the buffers are shared by every layer and the
 * ones only a backward needs are NULL (or alias others); a training forward keeps one set per
 * layer (or, recomputing, only x_in per layer). */
typedef struct lora_layer_acts {
    float *x_in;           // (N, C) residual stream entering the layer; NULL at inference
    float *h1;             // (N, C) input RMSNorm output
    float *rstd1;          // (N)
    float *q_lin, *k_lin;  // (N, H*D), (N, KVH*D) projections before q/k RMSNorm (qwen3)
    float *rstd_q, *rstd_k;// (N*H), (N*KVH)
    float *q, *k, *v;      // (N, H*D), (N, KVH*D), (N, KVH*D) attention inputs (after RoPE)
    float *att;            // (N, H*D) attention output
    float *x_mid;          // (N, C) residual stream after attention; NULL at inference
    float *h2;             // (N, C) post-attention RMSNorm output
    float *rstd2;          // (N)
    float *gate, *up;      // (N, I)
    float *act;            // (N, I) silu(gate) * up (== gate at inference)
    float *o;              // (N, C) o_proj / down_proj output before the residual add
    float *t[LORA_PROJ_COUNT][LORA_MAX_ADAPTERS]; // (N, r) LoRA x A^T per projection, adapter
    float *drop_x;         // (N, max in) LoRA dropout's input, when dropout is on
    /* (N, max(C, I)) bfloat16, or NULL: the input of the next bf16 products (h1, h2, act in
     * turn) as the op that made it rounded it, so that the products do not round it again */
    lora_bf16 *in16;
    /* a training pass that keeps bfloat16 activations: the layer's kept set, into which the
     * forward's ops round what they make (x_mid is then NULL) and the attention writes its
     * output and statistics, and where the backward's attention, SwiGLU and norms read them
     * (of the float32 set above only att, h1, h2, act and the rstd are filled for it); NULL
     * else */
    lora_layer_bf16 *kept;
} lora_layer_acts;

/* What a training forward keeps for the backward: per layer everything in float32, or (kept)
 * most of it in bfloat16, or (recompute) only the layer's input. */
typedef struct lora_train_acts {
    int64_t B, T;
    bool recompute;          /* layers[l] holds only x_in; the rest is recomputed */
    lora_layer_acts *layers; // (L)
    lora_layer_bf16 *kept;   /* (L) or NULL: layers[l] holds only rstd_q, rstd_k and t, kept[l]
                              * the rest */
    lora_layer_acts scratch; /* the shared set a recomputing backward refills (not kept) */
    float *x_final;          // (N, C) residual stream entering the final RMSNorm
    float *rstd_final;       // (N)
    float *h_final;          // (N, C) final hidden states
    const int32_t *ids;      // (N) staged (lora__stage_i32)
    const int32_t *host_ids; // (N) the same, on the host (the caller's, alive until backward)
    const int32_t *pos;      // (N) the caller's position ids (packed rows), staged, or NULL
    const int32_t *key0;     // (N) each token's first visible key (packed rows), staged, or NULL
} lora_train_acts;

/* The session's backend buffers for int32 arrays staged from the host (a backend with host
 * memory reads the host arrays themselves). */
typedef enum lora_stage {
    LORA_STAGE_IDS, LORA_STAGE_POS, LORA_STAGE_KEY0, LORA_STAGE_TARGETS,
    LORA_STAGE_ORDER, LORA_STAGE_RUNS, /* the embedding backward's grouping */
    LORA_STAGE_COUNT
} lora_stage;

/* What a recorded decode step's ops were given that can change between steps (decode_graph.c):
 * while it is the same, the recording still computes the step. Zeroed before filling, so that
 * it compares with memcmp. */
typedef struct lora_graph_key {
    const void *ws, *k_cache, *v_cache, *rope_cos, *rope_sin, *ids, *pos, *head, *answer;
    const void *adapters[LORA_MAX_ADAPTERS];
    float scales[LORA_MAX_ADAPTERS];
    size_t n_adapters;
    int64_t max_rank;
} lora_graph_key;

/* Every buffer below is the backend's memory (s->be->ops->mem_alloc) unless it says host. */
struct lora_session {
    atomic_int refs;      /* the caller's and each optimizer's */
    lora_model *model;
    lora_backend *be;
    int64_t max_ctx;
    int64_t pos;          /* tokens in the KV cache */
    int32_t *tokens;      // (max_ctx) host: the ids in the cache, for repetition penalties
    void *k_cache;        // (L, max_ctx, KVH, D) float32, or bfloat16 when kv_bf16
    void *v_cache;        // (L, max_ctx, KVH, D)
    bool kv_bf16;         /* a GPU model with bfloat16 weights keeps its KV cache so too */
    float *rope_cos;      // (rope_len, D/2)
    float *rope_sin;      // (rope_len, D/2)
    int64_t rope_len;
    float *ws;            /* activations, grown to the largest call; in a training step the
                           * float32 layer set of a kept forward, the head's chunks, then the
                           * backward's gradient buffers (never live at once) */
    size_t ws_floats;
    int32_t *ws_ids;      /* host: positions of the current call (after its ids, inference) */
    size_t ws_ids_cap;
    int32_t *stage[LORA_STAGE_COUNT]; /* see lora__stage_i32 */
    size_t stage_bytes[LORA_STAGE_COUNT];
    /* The ids slot holds [fed_id, fed_pos], written by the last step's greedy argmax (feed):
     * a one-token step of that id at that position stages nothing. Cleared by any staging. */
    bool fed;
    int32_t fed_id;
    int64_t fed_pos;
    lora_adapter *adapters[LORA_MAX_ADAPTERS]; /* attached, retained */
    float scales[LORA_MAX_ADAPTERS];
    size_t n_adapters;
    int64_t max_rank;     /* largest r among attached adapters' modules */
    float *head_ws;       /* output-head chunks (logits and log-sum-exp) of a loss over
                           * hidden states in ws */
    size_t head_ws_floats;
    int64_t head_cols;    /* vocabulary columns per head chunk, where the backend has the
                           * chunked cross-entropy; 0: lora__head_plan_chunked's choice */
    bool dropout_on;      /* LoRA dropout: only inside a training step */
    uint64_t dropout_seed;/* the masks of the current training step */
    float *train_ws;      /* saved activations of the last training forward */
    size_t train_ws_floats;
    float *dhidden;       /* a training step's gradient at the final hidden states */
    size_t dhidden_floats;
    lora_layer_acts *train_layers; /* host */
    lora_layer_bf16 *train_kept;   /* host, as many */
    int64_t train_layers_cap;
    bool acts_bf16;       /* training activations kept in bfloat16 (lora_layer_bf16) */
    /* one-token decode steps replayed from a recording (decode_graph.c) */
    struct lora_graph *graph;  /* the recording, or NULL */
    lora_graph_key graph_key;  /* what it, or the last eager step, was made with */
    bool graph_seen;           /* the last step ran eagerly with graph_key */
    bool graph_off;            /* LORA_CUDA_GRAPHS=0, or a recording failed: eager only */
    uint64_t graph_replays;    /* steps run from a recording */
};

/* The step's ops (embedding, layers, final norm, head) of lora__decoder_forward, given its
 * prepared buffers; what lora__graph_step records and replays. */
typedef void (*lora_step_ops)(lora_session *s, void *ctx);
/* Runs ops(s, ctx): eagerly the first time with a key; recorded, then replayed, from the next
 * one with the same key (s's backend must have the graph entries). A recording that fails
 * turns recording off for the session and runs the step eagerly. */
lora_status lora__graph_step(lora_session *s, const lora_graph_key *key, lora_step_ops ops,
                             void *ctx);
/* Drops the session's recording (the backend stays). */
void lora__graph_drop(lora_session *s);

/* Where the session's backend reads weight p of the model (a pointer into the model's host
 * arena, or NULL): p itself, or its place in the model's device copy. */
static inline const float *lora__weight(const lora_session *s, const float *p)
{
    return lora__model_mem(s->model, p);
}

/* y (N, out) = x (N, in) @ w^T + bias for a base weight w (and bias, may be NULL) of the
 * model's arena, or rows of one (the output head's vocabulary chunks): the float32 product, or
 * the bfloat16 one where the device copy holds w so. */
void lora__base_fwd(lora_session *s, float *y, const float *x, const float *w, const float *bias,
                    int64_t N, int64_t out, int64_t in);
/* Its backward: dx (N, in) += dy @ w (w's float32 or bfloat16 copy), or, not accumulate,
 * dx = dy @ w (dx's old values not read: the gradient's first term); dw, dbias (gradient
 * arenas, may be NULL) as matmul_bwd, from dy and x alone. dy16: NULL, or dy rounded to
 * bfloat16 by the op that made it, for a bfloat16 w's product (dy may then be NULL where
 * neither dw nor dbias is wanted and w is bfloat16: lora__model_mem_bf16). */
void lora__base_bwd(lora_session *s, float *dx, float *dw, float *dbias, const float *dy,
                    const lora_bf16 *dy16, const float *x, const float *w, int64_t N,
                    int64_t out, int64_t in, bool accumulate);
/* Whether the layers' products are bfloat16 ones that take their input rounded by the op
 * that made it (lora_bf16_group's x16, matmul_bf16_bwd's dy16). */
bool lora__rounded_inputs(const lora_session *s);

/* Grows the backend buffer *buf of *cap bytes to at least need bytes; the contents are lost (the
 * old block is freed first). The backend's statuses; on failure *buf is NULL and *cap 0. */
lora_status lora__session_grow(lora_session *s, void **buf, size_t *cap, size_t need,
                               const char *what);
/* n int32 host values where the backend reads them: host itself on a host-memory backend, else
 * the session's staging buffer slot, uploaded (valid until the slot is staged again). host may
 * be NULL (*out is then NULL). */
lora_status lora__stage_i32(lora_session *s, lora_stage slot, const int32_t *host, size_t n,
                            const int32_t **out);

/* ids, pos, key0 and targets the functions below take are host arrays; activations, hidden
 * states and gradients are the backend's memory. */

/* The output head as the last ops of lora__decoder_forward's step, so that a decode graph
 * holds it too: the last row's logits (V) into logits, and where answer is not NULL their
 * argmax (lora_backend_ops.argmax's two int32) into answer; both the backend's memory. */
typedef struct lora_step_head {
    float *logits;
    int32_t *answer;
} lora_step_head;

/* Runs the decoder over ids (B, T), leaving the final-normed hidden states (B*T, C) in
 * *hidden (inside the workspace), then head's ops where head is not NULL. With use_cache, B
 * must be 1: the keys and values are written to the cache at positions pos..pos+T-1 and
 * attention reads the whole cache. ids must be range-checked. */
lora_status lora__decoder_forward(lora_session *s, const int32_t *ids, int64_t B, int64_t T,
                                  bool use_cache, const lora_step_head *head, float **hidden);

/* Validates a (B, T) batch of ids (lengths may be NULL) and returns a malloc'd copy with
 * padded positions set to 0. Messages start with fn. */
lora_status lora__batch_ids(const char *fn, const lora_session *s, const int32_t *ids,
                           const int32_t *lengths, size_t B, size_t T, int32_t **out);
/* Every label is -100 or a token id. */
lora_status lora__check_labels(const char *fn, const lora_session *s, const int32_t *labels,
                              size_t B, size_t T);

/* lora_session_append for a caller that takes the greedy token: *token is the last row's first
 * argmax, found by the backend (the row stays in its memory), or -1 with the row in logits
 * (V floats, host) where the host must look at it (a backend without an argmax, a row with a
 * NaN or only -inf). */
lora_status lora__session_append_greedy(lora_session *s, const int32_t *ids, size_t n,
                                        float *logits, int32_t *token);

void lora__session_retain(lora_session *s);
void lora__session_release(lora_session *s);

/* A training forward: like lora__decoder_forward without the cache, keeping in *acts (inside
 * the session's training workspace) what lora__decoder_backward needs; ids (host) must stay
 * alive until the backward too. pos and key0 (N), both
 * NULL or both given and alive until the backward: packed rows' positions and first visible
 * keys (see lora_attention_shape). */
lora_status lora__decoder_forward_train(lora_session *s, const int32_t *ids, const int32_t *pos,
                                        const int32_t *key0, int64_t B, int64_t T,
                                        bool recompute, lora_train_acts *acts);

/* Whether a backend has what keeping bfloat16 training activations takes: to_bf16,
 * from_bf16, the bfloat16 SwiGLU and swiglu_keep_fwd, rope_bf16_fwd, the attention over
 * bfloat16 q, k, v, residual_rmsnorm_fwd (which rounds x_mid) and the bfloat16 RMSNorm. */
bool lora__kept_ops(const lora_backend_ops *op);
/* Lays out at base (NULL: only counts) the float32 working set of one layer in a training
 * pass that keeps bfloat16 activations, and returns its floats: the forward's (what the
 * layer's ops write before the kept values are rounded from it, and in16 where the products
 * are bfloat16 ones), or the backward's (only what it reads: h1, h2, their rstd, act and
 * att). rstd_q, rstd_k, t and drop_x are left
 * NULL: they are the layer's own (lora__kept_work). */
size_t lora__kept_layout(const lora_session *s, int64_t N, bool backward, float *base,
                         lora_layer_acts *set);
/* Layer l's working set: set (lora__kept_layout) with layer l's own float32 tensors (rstd_q,
 * rstd_k, t, drop_x) and its kept set. */
lora_layer_acts lora__kept_work(const lora_train_acts *acts, const lora_layer_acts *set,
                                int64_t l);
/* The other way, for the backward: widens att into work and rebuilds h1, h2, their rstd and
 * act (the attention, SwiGLU and the norms read the rest as kept). */
void lora__kept_unpack(lora_session *s, const lora_train_acts *acts, int64_t l,
                       lora_layer_acts *work);

/* Where a backward writes gradients (accumulating). Each pointer may be NULL. */
typedef struct lora_grads {
    float *adapter[LORA_MAX_ADAPTERS]; /* parallel to attached adapter i's arena */
    float *base;                       /* parallel to the model's weight arena */
} lora_grads;

/* Backward from dhidden (N, C), the gradient at the final hidden states, to the gradients in
 * g. dhidden is consumed (overwritten). */
lora_status lora__decoder_backward(lora_session *s, lora_train_acts *acts, float *dhidden,
                                   const lora_grads *g);

/* The output head over hidden (N, C), chunk by chunk so that (N, V) logits never exist at once:
 * nll[n] = -log softmax(hidden[n] lm_head^T)[targets[n]] (0 where the target is -100). With
 * dnll non-NULL, also the backward of sum_n dnll[n] * nll[n]: dhidden (N, C) = ... (written,
 * its old values not read), and dlm_head (V, C) += ... when not NULL. targets, nll and dnll
 * are host arrays (nll is downloaded, which waits for the backend); hidden, dhidden and
 * dlm_head backend memory. The chunks go in *ws (*ws_floats floats, grown as needed, its old
 * contents lost): the session's head_ws, or, where hidden is elsewhere, its ws. */
lora_status lora__head_nll(lora_session *s, float **ws, size_t *ws_floats, const float *hidden,
                           int64_t N, const int32_t *targets, float *nll, const float *dnll,
                           float *dhidden, float *dlm_head);

/* The output head's chunks. Elsewhere than a GPU: whole rows, at most LORA_HEAD_CHUNK_FLOATS
 * logits (16 MiB) at once. On a backend with the chunked cross-entropy (a GPU): the whole
 * vocabulary for as many rows as LORA_HEAD_DEVICE_FLOATS logits (256 MiB) hold, when that is
 * at least LORA_HEAD_MIN_ROWS rows (a product of a good shape), so that the backward uses the
 * forward's logits instead of computing them again; else LORA_HEAD_COLS columns at a time, in
 * 16 MiB, all N rows in one chunk up to 512 of them. */
#define LORA_HEAD_CHUNK_FLOATS ((int64_t)1 << 22)
#define LORA_HEAD_DEVICE_FLOATS ((int64_t)1 << 26)
#define LORA_HEAD_MIN_ROWS 256
#define LORA_HEAD_COLS 8192
typedef struct lora_head_plan {
    int64_t rows;  /* per chunk, 1..N */
    int64_t cols;  /* per chunk, 1..V: V unless cols_max is in 1..V-1 */
} lora_head_plan;
/* cols_max columns (V when not in 1..V-1), as many rows as budget logits hold (1..N). */
lora_head_plan lora__head_plan(int64_t N, int64_t V, int64_t cols_max, int64_t budget);
/* The plan of a backend with the chunked cross-entropy: cols_max columns in the 16 MiB budget
 * when given (> 0, the tests'), else the one described above LORA_HEAD_DEVICE_FLOATS. */
lora_head_plan lora__head_plan_chunked(int64_t N, int64_t V, int64_t cols_max);

/* The largest input width of any projection: max(C, H*D, I). */
int64_t lora__max_proj_in(const lora_config *c);
/* The dropout mask stream's id of adapter i's projection p in layer l. */
static inline uint64_t lora__dropout_module(const lora_session *s, size_t i, int64_t l,
                                            lora_proj p)
{
    return ((uint64_t)i * (uint64_t)s->model->cfg.n_layers + (uint64_t)l) * LORA_PROJ_COUNT + p;
}
/* The attached adapter i's dropout probability while training, else 0. */
static inline float lora__dropout_p(const lora_session *s, size_t i)
{
    return s->dropout_on ? (float)s->adapters[i]->lora_dropout : 0.0f;
}

/* The norm after a layer (the next layer's attention norm, or the final one), made by the
 * layer's last residual add: weight w, its output h (N, C), rstd (N) and the sum rounded into
 * x16 (N, C) where not NULL (a training forward's kept layer input). */
typedef struct lora_next_norm {
    const float *w;
    float *h, *rstd;
    lora_bf16 *x16; /* the sum rounded (the next layer's kept input), or NULL */
    lora_bf16 *h16; /* h rounded (the next layer's in16), or NULL */
} lora_next_norm;

/* Layer l's forward over the residual stream x (N, C), in place (shared with backward.c).
 * key0 NULL, or (N) first visible keys (never with use_cache). normed: a->h1 (and a->rstd1)
 * already hold the attention norm's output (the previous layer made it); next NULL, or the
 * norm after the layer, which the layer's last residual add then makes (the backend must have
 * residual_rmsnorm_fwd). */
void lora__layer_forward(lora_session *s, int64_t l, lora_layer_acts *a, float *x, int64_t B,
                         int64_t T, bool use_cache, bool normed, const lora_next_norm *next,
                         const int32_t *pos, const int32_t *key0);
/* Positions pos0 + (n mod T) for the N = B*T rows, where the backend reads them (staged). */
lora_status lora__positions(lora_session *s, int64_t B, int64_t T, int64_t pos0,
                            const int32_t **pos);
lora_status lora__ensure_rope(lora_session *s, int64_t len);

#endif
