/* What the CUDA backend's kernels share: launch shapes and warp / block reductions. */
#ifndef LORA_CUDA_COMMON_CUH
#define LORA_CUDA_COMMON_CUH

#include "internal.h"

#define LORA_CUDA_THREADS 256
/* Elementwise kernels loop over the grid, which is capped: more blocks only queue. */
#define LORA_CUDA_MAX_BLOCKS 65536

static inline unsigned lora__cuda_blocks(int64_t n)
{
    int64_t b = (n + LORA_CUDA_THREADS - 1) / LORA_CUDA_THREADS;
    return (unsigned)(b < 1 ? 1 : b > LORA_CUDA_MAX_BLOCKS ? LORA_CUDA_MAX_BLOCKS : b);
}

/* Grid-stride loop over [0, n). */
#define LORA_CUDA_FOR(i, n)                                                                      \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                  \
         i += (int64_t)gridDim.x * blockDim.x)

/* float32 to bfloat16, nearest even: the integer arithmetic of lora__bf16_from_f32
 * (src/model/dtype.c), so a value rounds to the same bits on the host and here */
__device__ __forceinline__ lora_bf16 lora__round_bf16(float x)
{
    uint32_t u = __float_as_uint(x);
    if (x != x) /* NaN: stays NaN, quiet */
        return (lora_bf16)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (lora_bf16)(u >> 16);
}

/* one rotate-half pair of a head's D values, v[i] and v[i + half], by the angle of (c, s): RoPE,
 * in every kernel that applies it, the same arithmetic */
__device__ __forceinline__ void lora__rope_pair(float *v, int64_t i, int64_t half, float c,
                                                float s)
{
    float x1 = v[i], x2 = v[i + half];
    v[i] = x1 * c - x2 * s;
    v[i + half] = x2 * c + x1 * s;
}

/* bfloat16 to float32, exact */
__device__ __forceinline__ float lora__widen_bf16(lora_bf16 h) { return __uint_as_float((uint32_t)h << 16); }

/* element i of a float32 tensor, or of a bfloat16 one widened: kernels templated on the type
 * of an input that a training step may keep in bfloat16 */
__device__ __forceinline__ float lora__load(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float lora__load(const lora_bf16 *p, int64_t i) { return lora__widen_bf16(p[i]); }

template <typename T> __device__ __forceinline__ T lora__warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float lora__warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The sum over the block (blockDim.x a multiple of 32, at most 1024), returned to every
 * thread; ends synchronised, so the caller may write what the threads read before. */
template <typename T> __device__ T lora__block_sum(T v)
{
    __shared__ T part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = lora__warp_sum(v);
    __syncthreads(); /* part[] may still be read by a previous call */
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    T s = lane < warps ? part[lane] : T(0);
    return lora__warp_sum(s);
}

__device__ __forceinline__ float lora__block_max(float v)
{
    __shared__ float part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = lora__warp_max(v);
    __syncthreads();
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    float m = lane < warps ? part[lane] : -INFINITY;
    return lora__warp_max(m);
}

/* One key of an online softmax (the CPU's order): with score s, the running max *m and sum
 * *sum move on, and the accumulator becomes acc * *wa + *wv * v. */
__device__ __forceinline__ void lora__online_softmax_step(float s, float *m, float *sum,
                                                          float *wa, float *wv)
{
    if (s > *m) {
        *wa = expf(*m - s);
        *sum = *sum * *wa + 1.0f;
        *wv = 1.0f;
        *m = s;
    } else {
        *wa = 1.0f;
        *wv = expf(s - *m);
        *sum += *wv;
    }
}

/* A row's max and sum of exp(l - max) (in double) over the block, returned to every thread. */
__device__ __forceinline__ void lora__row_max_sumexp(const float *l, int64_t n, float *max_out,
                                                     double *sum_out)
{
    float m = -INFINITY;
    for (int64_t v = threadIdx.x; v < n; v += blockDim.x)
        m = fmaxf(m, l[v]);
    m = lora__block_max(m);
    double sum = 0.0;
    for (int64_t v = threadIdx.x; v < n; v += blockDim.x)
        sum += exp((double)l[v] - m);
    *max_out = m;
    *sum_out = lora__block_sum(sum);
}

/* d (n) += g * (softmax(l) - onehot(t - v0)) for one row's columns v0 .. v0 + n (or, not
 * accumulate, d = that: d not read), from the row's log-sum-exp ls (exp(l - ls) <= 1: no
 * overflow). */
__device__ __forceinline__ void lora__ce_row_bwd(float *d, const float *l, int64_t n, int64_t v0,
                                                 int32_t t, float g, float ls, bool accumulate)
{
    for (int64_t v = threadIdx.x; v < n; v += blockDim.x) {
        float e = g * expf(l[v] - ls), val = accumulate ? d[v] + e : e;
        d[v] = v + v0 == t ? val - g : val;
    }
}

#endif
