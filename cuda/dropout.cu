/* LoRA's inverted dropout with the CPU backend's masks (src/util/dropout.h, shared): a mask is
 * a pure function of (seed, module, row, column), so the backward regenerates it. */
#include "common.cuh"
#include "util/dropout.h"

/* accumulate 0: out = mask x / (1 - p); 1: out += mask x / (1 - p) */
__global__ void dropout_kernel(float *out, const float *in, int64_t N, int64_t n, float p,
                               uint64_t seed, uint64_t module, int accumulate)
{
    uint64_t cut = lora__dropout_cut(p);
    float scale = 1.0f / (1.0f - p);
    LORA_CUDA_FOR(i, N * n)
    {
        int64_t r = i / n, c = i % n;
        uint64_t base = lora__dropout_base(seed, module, (uint64_t)r);
        /* rounded before the add below, as the CPU rounds it: the build fuses no fma itself */
        float v = lora__dropout_keep(base, c, cut) ? in[i] * scale : 0.0f;
        out[i] = accumulate ? out[i] + v : v;
    }
}

static void dropout(lora_backend *be, float *out, const float *in, int64_t N, int64_t n, float p,
                    uint64_t seed, uint64_t module, int accumulate, const char *what)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N * n == 0)
        return;
    dropout_kernel<<<lora__cuda_blocks(N * n), LORA_CUDA_THREADS, 0, cu->stream>>>(
        out, in, N, n, p, seed, module, accumulate);
    lora__cuda_launched(cu, what);
}

// out (N, n) = mask * x / (1 - p)
void lora__cuda_dropout_fwd(lora_backend *be, float *out, const float *x, int64_t N, int64_t n,
                            float p, uint64_t seed, uint64_t module)
{
    dropout(be, out, x, N, n, p, seed, module, 0, "dropout_fwd");
}

// dx (N, n) += mask * dy / (1 - p)
void lora__cuda_dropout_bwd(lora_backend *be, float *dx, const float *dy, int64_t N, int64_t n,
                            float p, uint64_t seed, uint64_t module)
{
    dropout(be, dx, dy, N, n, p, seed, module, 1, "dropout_bwd");
}
