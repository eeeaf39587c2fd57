/* The conversions around cuDNN's attention: its flash-attention kernels read and write
 * bfloat16, the op table holds float32. Rows of the first T tokens of each sequence are packed
 * into (B, T, W) copies (K and V rows past T are seen by no query when pos0 == 0), and the
 * results go back into the table's (B, S, W) rows, written or accumulated (the backward's +=). */
#include <cuda_bf16.h>

#include "common.cuh"

__global__ void rows_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, int64_t T, int64_t S,
                                    int64_t W, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    {
        int64_t w = i % W, bt = i / W, t = bt % T, b = bt / T;
        dst[i] = __float2bfloat16_rn(src[(b * S + t) * W + w]);
    }
}

__global__ void rows_from_bf16_kernel(float *dst, const __nv_bfloat16 *src, int64_t T, int64_t S,
                                      int64_t W, const int32_t *len, bool accumulate, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    {
        int64_t w = i % W, bt = i / W, t = bt % T, b = bt / T;
        float *d = dst + (b * S + t) * W + w;
        bool valid = !len || t < len[b];
        if (accumulate) {
            if (valid)
                *d += __bfloat162float(src[i]);
        } else
            *d = valid ? __bfloat162float(src[i]) : 0.0f;
    }
}

__global__ void fill_i32_kernel(int32_t *p, int32_t value, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    p[i] = value;
}

void lora__cuda_rows_to_bf16(lora_cuda *cu, void *dst, const float *src, int64_t B, int64_t T,
                             int64_t S, int64_t W, const char *what)
{
    int64_t n = B * T * W;
    if (n == 0)
        return;
    rows_to_bf16_kernel<<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(
        (__nv_bfloat16 *)dst, src, T, S, W, n);
    lora__cuda_launched(cu, what);
}

void lora__cuda_rows_from_bf16(lora_cuda *cu, float *dst, const void *src, int64_t B, int64_t T,
                               int64_t S, int64_t W, const int32_t *len, bool accumulate,
                               const char *what)
{
    int64_t n = B * T * W;
    if (n == 0)
        return;
    rows_from_bf16_kernel<<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(
        dst, (const __nv_bfloat16 *)src, T, S, W, len, accumulate, n);
    lora__cuda_launched(cu, what);
}

void lora__cuda_fill_i32(lora_cuda *cu, int32_t *p, int64_t n, int32_t value, const char *what)
{
    if (n == 0)
        return;
    fill_i32_kernel<<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(p, value, n);
    lora__cuda_launched(cu, what);
}
