/* The optimizer's device side: the global gradient norm's sum of squares and torch's AdamW
 * update, with src/train/optim.c's arithmetic (double per element, float32 moments). */
#include "common.cuh"

#define SUM_BLOCKS 1024 /* partial sums, added by one block in a fixed order */

__global__ void sum_squares_kernel(double *part, const float *x, int64_t n)
{
    double s = 0.0;
    LORA_CUDA_FOR(i, n)
    s += (double)x[i] * x[i];
    s = lora__block_sum(s);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

__global__ void sum_parts_kernel(double *out, const double *part, int n)
{
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        s += part[i];
    s = lora__block_sum(s);
    if (threadIdx.x == 0)
        *out = s;
}

lora_status lora__cuda_sum_squares(lora_backend *be, const float *x, size_t n, double *out)
{
    *out = 0.0;
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || n == 0)
        return lora__cuda_sync(be);
    unsigned blocks = lora__cuda_blocks((int64_t)n);
    blocks = blocks > SUM_BLOCKS ? SUM_BLOCKS : blocks;
    double *part = (double *)lora__cuda_scratch(cu, (SUM_BLOCKS + 1) * sizeof(double));
    if (part) {
        sum_squares_kernel<<<blocks, LORA_CUDA_THREADS, 0, cu->stream>>>(part, x, (int64_t)n);
        if (!lora__cuda_launched(cu, "sum_squares")) {
            sum_parts_kernel<<<1, LORA_CUDA_THREADS, 0, cu->stream>>>(part + SUM_BLOCKS, part,
                                                                     (int)blocks);
            if (!lora__cuda_launched(cu, "sum_squares parts"))
                lora__cuda_check(cu, cudaMemcpyAsync(out, part + SUM_BLOCKS, sizeof *out,
                                                     cudaMemcpyDeviceToHost, cu->stream),
                                 "sum_squares copy");
        }
    }
    return lora__cuda_sync(be);
}

typedef struct adamw_args {
    double b1, b2, eps, decay, bc2_sqrt, step_size, scale;
} adamw_args;

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, int64_t n,
                             adamw_args a)
{
    LORA_CUDA_FOR(k, n)
    {
        double gk = (double)g[k] * a.scale;
        double pk = (double)p[k] * a.decay;
        float mk = (float)(a.b1 * m[k] + (1.0 - a.b1) * gk);
        float vk = (float)(a.b2 * v[k] + (1.0 - a.b2) * gk * gk);
        m[k] = mk;
        v[k] = vk;
        double denom = sqrt((double)vk) / a.bc2_sqrt + a.eps;
        p[k] = (float)(pk - a.step_size * ((double)mk / denom));
    }
}

// p -= AdamW step from g (scaled), m, v updated; t = updates before this one
void lora__cuda_adamw(lora_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                      const lora_adamw_args *c)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || n == 0)
        return;
    /* the per-step constants on the host, in optim.c's order of operations */
    adamw_args a;
    a.b1 = c->beta1;
    a.b2 = c->beta2;
    a.eps = c->eps;
    a.decay = 1.0 - c->lr * c->weight_decay;
    a.bc2_sqrt = sqrt(1.0 - pow(c->beta2, (double)(c->t + 1)));
    a.step_size = c->lr / (1.0 - pow(c->beta1, (double)(c->t + 1)));
    a.scale = c->grad_scale;
    adamw_kernel<<<lora__cuda_blocks((int64_t)n), LORA_CUDA_THREADS, 0, cu->stream>>>(
        p, g, m, v, (int64_t)n, a);
    lora__cuda_launched(cu, "adamw");
}
