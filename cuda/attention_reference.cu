/* Causal grouped-query attention: the REFERENCE CUDA kernels, the CPU backend's row algorithm
 * (src/cpu/attention.c) on the GPU, one warp per query row with an online softmax, so they are
 * correct for every shape the op table allows (KV cache, packed rows, GQA) but far from peak
 * speed. The table's entries hand what cuDNN's fused attention takes (attention_cudnn.c: BF16
 * math, queries from position 0, no packed rows) to it, the rest to these.
 *
 * Forward: a warp runs over the visible keys of its query row, the lanes holding D / 32 values
 * of the row each. Backward (deterministic, no atomics): a first kernel, per query row,
 * recomputes the row's log-sum-exp and delta = dout . out, keeps both, and sums dq; a second,
 * per key row, loops over the queries that see it and sums dk, dv in a fixed order. */
#include "common.cuh"

#define WARPS 4          /* query (or key) rows per block */
#define MAX_D 1024       /* the config bound on head_dim: 32 values per lane */

typedef struct attn_args {
    float *out, *dq, *dk, *dv;
    float *lse, *delta;  /* (B*T*H) row statistics of the backward */
    const float *q, *k, *v, *dout;
    const int32_t *key0;
    int64_t B, T, S, H, KVH, D, pos0;
    float scale;
} attn_args;

template <int NJ> __device__ __forceinline__ void load_row(float (&r)[NJ], const float *p,
                                                           int64_t D, int lane)
{
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        int64_t d = lane + 32 * j;
        r[j] = d < D ? p[d] : 0.0f;
    }
}

/* dot(r, p) over the row, the same value in every lane (a butterfly of commutative adds) */
template <int NJ> __device__ __forceinline__ float dot_row(const float (&r)[NJ], const float *p,
                                                           int64_t D, int lane)
{
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        int64_t d = lane + 32 * j;
        if (d < D)
            s += r[j] * p[d];
    }
    return lora__warp_sum(s);
}

/* One pass over the keys of query row `row`: acc = sum_j exp(s_j - m) v_j, returned with m and
 * sum, rescaled whenever the maximum grows (the CPU's online_softmax). */
template <int NJ> __device__ void online_softmax(const attn_args &a, const float (&qr)[NJ],
                                                 int64_t b, int64_t t, int64_t kvh,
                                                 float (&acc)[NJ], float *m_out, float *sum_out,
                                                 int lane)
{
    int64_t kvs = a.KVH * a.D, k0 = a.key0 ? a.key0[b * a.T + t] : 0;
    const float *kb = a.k + (b * a.S + k0) * kvs + kvh * a.D;
    const float *vb = a.v + (b * a.S + k0) * kvs + kvh * a.D;
    int64_t n_keys = a.pos0 + t + 1 - k0;
#pragma unroll
    for (int j = 0; j < NJ; j++)
        acc[j] = 0.0f;
    float m = -INFINITY, sum = 0.0f;
    for (int64_t key = 0; key < n_keys; key++) {
        float s = dot_row(qr, kb + key * kvs, a.D, lane) * a.scale;
        const float *vr = vb + key * kvs;
        float wa, wv; /* acc = acc * wa + wv * v */
        lora__online_softmax_step(s, &m, &sum, &wa, &wv);
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            int64_t d = lane + 32 * j;
            if (d < a.D)
                acc[j] = acc[j] * wa + wv * vr[d];
        }
    }
    *m_out = m;
    *sum_out = sum;
}

template <int NJ> __global__ void attn_fwd_kernel(attn_args a)
{
    int lane = threadIdx.x % 32;
    int64_t row = (int64_t)blockIdx.x * WARPS + threadIdx.x / 32;
    if (row >= a.B * a.T * a.H) /* whole warps leave together */
        return;
    int64_t h = row % a.H, t = (row / a.H) % a.T, b = row / (a.H * a.T);
    float qr[NJ], acc[NJ], m, sum;
    load_row(qr, a.q + row * a.D, a.D, lane);
    online_softmax(a, qr, b, t, h / (a.H / a.KVH), acc, &m, &sum, lane);
    float inv = 1.0f / sum;
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        int64_t d = lane + 32 * j;
        if (d < a.D)
            a.out[row * a.D + d] = acc[j] * inv;
    }
}

/* Per query row: lse and delta kept (when dk or dv are wanted), dq += sum_j ds_j k_j. */
template <int NJ> __global__ void attn_bwd_q_kernel(attn_args a)
{
    int lane = threadIdx.x % 32;
    int64_t row = (int64_t)blockIdx.x * WARPS + threadIdx.x / 32;
    if (row >= a.B * a.T * a.H)
        return;
    int64_t h = row % a.H, t = (row / a.H) % a.T, b = row / (a.H * a.T);
    int64_t kvh = h / (a.H / a.KVH);
    float qr[NJ], gr[NJ], acc[NJ], m, sum;
    load_row(qr, a.q + row * a.D, a.D, lane);
    load_row(gr, a.dout + row * a.D, a.D, lane);
    online_softmax(a, qr, b, t, kvh, acc, &m, &sum, lane);
    float lse = m + logf(sum), delta = 0.0f;
#pragma unroll
    for (int j = 0; j < NJ; j++)
        delta += gr[j] * acc[j]; /* zero past D in both */
    delta = lora__warp_sum(delta) / sum;
    if (a.lse && lane == 0) {
        a.lse[row] = lse;
        a.delta[row] = delta;
    }
    if (!a.dq)
        return;
    int64_t kvs = a.KVH * a.D, k0 = a.key0 ? a.key0[b * a.T + t] : 0;
    const float *kb = a.k + (b * a.S + k0) * kvs + kvh * a.D;
    const float *vb = a.v + (b * a.S + k0) * kvs + kvh * a.D;
    int64_t n_keys = a.pos0 + t + 1 - k0;
    float dq[NJ];
#pragma unroll
    for (int j = 0; j < NJ; j++)
        dq[j] = 0.0f;
    for (int64_t key = 0; key < n_keys; key++) {
        const float *kr = kb + key * kvs, *vr = vb + key * kvs;
        float p = expf(dot_row(qr, kr, a.D, lane) * a.scale - lse);
        float ds = p * (dot_row(gr, vr, a.D, lane) - delta) * a.scale;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            int64_t d = lane + 32 * j;
            if (d < a.D)
                dq[j] += ds * kr[d];
        }
    }
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        int64_t d = lane + 32 * j;
        if (d < a.D)
            a.dq[row * a.D + d] += dq[j];
    }
}

/* Per key row (b, s, kvh): dv += sum p dout, dk += sum ds q over the queries (t, then the
 * group's heads) that see key s; rows no query sees are left untouched. */
template <int NJ> __global__ void attn_bwd_kv_kernel(attn_args a)
{
    int lane = threadIdx.x % 32;
    int64_t kr = (int64_t)blockIdx.x * WARPS + threadIdx.x / 32;
    if (kr >= a.B * a.S * a.KVH)
        return;
    int64_t kvh = kr % a.KVH, s = (kr / a.KVH) % a.S, b = kr / (a.KVH * a.S);
    int64_t t0 = s - a.pos0 > 0 ? s - a.pos0 : 0, group = a.H / a.KVH;
    if (t0 >= a.T || (a.key0 && a.key0[b * a.T + t0] > s))
        return;
    float kk[NJ], vv[NJ], dk[NJ], dv[NJ];
    load_row(kk, a.k + kr * a.D, a.D, lane);
    load_row(vv, a.v + kr * a.D, a.D, lane);
#pragma unroll
    for (int j = 0; j < NJ; j++)
        dk[j] = dv[j] = 0.0f;
    /* key0 never decreases in t: once a query starts past s, so do the later ones */
    for (int64_t t = t0; t < a.T && !(a.key0 && a.key0[b * a.T + t] > s); t++)
        for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
            int64_t row = (b * a.T + t) * a.H + h;
            const float *qr = a.q + row * a.D, *gr = a.dout + row * a.D;
            float p = expf(dot_row(kk, qr, a.D, lane) * a.scale - a.lse[row]);
            float ds = p * (dot_row(vv, gr, a.D, lane) - a.delta[row]) * a.scale;
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                int64_t d = lane + 32 * j;
                if (d < a.D) {
                    dv[j] += p * gr[d];
                    dk[j] += ds * qr[d];
                }
            }
        }
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        int64_t d = lane + 32 * j;
        if (d >= a.D)
            continue;
        if (a.dk)
            a.dk[kr * a.D + d] += dk[j];
        if (a.dv)
            a.dv[kr * a.D + d] += dv[j];
    }
}

enum { FWD, BWD_Q, BWD_KV };

template <int NJ> static void launch_nj(int which, unsigned blocks, cudaStream_t st,
                                        const attn_args &a)
{
    if (which == FWD)
        attn_fwd_kernel<NJ><<<blocks, WARPS * 32, 0, st>>>(a);
    else if (which == BWD_Q)
        attn_bwd_q_kernel<NJ><<<blocks, WARPS * 32, 0, st>>>(a);
    else
        attn_bwd_kv_kernel<NJ><<<blocks, WARPS * 32, 0, st>>>(a);
}

/* The kernel for values per lane = D / 32 rounded up to a power of two (registers, not local
 * memory, for the common head sizes). */
static int launch(lora_cuda *cu, int which, int64_t rows, const attn_args &a, const char *what)
{
    if (rows == 0)
        return 0;
    unsigned blocks = (unsigned)((rows + WARPS - 1) / WARPS);
    int64_t per = (a.D + 31) / 32;
    if (per <= 1)
        launch_nj<1>(which, blocks, cu->stream, a);
    else if (per <= 2)
        launch_nj<2>(which, blocks, cu->stream, a);
    else if (per <= 4)
        launch_nj<4>(which, blocks, cu->stream, a);
    else if (per <= 8)
        launch_nj<8>(which, blocks, cu->stream, a);
    else if (per <= 16)
        launch_nj<16>(which, blocks, cu->stream, a);
    else
        launch_nj<32>(which, blocks, cu->stream, a);
    return lora__cuda_launched(cu, what);
}

static attn_args args(const float *q, const float *k, const float *v,
                      const lora_attention_shape *s)
{
    attn_args a = {};
    a.q = q;
    a.k = k;
    a.v = v;
    a.key0 = s->key0;
    a.B = s->B;
    a.T = s->T;
    a.S = s->S;
    a.H = s->H;
    a.KVH = s->KVH;
    a.D = s->D;
    a.pos0 = s->pos0;
    a.scale = s->scale;
    return a;
}

static bool head_dim_ok(lora_cuda *cu, const lora_attention_shape *s, const char *what)
{
    if (s->D >= 1 && s->D <= MAX_D)
        return true;
    lora__cuda_fail(cu, LORA_ERR_UNSUPPORTED, "%s: head_dim %lld outside 1..%d", what,
                    (long long)s->D, MAX_D);
    return false;
}

// out (B, T, H, D) = causal softmax(q k^T * scale) v, k/v (B, S, KVH, D)
void lora__cuda_attention_ref_fwd(lora_backend *be, float *out, const float *q, const float *k,
                                  const float *v, const lora_attention_shape *shape)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || !head_dim_ok(cu, shape, "attention_fwd"))
        return;
    attn_args a = args(q, k, v, shape);
    a.out = out;
    launch(cu, FWD, shape->B * shape->T * shape->H, a, "attention_fwd");
}

// dq (B, T, H, D) +=, dk, dv (B, S, KVH, D) += the gradients given dout
void lora__cuda_attention_ref_bwd(lora_backend *be, float *dq, float *dk, float *dv,
                                  const float *dout, const float *q, const float *k,
                                  const float *v, const lora_attention_shape *shape)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || !head_dim_ok(cu, shape, "attention_bwd") || (!dq && !dk && !dv))
        return;
    attn_args a = args(q, k, v, shape);
    a.dq = dq;
    a.dk = dk;
    a.dv = dv;
    a.dout = dout;
    int64_t rows = shape->B * shape->T * shape->H;
    if (dk || dv) {
        float *stats = (float *)lora__cuda_scratch(cu, 2 * (size_t)rows * sizeof(float));
        if (!stats)
            return;
        a.lse = stats;
        a.delta = stats + rows;
    }
    if (launch(cu, BWD_Q, rows, a, "attention_bwd dq") || !(dk || dv))
        return;
    launch(cu, BWD_KV, shape->B * shape->S * shape->KVH, a, "attention_bwd dk dv");
}

void lora__cuda_attention_fwd(lora_backend *be, float *out, const float *q, const float *k,
                              const float *v, const lora_attention_shape *shape)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (cu && !lora__cuda_sdpa_fwd(cu, out, q, k, v, shape, NULL))
        lora__cuda_attention_ref_fwd(be, out, q, k, v, shape);
}

void lora__cuda_attention_bwd(lora_backend *be, float *dq, float *dk, float *dv,
                              const float *dout, const float *q, const float *k, const float *v,
                              const lora_attention_shape *shape)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (cu && (dq || dk || dv) &&
        !lora__cuda_sdpa_bwd(cu, dq, dk, dv, dout, q, k, v, shape, NULL))
        lora__cuda_attention_ref_bwd(be, dq, dk, dv, dout, q, k, v, shape);
}
