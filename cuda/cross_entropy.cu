/* Causal-LM cross-entropy over full logit rows (the op table hands over the logits): one block
 * per row, the log-sum-exp summed in double as on the CPU, and a backward that rebuilds the
 * softmax from the saved lse, so each row is read once per pass. */
#include "common.cuh"

__global__ void ce_fwd_kernel(float *nll, float *lse, const float *logits,
                              const int32_t *targets, int64_t V)
{
    int64_t r = blockIdx.x;
    const float *l = logits + r * V;
    float m;
    double sum;
    lora__row_max_sumexp(l, V, &m, &sum);
    if (threadIdx.x != 0)
        return;
    double ls = m + log(sum);
    if (lse)
        lse[r] = (float)ls;
    int32_t t = targets[r];
    nll[r] = t == -100 ? 0.0f : (float)(ls - l[t]);
}

__global__ void ce_bwd_kernel(float *dlogits, const float *logits, const float *lse,
                              const int32_t *targets, const float *dnll, int64_t V)
{
    int64_t r = blockIdx.x;
    int32_t t = targets[r];
    if (t == -100)
        return;
    lora__ce_row_bwd(dlogits + r * V, logits + r * V, V, 0, t, dnll[r], lse[r], true);
}

// nll (N), lse (N) from logits (N, V) and targets (N); -100 targets give 0
void lora__cuda_cross_entropy_fwd(lora_backend *be, float *nll, float *lse, const float *logits,
                                  const int32_t *targets, int64_t N, int64_t V)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N == 0)
        return;
    ce_fwd_kernel<<<(unsigned)N, LORA_CUDA_THREADS, 0, cu->stream>>>(nll, lse, logits, targets,
                                                                    V);
    lora__cuda_launched(cu, "cross_entropy_fwd");
}

// dlogits (N, V) += dnll (softmax(logits) - onehot(targets)); rows with target -100 untouched
void lora__cuda_cross_entropy_bwd(lora_backend *be, float *dlogits, const float *logits,
                                  const float *lse, const int32_t *targets, const float *dnll,
                                  int64_t N, int64_t V)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N == 0)
        return;
    ce_bwd_kernel<<<(unsigned)N, LORA_CUDA_THREADS, 0, cu->stream>>>(dlogits, logits, lse,
                                                                    targets, dnll, V);
    lora__cuda_launched(cu, "cross_entropy_bwd");
}
