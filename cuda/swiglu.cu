/* h = silu(gate) * up and its backward, elementwise, with the CPU backend's formulas; gate and
 * up float32, or bfloat16 as a training step keeps them (widened in registers: the same bits as
 * widening them first). A training forward's pass also rounds gate and up into the kept set
 * (swiglu_keep_fwd). */
#include "lora_up_tile.cuh"

__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

template <typename T> __global__ void swiglu_fwd_kernel(float *h, const T *gate, const T *up, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    h[i] = silu_mul(lora__load(gate, i), lora__load(up, i));
}

/* element e of the kept forward from its gate and up: h, and the rounded h, gate and up
 * where h16, gate16 and up16 are not NULL */
__device__ __forceinline__ void keep_element(float *h, lora_bf16 *h16, lora_bf16 *gate16,
                                             lora_bf16 *up16, int64_t e, float g, float u)
{
    float v = silu_mul(g, u);
    h[e] = v;
    if (h16)
        h16[e] = lora__round_bf16(v);
    if (gate16)
        gate16[e] = lora__round_bf16(g);
    if (up16)
        up16[e] = lora__round_bf16(u);
}

__global__ void swiglu_keep_kernel(float *h, lora_bf16 *h16, lora_bf16 *gate16,
                                   lora_bf16 *up16, const float *gate, const float *up, int64_t n)
{
    LORA_CUDA_FOR(i, n)
    keep_element(h, h16, gate16, up16, i, gate[i], up[i]);
}

/* swiglu_keep_kernel over gate and up with their LoRA up-products added (lora_up_tile.cuh): a
 * block of SL_COLS columns, each thread's column of gate and of up over a tile of rows at a
 * time. */
#define SL_COLS 128

__global__ void swiglu_lora_keep_kernel(float *h, lora_bf16 *h16, lora_bf16 *gate16,
                                        lora_bf16 *up16, const float *gate, const float *up,
                                        lora_lora_up lu, int64_t N, int64_t I)
{
    __shared__ float ts[2][LUT_J][LUT_ROWS];
    int64_t i = (int64_t)blockIdx.x * SL_COLS + threadIdx.x;
    const float *t[2] = {lu.t[0], lu.t[1]};
    const float *b[2] = {i < I && lu.t[0] ? lu.B[0] + i * lu.r : NULL,
                         i < I && lu.t[1] ? lu.B[1] + i * lu.r : NULL};
    for (int64_t n0 = (int64_t)blockIdx.y * LUT_ROWS; n0 < N; n0 += (int64_t)gridDim.y * LUT_ROWS) {
        int rows = N - n0 < LUT_ROWS ? (int)(N - n0) : LUT_ROWS;
        float acc[2][LUT_ROWS];
        lora_up_tile<2, 2>(ts, t, b, lu.r, N, n0, rows, acc);
        if (i >= I)
            continue;
#pragma unroll
        for (int k = 0; k < LUT_ROWS; k++) {
            if (k >= rows)
                break;
            int64_t e = (n0 + k) * I + i;
            float g = gate[e], u = up[e];
            if (lu.t[0])
                g += lu.scale[0] * acc[0][k];
            if (lu.t[1])
                u += lu.scale[1] * acc[1][k];
            keep_element(h, h16, gate16, up16, e, g, u);
        }
    }
}

/* adds to dgate and dup, or (not accumulate) writes them, and their rounding into dgate16 and
 * dup16 where those are not NULL (the gate and up products' dy) */
template <typename T>
__global__ void swiglu_bwd_kernel(float *dgate, float *dup, lora_bf16 *dgate16, lora_bf16 *dup16,
                                  const float *dh, const T *gate, const T *up, bool accumulate,
                                  int64_t n)
{
    LORA_CUDA_FOR(i, n)
    {
        float g = lora__load(gate, i), sg = 1.0f / (1.0f + expf(-g));
        if (dup) {
            float d = dh[i] * g * sg;
            d = accumulate ? dup[i] + d : d;
            dup[i] = d;
            if (dup16)
                dup16[i] = lora__round_bf16(d);
        }
        /* silu'(g) = s(g) (1 + g (1 - s(g))): finite for any g */
        if (dgate) {
            float d = dh[i] * lora__load(up, i) * sg * (1.0f + g * (1.0f - sg));
            d = accumulate ? dgate[i] + d : d;
            dgate[i] = d;
            if (dgate16)
                dgate16[i] = lora__round_bf16(d);
        }
    }
}

// h (N, I) = silu(gate + LoRA) * (up + LoRA), rounded copies of it and of both sums; h may be
// gate (in place)
void lora__cuda_swiglu_lora_keep_fwd(lora_backend *be, float *h, lora_bf16 *h16,
                                     lora_bf16 *gate16, lora_bf16 *up16, const float *gate,
                                     const float *up, const lora_lora_up *lu, int64_t N,
                                     int64_t n_inter)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N * n_inter == 0)
        return;
    int64_t row_blocks = (N + LUT_ROWS - 1) / LUT_ROWS;
    dim3 grid((unsigned)((n_inter + SL_COLS - 1) / SL_COLS),
              (unsigned)(row_blocks < 65535 ? row_blocks : 65535));
    swiglu_lora_keep_kernel<<<grid, SL_COLS, 0, cu->stream>>>(h, h16, gate16, up16, gate, up, *lu, N, n_inter);
    lora__cuda_launched(cu, "swiglu_lora_keep_fwd");
}

template <typename T>
static void fwd(lora_backend *be, float *h, const T *gate, const T *up, int64_t n)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || n == 0)
        return;
    swiglu_fwd_kernel<T><<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(h, gate, up, n);
    lora__cuda_launched(cu, "swiglu_fwd");
}

template <typename T>
static void bwd(lora_backend *be, float *dgate, float *dup, lora_bf16 *dgate16, lora_bf16 *dup16,
                const float *dh, const T *gate, const T *up, bool accumulate, int64_t n)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || n == 0 || (!dgate && !dup))
        return;
    swiglu_bwd_kernel<T><<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(dgate, dup, dgate16, dup16, dh, gate, up, accumulate, n);
    lora__cuda_launched(cu, "swiglu_bwd");
}

// h (N, n_inter) = silu(gate) * up
void lora__cuda_swiglu_fwd(lora_backend *be, float *h, const float *gate, const float *up,
                           int64_t N, int64_t n_inter)
{
    fwd(be, h, gate, up, N * n_inter);
}

// dgate += dh * up * silu'(gate); dup += dh * silu(gate)
void lora__cuda_swiglu_bwd(lora_backend *be, float *dgate, float *dup, const float *dh,
                           const float *gate, const float *up, int64_t N, int64_t n_inter)
{
    bwd(be, dgate, dup, (lora_bf16 *)NULL, (lora_bf16 *)NULL, dh, gate, up, true, N * n_inter);
}

// the same with gate, up (N, n_inter) bfloat16, the backward writing dgate and dup
void lora__cuda_swiglu_bf16_fwd(lora_backend *be, float *h, const lora_bf16 *gate,
                                const lora_bf16 *up, int64_t N, int64_t n_inter)
{
    fwd(be, h, gate, up, N * n_inter);
}

// dgate16, dup16: NULL, or dgate and dup rounded to bfloat16
void lora__cuda_swiglu_bf16_bwd(lora_backend *be, float *dgate, float *dup, lora_bf16 *dgate16,
                                lora_bf16 *dup16, const float *dh, const lora_bf16 *gate,
                                const lora_bf16 *up, int64_t N, int64_t n_inter)
{
    bwd(be, dgate, dup, dgate16, dup16, dh, gate, up, false, N * n_inter);
}

// h (N, n_inter) = silu(gate) * up; gate16, up16 (and h16 when not NULL) = gate, up (h)
// rounded to bfloat16
void lora__cuda_swiglu_keep_fwd(lora_backend *be, float *h, lora_bf16 *h16, lora_bf16 *gate16,
                                lora_bf16 *up16, const float *gate, const float *up, int64_t N,
                                int64_t n_inter)
{
    lora_cuda *cu = lora__cuda_enter(be);
    int64_t n = N * n_inter;
    if (!cu || n == 0)
        return;
    swiglu_keep_kernel<<<lora__cuda_blocks(n), LORA_CUDA_THREADS, 0, cu->stream>>>(h, h16, gate16, up16, gate, up, n);
    lora__cuda_launched(cu, "swiglu_keep_fwd");
}
