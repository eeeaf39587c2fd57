/* Causal grouped-query attention, one (sequence, query, head) row per work item. The softmax is
 * computed online (running maximum and sum, rescaling the accumulator when the maximum grows),
 * so no buffer of S scores is needed and a row reads each key and value once. The backward
 * recomputes the probabilities the same way, one (sequence, kv head) group per work item. */
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"

#define MAX_D 1024 /* the config bound on head_dim */

typedef struct attn_job {
    float *out;
    const float *q, *k, *v;
    const lora_attention_shape *s;
} attn_job;

/* Eight independent partial sums: the compiler keeps them in SIMD lanes, which a single
 * running sum forbids (float addition is not associative). */
static float dot(const float *a, const float *b, int64_t n)
{
    float part[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            part[j] += a[i + j] * b[i + j];
    float acc = 0.0f;
    for (; i < n; i++)
        acc += a[i] * b[i];
    for (int j = 0; j < 8; j++)
        acc += part[j];
    return acc;
}

/* One pass over the keys 0..n_keys-1 of a query row: m = the largest score,
 * sum = sum_j exp(score_j - m), acc (D) = sum_j exp(score_j - m) v_j, rescaling the running sums
 * whenever the maximum grows. */
static void online_softmax(const float *qr, const float *kb, const float *vb, int64_t n_keys,
                           int64_t kv_stride, int64_t D, float scale, float *acc, float *m_out,
                           float *sum_out)
{
    memset(acc, 0, (size_t)D * sizeof *acc);
    float m = -INFINITY, sum = 0.0f;
    for (int64_t key = 0; key < n_keys; key++) {
        float score = dot(qr, kb + key * kv_stride, D) * scale;
        const float *vr = vb + key * kv_stride;
        if (score > m) {
            float r = expf(m - score);
            sum = sum * r + 1.0f;
            for (int64_t d = 0; d < D; d++)
                acc[d] = acc[d] * r + vr[d];
            m = score;
        } else {
            float p = expf(score - m);
            sum += p;
            for (int64_t d = 0; d < D; d++)
                acc[d] += p * vr[d];
        }
    }
    *m_out = m;
    *sum_out = sum;
}

/* The first key query (b, t) sees. */
static int64_t first_key(const lora_attention_shape *s, int64_t b, int64_t t)
{
    return s->key0 ? s->key0[b * s->T + t] : 0;
}

static void attn_row(const attn_job *j, int64_t row)
{
    const lora_attention_shape *s = j->s;
    int64_t h = row % s->H, t = (row / s->H) % s->T, b = row / (s->H * s->T);
    int64_t kvh = h / (s->H / s->KVH), D = s->D;
    int64_t kv_stride = s->KVH * D, k0 = first_key(s, b, t);
    const float *qr = j->q + row * D;
    const float *kb = j->k + (b * s->S + k0) * kv_stride + kvh * D;
    const float *vb = j->v + (b * s->S + k0) * kv_stride + kvh * D;
    float acc[MAX_D], m, sum;
    online_softmax(qr, kb, vb, s->pos0 + t + 1 - k0, kv_stride, D, s->scale, acc, &m, &sum);
    float *o = j->out + row * D;
    float inv = 1.0f / sum;
    for (int64_t d = 0; d < D; d++)
        o[d] = acc[d] * inv;
}

static void attn_rows(void *ctx, int64_t r0, int64_t r1, int tid)
{
    for (int64_t r = r0; r < r1; r++)
        attn_row(ctx, r);
}

// out (B, T, H, D) = causal softmax(q (B, T, H, D) k^T * scale) v, k/v (B, S, KVH, D)
void lora__cpu_attention_fwd_rows(lora_backend *be, float *out, const float *q, const float *k,
                                  const float *v, const lora_attention_shape *shape)
{
    attn_job j = {out, q, k, v, shape};
    int64_t rows = shape->B * shape->T * shape->H;
    int64_t cost = (shape->pos0 + shape->T) * shape->D * 2;
    lora__pool_run(lora__cpu_pool(be), attn_rows, &j, rows, lora__cpu_grain(cost));
}

typedef struct attn_bwd_job {
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v;
    const lora_attention_shape *s;
} attn_bwd_job;

/* One query row (b, t, h). With p the row's probabilities and delta = dout . out:
 * dv_j += p_j dout;  ds_j = p_j (dout . v_j - delta);  dq += scale ds_j k_j;  dk_j += scale ds_j q.
 * A first pass repeats the forward's online softmax to get the log-sum-exp and out (hence
 * delta) without a buffer of S scores; the second recomputes each p_j from the lse. */
static void attn_bwd_row(const attn_bwd_job *j, int64_t b, int64_t t, int64_t h)
{
    const lora_attention_shape *s = j->s;
    int64_t kvh = h / (s->H / s->KVH), D = s->D;
    int64_t kv_stride = s->KVH * D, row = (b * s->T + t) * s->H + h, k0 = first_key(s, b, t);
    int64_t kv0 = (b * s->S + k0) * kv_stride + kvh * D;
    const float *qr = j->q + row * D, *gr = j->dout + row * D;
    const float *kb = j->k + kv0, *vb = j->v + kv0;
    int64_t n_keys = s->pos0 + t + 1 - k0;

    float acc[MAX_D], m, sum;
    online_softmax(qr, kb, vb, n_keys, kv_stride, D, s->scale, acc, &m, &sum);
    float lse = m + logf(sum), delta = dot(gr, acc, D) / sum;

    float dq_acc[MAX_D];
    memset(dq_acc, 0, (size_t)D * sizeof *dq_acc);
    for (int64_t key = 0; key < n_keys; key++) {
        const float *kr = kb + key * kv_stride, *vr = vb + key * kv_stride;
        float p = expf(dot(qr, kr, D) * s->scale - lse);
        if (j->dv) {
            float *dvr = j->dv + kv0 + key * kv_stride;
            for (int64_t d = 0; d < D; d++)
                dvr[d] += p * gr[d];
        }
        if (!j->dq && !j->dk)
            continue;
        float ds = p * (dot(gr, vr, D) - delta) * s->scale;
        for (int64_t d = 0; d < D; d++)
            dq_acc[d] += ds * kr[d];
        if (j->dk) {
            float *dkr = j->dk + kv0 + key * kv_stride;
            for (int64_t d = 0; d < D; d++)
                dkr[d] += ds * qr[d];
        }
    }
    if (j->dq)
        for (int64_t d = 0; d < D; d++)
            j->dq[row * D + d] += dq_acc[d];
}

/* Work items are (sequence, kv head) groups: the H / KVH query heads that share a kv head all
 * add into its dk, dv rows, so one thread owns a group and no two threads write the same row. */
static void attn_bwd_groups(void *ctx, int64_t g0, int64_t g1, int tid)
{
    const attn_bwd_job *j = ctx;
    const lora_attention_shape *s = j->s;
    int64_t per = s->H / s->KVH;
    for (int64_t g = g0; g < g1; g++) {
        int64_t b = g / s->KVH, kvh = g % s->KVH;
        for (int64_t t = 0; t < s->T; t++)
            for (int64_t h = kvh * per; h < (kvh + 1) * per; h++)
                attn_bwd_row(j, b, t, h);
    }
}

// dq (B, T, H, D) +=, dk, dv (B, S, KVH, D) += gradients of the causal attention given dout
void lora__cpu_attention_bwd_rows(lora_backend *be, float *dq, float *dk, float *dv,
                                  const float *dout, const float *q, const float *k,
                                  const float *v, const lora_attention_shape *shape)
{
    attn_bwd_job j = {dq, dk, dv, dout, q, k, v, shape};
    int64_t groups = shape->B * shape->KVH;
    int64_t cost = (shape->H / shape->KVH) * shape->T * (shape->pos0 + shape->T) * shape->D * 8;
    lora__pool_run(lora__cpu_pool(be), attn_bwd_groups, &j, groups, lora__cpu_grain(cost));
}

/* Many queries: blocked matrix products (attention_gemm.c); one or a few (decoding), or no
 * scratch to be had: the rows above. */
void lora__cpu_attention_fwd(lora_backend *be, float *out, const float *q, const float *k,
                             const float *v, const lora_attention_shape *shape)
{
    if (shape->T < LORA_CPU_ATTN_GEMM_MIN ||
        !lora__cpu_attention_fwd_gemm(be, out, q, k, v, shape))
        lora__cpu_attention_fwd_rows(be, out, q, k, v, shape);
}

void lora__cpu_attention_bwd(lora_backend *be, float *dq, float *dk, float *dv,
                             const float *dout, const float *q, const float *k, const float *v,
                             const lora_attention_shape *shape)
{
    if (shape->T < LORA_CPU_ATTN_GEMM_MIN ||
        !lora__cpu_attention_bwd_gemm(be, dq, dk, dv, dout, q, k, v, shape))
        lora__cpu_attention_bwd_rows(be, dq, dk, dv, dout, q, k, v, shape);
}
