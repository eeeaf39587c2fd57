/* Causal grouped-query attention: the REFERENCE CUDA kernels, the CPU backend's row algorithm
 * (src/cpu/attention.c) on the GPU, one warp per query row with an online softmax, so they are
 * correct for every shape the op table allows (KV cache, packed rows, GQA) but far from peak
 * speed. The table's entries hand what cuDNN's fused attention takes (attention_cudnn.c: BF16
 * math, queries from position 0, no packed rows) to it, the rest to these.
 *
 * Forward: a warp runs over the visible keys of its query row, the lanes holding D / 32 values
 * of the row each. Backward (deterministic, no atomics): a first kernel, per query row,
 * recomputes the row's log-sum-exp and delta = dout . out, keeps both, and sums dq; a second,
 * per key row, loops over the queries that see it and sums dk, dv in a fixed order.
 *
 * The entries over kept bfloat16 q, k, v (attention_bf16_fwd / _bwd) hand them to cuDNN as
 * they are, or widen them for these kernels; the reference recomputes its statistics, so the
 * forward's stats are cuDNN's alone. */
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

/* the backward's two kernels over a (dq, dk, dv, dout set), stats room for 2 B*T*H floats
 * (the rows' log-sum-exp and delta) when dk or dv are wanted */
static void ref_bwd(lora_cuda *cu, attn_args &a, float *stats, const lora_attention_shape *s)
{
    int64_t rows = s->B * s->T * s->H;
    if (a.dk || a.dv) {
        a.lse = stats;
        a.delta = stats + rows;
    }
    if (launch(cu, BWD_Q, rows, a, "attention_bwd dq") || !(a.dk || a.dv))
        return;
    launch(cu, BWD_KV, s->B * s->S * s->KVH, a, "attention_bwd dk dv");
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
    float *stats = NULL;
    if ((dk || dv) &&
        !(stats = (float *)lora__cuda_scratch(cu, 2 * (size_t)(shape->B * shape->T * shape->H) *
                                                   sizeof(float))))
        return;
    ref_bwd(cu, a, stats, shape);
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

/* ---- over kept bfloat16 q, k, v (a training forward's kept set): cuDNN reads them where they
 * are; the reference kernels read them widened into the op scratch, with `extra` floats after
 * them for the caller ---- */

static bool kept_shape_ok(lora_cuda *cu, const lora_attention_shape *s, const char *what)
{
    if (s->S == s->T && s->pos0 == 0)
        return head_dim_ok(cu, s, what);
    lora__cuda_fail(cu, LORA_ERR_UNSUPPORTED, "%s: S %lld != T %lld or pos0 %lld != 0 (kept "
                    "activations are a whole sequence)", what, (long long)s->S, (long long)s->T,
                    (long long)s->pos0);
    return false;
}

static float *widened(lora_cuda *cu, const lora_bf16 *q, const lora_bf16 *k, const lora_bf16 *v,
                      const lora_attention_shape *s, size_t extra, attn_args *a)
{
    size_t nq = (size_t)(s->B * s->T * s->H * s->D), nk = (size_t)(s->B * s->T * s->KVH * s->D);
    float *w = (float *)lora__cuda_scratch(cu, (nq + 2 * nk + extra) * sizeof(float));
    if (!w || lora__cuda_widen_bf16(cu, w, q, nq) || lora__cuda_widen_bf16(cu, w + nq, k, nk) ||
        lora__cuda_widen_bf16(cu, w + nq + nk, v, nk))
        return NULL;
    *a = args(w, w + nq, w + nq + nk, s);
    return w + nq + 2 * nk;
}

// out (B, T, H, D) bfloat16 = attention over bfloat16 q, k, v (B, T, ...); stats for the backward
void lora__cuda_attention_bf16_fwd(lora_backend *be, lora_bf16 *out, float *stats,
                                   const lora_bf16 *q, const lora_bf16 *k, const lora_bf16 *v,
                                   const lora_attention_shape *shape)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || !kept_shape_ok(cu, shape, "attention_bf16_fwd") ||
        lora__cuda_sdpa_bf16_fwd(cu, out, stats, q, k, v, shape))
        return;
    attn_args a;
    size_t nq = (size_t)(shape->B * shape->T * shape->H * shape->D);
    float *fout = widened(cu, q, k, v, shape, nq, &a);
    if (!fout)
        return;
    a.out = fout;
    if (!launch(cu, FWD, shape->B * shape->T * shape->H, a, "attention_bf16_fwd"))
        lora__cuda_round_bf16(cu, out, fout, nq);
}

// dq (B, T, H, D), dk, dv (B, T, KVH, D) = the gradients over attention_bf16_fwd's inputs
void lora__cuda_attention_bf16_bwd(lora_backend *be, float *dq, float *dk, float *dv,
                                   const float *dout, const lora_bf16 *q, const lora_bf16 *k,
                                   const lora_bf16 *v, const lora_bf16 *out,
                                   const float *stats, const lora_attention_shape *shape)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || !kept_shape_ok(cu, shape, "attention_bf16_bwd") || (!dq && !dk && !dv) ||
        lora__cuda_sdpa_bf16_bwd(cu, dq, dk, dv, dout, q, k, v, out, stats, shape))
        return;
    /* the reference kernels add to their outputs */
    size_t nq = (size_t)(shape->B * shape->T * shape->H * shape->D);
    size_t nk = (size_t)(shape->B * shape->T * shape->KVH * shape->D);
    float *grad[3] = {dq, dk, dv};
    for (int i = 0; i < 3; i++)
        if (grad[i])
            lora__cuda_zero(be, grad[i], (i ? nk : nq) * sizeof(float));
    if (cu->err)
        return;
    attn_args a;
    float *row_stats = widened(cu, q, k, v, shape,
                               2 * (size_t)(shape->B * shape->T * shape->H), &a);
    if (!row_stats)
        return;
    a.dq = dq;
    a.dk = dk;
    a.dv = dv;
    a.dout = dout;
    ref_bwd(cu, a, row_stats, shape);
}
