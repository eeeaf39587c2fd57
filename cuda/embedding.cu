/* Embedding lookup (from a float32 or a bfloat16 table) and its scatter-add backward: one thread
 * per column over every token, or, with the tokens grouped by id on the host, a thread per
 * (id, column) over that id's tokens. */
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
    x[i] = lora__widen_bf16(table[(int64_t)ids[i / C] * C + i % C]);
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

/* The same sums, the same order (each id's tokens in token order), but blockIdx.y is an id's
 * run of order and threads cover the columns: N / (distinct ids) tokens per thread instead of
 * N, and (distinct ids) x C threads instead of C. */
__global__ void embedding_bwd_grouped_kernel(float *dtable, const float *dx, const int32_t *ids,
                                             const int32_t *order, const int32_t *runs,
                                             int64_t C)
{
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    int32_t k0 = runs[blockIdx.y], k1 = runs[blockIdx.y + 1];
    float *d = dtable + (int64_t)ids[order[k0]] * C + c;
    float acc = *d;
    for (int32_t k = k0; k < k1; k++)
        acc += dx[(int64_t)order[k] * C + c];
    *d = acc;
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

// dtable (V, C)[ids[order[k]]] += dx (N, C)[order[k]], runs of order by id
void lora__cuda_embedding_bwd_grouped(lora_backend *be, float *dtable, const float *dx,
                                      const int32_t *ids, const int32_t *order,
                                      const int32_t *runs, int64_t n_runs, int64_t C)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || n_runs == 0 || C == 0)
        return;
    /* gridDim.y is at most 65535: more distinct ids take several launches */
    for (int64_t r0 = 0; r0 < n_runs; r0 += 65535) {
        int64_t n = n_runs - r0 < 65535 ? n_runs - r0 : 65535;
        dim3 grid((unsigned)((C + LORA_CUDA_THREADS - 1) / LORA_CUDA_THREADS), (unsigned)n);
        embedding_bwd_grouped_kernel<<<grid, LORA_CUDA_THREADS, 0, cu->stream>>>(dtable, dx, ids, order, runs + r0, C);
        if (lora__cuda_launched(cu, "embedding_bwd_grouped"))
            return;
    }
}
