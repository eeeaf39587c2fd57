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

/* P (tq, n_keys) = causal softmax of scale * Q K^T for queries t0..t0+tq-1 of head h. */
static void scores(const gemm_job *j, int64_t b, int64_t h, int64_t t0, int64_t tq,
                   int64_t n_keys, float *P)
{
    const lora_attention_shape *s = j->s;
    int64_t kvh = h / (s->H / s->KVH);
    const float *Q = j->q + ((b * s->T + t0) * s->H + h) * s->D;
    const float *K = j->k + (b * s->S * s->KVH + kvh) * s->D;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)tq, (blasint)n_keys,
                (blasint)s->D, s->scale, Q, (blasint)(s->H * s->D), K, (blasint)(s->KVH * s->D),
                0.0f, P, (blasint)n_keys);
    for (int64_t i = 0; i < tq; i++) {
        float *row = P + i * n_keys;
        int64_t visible = s->pos0 + t0 + i + 1;
        float m = row[0];
        for (int64_t c = 1; c < visible; c++)
            m = row[c] > m ? row[c] : m;
        float sum = 0.0f;
        for (int64_t c = 0; c < visible; c++)
            sum += row[c] = expf(row[c] - m);
        float inv = 1.0f / sum;
        for (int64_t c = 0; c < visible; c++)
            row[c] *= inv;
        memset(row + visible, 0, (size_t)(n_keys - visible) * sizeof *row);
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
        scores(j, b, h, q0, tq, n_keys, P);
        // O (tq, D) = P (tq, n_keys) @ V (n_keys, D)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)tq, (blasint)s->D,
                    (blasint)n_keys, 1.0f, P, (blasint)n_keys,
                    j->v + (b * s->S * s->KVH + kvh) * s->D, (blasint)(s->KVH * s->D), 0.0f,
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
    blasint ldq = (blasint)(s->H * s->D), ldk = (blasint)(s->KVH * s->D);
    const float *Q = j->q + ((b * s->T + q0) * s->H + h) * s->D;
    const float *dO = j->dout + ((b * s->T + q0) * s->H + h) * s->D;
    const float *K = j->k + (b * s->S * s->KVH + kvh) * s->D;
    const float *V = j->v + (b * s->S * s->KVH + kvh) * s->D;
    scores(j, b, h, q0, tq, n_keys, P);
    // dP (tq, n_keys) = dO (tq, D) @ V (n_keys, D)^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)tq, (blasint)n_keys,
                (blasint)s->D, 1.0f, dO, ldq, V, ldk, 0.0f, dP, (blasint)n_keys);
    for (int64_t i = 0; i < tq; i++) {
        float *p = P + i * n_keys, *d = dP + i * n_keys;
        float delta = 0.0f;
        for (int64_t c = 0; c < n_keys; c++)
            delta += p[c] * d[c];
        for (int64_t c = 0; c < n_keys; c++)
            d[c] = p[c] * (d[c] - delta) * s->scale; /* masked entries have p = 0 */
    }
    if (j->dq) // dQ (tq, D) += dS (tq, n_keys) @ K (n_keys, D)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)tq, (blasint)s->D,
                    (blasint)n_keys, 1.0f, dP, (blasint)n_keys, K, ldk, 1.0f,
                    j->dq + ((b * s->T + q0) * s->H + h) * s->D, ldq);
    if (j->dk) // dK (n_keys, D) += dS^T @ Q (tq, D)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)n_keys, (blasint)s->D,
                    (blasint)tq, 1.0f, dP, (blasint)n_keys, Q, ldq, 1.0f,
                    j->dk + (b * s->S * s->KVH + kvh) * s->D, ldk);
    if (j->dv) // dV (n_keys, D) += P^T @ dO (tq, D)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)n_keys, (blasint)s->D,
                    (blasint)tq, 1.0f, P, (blasint)n_keys, dO, ldq, 1.0f,
                    j->dv + (b * s->S * s->KVH + kvh) * s->D, ldk);
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
