/* Causal grouped-query attention over a bfloat16 KV cache (decoding, and prefill into the cache
 * of a GPU model with bfloat16 storage): q and out float32, keys and values read as bfloat16
 * and widened, scores, the softmax and the weighted sum in float32. The plain-C reference is the
 * CPU backend's attention (src/cpu/attention.c) on the widened cache.
 *
 * A query row's visible keys are split into SPLITS contiguous ranges, one block each (split-KV,
 * "flash-decoding"): a decode step has one query row per head, 14 for Qwen2.5-0.5B, which one
 * block each would leave on 14 of a GPU's 132 SMs walking the whole context. In a block, KW
 * warps split the range again, each runs an online softmax over its keys (the lanes hold
 * D / 32 values of the row each), and the first warp merges the KW partial results: into out
 * when there is one split, else as the split's (max, sum, unnormalised row) into the op
 * scratch, which a second kernel merges per row. Many rows (a prefill) get one split. */
#include "common.cuh"

#define KW 4            /* warps per block */
#define MAX_D 1024      /* the config bound on head_dim: 32 values per lane */
#define SPLIT_KEYS 64   /* keys a split takes at least */
#define TARGET_BLOCKS 256
#define MAX_SPLITS 64

typedef struct kv_args {
    float *out;
    const float *q;
    const lora_bf16 *k, *v;
    const int32_t *key0, *pos;
    float *part; /* (rows, splits, D + 2): max, sum, the unnormalised row; with splits > 1 */
    int64_t B, T, S, H, KVH, D, pos0;
    float scale;
} kv_args;

template <int NJ> __global__ void attn_bf16kv_kernel(kv_args a)
{
    extern __shared__ float part[]; /* KW maxima, KW sums, KW rows of D / 32 * 32 values */
    int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    int64_t row = blockIdx.x;
    int64_t h = row % a.H, t = (row / a.H) % a.T, b = row / (a.H * a.T);
    int64_t kvh = h / (a.H / a.KVH), kvs = a.KVH * a.D;
    int64_t k0 = a.key0 ? a.key0[b * a.T + t] : 0;
    int64_t n_keys = (a.pos ? a.pos[b * a.T + t] : a.pos0 + t) + 1 - k0;
    /* this block's keys: split blockIdx.y of gridDim.y, then this warp's share of them */
    int64_t splits = gridDim.y, sper = (n_keys + splits - 1) / splits;
    int64_t s0 = blockIdx.y * sper < n_keys ? blockIdx.y * sper : n_keys;
    int64_t s1 = s0 + sper < n_keys ? s0 + sper : n_keys;
    int64_t per = (s1 - s0 + KW - 1) / KW, first = s0 + w * per;
    int64_t last = first + per < s1 ? first + per : s1;
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
                s += qr[j] * lora__widen_bf16(kr[d]);
        }
        s = lora__warp_sum(s) * a.scale;
        float wa, wv; /* acc = acc * wa + wv * v */
        lora__online_softmax_step(s, &m, &sum, &wa, &wv);
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            int64_t d = lane + 32 * j;
            if (d < a.D)
                acc[j] = acc[j] * wa + wv * lora__widen_bf16(vr[d]);
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
    /* one split: the row itself; several: this split's share, merged by merge_kernel */
    float *dst = splits > 1 ? a.part + (row * splits + blockIdx.y) * (a.D + 2) : NULL;
    if (dst && lane == 0) {
        dst[0] = mx;
        dst[1] = total;
    }
    float inv = dst ? 1.0f : 1.0f / total;
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        int64_t d = lane + 32 * j;
        if (d >= a.D)
            continue;
        float o = 0.0f;
        for (int i = 0; i < KW; i++)
            o += part[2 * KW + i * 32 * NJ + lane + 32 * j] * wt[i];
        if (dst)
            dst[2 + d] = o;
        else
            a.out[row * a.D + d] = o * inv;
    }
}

// out (rows, D) = the splits' rows of part, each weighted by exp(its max - the largest), over
// the weighted sums; a split without keys has sum 0 and weight 0
__global__ void merge_kernel(float *out, const float *part, int64_t splits, int64_t D)
{
    int64_t row = blockIdx.x;
    const float *p = part + row * splits * (D + 2);
    float mx = -INFINITY;
    for (int64_t i = 0; i < splits; i++)
        mx = fmaxf(mx, p[i * (D + 2)]);
    float total = 0.0f;
    for (int64_t i = 0; i < splits; i++) {
        const float *q = p + i * (D + 2);
        total += q[1] > 0.0f ? q[1] * expf(q[0] - mx) : 0.0f;
    }
    float inv = 1.0f / total;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.0f;
        for (int64_t i = 0; i < splits; i++) {
            const float *q = p + i * (D + 2);
            if (q[1] > 0.0f)
                o += q[2 + d] * expf(q[0] - mx);
        }
        out[row * D + d] = o * inv;
    }
}

template <int NJ> static void launch_nj(dim3 grid, cudaStream_t st, const kv_args &a)
{
    size_t shared = (size_t)(2 * KW + KW * 32 * NJ) * sizeof(float);
    attn_bf16kv_kernel<NJ><<<grid, KW * 32, shared, st>>>(a);
}

/* splits per row: enough blocks to fill the device, at least SPLIT_KEYS keys each */
static int64_t splits_for(int64_t rows, int64_t keys)
{
    int64_t by_keys = (keys + SPLIT_KEYS - 1) / SPLIT_KEYS;
    int64_t by_rows = (TARGET_BLOCKS + rows - 1) / rows;
    int64_t n = by_keys < by_rows ? by_keys : by_rows;
    return n < 1 ? 1 : n > MAX_SPLITS ? MAX_SPLITS : n;
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
    a.pos = s->pos;
    a.B = s->B;
    a.T = s->T;
    a.S = s->S;
    a.H = s->H;
    a.KVH = s->KVH;
    a.D = s->D;
    a.pos0 = s->pos0;
    a.scale = s->scale;
    /* with the positions on the device the launch must hold any of them: S keys */
    int64_t splits = splits_for(rows, s->pos ? s->S : s->pos0 + s->T);
    if (splits > 1) {
        a.part = (float *)lora__cuda_scratch(cu, (size_t)(rows * splits * (s->D + 2)) *
                                                     sizeof(float));
        if (!a.part)
            return;
    }
    /* values per lane = D / 32 rounded up to a power of two: registers, not local memory */
    int64_t per = (s->D + 31) / 32;
    dim3 grid((unsigned)rows, (unsigned)splits);
    if (per <= 1)
        launch_nj<1>(grid, cu->stream, a);
    else if (per <= 2)
        launch_nj<2>(grid, cu->stream, a);
    else if (per <= 4)
        launch_nj<4>(grid, cu->stream, a);
    else if (per <= 8)
        launch_nj<8>(grid, cu->stream, a);
    else if (per <= 16)
        launch_nj<16>(grid, cu->stream, a);
    else
        launch_nj<32>(grid, cu->stream, a);
    if (lora__cuda_launched(cu, "attention_bf16kv_fwd") || splits == 1)
        return;
    merge_kernel<<<(unsigned)rows, LORA_CUDA_THREADS / 2, 0, cu->stream>>>(out, a.part, splits, s->D);
    lora__cuda_launched(cu, "attention_bf16kv_fwd merge");
}
