/* Causal grouped-query attention over a bfloat16 KV cache (decoding, and prefill into the cache
 * of a GPU model with bfloat16 storage): q and out float32, keys and values read as bfloat16
 * and widened, scores, the softmax and the weighted sum in float32. The plain-C reference is the
 * CPU backend's attention (src/cpu/attention.c) on the widened cache.
 *
 * One block per query row: its KW warps split the visible keys into contiguous ranges, each
 * runs an online softmax over its range (the lanes hold D / 32 values of the row each), and the
 * first warp merges the KW partial results, so that a decode step (one query row per head)
 * still spreads a long context over the device. */
#include "common.cuh"

#define KW 4         /* warps per query row */
#define MAX_D 1024   /* the config bound on head_dim: 32 values per lane */

typedef struct kv_args {
    float *out;
    const float *q;
    const lora_bf16 *k, *v;
    const int32_t *key0;
    int64_t B, T, S, H, KVH, D, pos0;
    float scale;
} kv_args;

__device__ __forceinline__ float widen(lora_bf16 h) { return __uint_as_float((uint32_t)h << 16); }

template <int NJ> __global__ void attn_bf16kv_kernel(kv_args a)
{
    extern __shared__ float part[]; /* KW maxima, KW sums, KW rows of D / 32 * 32 values */
    int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    int64_t row = blockIdx.x;
    int64_t h = row % a.H, t = (row / a.H) % a.T, b = row / (a.H * a.T);
    int64_t kvh = h / (a.H / a.KVH), kvs = a.KVH * a.D;
    int64_t k0 = a.key0 ? a.key0[b * a.T + t] : 0, n_keys = a.pos0 + t + 1 - k0;
    int64_t per = (n_keys + KW - 1) / KW, first = w * per;
    int64_t last = first + per < n_keys ? first + per : n_keys;
    const lora_bf16 *kb = a.k + (b * a.S + k0) * kvs + kvh * a.D;
    const lora_bf16 *vb = a.v + (b * a.S + k0) * kvs + kvh * a.D;
    float qr[NJ], acc[NJ];
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        int64_t d = lane + 32 * j;
        qr[j] = d < a.D ? a.q[row * a.D + d] : 0.0f;
        acc[j] = 0.0f;
    }
    float m = -INFINITY, sum = 0.0f;
    for (int64_t key = first; key < last; key++) {
        const lora_bf16 *kr = kb + key * kvs, *vr = vb + key * kvs;
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            int64_t d = lane + 32 * j;
            if (d < a.D)
                s += qr[j] * widen(kr[d]);
        }
        s = lora__warp_sum(s) * a.scale;
        float wa, wv; /* acc = acc * wa + wv * v */
        lora__online_softmax_step(s, &m, &sum, &wa, &wv);
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            int64_t d = lane + 32 * j;
            if (d < a.D)
                acc[j] = acc[j] * wa + wv * widen(vr[d]);
        }
    }
    float *pm = part, *ps = part + KW, *pa = part + 2 * KW + w * 32 * NJ;
    if (lane == 0) {
        pm[w] = m;
        ps[w] = sum;
    }
#pragma unroll
    for (int j = 0; j < NJ; j++)
        pa[lane + 32 * j] = acc[j];
    __syncthreads();
    if (w != 0)
        return;
    /* a warp without keys has max -inf and sum 0: its weight exp(-inf) is 0 */
    float mx = pm[0];
    for (int i = 1; i < KW; i++)
        mx = fmaxf(mx, pm[i]);
    float wt[KW], total = 0.0f;
    for (int i = 0; i < KW; i++) {
        wt[i] = ps[i] > 0.0f ? expf(pm[i] - mx) : 0.0f;
        total += ps[i] * wt[i];
    }
    float inv = 1.0f / total;
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        int64_t d = lane + 32 * j;
        if (d >= a.D)
            continue;
        float o = 0.0f;
        for (int i = 0; i < KW; i++)
            o += part[2 * KW + i * 32 * NJ + lane + 32 * j] * wt[i];
        a.out[row * a.D + d] = o * inv;
    }
}

template <int NJ> static void launch_nj(unsigned blocks, cudaStream_t st, const kv_args &a)
{
    size_t shared = (size_t)(2 * KW + KW * 32 * NJ) * sizeof(float);
    attn_bf16kv_kernel<NJ><<<blocks, KW * 32, shared, st>>>(a);
}

// out (B, T, H, D) = causal softmax(q k^T * scale) v, k/v (B, S, KVH, D) bfloat16
void lora__cuda_attention_bf16kv_fwd(lora_backend *be, float *out, const float *q,
                                     const lora_bf16 *k, const lora_bf16 *v,
                                     const lora_attention_shape *s)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu)
        return;
    if (s->D < 1 || s->D > MAX_D) {
        lora__cuda_fail(cu, LORA_ERR_UNSUPPORTED, "attention_bf16kv_fwd: head_dim %lld outside "
                        "1..%d", (long long)s->D, MAX_D);
        return;
    }
    int64_t rows = s->B * s->T * s->H;
    if (rows == 0)
        return;
    kv_args a = {};
    a.out = out;
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
    /* values per lane = D / 32 rounded up to a power of two: registers, not local memory */
    int64_t per = (s->D + 31) / 32;
    unsigned blocks = (unsigned)rows;
    if (per <= 1)
        launch_nj<1>(blocks, cu->stream, a);
    else if (per <= 2)
        launch_nj<2>(blocks, cu->stream, a);
    else if (per <= 4)
        launch_nj<4>(blocks, cu->stream, a);
    else if (per <= 8)
        launch_nj<8>(blocks, cu->stream, a);
    else if (per <= 16)
        launch_nj<16>(blocks, cu->stream, a);
    else
        launch_nj<32>(blocks, cu->stream, a);
    lora__cuda_launched(cu, "attention_bf16kv_fwd");
}
