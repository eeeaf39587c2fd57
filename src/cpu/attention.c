/* Causal grouped-query attention, one (sequence, query, head) row per work item. The softmax is
 * computed online (running maximum and sum, rescaling the accumulator when the maximum grows),
 * so no buffer of S scores is needed and a row reads each key and value once. */
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

static void attn_row(const attn_job *j, int64_t row)
{
    const lora_attention_shape *s = j->s;
    int64_t h = row % s->H, t = (row / s->H) % s->T, b = row / (s->H * s->T);
    int64_t kvh = h / (s->H / s->KVH), D = s->D;
    int64_t kv_stride = s->KVH * D;
    const float *qr = j->q + row * D;
    const float *kb = j->k + (b * s->S) * kv_stride + kvh * D;
    const float *vb = j->v + (b * s->S) * kv_stride + kvh * D;
    float acc[MAX_D];
    memset(acc, 0, (size_t)D * sizeof *acc);
    float m = -INFINITY, sum = 0.0f;
    int64_t n_keys = s->pos0 + t + 1;
    for (int64_t key = 0; key < n_keys; key++) {
        float score = dot(qr, kb + key * kv_stride, D) * s->scale;
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
void lora__cpu_attention_fwd(lora_backend *be, float *out, const float *q, const float *k,
                             const float *v, const lora_attention_shape *shape)
{
    attn_job j = {out, q, k, v, shape};
    int64_t rows = shape->B * shape->T * shape->H;
    int64_t cost = (shape->pos0 + shape->T) * shape->D * 2;
    lora__pool_run(lora__cpu_pool(be), attn_rows, &j, rows, lora__cpu_grain(cost));
}
