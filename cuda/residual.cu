/* The residual add; its backward is the same op on the gradients (src/backend.h). */
#include "common.cuh"

__global__ void residual_kernel(float *y, const float *x, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    y[i] += x[i];
}

// y (n) += x (n)
void lora__cuda_residual_fwd(lora_backend *be, float *y, const float *x, int64_t n)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || n == 0)
        return;
    residual_kernel<<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(y, x, n);
    lora__cuda_launched(cu, "residual_fwd");
}
