/* Rounding float32 to bfloat16 on the device: the KV cache's writes (kv_store_bf16), the
 * masters of full fine-tuning and the activations a training forward keeps (to_bf16), and the
 * activations a bfloat16 product takes. The integer arithmetic of lora__bf16_from_f32
 * (src/model/dtype.c), so a value rounds to the same bits on the host and here. The way back
 * (from_bf16) is exact. */
#include "common.cuh"

__global__ void round_bf16_kernel(lora_bf16 *dst, const float *src, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    dst[i] = lora__round_bf16(src[i]);
}

int lora__cuda_round_bf16(lora_cuda *cu, lora_bf16 *dst, const float *src, size_t n)
{
    if (n == 0)
        return 0;
    round_bf16_kernel<<<lora__cuda_blocks((int64_t)n), LORA_CUDA_THREADS, 0, cu->stream>>>(
        dst, src, (int64_t)n);
    return lora__cuda_launched(cu, "to bfloat16");
}

// dst (n) bfloat16 = src (n) float32, nearest even
void lora__cuda_to_bf16(lora_backend *be, lora_bf16 *dst, const float *src, size_t n)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (cu)
        lora__cuda_round_bf16(cu, dst, src, n);
}

__global__ void widen_bf16_kernel(float *dst, const lora_bf16 *src, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    dst[i] = lora__widen_bf16(src[i]);
}

int lora__cuda_widen_bf16(lora_cuda *cu, float *dst, const lora_bf16 *src, size_t n)
{
    if (n == 0)
        return 0;
    widen_bf16_kernel<<<lora__cuda_blocks((int64_t)n), LORA_CUDA_THREADS, 0, cu->stream>>>(dst, src, (int64_t)n);
    return lora__cuda_launched(cu, "from bfloat16");
}

// dst (n) float32 = src (n) bfloat16
void lora__cuda_from_bf16(lora_backend *be, float *dst, const lora_bf16 *src, size_t n)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (cu)
        lora__cuda_widen_bf16(cu, dst, src, n);
}

// cache (B, S, row)[b, pos[b T + t]] = src (B, T, row)[b, t], nearest even
__global__ void kv_store_kernel(lora_bf16 *cache, const float *src, const int32_t *pos,
                                int64_t T, int64_t S, int64_t row, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    {
        int64_t tok = i / row;
        cache[((tok / T) * S + pos[tok]) * row + i % row] = lora__round_bf16(src[i]);
    }
}

void lora__cuda_kv_store_bf16(lora_backend *be, lora_bf16 *cache, const float *src,
                              const int32_t *pos, int64_t B, int64_t T, int64_t S, int64_t row)
{
    lora_cuda *cu = lora__cuda_enter(be);
    int64_t n = B * T * row;
    if (!cu || n == 0)
        return;
    kv_store_kernel<<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(cache, src, pos, T, S, row, n);
    lora__cuda_launched(cu, "kv_store_bf16");
}
