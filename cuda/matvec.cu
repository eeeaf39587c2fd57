/* Products of a few rows, for decoding (N <= LORA_CUDA_MATVEC_ROWS: one token per sequence).
 * There a product reads its whole weight for a handful of dot products, so it is bound by
 * reading the weight once; cuBLASLt's tiles are built for many rows, and the bf16 path took
 * three launches (bias, rounding x, the product) where one does here.
 *
 * matvec_bf16: y (N, Nout) = x (N, K) @ w (Nout, K)^T + bias, w bfloat16. One warp per output
 * column streams its weight row in 16-byte loads; x, a few KB read by every warp, comes from
 * cache and is rounded to bfloat16 in registers, as the bf16 product rounds it. A product of
 * two bfloat16 values is exact in float32, so only the order of the float32 sum differs from
 * cuBLASLt's. A launch covers a group of products of the same x (a layer's q, k and v), each
 * block's columns in one of them.
 *
 * The LoRA path's two products at these sizes: t (N, r) = x @ A^T, one block per (row, rank)
 * dot product, then y += scale t @ B^T, one thread per output element; float32 fused
 * multiply-adds, no TF32 rounding. */
#include "common.cuh"

#define MV_WARPS 8 /* output columns per block */

__device__ __forceinline__ float rounded(float x) { return lora__widen_bf16(lora__round_bf16(x)); }

static unsigned warp_blocks(int64_t warps)
{
    return (unsigned)((warps + MV_WARPS - 1) / MV_WARPS);
}

/* the group's products, passed by value (a recorded launch keeps its arguments), and where each
 * one's blocks start */
typedef struct mv_group {
    lora_bf16_group g;
    unsigned first[LORA_GROUP_MAX + 1];
} mv_group;

__global__ void matvec_bf16_kernel(mv_group p, const float *x, int64_t N, int64_t K)
{
    int i = 0;
    while (i + 1 < p.g.n && blockIdx.x >= p.first[i + 1])
        i++;
    float *y = p.g.y[i];
    const float *bias = p.g.bias[i];
    int64_t Nout = p.g.out[i];
    int64_t o = (int64_t)(blockIdx.x - p.first[i]) * MV_WARPS + threadIdx.x / 32;
    int64_t lane = threadIdx.x % 32;
    if (o >= Nout) /* the whole warp: o is the same for its lanes */
        return;
    const lora_bf16 *wr = p.g.w[i] + o * K;
    float acc[LORA_CUDA_MATVEC_ROWS];
    for (int n = 0; n < LORA_CUDA_MATVEC_ROWS; n++)
        acc[n] = 0.0f;
    /* 16-byte loads need every row to start 16-byte aligned: K a multiple of 8 */
    int64_t k8 = K % 8 == 0 ? K : 0;
    for (int64_t k = lane * 8; k < k8; k += 32 * 8) {
        uint4 pk = *(const uint4 *)(wr + k);
        uint32_t words[4] = {pk.x, pk.y, pk.z, pk.w};
        float wv[8];
        for (int j = 0; j < 4; j++) { /* little-endian: the lower half is the earlier element */
            wv[2 * j] = __uint_as_float(words[j] << 16);
            wv[2 * j + 1] = __uint_as_float(words[j] & 0xffff0000u);
        }
        for (int n = 0; n < LORA_CUDA_MATVEC_ROWS; n++)
            if (n < N)
                for (int j = 0; j < 8; j++)
                    acc[n] = fmaf(wv[j], rounded(x[n * K + k + j]), acc[n]);
    }
    for (int64_t k = k8 + lane; k < K; k += 32) {
        float wk = lora__widen_bf16(wr[k]);
        for (int n = 0; n < LORA_CUDA_MATVEC_ROWS; n++)
            if (n < N)
                acc[n] = fmaf(wk, rounded(x[n * K + k]), acc[n]);
    }
    for (int n = 0; n < LORA_CUDA_MATVEC_ROWS; n++) {
        if (n >= N)
            break;
        float s = lora__warp_sum(acc[n]);
        if (lane == 0)
            y[n * Nout + o] = s + (bias ? bias[o] : 0.0f);
    }
}

// t (N, r) = x (N, in) @ A (r, in)^T: one block per element of t (N r of them: 16 at batch
// 1), so that a 4,864-long dot product is 19 loads per thread rather than 152 per lane
__global__ void lora_down_small_kernel(float *t, const float *x, const float *A, int64_t in,
                                       int64_t r)
{
    int64_t e = blockIdx.x;
    const float *xr = x + (e / r) * in, *ar = A + (e % r) * in;
    float acc = 0.0f;
    for (int64_t k = threadIdx.x; k < in; k += blockDim.x)
        acc = fmaf(xr[k], ar[k], acc);
    acc = lora__block_sum(acc);
    if (threadIdx.x == 0)
        t[e] = acc;
}

// y (N, out) += scale * t (N, r) @ B (out, r)^T: one thread per element of y
__global__ void lora_up_small_kernel(float *y, const float *t, const float *B, int64_t N,
                                     int64_t r, int64_t out, float scale)
{
    LORA_CUDA_FOR(e, N * out)
    {
        const float *tr = t + (e / out) * r, *br = B + (e % out) * r;
        float acc = 0.0f;
        for (int64_t j = 0; j < r; j++)
            acc = fmaf(tr[j], br[j], acc);
        y[e] += scale * acc;
    }
}

void lora__cuda_matvec_bf16_group(lora_cuda *cu, const lora_bf16_group *g, const float *x,
                                  int64_t N, int64_t K)
{
    mv_group p = {*g, {0}};
    for (int i = 0; i < g->n; i++)
        p.first[i + 1] = p.first[i] + warp_blocks(g->out[i]);
    if (p.first[g->n] == 0)
        return;
    matvec_bf16_kernel<<<p.first[g->n], MV_WARPS * 32, 0, cu->stream>>>(p, x, N, K);
    lora__cuda_launched(cu, "matvec_bf16");
}

void lora__cuda_matvec_bf16(lora_cuda *cu, float *y, const float *x, const lora_bf16 *w,
                            const float *bias, int64_t N, int64_t Nout, int64_t K)
{
    lora_bf16_group g = {1, {y}, {w}, {bias}, {Nout}};
    lora__cuda_matvec_bf16_group(cu, &g, x, N, K);
}

void lora__cuda_lora_small_fwd(lora_cuda *cu, float *y, float *t, const float *x, const float *A,
                               const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                               float scale)
{
    lora_down_small_kernel<<<(unsigned)(N * r), LORA_CUDA_THREADS, 0, cu->stream>>>(t, x, A, in, r);
    if (lora__cuda_launched(cu, "lora_fwd t (small)"))
        return;
    lora_up_small_kernel<<<lora__cuda_blocks(N * out), LORA_CUDA_THREADS, 0, cu->stream>>>(y, t, B, N, r, out, scale);
    lora__cuda_launched(cu, "lora_fwd y (small)");
}
