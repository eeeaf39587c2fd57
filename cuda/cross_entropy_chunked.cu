/* Causal-LM cross-entropy over the vocabulary in column chunks (the output head computes the
 * logits chunk by chunk, src/model/head.c, so a training step never holds (N, V) of them): per
 * row a running log-sum-exp in double, merged chunk by chunk as an online softmax does, and
 * the target's logit, caught in whichever chunk holds it. One block per row, the chunk's sum in
 * double as on the CPU. The backward rebuilds each chunk's softmax from the final lse. */
#include "common.cuh"

/* state per row: [0] running max, [1] sum of exp(l - max), [2] the target's logit */
__global__ void ce_chunk_fwd_kernel(double *state, const float *logits, const int32_t *targets,
                                    int64_t Vc, int64_t v0)
{
    int64_t r = blockIdx.x;
    const float *l = logits + r * Vc;
    float m;
    double sum;
    lora__row_max_sumexp(l, Vc, &m, &sum);
    if (threadIdx.x != 0)
        return;
    double *st = state + 3 * r;
    int32_t t = targets[r];
    if (v0 == 0) {
        st[0] = m;
        st[1] = sum;
        st[2] = 0.0;
    } else {
        double mo = st[0], mx = mo > m ? mo : (double)m;
        st[1] = st[1] * exp(mo - mx) + sum * exp((double)m - mx);
        st[0] = mx;
    }
    if (t >= v0 && t < v0 + Vc)
        st[2] = l[t - v0];
}

__global__ void ce_chunk_finish_kernel(float *nll, float *lse, const double *state,
                                       const int32_t *targets, int64_t N)
{
    LORA_CUDA_FOR(r, N)
    {
        const double *st = state + 3 * r;
        double ls = st[0] + log(st[1]);
        if (lse)
            lse[r] = (float)ls;
        nll[r] = targets[r] == -100 ? 0.0f : (float)(ls - st[2]);
    }
}

/* lora__ce_row_bwd's terms, into dlogits and (rounded) dlogits16, either may be NULL */
__global__ void ce_chunk_bwd_kernel(float *dlogits, lora_bf16 *dlogits16, const float *logits,
                                    const float *lse, const int32_t *targets, const float *dnll,
                                    int64_t Vc, int64_t v0)
{
    int64_t r = blockIdx.x;
    int32_t t = targets[r];
    float g = t == -100 ? 0.0f : dnll[r], ls = t == -100 ? 0.0f : lse[r];
    const float *l = logits + r * Vc;
    for (int64_t v = threadIdx.x; v < Vc; v += blockDim.x) {
        float e = 0.0f; /* a -100 row is written, as the other rows are */
        if (t != -100) {
            e = g * expf(l[v] - ls);
            e = v + v0 == t ? e - g : e;
        }
        if (dlogits)
            dlogits[r * Vc + v] = e;
        if (dlogits16)
            dlogits16[r * Vc + v] = lora__round_bf16(e);
    }
}

// state (N, 3) from the chunk logits (N, Vc) of columns v0..v0+Vc-1
void lora__cuda_ce_chunk_fwd(lora_backend *be, double *state, const float *logits,
                             const int32_t *targets, int64_t N, int64_t Vc, int64_t v0)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N == 0 || Vc == 0)
        return;
    ce_chunk_fwd_kernel<<<(unsigned)N, LORA_CUDA_THREADS, 0, cu->stream>>>(state, logits,
                                                                          targets, Vc, v0);
    lora__cuda_launched(cu, "ce_chunk_fwd");
}

// nll (N), lse (N) from the state; -100 targets give 0
void lora__cuda_ce_chunk_finish(lora_backend *be, float *nll, float *lse, const double *state,
                                const int32_t *targets, int64_t N)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N == 0)
        return;
    ce_chunk_finish_kernel<<<lora__cuda_blocks(N), LORA_CUDA_THREADS, 0, cu->stream>>>(
        nll, lse, state, targets, N);
    lora__cuda_launched(cu, "ce_chunk_finish");
}

// dlogits (N, Vc) = dnll (softmax - onehot) over columns v0..v0+Vc-1; -100 rows 0;
// dlogits16 the same rounded to bfloat16 (either may be NULL)
void lora__cuda_ce_chunk_bwd(lora_backend *be, float *dlogits, lora_bf16 *dlogits16,
                             const float *logits, const float *lse, const int32_t *targets,
                             const float *dnll, int64_t N, int64_t Vc, int64_t v0)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N == 0 || Vc == 0 || (!dlogits && !dlogits16))
        return;
    ce_chunk_bwd_kernel<<<(unsigned)N, LORA_CUDA_THREADS, 0, cu->stream>>>(
        dlogits, dlogits16, logits, lse, targets, dnll, Vc, v0);
    lora__cuda_launched(cu, "ce_chunk_bwd");
}
