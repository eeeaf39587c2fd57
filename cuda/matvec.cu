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
 * block's columns in one of them, and the LoRA paths' t = x A^T of the group after them.
 *
 * The LoRA path's two products at these sizes: t = x @ A^T, one block per (row, rank) dot
 * product, then y += scale t @ B^T, one thread per output element; float32 fused
 * multiply-adds, no TF32 rounding. t is laid out (r, N), as lora.c keeps it. */
#include "lora_up_tile.cuh"

#define MV_WARPS 8 /* output columns per block */
/* a group's LoRA blocks sum as lora_fwd's do only with as many threads */
static_assert(MV_WARPS * 32 == LORA_CUDA_THREADS, "matvec blocks are LORA_CUDA_THREADS wide");

__device__ __forceinline__ float rounded(float x) { return lora__widen_bf16(lora__round_bf16(x)); }

static unsigned warp_blocks(int64_t warps)
{
    return (unsigned)((warps + MV_WARPS - 1) / MV_WARPS);
}

/* element (e % r, e / r) of t (r, N) = A (r, in) @ x (N, in)^T by one block: a 4,864-long dot
 * product is 19 loads per thread rather than 152 per lane */
__device__ void lora_down_element(float *t, const float *x, const float *A, int64_t N,
                                  int64_t in, int64_t r, int64_t e)
{
    const float *xr = x + (e / r) * in, *ar = A + (e % r) * in;
    float acc = 0.0f;
    for (int64_t k = threadIdx.x; k < in; k += blockDim.x)
        acc = fmaf(xr[k], ar[k], acc);
    acc = lora__block_sum(acc);
    if (threadIdx.x == 0)
        t[(e % r) * N + e / r] = acc;
}

/* y[e] of y (N, out) += scale * t (r, N)^T @ B (out, r)^T */
__device__ __forceinline__ void lora_up_element(float *y, const float *t, const float *B,
                                                int64_t N, int64_t r, int64_t out, float scale,
                                                int64_t e)
{
    y[e] += scale * lora_up_sum(t, B, N, r, e / out, e % out);
}

/* the group's products, passed by value (a recorded launch keeps its arguments): product i's
 * column blocks are first[i]..first[i+1]-1, then its LoRA t's elements, a block each,
 * down[i]..down[i+1]-1 (none without A[i]) */
typedef struct mv_group {
    lora_bf16_group g;
    unsigned first[LORA_GROUP_MAX + 1], down[LORA_GROUP_MAX + 1];
} mv_group;

__global__ void matvec_bf16_kernel(mv_group p, const float *x, int64_t N, int64_t K)
{
    int i = 0;
    if (blockIdx.x >= p.first[p.g.n]) { /* a block of a LoRA t */
        while (i + 1 < p.g.n && blockIdx.x >= p.down[i + 1])
            i++;
        lora_down_element(p.g.t[i], x, p.g.A[i], N, K, p.g.r[i], blockIdx.x - p.down[i]);
        return;
    }
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

// t (r, N) = A (r, in) @ x (N, in)^T: one block per element of t (N r of them: 16 at batch 1)
__global__ void lora_down_small_kernel(float *t, const float *x, const float *A, int64_t N,
                                       int64_t in, int64_t r)
{
    lora_down_element(t, x, A, N, in, r, blockIdx.x);
}

// y (N, out) += scale * t (r, N)^T @ B (out, r)^T: one thread per element of y
__global__ void lora_up_small_kernel(float *y, const float *t, const float *B, int64_t N,
                                     int64_t r, int64_t out, float scale)
{
    LORA_CUDA_FOR(e, N * out)
    lora_up_element(y, t, B, N, r, out, scale, e);
}

/* the up-products of a group's LoRA paths: product i's elements up[i]..up[i+1]-1 */
typedef struct up_group {
    lora_bf16_group g;
    int64_t up[LORA_GROUP_MAX + 1];
    int64_t N;
} up_group;

// each y[i] (N, out[i]) += scale[i] * t[i] @ B[i]^T where A[i] and not t_only[i]: a thread per
// element
__global__ void lora_up_group_kernel(up_group p)
{
    LORA_CUDA_FOR(e, p.up[p.g.n])
    {
        int i = 0;
        while (i + 1 < p.g.n && e >= p.up[i + 1])
            i++;
        lora_up_element(p.g.y[i], p.g.t[i], p.g.B[i], p.N, p.g.r[i], p.g.out[i], p.g.scale[i],
                        e - p.up[i]);
    }
}

void lora__cuda_matvec_bf16_group(lora_cuda *cu, const lora_bf16_group *g, const float *x,
                                  int64_t N, int64_t K)
{
    mv_group p = {*g, {0}, {0}};
    up_group u = {*g, {0}, N};
    for (int i = 0; i < g->n; i++)
        p.first[i + 1] = p.first[i] + warp_blocks(g->out[i]);
    p.down[0] = p.first[g->n];
    for (int i = 0; i < g->n; i++) {
        bool lora = g->A[i] && g->r[i] > 0;
        p.down[i + 1] = p.down[i] + (lora ? (unsigned)(N * g->r[i]) : 0u);
        u.up[i + 1] = u.up[i] + (lora && !g->t_only[i] ? N * g->out[i] : 0);
    }
    if (p.down[g->n] == 0)
        return;
    /* the LoRA blocks reduce over the block: LORA_CUDA_THREADS threads, as lora_fwd's */
    matvec_bf16_kernel<<<p.down[g->n], MV_WARPS * 32, 0, cu->stream>>>(p, x, N, K);
    if (lora__cuda_launched(cu, "matvec_bf16") || u.up[g->n] == 0)
        return;
    lora_up_group_kernel<<<lora__cuda_blocks(u.up[g->n]), LORA_CUDA_THREADS, 0, cu->stream>>>(u);
    lora__cuda_launched(cu, "lora_fwd y (group)");
}

void lora__cuda_matvec_bf16(lora_cuda *cu, float *y, const float *x, const lora_bf16 *w,
                            const float *bias, int64_t N, int64_t Nout, int64_t K)
{
    lora_bf16_group g = {.n = 1, .y = {y}, .w = {w}, .bias = {bias}, .out = {Nout}};
    lora__cuda_matvec_bf16_group(cu, &g, x, N, K);
}

void lora__cuda_lora_small_fwd(lora_cuda *cu, float *y, float *t, const float *x, const float *A,
                               const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                               float scale)
{
    lora_down_small_kernel<<<(unsigned)(N * r), LORA_CUDA_THREADS, 0, cu->stream>>>(t, x, A, N, in, r);
    if (lora__cuda_launched(cu, "lora_fwd t (small)"))
        return;
    lora_up_small_kernel<<<lora__cuda_blocks(N * out), LORA_CUDA_THREADS, 0, cu->stream>>>(y, t, B, N, r, out, scale);
    lora__cuda_launched(cu, "lora_fwd y (small)");
}
