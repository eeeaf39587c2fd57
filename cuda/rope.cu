/* Rotary position embedding (rotate-half), in place; the backward rotates by -theta. The
 * forward also writes a bfloat16 copy instead (rope_bf16_fwd: a training forward's kept q and
 * k), the same arithmetic rounded as to_bf16. */
#include "common.cuh"

/* one thread per (row, head, i < D/2) pair of values */
__global__ void rope_kernel(float *x, const int32_t *pos, const float *cos, const float *sin,
                            int64_t N, int64_t heads, int64_t D, float sign)
{
    int64_t half = D / 2;
    LORA_CUDA_FOR(j, N * heads * half)
    {
        int64_t i = j % half, rh = j / half, r = rh / heads;
        int64_t at = (int64_t)pos[r] * half + i;
        lora__rope_pair(x + rh * D, i, half, cos[at], sign * sin[at]);
    }
}

static void rope(lora_backend *be, float *x, const int32_t *pos, const float *cos,
                 const float *sin, int64_t N, int64_t heads, int64_t D, float sign,
                 const char *what)
{
    lora_cuda *cu = lora__cuda_enter(be);
    int64_t n = N * heads * (D / 2);
    if (!cu || n == 0)
        return;
    rope_kernel<<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(x, pos, cos, sin, N,
                                                                           heads, D, sign);
    lora__cuda_launched(cu, what);
}

// x (N, heads, D) rotated in place at positions pos (N); cos, sin (P, D/2)
void lora__cuda_rope_fwd(lora_backend *be, float *x, const int32_t *pos, const float *cos,
                         const float *sin, int64_t N, int64_t heads, int64_t D)
{
    rope(be, x, pos, cos, sin, N, heads, D, 1.0f, "rope_fwd");
}

// dx (N, heads, D) rotated back: the forward's transpose
void lora__cuda_rope_bwd(lora_backend *be, float *dx, const int32_t *pos, const float *cos,
                         const float *sin, int64_t N, int64_t heads, int64_t D)
{
    rope(be, dx, pos, cos, sin, N, heads, D, -1.0f, "rope_bwd");
}

/* one thread per (row, head, i < D/2) pair: x's rotated pair, rounded, into dst */
__global__ void rope_bf16_kernel(lora_bf16 *dst, const float *x, const int32_t *pos,
                                 const float *cos, const float *sin, int64_t N, int64_t heads,
                                 int64_t D)
{
    int64_t half = D / 2;
    LORA_CUDA_FOR(j, N * heads * half)
    {
        int64_t i = j % half, rh = j / half, r = rh / heads;
        int64_t at = (int64_t)pos[r] * half + i, e = rh * D + i;
        float pair[2] = {x[e], x[e + half]};
        lora__rope_pair(pair, 0, 1, cos[at], sin[at]);
        dst[e] = lora__round_bf16(pair[0]);
        dst[e + half] = lora__round_bf16(pair[1]);
    }
}

// dst (N, heads, D) bfloat16 = x rotated at positions pos (N), x unchanged
void lora__cuda_rope_bf16_fwd(lora_backend *be, lora_bf16 *dst, const float *x,
                              const int32_t *pos, const float *cos, const float *sin, int64_t N,
                              int64_t heads, int64_t D)
{
    lora_cuda *cu = lora__cuda_enter(be);
    int64_t n = N * heads * (D / 2);
    if (!cu || n == 0)
        return;
    rope_bf16_kernel<<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(dst, x, pos, cos, sin, N, heads, D);
    lora__cuda_launched(cu, "rope_bf16_fwd");
}
