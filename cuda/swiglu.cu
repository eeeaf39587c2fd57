/* h = silu(gate) * up and its backward, elementwise, with the CPU backend's formulas. */
#include "common.cuh"

__global__ void swiglu_fwd_kernel(float *h, const float *gate, const float *up, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    {
        float g = gate[i];
        h[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

__global__ void swiglu_bwd_kernel(float *dgate, float *dup, const float *dh, const float *gate,
                                  const float *up, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    {
        float g = gate[i], sg = 1.0f / (1.0f + expf(-g));
        if (dup)
            dup[i] += dh[i] * g * sg;
        /* silu'(g) = s(g) (1 + g (1 - s(g))): finite for any g */
        if (dgate)
            dgate[i] += dh[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
    }
}

// h (N, n_inter) = silu(gate) * up
void lora__cuda_swiglu_fwd(lora_backend *be, float *h, const float *gate, const float *up,
                           int64_t N, int64_t n_inter)
{
    lora_cuda *cu = lora__cuda_enter(be);
    int64_t n = N * n_inter;
    if (!cu || n == 0)
        return;
    swiglu_fwd_kernel<<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(h, gate, up, n);
    lora__cuda_launched(cu, "swiglu_fwd");
}

// dgate += dh * up * silu'(gate); dup += dh * silu(gate)
void lora__cuda_swiglu_bwd(lora_backend *be, float *dgate, float *dup, const float *dh,
                           const float *gate, const float *up, int64_t N, int64_t n_inter)
{
    lora_cuda *cu = lora__cuda_enter(be);
    int64_t n = N * n_inter;
    if (!cu || n == 0 || (!dgate && !dup))
        return;
    swiglu_bwd_kernel<<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(
        dgate, dup, dh, gate, up, n);
    lora__cuda_launched(cu, "swiglu_bwd");
}
