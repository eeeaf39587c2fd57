/* Embedding lookup (from a float32 or a bfloat16 table) and its scatter-add backward. */
#include "common.cuh"

__global__ void embedding_fwd_kernel(float *x, const int32_t *ids, const float *table,
                                     int64_t N, int64_t C)
{
    LORA_CUDA_FOR(i, N * C)
    x[i] = table[(int64_t)ids[i / C] * C + i % C];
}

__global__ void embedding_bf16_fwd_kernel(float *x, const int32_t *ids, const lora_bf16 *table,
                                          int64_t N, int64_t C)
{
    LORA_CUDA_FOR(i, N * C)
    x[i] = __uint_as_float((uint32_t)table[(int64_t)ids[i / C] * C + i % C] << 16);
}

/* One thread per column adds the tokens in order, as the CPU backend does: repeated ids meet
 * in one table row, and a fixed order keeps the sum deterministic (and equal to the CPU's). */
__global__ void embedding_bwd_kernel(float *dtable, const float *dx, const int32_t *ids,
                                     int64_t N, int64_t C)
{
    LORA_CUDA_FOR(c, C)
    for (int64_t n = 0; n < N; n++)
        dtable[(int64_t)ids[n] * C + c] += dx[n * C + c];
}

// x (N, C) = table (V, C)[ids (N)]
void lora__cuda_embedding_fwd(lora_backend *be, float *x, const int32_t *ids, const float *table,
                              int64_t N, int64_t C)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N * C == 0)
        return;
    embedding_fwd_kernel<<<lora__cuda_blocks(N * C), LORA_CUDA_THREADS, 0, cu->stream>>>(
        x, ids, table, N, C);
    lora__cuda_launched(cu, "embedding_fwd");
}

// x (N, C) = table (V, C)[ids (N)], table bfloat16
void lora__cuda_embedding_bf16_fwd(lora_backend *be, float *x, const int32_t *ids,
                                   const lora_bf16 *table, int64_t N, int64_t C)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N * C == 0)
        return;
    embedding_bf16_fwd_kernel<<<lora__cuda_blocks(N * C), LORA_CUDA_THREADS, 0, cu->stream>>>(
        x, ids, table, N, C);
    lora__cuda_launched(cu, "embedding_bf16_fwd");
}

// dtable (V, C)[ids[n]] += dx (N, C)[n]
void lora__cuda_embedding_bwd(lora_backend *be, float *dtable, const float *dx,
                              const int32_t *ids, int64_t N, int64_t C)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N * C == 0)
        return;
    embedding_bwd_kernel<<<lora__cuda_blocks(C), LORA_CUDA_THREADS, 0, cu->stream>>>(
        dtable, dx, ids, N, C);
    lora__cuda_launched(cu, "embedding_bwd");
}
