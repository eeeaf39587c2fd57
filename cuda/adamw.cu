/* The optimizer's device side: the global gradient norm's sum of squares and torch's AdamW
 * update, with src/train/optim.c's arithmetic (double per element, float32 moments), per
 * tensor and over a set of tensors in one launch. */
#include "common.cuh"

#define SUM_BLOCKS 1024 /* partial sums, added by one block in a fixed order */

/* The blocks of a sum of squares over n values: one run of the grid per tensor, whether the
 * tensor has its own launch or shares one with the others of a set. */
static unsigned sum_blocks(int64_t n)
{
    unsigned b = lora__cuda_blocks(n);
    return n == 0 ? 0 : b > SUM_BLOCKS ? SUM_BLOCKS : b;
}

/* Block b of blocks' partial sum over x (n), the grid-stride order; the per-tensor and the
 * multi-tensor kernels share it (and parts_sum), so they agree bit for bit. */
__device__ __forceinline__ double partial_sum(const float *x, int64_t n, unsigned b,
                                              unsigned blocks)
{
    double s = 0.0;
    for (int64_t i = (int64_t)b * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)blocks * blockDim.x)
        s += (double)x[i] * x[i];
    return lora__block_sum(s);
}

/* the block's sum of part (n), in a fixed order */
__device__ __forceinline__ double parts_sum(const double *part, unsigned n)
{
    double s = 0.0;
    for (unsigned i = threadIdx.x; i < n; i += blockDim.x)
        s += part[i];
    return lora__block_sum(s);
}

__global__ void sum_squares_kernel(double *part, const float *x, int64_t n)
{
    double s = partial_sum(x, n, blockIdx.x, gridDim.x);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

__global__ void sum_parts_kernel(double *out, const double *part, unsigned n)
{
    double s = parts_sum(part, n);
    if (threadIdx.x == 0)
        *out = s;
}

lora_status lora__cuda_sum_squares(lora_backend *be, const float *x, size_t n, double *out)
{
    *out = 0.0;
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || n == 0)
        return lora__cuda_sync(be);
    unsigned blocks = sum_blocks((int64_t)n);
    double *part = (double *)lora__cuda_scratch(cu, (SUM_BLOCKS + 1) * sizeof(double));
    if (part) {
        sum_squares_kernel<<<blocks, LORA_CUDA_THREADS, 0, cu->stream>>>(part, x, (int64_t)n);
        if (!lora__cuda_launched(cu, "sum_squares")) {
            sum_parts_kernel<<<1, LORA_CUDA_THREADS, 0, cu->stream>>>(part + SUM_BLOCKS, part,
                                                                     blocks);
            if (!lora__cuda_launched(cu, "sum_squares parts"))
                lora__cuda_queued(cu, cudaMemcpyAsync(out, part + SUM_BLOCKS, sizeof *out,
                                                     cudaMemcpyDeviceToHost, cu->stream),
                                 "sum_squares copy");
        }
    }
    return lora__cuda_sync(be);
}

typedef struct adamw_args {
    double b1, b2, eps, decay, bc2_sqrt, step_size, scale;
} adamw_args;

/* One element's update: the per-tensor and the multi-tensor kernels share it, so they agree
 * bit for bit. */
__device__ __forceinline__ void adamw_element(float *p, const float *g, float *m, float *v,
                                              int64_t k, const adamw_args &a)
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

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, int64_t n,
                             adamw_args a)
{
    LORA_CUDA_FOR(k, n)
    adamw_element(p, g, m, v, k, a);
}

/* the per-step constants on the host, in optim.c's order of operations */
static adamw_args constants(const lora_adamw_args *c)
{
    adamw_args a;
    a.b1 = c->beta1;
    a.b2 = c->beta2;
    a.eps = c->eps;
    a.decay = 1.0 - c->lr * c->weight_decay;
    a.bc2_sqrt = sqrt(1.0 - pow(c->beta2, (double)(c->t + 1)));
    a.step_size = c->lr / (1.0 - pow(c->beta1, (double)(c->t + 1)));
    a.scale = c->grad_scale;
    return a;
}

// p -= AdamW step from g (scaled), m, v updated; t = updates before this one
void lora__cuda_adamw(lora_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                      const lora_adamw_args *c)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || n == 0)
        return;
    adamw_kernel<<<lora__cuda_blocks((int64_t)n), LORA_CUDA_THREADS, 0, cu->stream>>>(
        p, g, m, v, (int64_t)n, constants(c));
    lora__cuda_launched(cu, "adamw");
}

/* ---- the same over a set of tensors, one launch each ---------------------------------------
 * Each tensor gets the blocks its own launch would have (sum_blocks, lora__cuda_blocks) as a
 * run of the grid; a block finds its tensor by bisection over the runs' first blocks and walks
 * the tensor as that launch's grid would. The sums of squares thus come out bit for bit as per
 * tensor (same partial sums, same final pass per tensor, added on the host in tensor order),
 * and so does every updated element (the same code on the same values). */

/* the tensor whose run of blocks holds block b: the last with first <= b */
__device__ __forceinline__ int64_t find_tensor(const lora_cuda_set_tensor *t, int64_t n,
                                               unsigned b, bool upd)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if ((upd ? t[mid].upd0 : t[mid].sum0) <= b)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

__global__ void set_sum_squares_kernel(double *part, const lora_cuda_set_tensor *t, int64_t n)
{
    const lora_cuda_set_tensor &q = t[find_tensor(t, n, blockIdx.x, false)];
    double s = partial_sum(q.g, q.n, blockIdx.x - q.sum0, q.sums);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

/* a block per tensor: sum_parts_kernel over the tensor's partial sums */
__global__ void set_sum_parts_kernel(double *sums, const double *part,
                                     const lora_cuda_set_tensor *t)
{
    const lora_cuda_set_tensor &q = t[blockIdx.x];
    double s = parts_sum(part + q.sum0, q.sums);
    if (threadIdx.x == 0)
        sums[blockIdx.x] = s;
}

typedef struct adamw_pair {
    adamw_args a[2];
} adamw_pair;

__global__ void set_adamw_kernel(const lora_cuda_set_tensor *t, int64_t n, adamw_pair args)
{
    const lora_cuda_set_tensor &q = t[find_tensor(t, n, blockIdx.x, true)];
    const adamw_args &a = args.a[q.group];
    for (int64_t k = (int64_t)(blockIdx.x - q.upd0) * blockDim.x + threadIdx.x; k < q.n;
         k += (int64_t)q.upds * blockDim.x)
        adamw_element(q.p, q.g, q.m, q.v, k, a);
}

void lora__cuda_set_plan(lora_cuda_set_tensor *t, size_t n, uint64_t *sum_blocks_total,
                         uint64_t *upd_blocks_total)
{
    uint64_t sb = 0, ub = 0;
    for (size_t i = 0; i < n; i++) {
        t[i].sum0 = (unsigned)sb;
        t[i].sums = sum_blocks(t[i].n);
        t[i].upd0 = (unsigned)ub;
        t[i].upds = t[i].n ? lora__cuda_blocks(t[i].n) : 0u;
        sb += t[i].sums;
        ub += t[i].upds;
    }
    *sum_blocks_total = sb;
    *upd_blocks_total = ub;
}

lora_status lora__cuda_sum_squares_set(lora_backend *be, const lora_tensor_set *set,
                                       double *acc)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu)
        return lora__cuda_sync(be);
    if (set->sum_blocks) {
        set_sum_squares_kernel<<<set->sum_blocks, LORA_CUDA_THREADS, 0, cu->stream>>>(
            set->part, set->t, (int64_t)set->n);
        if (lora__cuda_launched(cu, "sum_squares_set"))
            return lora__cuda_sync(be);
    }
    set_sum_parts_kernel<<<(unsigned)set->n, LORA_CUDA_THREADS, 0, cu->stream>>>(
        set->sums, set->part, set->t);
    if (!lora__cuda_launched(cu, "sum_squares_set parts"))
        lora__cuda_queued(cu, cudaMemcpyAsync(set->host_sums, set->sums, set->n * sizeof(double),
                                             cudaMemcpyDeviceToHost, cu->stream),
                         "sum_squares_set copy");
    lora_status st = lora__cuda_sync(be);
    if (!st)
        for (size_t i = 0; i < set->n; i++) /* in tensor order, as the per-tensor calls add */
            *acc += set->host_sums[i];
    return st;
}

void lora__cuda_adamw_set(lora_backend *be, const lora_tensor_set *set,
                          const lora_adamw_args a[2])
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || set->upd_blocks == 0)
        return;
    adamw_pair args = {{constants(&a[0]), constants(&a[1])}};
    set_adamw_kernel<<<set->upd_blocks, LORA_CUDA_THREADS, 0, cu->stream>>>(
        set->t, (int64_t)set->n, args);
    lora__cuda_launched(cu, "adamw_set");
}
