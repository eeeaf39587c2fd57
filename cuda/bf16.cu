/* Rounding float32 to bfloat16 on the device: the KV cache's writes (the table's to_bf16) and
 * the activations a bfloat16 product takes. The integer arithmetic of lora__bf16_from_f32
 * (src/model/dtype.c), so a value rounds to the same bits on the host and here. */
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
