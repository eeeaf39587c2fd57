/* Causal attention for many queries at once (prefill, training) as matrix products per head
 * and block of queries, so the work runs in SGEMM rather than in per-row loops:
 *   forward   P = softmax_causal(scale Q K^T);  O = P V
 *   backward  dP = dO V^T;  dS = P * (dP - rowsum(P * dP)) * scale;
 *             dQ += dS K;  dK += dS^T Q;  dV += P^T dO
 * (rowsum(P * dP) equals rowsum(dO * O), so O is not needed). The row form in attention.c
 * stays the reference and the path for decoding. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"

#define QBLOCK 64 /* query rows per block: a block's scores fit in L2 for contexts of a few k */

typedef struct gemm_job {
    lora_backend *be;
    const lora_attention_shape *s;
    float *out, *dq, *dk, *dv;
    const float *q, *k, *v, *dout;
} gemm_job;

static int64_t n_blocks(const lora_attention_shape *s) { return (s->T + QBLOCK - 1) / QBLOCK; }

static int64_t first_key(const lora_attention_shape *s, int64_t b, int64_t t)
{
    return s->key0 ? s->key0[b * s->T + t] : 0;
}

/* P (tq, n_keys - lo) = causal softmax of scale * Q K^T for queries t0..t0+tq-1 of head h over
 * keys lo..n_keys-1, lo being the block's first visible key (key0 never decreases in t). */
static void scores(const gemm_job *j, int64_t b, int64_t h, int64_t t0, int64_t tq,
                   int64_t lo, int64_t n_keys, float *P)
{
    const lora_attention_shape *s = j->s;
    int64_t kvh = h / (s->H / s->KVH), w = n_keys - lo;
    const float *Q = j->q + ((b * s->T + t0) * s->H + h) * s->D;
    const float *K = j->k + ((b * s->S + lo) * s->KVH + kvh) * s->D;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)tq, (blasint)w,
                (blasint)s->D, s->scale, Q, (blasint)(s->H * s->D), K, (blasint)(s->KVH * s->D),
                0.0f, P, (blasint)w);
    for (int64_t i = 0; i < tq; i++) {
        float *row = P + i * w;
        int64_t from = first_key(s, b, t0 + i) - lo, visible = s->pos0 + t0 + i + 1 - lo;
        float m = row[from];
        for (int64_t c = from + 1; c < visible; c++)
            m = row[c] > m ? row[c] : m;
        float sum = 0.0f;
        for (int64_t c = from; c < visible; c++)
            sum += row[c] = expf(row[c] - m);
        float inv = 1.0f / sum;
        for (int64_t c = from; c < visible; c++)
            row[c] *= inv;
        memset(row, 0, (size_t)from * sizeof *row);
        memset(row + visible, 0, (size_t)(w - visible) * sizeof *row);
    }
}

static void fwd_tasks(void *ctx, int64_t t0, int64_t t1, int tid)
{
    const gemm_job *j = ctx;
    const lora_attention_shape *s = j->s;
    float *P = lora__cpu_scratch(j->be, tid);
    for (int64_t task = t0; task < t1; task++) {
        int64_t blk = task % n_blocks(s), h = (task / n_blocks(s)) % s->H;
        int64_t b = task / (n_blocks(s) * s->H);
        int64_t q0 = blk * QBLOCK, tq = s->T - q0 < QBLOCK ? s->T - q0 : QBLOCK;
        int64_t n_keys = s->pos0 + q0 + tq, kvh = h / (s->H / s->KVH);
        int64_t lo = first_key(s, b, q0), w = n_keys - lo;
        scores(j, b, h, q0, tq, lo, n_keys, P);
        // O (tq, D) = P (tq, w) @ V (w, D)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)tq, (blasint)s->D,
                    (blasint)w, 1.0f, P, (blasint)w,
                    j->v + ((b * s->S + lo) * s->KVH + kvh) * s->D, (blasint)(s->KVH * s->D), 0.0f,
                    j->out + ((b * s->T + q0) * s->H + h) * s->D, (blasint)(s->H * s->D));
    }
}

int lora__cpu_attention_fwd_gemm(lora_backend *be, float *out, const float *q, const float *k,
                                 const float *v, const lora_attention_shape *shape)
{
    if (!lora__cpu_reserve_scratch(be, (size_t)(QBLOCK * (shape->pos0 + shape->T))))
        return 0;
    gemm_job j = {be, shape, out, NULL, NULL, NULL, q, k, v, NULL};
    lora__pool_run_blas(lora__cpu_pool(be), fwd_tasks, &j, shape->B * shape->H * n_blocks(shape),
                        1);
    return 1;
}

/* One block of queries of head h: the gradients it sends to dq, dk, dv. */
static void bwd_block(const gemm_job *j, int64_t b, int64_t h, int64_t q0, float *P, float *dP)
{
    const lora_attention_shape *s = j->s;
    int64_t tq = s->T - q0 < QBLOCK ? s->T - q0 : QBLOCK;
    int64_t n_keys = s->pos0 + q0 + tq, kvh = h / (s->H / s->KVH);
    int64_t lo = first_key(s, b, q0), w = n_keys - lo;
    blasint ldq = (blasint)(s->H * s->D), ldk = (blasint)(s->KVH * s->D);
    const float *Q = j->q + ((b * s->T + q0) * s->H + h) * s->D;
    const float *dO = j->dout + ((b * s->T + q0) * s->H + h) * s->D;
    int64_t kv0 = ((b * s->S + lo) * s->KVH + kvh) * s->D;
    const float *K = j->k + kv0, *V = j->v + kv0;
    scores(j, b, h, q0, tq, lo, n_keys, P);
    // dP (tq, w) = dO (tq, D) @ V (w, D)^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)tq, (blasint)w,
                (blasint)s->D, 1.0f, dO, ldq, V, ldk, 0.0f, dP, (blasint)w);
    for (int64_t i = 0; i < tq; i++) {
        float *p = P + i * w, *d = dP + i * w;
        float delta = 0.0f;
        for (int64_t c = 0; c < w; c++)
            delta += p[c] * d[c];
        for (int64_t c = 0; c < w; c++)
            d[c] = p[c] * (d[c] - delta) * s->scale; /* masked entries have p = 0 */
    }
    if (j->dq) // dQ (tq, D) += dS (tq, w) @ K (w, D)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)tq, (blasint)s->D,
                    (blasint)w, 1.0f, dP, (blasint)w, K, ldk, 1.0f,
                    j->dq + ((b * s->T + q0) * s->H + h) * s->D, ldq);
    if (j->dk) // dK (w, D) += dS^T @ Q (tq, D)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)w, (blasint)s->D,
                    (blasint)tq, 1.0f, dP, (blasint)w, Q, ldq, 1.0f, j->dk + kv0, ldk);
    if (j->dv) // dV (w, D) += P^T @ dO (tq, D)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)w, (blasint)s->D,
                    (blasint)tq, 1.0f, P, (blasint)w, dO, ldq, 1.0f, j->dv + kv0, ldk);
}

/* A task is one (sequence, kv head): it alone writes that head's dk and dv rows. */
static void bwd_tasks(void *ctx, int64_t t0, int64_t t1, int tid)
{
    const gemm_job *j = ctx;
    const lora_attention_shape *s = j->s;
    int64_t group = s->H / s->KVH;
    float *P = lora__cpu_scratch(j->be, tid);
    float *dP = P + QBLOCK * (s->pos0 + s->T);
    for (int64_t task = t0; task < t1; task++) {
        int64_t b = task / s->KVH, kvh = task % s->KVH;
        for (int64_t h = kvh * group; h < (kvh + 1) * group; h++)
            for (int64_t blk = 0; blk < n_blocks(s); blk++)
                bwd_block(j, b, h, blk * QBLOCK, P, dP);
    }
}

int lora__cpu_attention_bwd_gemm(lora_backend *be, float *dq, float *dk, float *dv,
                                 const float *dout, const float *q, const float *k,
                                 const float *v, const lora_attention_shape *shape)
{
    if (!lora__cpu_reserve_scratch(be, (size_t)(2 * QBLOCK * (shape->pos0 + shape->T))))
        return 0;
    gemm_job j = {be, shape, NULL, dq, dk, dv, q, k, v, dout};
    lora__pool_run_blas(lora__cpu_pool(be), bwd_tasks, &j, shape->B * shape->KVH, 1);
    return 1;
}
