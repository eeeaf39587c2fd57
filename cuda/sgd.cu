/* torch's SGD update on the device, with src/cpu/optimizer.c's arithmetic (double per element,
 * a float32 momentum buffer). One launch per tensor: SGD's cost is reading p, g and buf once,
 * and the launches are a few hundred per step at most. */
#include "common.cuh"

__global__ void sgd_kernel(float *p, const float *g, float *buf, int64_t n, lora_sgd_args a)
{
    LORA_CUDA_FOR(k, n)
    {
        double gk = (double)g[k] * a.grad_scale;
        if (a.weight_decay != 0)
            gk += a.weight_decay * p[k];
        if (buf) {
            buf[k] = (float)(a.t == 0 ? gk : a.momentum * buf[k] + (1.0 - a.dampening) * gk);
            gk = a.nesterov ? gk + a.momentum * buf[k] : (double)buf[k];
        }
        p[k] = (float)((double)p[k] - a.lr * gk);
    }
}

// p -= lr * (g scaled, decayed, through the momentum buffer buf when not NULL)
void lora__cuda_sgd(lora_backend *be, float *p, const float *g, float *buf, size_t n,
                    const lora_sgd_args *a)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || n == 0)
        return;
    sgd_kernel<<<lora__cuda_blocks((int64_t)n), LORA_CUDA_THREADS, 0, cu->stream>>>(p, g, buf, (int64_t)n, *a);
    lora__cuda_launched(cu, "sgd");
}
