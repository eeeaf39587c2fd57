/* The op table the decoder is written against. Every op has a forward and a backward; the CPU
 * backend (src/cpu/) is the reference implementation, a CUDA backend (cuda/) implements the same
 * table. Pointers are to memory the backend owns or can address (host memory for the CPU).
 *
 * Shape comments use N = rows (tokens), C = hidden, H/KVH = query/key-value heads, D = head dim,
 * I = intermediate, V = vocabulary. All tensors are row-major float32. Backward ops accumulate
 * (+=) into every gradient they are given; a NULL gradient pointer is skipped.
 *
 * Backward entries are NULL in a backend that only runs inference; the training code checks.
 *
 * A backend may also hold frozen base weights and the KV cache in bfloat16 (a GPU does, to halve
 * their memory): the bf16 entries below take those tensors as lora_bf16 (the upper half of a
 * float32, rounded to nearest even), everything else stays float32, and the arithmetic float32.
 * They, and the vocabulary-chunked cross-entropy, are optional: NULL in a backend without them
 * (the CPU), whose callers then take the float32 entries.
 *
 * Besides the math, the table holds what the decoder does with its memory (allocation, copies,
 * fills, transfers to and from the host) and the optimizer's two reductions, so that
 * src/model/ and src/train/ never touch activation memory themselves: on the CPU it is host
 * memory, on a GPU it is device memory the host cannot read. */
#ifndef LORA_BACKEND_H
#define LORA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lora.h"

typedef struct lora_backend_ops lora_backend_ops;

#define LORA_GROUP_MAX 3 /* products of one input in a matmul_bf16_fwd_group */

/* One bfloat16 value: the upper 16 bits of a float32. */
typedef uint16_t lora_bf16;

/* One session's execution context: the op table and the implementation's state (the CPU
 * backend keeps its thread pool there). */
typedef struct lora_backend {
    const lora_backend_ops *ops;
    void *impl;
} lora_backend;

typedef struct lora_attention_shape {
    int64_t B;      /* sequences */
    int64_t T;      /* queries per sequence */
    int64_t S;      /* key/value row stride per sequence (>= pos0 + T) */
    int64_t H, KVH, D;
    int64_t pos0;   /* position of the first query; query t sees keys 0..pos0+t */
    float scale;    /* 1/sqrt(D) */
    /* (B*T) or NULL (all 0): query (b, t) sees only keys key0[b*T+t]..pos0+t of its sequence,
     * non-decreasing in t; packed samples attend only within themselves. */
    const int32_t *key0;
    /* (B*T) or NULL: the queries' positions, pos0 + t, in the backend's memory, for an entry
     * that reads them there rather than pos0 (attention_bf16kv_fwd: a captured decode step
     * replays with the next step's positions); its launch is then sized for S keys. */
    const int32_t *pos;
} lora_attention_shape;

/* Projections of one input x (N, K), each y[i] (N, out[i]) = x @ w[i] (out[i], K)^T + bias[i]
 * (bias[i] may be NULL), w[i] bfloat16: a layer's q/k/v or gate/up projections; where A[i] is
 * not NULL, then y[i] += scale[i] * t[i] @ B[i]^T with t[i] (N, r[i]) = x @ A[i]^T, lora_fwd's
 * LoRA path (A (r, K), B (out, r) float32; t[i] in lora_fwd's layout). x16: NULL, or x rounded
 * as to_bf16 by the op that made x, for the products to read rather than round x again.
 * t_only[i]: path i's t alone, its up-product left to the op that reads y[i] next
 * (lora_lora_up's). */
typedef struct lora_bf16_group {
    int n; /* 1..LORA_GROUP_MAX */
    const lora_bf16 *x16;
    bool t_only[LORA_GROUP_MAX];
    float *y[LORA_GROUP_MAX];
    const lora_bf16 *w[LORA_GROUP_MAX];
    const float *bias[LORA_GROUP_MAX];
    int64_t out[LORA_GROUP_MAX];
    const float *A[LORA_GROUP_MAX], *B[LORA_GROUP_MAX];
    float *t[LORA_GROUP_MAX];
    int64_t r[LORA_GROUP_MAX];
    float scale[LORA_GROUP_MAX];
} lora_bf16_group;

/* A group's LoRA up-products left to the op that reads its outputs next, one side per
 * projection in the group's order (gate, up for swiglu_lora_keep_fwd; q, k, v for
 * qkv_keep_fwd and rope_kv_store_bf16; o or down for residual_lora_rmsnorm_fwd): t[s] NULL
 * where that projection has no LoRA path, else its t (lora_fwd's layout, N x r), B[s] (out, r)
 * and scale[s]; one rank r for all. */
typedef struct lora_lora_up {
    const float *t[LORA_GROUP_MAX], *B[LORA_GROUP_MAX];
    float scale[LORA_GROUP_MAX];
    int64_t r;
} lora_lora_up;

/* LoRA paths of one input x (N, in) with one rank r whose A matrices lie back to back, A
 * (n r, in), and so their gradients, dA (n r, in): a layer's q/k/v or gate/up paths of one
 * adapter. Path i: dy[i] (N, out[i]), B[i] (out[i], r), its gradient dB[i] (NULL: not
 * trained), t[i] from the forward (lora_fwd's), scale[i]. */
typedef struct lora_lora_group {
    int n; /* 1..LORA_GROUP_MAX */
    const float *dy[LORA_GROUP_MAX], *B[LORA_GROUP_MAX], *t[LORA_GROUP_MAX];
    float *dB[LORA_GROUP_MAX];
    int64_t out[LORA_GROUP_MAX];
    float scale[LORA_GROUP_MAX];
} lora_lora_group;

/* One AdamW update (torch.optim.AdamW, decoupled decay): t is the number of updates before
 * this one, lr the group's scheduled rate, grad_scale the clipping factor (1: none). */
typedef struct lora_adamw_args {
    double lr, beta1, beta2, eps, weight_decay, grad_scale;
    uint64_t t;
} lora_adamw_args;

/* One SGD update (torch.optim.SGD, coupled decay): t is the number of updates before this one
 * (the first takes the gradient as the momentum buffer), lr the group's scheduled rate. */
typedef struct lora_sgd_args {
    double lr, momentum, dampening, weight_decay, grad_scale;
    bool nesterov;
    uint64_t t;
} lora_sgd_args;

/* One tensor of the optimizer's multi-tensor entries: n parameters p, their gradients g, the
 * AdamW moments m, v (backend memory), updated with the arguments of group (0 or 1). */
typedef struct lora_tensor_ref {
    float *p;
    const float *g;
    float *m, *v;
    size_t n;                   /* >= 1 */
    int group;
} lora_tensor_ref;

/* A backend's copy of a list of lora_tensor_ref (a GPU keeps it in device memory). */
typedef struct lora_tensor_set lora_tensor_set;

/* A recorded sequence of ops that a backend can run again (a CUDA graph). */
typedef struct lora_graph lora_graph;

struct lora_backend_ops {
    const char *name;
    /* true when the backend computes on host memory: callers may then hand it their own host
     * buffers (the CPU), where another backend needs a transfer */
    bool host_memory;
    /* frees the backend itself (the CPU's thread pool, a GPU's stream and memory) */
    void (*backend_free)(lora_backend *be);

    /* ---- memory. Unlike the math ops these return a status: allocation fails, and a device
     * reports its pending failure here (LORA_ERR_DEVICE_OUT_OF_MEMORY, LORA_ERR_DEVICE). ---- */

    /* bytes of backend memory, 64-byte aligned, contents undefined; what names it in the
     * out-of-memory message. */
    lora_status (*mem_alloc)(lora_backend *be, size_t bytes, const char *what, void **p);
    /* p from mem_alloc with its size; NULL is a no-op. Waits for the ops that may read it. */
    void (*mem_free)(lora_backend *be, void *p, size_t bytes);
    /* dst = src, both backend memory, not overlapping; ordered with the ops. */
    void (*copy)(lora_backend *be, void *dst, const void *src, size_t bytes);
    /* bytes of zeros at dst (backend memory); ordered with the ops. */
    void (*zero)(lora_backend *be, void *dst, size_t bytes);
    /* Host to backend and backend to host, synchronous: when they return, the ops before them
     * are done and the data has arrived; they report any pending failure. */
    lora_status (*upload)(lora_backend *be, void *dst, const void *src, size_t bytes);
    lora_status (*download)(lora_backend *be, void *dst, const void *src, size_t bytes);
    /* Waits for every op and reports the first failure since the last report. */
    lora_status (*sync)(lora_backend *be);

    /* ---- the optimizer ---- */

    /* *acc (host) += sum of x[i]^2 over n floats, in double, in index order on the CPU;
     * synchronous. */
    lora_status (*sum_squares)(lora_backend *be, const float *x, size_t n, double *acc);
    /* One AdamW update of n parameters p from gradients g, float32 moments m, v; the
     * arithmetic of src/train/optim.h in double per element. */
    void (*adamw)(lora_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                  const lora_adamw_args *a);
    /* One SGD update of n parameters p from gradients g; buf (n) is the float32 momentum buffer,
     * NULL without momentum; the arithmetic of src/train/optim.h in double per element. */
    void (*sgd)(lora_backend *be, float *p, const float *g, float *buf, size_t n,
                const lora_sgd_args *a);

    /* y (N, Nout) = x (N, K) @ w (Nout, K)^T + bias (Nout); bias may be NULL. */
    void (*matmul_fwd)(lora_backend *be, float *y, const float *x, const float *w,
                       const float *bias, int64_t N, int64_t Nout, int64_t K);
    /* dx (N, K) += dy @ w; dw (Nout, K) += dy^T @ x; dbias (Nout) += sum over rows of dy.
     * w is read only for dx (NULL is allowed without it). */
    void (*matmul_bwd)(lora_backend *be, float *dx, float *dw, float *dbias, const float *dy,
                       const float *x, const float *w, int64_t N, int64_t Nout, int64_t K);

    /* x (N, C) = table (V, C)[ids (N)]; ids already range-checked. */
    void (*embedding_fwd)(lora_backend *be, float *x, const int32_t *ids, const float *table,
                          int64_t N, int64_t C);
    /* dtable (V, C)[ids[n]] += dx[n] */
    void (*embedding_bwd)(lora_backend *be, float *dtable, const float *dx, const int32_t *ids,
                          int64_t N, int64_t C);

    /* y (N, C) = x * rsqrt(mean(x^2) + eps) * w (C); rstd (N) saved when not NULL.
     * In place (y == x) is allowed. */
    void (*rmsnorm_fwd)(lora_backend *be, float *y, float *rstd, const float *x, const float *w,
                        int64_t N, int64_t C, float eps);
    void (*rmsnorm_bwd)(lora_backend *be, float *dx, float *dw, const float *dy, const float *x,
                        const float *w, const float *rstd, int64_t N, int64_t C);

    /* x (N, heads, D) rotated in place (rotate-half) at positions pos (N), using tables
     * cos, sin (P, D/2) indexed by position. */
    void (*rope_fwd)(lora_backend *be, float *x, const int32_t *pos, const float *cos,
                     const float *sin, int64_t N, int64_t heads, int64_t D);
    /* dx (N, heads, D) rotated back in place (the transpose of the forward rotation). */
    void (*rope_bwd)(lora_backend *be, float *dx, const int32_t *pos, const float *cos,
                     const float *sin, int64_t N, int64_t heads, int64_t D);

    /* out (B, T, H, D) = causal softmax(q k^T * scale) v, with q (B, T, H, D) and k, v
     * (B, S, KVH, D); query head h reads key-value head h / (H / KVH). */
    void (*attention_fwd)(lora_backend *be, float *out, const float *q, const float *k,
                          const float *v, const lora_attention_shape *shape);
    /* dq, dk, dv from dout, recomputing the probabilities. */
    void (*attention_bwd)(lora_backend *be, float *dq, float *dk, float *dv, const float *dout,
                          const float *q, const float *k, const float *v,
                          const lora_attention_shape *shape);

    /* h (N, n_inter) = silu(gate) * up */
    void (*swiglu_fwd)(lora_backend *be, float *h, const float *gate, const float *up, int64_t N,
                       int64_t n_inter);
    void (*swiglu_bwd)(lora_backend *be, float *dgate, float *dup, const float *dh,
                       const float *gate, const float *up, int64_t N, int64_t n_inter);

    /* The LoRA path of one adapted projection, fused:
     * t (N, r) = x (N, in) @ A (r, in)^T;  y (N, out) += scale * t @ B (out, r)^T.
     * t is kept for the backward, in the backend's own layout: only its lora_bwd and
     * lora_bwd_group read it (N x r floats either way: (N, r) on the CPU, (r, N) on CUDA,
     * where the t's of a group's paths then make one matrix). */
    void (*lora_fwd)(lora_backend *be, float *y, float *t, const float *x, const float *A,
                     const float *B, int64_t N, int64_t in, int64_t r, int64_t out, float scale);
    /* With u (N, r) = scale * dy @ B (scratch the caller provides):
     * dx (N, in) += u @ A;  dA (r, in) += u^T @ x;  dB (out, r) += scale * dy^T @ t. */
    void (*lora_bwd)(lora_backend *be, float *dx, float *dA, float *dB, float *u,
                     const float *dy, const float *x, const float *t, const float *A,
                     const float *B, int64_t N, int64_t in, int64_t r, int64_t out, float scale);

    /* Inverted dropout of x (N, n) into out: out = mask * x / (1 - p), the mask of row r a
     * pure function of (seed, module, r), so the backward regenerates it. */
    void (*dropout_fwd)(lora_backend *be, float *out, const float *x, int64_t N, int64_t n,
                        float p, uint64_t seed, uint64_t module);
    /* dx (N, n) += mask * dy / (1 - p), with the forward's mask. */
    void (*dropout_bwd)(lora_backend *be, float *dx, const float *dy, int64_t N, int64_t n,
                        float p, uint64_t seed, uint64_t module);

    /* y (n) += x (n); its backward is the identity on the gradient (dx += dy), the same op. */
    void (*residual_fwd)(lora_backend *be, float *y, const float *x, int64_t n);

    /* For each row n of logits (N, V) with targets[n] != -100:
     * nll[n] = logsumexp(logits[n]) - logits[n][targets[n]], lse[n] = logsumexp(logits[n]);
     * rows with target -100 get nll = 0. */
    void (*cross_entropy_fwd)(lora_backend *be, float *nll, float *lse, const float *logits,
                              const int32_t *targets, int64_t N, int64_t V);
    /* dlogits (N, V) += dnll[n] * (softmax(logits[n]) - onehot(targets[n])) */
    void (*cross_entropy_bwd)(lora_backend *be, float *dlogits, const float *logits,
                              const float *lse, const int32_t *targets, const float *dnll,
                              int64_t N, int64_t V);

    /* ---- optional: bfloat16 storage (NULL in a float32-only backend) ---- */

    /* y (N, Nout) = x (N, K) @ w (Nout, K)^T + bias (Nout) with w bfloat16: x is rounded to
     * bfloat16 for the product, which accumulates in float32; y, bias float32. */
    void (*matmul_bf16_fwd)(lora_backend *be, float *y, const float *x, const lora_bf16 *w,
                            const float *bias, int64_t N, int64_t Nout, int64_t K);
    /* dx (N, K) += dy (N, Nout) @ w (Nout, K), w bfloat16, dy rounded to bfloat16 for the
     * product, float32 accumulation (dw and dbias need no w: matmul_bwd with w NULL); with
     * accumulate false dx = the product instead, dx not read (a gradient's first term). dy16:
     * NULL, or dy rounded as to_bf16 by the op that made dy, which the product then reads (dy
     * may be NULL). */
    void (*matmul_bf16_bwd)(lora_backend *be, float *dx, const float *dy, const lora_bf16 *dy16,
                            const lora_bf16 *w, int64_t N, int64_t Nout, int64_t K,
                            bool accumulate);
    /* x (N, C) = table (V, C)[ids (N)], table bfloat16, x float32 (exact). */
    void (*embedding_bf16_fwd)(lora_backend *be, float *x, const int32_t *ids,
                               const lora_bf16 *table, int64_t N, int64_t C);
    /* dst (n) = src (n) rounded to bfloat16, nearest even (NaN stays NaN): full fine-tuning's
     * bfloat16 weights from their float32 masters. */
    void (*to_bf16)(lora_backend *be, lora_bf16 *dst, const float *src, size_t n);
    /* dst (n) float32 = src (n) bfloat16, exact: activations a training forward kept rounded
     * (a backend with both entries keeps them so for a model whose weights are bfloat16). */
    void (*from_bf16)(lora_backend *be, float *dst, const lora_bf16 *src, size_t n);
    /* swiglu_fwd and swiglu_bwd with gate and up (N, I) bfloat16 (kept training activations):
     * what widening them with from_bf16 first gives, except that the backward writes dgate and
     * dup (swiglu_bwd's terms) rather than adding to them, and when not NULL their rounding
     * as to_bf16 into dgate16 and dup16 (the gate and up products' dy16). */
    void (*swiglu_bf16_fwd)(lora_backend *be, float *h, const lora_bf16 *gate,
                            const lora_bf16 *up, int64_t N, int64_t n_inter);
    void (*swiglu_bf16_bwd)(lora_backend *be, float *dgate, float *dup, lora_bf16 *dgate16,
                            lora_bf16 *dup16, const float *dh, const lora_bf16 *gate,
                            const lora_bf16 *up, int64_t N, int64_t n_inter);
    /* rmsnorm_fwd and rmsnorm_bwd with x (N, C) bfloat16 (a kept residual stream): what
     * widening it with from_bf16 first gives, the backward's dx added to (accumulate) or
     * written (the first gradient into a buffer: a q/k norm's); dx16, when not NULL, gets the
     * resulting dx rounded as to_bf16 (the residual stream's gradient, the next bf16
     * products' dy16). */
    void (*rmsnorm_bf16_fwd)(lora_backend *be, float *y, float *rstd, const lora_bf16 *x,
                             const float *w, int64_t N, int64_t C, float eps);
    void (*rmsnorm_bf16_bwd)(lora_backend *be, float *dx, lora_bf16 *dx16, float *dw,
                             const float *dy, const lora_bf16 *x, const float *w,
                             const float *rstd, int64_t N, int64_t C, bool accumulate);
    /* rmsnorm_fwd (y != x), and x rounded as to_bf16 into x16 in the same pass (a training
     * forward's kept q/k norm inputs). */
    void (*rmsnorm_keep_fwd)(lora_backend *be, float *y, float *rstd, lora_bf16 *x16,
                             const float *x, const float *w, int64_t N, int64_t C, float eps);
    /* swiglu_fwd, and gate and up rounded as to_bf16 into gate16 and up16 in the same pass (a
     * training forward's kept set; NULL, inference: not written); h16, when not NULL, gets h
     * rounded (the down projection's input, lora_bf16_group's x16). h may be gate. */
    void (*swiglu_keep_fwd)(lora_backend *be, float *h, lora_bf16 *h16, lora_bf16 *gate16,
                            lora_bf16 *up16, const float *gate, const float *up, int64_t N,
                            int64_t n_inter);
    /* swiglu_keep_fwd of gate + scale[0] t[0]^T B[0]^T and up + scale[1] t[1]^T B[1]^T (lu:
     * their LoRA up-products, which the group made t for with t_only), each sum as lora_fwd's
     * small kernels add it; gate and up are read, not written, unless h is gate (in place).
     * gate16 and up16 may be NULL (inference keeps nothing). NULL: the products add them. */
    void (*swiglu_lora_keep_fwd)(lora_backend *be, float *h, lora_bf16 *h16, lora_bf16 *gate16,
                                 lora_bf16 *up16, const float *gate, const float *up,
                                 const lora_lora_up *lu, int64_t N, int64_t n_inter);
    /* rope_fwd of x (N, heads, D) rounded as to_bf16 into dst; x unchanged: a training
     * forward's q and k, rotated straight into the kept set. */
    void (*rope_bf16_fwd)(lora_backend *be, lora_bf16 *dst, const float *x, const int32_t *pos,
                          const float *cos, const float *sin, int64_t N, int64_t heads,
                          int64_t D);
    /* The kept q, k, v of a training forward in one pass: rope_bf16_fwd of q + scale[0]
     * t[0]^T B[0]^T into q16 and of k + scale[1] t[1]^T B[1]^T into k16, v + scale[2] t[2]^T
     * B[2]^T rounded as to_bf16 into v16; q (N, H, D), k and v (N, KVH, D) are read, not
     * written. lu: the LoRA up-products the group made t for with t_only, each sum as
     * swiglu_lora_keep_fwd's; NULL, or a side's t NULL, for none. NULL: rope_bf16_fwd twice and
     * to_bf16, the products adding the LoRA terms. */
    void (*qkv_keep_fwd)(lora_backend *be, lora_bf16 *q16, lora_bf16 *k16, lora_bf16 *v16,
                         const float *q, const float *k, const float *v, const lora_lora_up *lu,
                         const int32_t *pos, const float *cos, const float *sin, int64_t N,
                         int64_t H, int64_t KVH, int64_t D);
    /* attention_fwd over kept bfloat16 q (B, T, H, D), k, v (B, T, KVH, D) (shape->S == T,
     * pos0 0): out (B, T, H, D) is attention_fwd's of the widened inputs rounded as to_bf16,
     * and stats (B*H*T floats) what the backend's backward takes from its forward (cuDNN's
     * softmax statistics), for attention_bf16_bwd; the caller reads nothing in it. */
    void (*attention_bf16_fwd)(lora_backend *be, lora_bf16 *out, float *stats,
                               const lora_bf16 *q, const lora_bf16 *k, const lora_bf16 *v,
                               const lora_attention_shape *shape);
    /* attention_bwd of the widened q, k, v (dq, dk, dv float32, written, not added to: rows no
     * query sees get 0), given out and stats from attention_bf16_fwd of the same inputs, so
     * that no forward runs again. */
    void (*attention_bf16_bwd)(lora_backend *be, float *dq, float *dk, float *dv,
                               const float *dout, const lora_bf16 *q, const lora_bf16 *k,
                               const lora_bf16 *v, const lora_bf16 *out, const float *stats,
                               const lora_attention_shape *shape);
    /* The KV cache's writes: cache (B, S, row)[b, pos[b T + t]] = src (B, T, row)[b, t] rounded
     * as to_bf16, the positions pos (B*T) read in the backend's memory. */
    void (*kv_store_bf16)(lora_backend *be, lora_bf16 *cache, const float *src,
                          const int32_t *pos, int64_t B, int64_t T, int64_t S, int64_t row);
    /* attention_fwd with k, v (B, S, KVH, D) bfloat16 (a KV cache), q and out float32, scores,
     * softmax and the weighted sum in float32; the shape's meaning as there. */
    void (*attention_bf16kv_fwd)(lora_backend *be, float *out, const float *q,
                                 const lora_bf16 *k, const lora_bf16 *v,
                                 const lora_attention_shape *shape);

    /* ---- optional: cross-entropy over the vocabulary in column chunks, so that a training
     * step never holds (N, V) logits: logits (N, Vc) are the columns v0..v0+Vc-1 of the rows'
     * logits. state (N, 3) doubles per row: running max, sum of exp(l - max), the target's
     * logit; the chunk at v0 == 0 comes first and starts it, the others follow in any
     * order. ---- */
    void (*ce_chunk_fwd)(lora_backend *be, double *state, const float *logits,
                         const int32_t *targets, int64_t N, int64_t Vc, int64_t v0);
    /* nll[n] = lse[n] - target logit, lse[n] = max + log(sum) from the state of every chunk;
     * rows with target -100 get nll = 0. */
    void (*ce_chunk_finish)(lora_backend *be, float *nll, float *lse, const double *state,
                            const int32_t *targets, int64_t N);
    /* dlogits (N, Vc) = dnll[n] * (exp(logits - lse[n]) - onehot(targets[n] - v0)) for the
     * chunk's columns (written, not added to); rows with target -100 get 0. dlogits16: NULL,
     * or the same rounded as to_bf16 (the head's bf16 product reads it); dlogits may then be
     * NULL (only the rounded gradient wanted). */
    void (*ce_chunk_bwd)(lora_backend *be, float *dlogits, lora_bf16 *dlogits16,
                         const float *logits, const float *lse, const int32_t *targets,
                         const float *dnll, int64_t N, int64_t Vc, int64_t v0);

    /* ---- optional: the embedding backward with the tokens grouped by id (NULL: embedding_bwd,
     * whose repeated ids a GPU can only add in order one column at a time) ---- */

    /* embedding_bwd's result, from order (N), the token indices sorted by id with ties in
     * token order, and runs (n_runs + 1), where each id's run of order starts (the last entry
     * is N): dtable[ids[order[k]]] += dx[order[k]] for each run, its tokens in order. */
    void (*embedding_bwd_grouped)(lora_backend *be, float *dtable, const float *dx,
                                  const int32_t *ids, const int32_t *order,
                                  const int32_t *runs, int64_t n_runs, int64_t C);

    /* ---- optional: the residual add fused with the RMSNorm that follows it (NULL: the two
     * ops), one pass over the rows instead of two. ---- */

    /* x (N, C) += r (N, C), then y (N, C) = x * rsqrt(mean(x^2) + eps) * w (C), rstd (N) saved
     * when not NULL: residual_fwd then rmsnorm_fwd, y != x; x16 (N, C), when not NULL, gets
     * the sum rounded as to_bf16 (a training forward's kept residual), and y16 y rounded (the
     * next products' input, lora_bf16_group's x16). The backward is rmsnorm_bwd's,
     * accumulated into the residual stream's gradient (which is also r's). */
    void (*residual_rmsnorm_fwd)(lora_backend *be, float *x, float *y, float *rstd,
                                 lora_bf16 *x16, lora_bf16 *y16, const float *r, const float *w,
                                 int64_t N, int64_t C, float eps);
    /* residual_rmsnorm_fwd with r + scale[0] t[0]^T B[0]^T as the residual term (lu side 0:
     * the o or down projection's LoRA up-product, which the group made t for with t_only),
     * each sum as swiglu_lora_keep_fwd's, then residual_rmsnorm_fwd's arithmetic over it, bit
     * for bit; r is read, not written. NULL: the product adds it. */
    void (*residual_lora_rmsnorm_fwd)(lora_backend *be, float *x, float *y, float *rstd,
                                      lora_bf16 *x16, lora_bf16 *y16, const float *r,
                                      const lora_lora_up *lu, const float *w, int64_t N,
                                      int64_t C, float eps);

    /* ---- optional: the LoRA backward of a group of paths over one input (NULL: lora_bwd
     * path by path) ---- */

    /* lora_bwd of every path of g, with u (N, n r) = [scale[i] * dy[i] @ B[i]] side by side
     * (scratch the caller provides): dx (N, in) += u @ A and dA (n r, in) += u^T @ x, one
     * product each rather than n (x and dx read once, not n times); dB[i] += scale[i] *
     * dy[i]^T @ t[i]. dx and dA may be NULL (not wanted, not trained). */
    void (*lora_bwd_group)(lora_backend *be, const lora_lora_group *g, float *dx, float *dA,
                           float *u, const float *x, const float *A, int64_t N, int64_t in,
                           int64_t r);

    /* ---- optional: a decoding step's small ops fused (NULL: the ops one by one) ---- */

    /* Each projection of g as matmul_bf16_fwd and then lora_fwd give it, in two launches for
     * the group where N is small. */
    void (*matmul_bf16_fwd_group)(lora_backend *be, const lora_bf16_group *g, const float *x,
                                  int64_t N, int64_t K);
    /* rope_fwd of q (N, H, D) and of k (N, KVH, D), then kv_store_bf16 of k into k_cache and
     * of v (N, KVH*D) into v_cache, N = B*T rows at positions pos (N): what they give, in one
     * pass. lu not NULL: first q += scale[0] t[0]^T B[0]^T, k and v likewise (sides 1, 2;
     * the LoRA up-products the group made t for with t_only), each sum as lora_fwd's small
     * kernels add it; v may then be written. */
    void (*rope_kv_store_bf16)(lora_backend *be, float *q, float *k, float *v,
                               lora_bf16 *k_cache, lora_bf16 *v_cache, const lora_lora_up *lu,
                               const int32_t *pos, const float *cos, const float *sin,
                               int64_t B, int64_t T, int64_t S, int64_t H, int64_t KVH,
                               int64_t D);

    /* ---- optional: greedy decoding's choice on the device, so that a step downloads a token
     * rather than its row of logits (NULL: the row goes to the host sampler) ---- */

    /* out (2 int32, the backend's memory): out[0] the first index of the largest of x (n >= 1),
     * out[1] 1 where the host sampler would refuse the row (a NaN, or every value -inf), else
     * 0. feed, when not NULL (2 int32 of the backend's memory): feed[0] = out[0] and
     * feed[1] = last_pos[0] + 1 (last_pos may be feed + 1), the next step's staged id and
     * position. */
    void (*argmax)(lora_backend *be, int32_t *out, const float *x, int64_t n, int32_t *feed,
                   const int32_t *last_pos);

    /* ---- optional: recording ops once and replaying them (CUDA graphs; NULL: none). Between
     * graph_begin and graph_end the math ops are recorded, not run, with the pointers and
     * scalars they are given; no memory entry may be called then. A replay reads the memory as
     * it is at that time. ---- */

    lora_status (*graph_begin)(lora_backend *be);
    /* Stops recording. *out: the graph; on a failure while recording (its status and message;
     * the backend stays usable), NULL and nothing recorded ran. */
    lora_status (*graph_end)(lora_backend *be, lora_graph **out);
    /* Runs g's ops, queued like any op. LORA_ERR_STATE, nothing run: memory the backend owns
     * and the ops used (its op scratch) has moved since g was recorded; record it again. */
    lora_status (*graph_launch)(lora_backend *be, const lora_graph *g);
    /* NULL is a no-op. */
    void (*graph_free)(lora_backend *be, lora_graph *g);

    /* ---- optional: the optimizer over many tensors at once (NULL: the optimizer calls
     * sum_squares and adamw per tensor, as on the CPU). ---- */

    /* A set of the n tensors t (copied; their memory must outlive the set), for the entries
     * below. LORA_ERR_DEVICE_OUT_OF_MEMORY, LORA_ERR_DEVICE. */
    lora_status (*tensor_set_create)(lora_backend *be, const lora_tensor_ref *t, size_t n,
                                     lora_tensor_set **out);
    /* NULL is a no-op. Waits for the ops that may read it. */
    void (*tensor_set_free)(lora_backend *be, lora_tensor_set *set);
    /* *acc (host) += the sum of squares of each tensor's gradient, the tensors in order, each
     * sum bit for bit what sum_squares gives for it; synchronous. */
    lora_status (*sum_squares_set)(lora_backend *be, const lora_tensor_set *set, double *acc);
    /* adamw on every tensor of the set, tensor i with a[t[i].group]: bit for bit what adamw
     * per tensor gives. */
    void (*adamw_set)(lora_backend *be, const lora_tensor_set *set, const lora_adamw_args a[2]);
};

#endif
