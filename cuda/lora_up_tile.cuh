/* LoRA up-products summed inside the pass that reads their projection's output, rather than as
 * products that read and write it (swiglu_lora_keep_fwd, qkv_keep_fwd,
 * residual_lora_rmsnorm_fwd): a block of threads, each with S columns, walks the rows in tiles
 * of LUT_ROWS; a thread keeps its columns' rows of B in registers, LUT_J at a time, and the
 * tile's rows of t in shared memory. Each sum is fused multiply-adds over j in order from 0
 * (lora_up_sum's, which matvec.cu's up-product and rope_kv_store.cu take), to which the kernel
 * adds y + scale * acc. */
#ifndef LORA_CUDA_LORA_UP_TILE_CUH
#define LORA_CUDA_LORA_UP_TILE_CUH

#include "common.cuh"

#define LUT_ROWS 32
#define LUT_J 16

/* Side s (< 3) of lu: its t (NULL: no LoRA term), B and scale. By cases rather than lu.t[s] with
 * s not known when compiling, so that a kernel's lu stays in the parameter space. */
__device__ __forceinline__ const float *lora_up_side(const lora_lora_up &lu, int s,
                                                     const float **B, float *scale)
{
    *B = s == 0 ? lu.B[0] : s == 1 ? lu.B[1] : lu.B[2];
    *scale = s == 0 ? lu.scale[0] : s == 1 ? lu.scale[1] : lu.scale[2];
    return s == 0 ? lu.t[0] : s == 1 ? lu.t[1] : lu.t[2];
}

/* One element's sum, for kernels with a thread per element (a few rows): sum_j t[j N + n]
 * B[col r + j], the order lora_up_tile sums in; t (r, N), B (out, r). */
__device__ __forceinline__ float lora_up_sum(const float *t, const float *B, int64_t N,
                                             int64_t r, int64_t n, int64_t col)
{
    const float *br = B + col * r;
    float acc = 0.0f;
    for (int64_t j = 0; j < r; j++)
        acc = fmaf(t[j * N + n], br[j], acc);
    return acc;
}

/* acc[s][k] = sum_j t_s[j N + n0 + k] b[s][j] for the tile's rows k < rows (0 past them), j < r;
 * t_s is t[s] where T == S (each column its own product), t[0] where T == 1 (a thread's
 * columns of one product); t in lora_fwd's (r, N) layout, NULL for none. b[s]: the thread's
 * row of B_s, NULL where the thread has no column s (acc[s] left 0). Every thread of the block
 * calls it (it loads the tiles and waits at barriers); ts is the block's shared tile. */
template <int T, int S>
__device__ __forceinline__ void lora_up_tile(float (*ts)[LUT_J][LUT_ROWS], const float *const *t,
                                             const float *const *b, int64_t r, int64_t N,
                                             int64_t n0, int rows, float (*acc)[LUT_ROWS])
{
    /* the loops have constant bounds (the tiles' padding is zeros), so that acc and the rows
     * of B stay in registers */
#pragma unroll
    for (int s = 0; s < S; s++)
#pragma unroll
        for (int k = 0; k < LUT_ROWS; k++)
            acc[s][k] = 0.0f;
    for (int64_t j0 = 0; j0 < r; j0 += LUT_J) {
        int js = r - j0 < LUT_J ? (int)(r - j0) : LUT_J;
        __syncthreads(); /* the previous tile is read */
#pragma unroll
        for (int u = 0; u < T; u++)
            for (int e = threadIdx.x; e < LUT_J * LUT_ROWS; e += blockDim.x) {
                int j = e / LUT_ROWS, k = e % LUT_ROWS;
                ts[u][j][k] = t[u] && j < js && k < rows ? t[u][(j0 + j) * N + n0 + k] : 0.0f;
            }
        __syncthreads();
#pragma unroll
        for (int s = 0; s < S; s++) {
            if (!b[s])
                continue;
            float bj[LUT_J];
#pragma unroll
            for (int j = 0; j < LUT_J; j++)
                bj[j] = j < js ? b[s][j0 + j] : 0.0f;
            /* past js both factors are 0: fmaf(0, 0, acc) is acc */
#pragma unroll
            for (int k = 0; k < LUT_ROWS; k++)
#pragma unroll
                for (int j = 0; j < LUT_J; j++)
                    acc[s][k] = fmaf(ts[T == 1 ? 0 : s][j][k], bj[j], acc[s][k]);
        }
    }
}

#endif
