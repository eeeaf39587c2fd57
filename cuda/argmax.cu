/* Greedy decoding's argmax over a row of logits on the device: the token, not the 600 KB row
 * (Qwen's 151,936 float32 logits), crosses to the host. The host sampler's rule: the first
 * index of the largest value; a NaN, or a row of -inf only, is flagged for the host sampler to
 * refuse with its own message. One block: a row is read once, ~600 KB. It can also write the
 * token with the position after it where the next step reads its staged id and position, so
 * that a step decoding the greedy token uploads nothing (src/model/forward.c). */
#include "common.cuh"

#define AM_THREADS 1024

/* (value, index) a beats b: larger, or as large and earlier */
__device__ __forceinline__ bool beats(float va, int64_t ia, float vb, int64_t ib)
{
    return va > vb || (va == vb && ia < ib);
}

__global__ void argmax_kernel(int32_t *out, const float *x, int64_t n, int32_t *feed,
                              const int32_t *last_pos)
{
    __shared__ float best_v[AM_THREADS];
    __shared__ int64_t best_i[AM_THREADS];
    __shared__ int bad[AM_THREADS], finite[AM_THREADS];
    int t = threadIdx.x;
    float v = -INFINITY;
    int64_t at = n; /* no index yet: loses every tie */
    int has_nan = 0, any = 0;
    for (int64_t i = t; i < n; i += AM_THREADS) {
        float xi = x[i];
        has_nan |= xi != xi;
        any |= xi != -INFINITY;
        if (xi == xi && beats(xi, i, v, at))
            v = xi, at = i;
    }
    best_v[t] = v, best_i[t] = at, bad[t] = has_nan, finite[t] = any;
    __syncthreads();
    for (int s = AM_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) {
            if (beats(best_v[t + s], best_i[t + s], best_v[t], best_i[t]))
                best_v[t] = best_v[t + s], best_i[t] = best_i[t + s];
            bad[t] |= bad[t + s];
            finite[t] |= finite[t + s];
        }
        __syncthreads();
    }
    if (t == 0) {
        out[0] = (int32_t)(best_i[0] < n ? best_i[0] : 0);
        out[1] = bad[0] || !finite[0];
        if (feed) { /* last_pos may be feed + 1: read before written */
            int32_t next = last_pos[0] + 1;
            feed[0] = out[0];
            feed[1] = next;
        }
    }
}

// out[0] = first argmax of x (n), out[1] = 1 if x holds a NaN or only -inf; feed (may be
// NULL) = {out[0], last_pos[0] + 1}
void lora__cuda_argmax(lora_backend *be, int32_t *out, const float *x, int64_t n, int32_t *feed,
                       const int32_t *last_pos)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || n <= 0)
        return;
    argmax_kernel<<<1, AM_THREADS, 0, cu->stream>>>(out, x, n, feed, last_pos);
    lora__cuda_launched(cu, "argmax");
}
