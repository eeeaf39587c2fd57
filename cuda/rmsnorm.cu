/* RMSNorm and its backward: one block per row for y and dx, chunks of rows for dw. Sums over a
 * row or a column run in double, as on the CPU. The residual add that precedes a norm
 * in the decoder can run in the norm's pass (residual_rmsnorm_fwd). x is float32, or bfloat16
 * as a training step keeps it (rmsnorm_bf16_*: widened in registers, the same bits as widening
 * it first). */
#include "common.cuh"

/* x16 (float32 x only), when not NULL, gets x rounded as to_bf16 from the same read */
template <typename T>
__global__ void rmsnorm_fwd_kernel(float *y, float *rstd, lora_bf16 *x16, const T *x,
                                   const float *w, int64_t C, float eps)
{
    const T *xr = x + (int64_t)blockIdx.x * C;
    float *yr = y + (int64_t)blockIdx.x * C;
    double ss = 0.0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float f = lora__load(xr, c);
        if (x16)
            x16[(int64_t)blockIdx.x * C + c] = lora__round_bf16(f);
        double v = f;
        ss += v * v;
    }
    ss = lora__block_sum(ss); /* every thread has read its x before anyone writes y (in place) */
    float s = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
    if (rstd && threadIdx.x == 0)
        rstd[blockIdx.x] = s;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        yr[c] = lora__load(xr, c) * s * w[c];
}

/* the residual add, then rmsnorm_fwd_kernel's arithmetic on the sum: each thread adds the
 * columns it then squares and normalises (and rounds, for a kept copy of the sum and for the
 * next products' input) */
__global__ void residual_rmsnorm_fwd_kernel(float *x, float *y, float *rstd, lora_bf16 *x16,
                                            lora_bf16 *y16, const float *r, const float *w,
                                            int64_t C, float eps)
{
    float *xr = x + (int64_t)blockIdx.x * C, *yr = y + (int64_t)blockIdx.x * C;
    const float *rr = r + (int64_t)blockIdx.x * C;
    double ss = 0.0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float v = xr[c] + rr[c];
        xr[c] = v;
        if (x16)
            x16[(int64_t)blockIdx.x * C + c] = lora__round_bf16(v);
        ss += (double)v * v;
    }
    ss = lora__block_sum(ss);
    float s = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
    if (rstd && threadIdx.x == 0)
        rstd[blockIdx.x] = s;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float v = xr[c] * s * w[c];
        yr[c] = v;
        if (y16)
            y16[(int64_t)blockIdx.x * C + c] = lora__round_bf16(v);
    }
}

/* dx = s g - x s^3 / C sum(g x), g = dy w; added to dx, or (not accumulate) written */
template <typename T>
__global__ void rmsnorm_bwd_dx_kernel(float *dx, lora_bf16 *dx16, const float *dy, const T *x,
                                      const float *w, const float *rstd, int64_t C,
                                      bool accumulate)
{
    int64_t r = blockIdx.x;
    const T *xr = x + r * C;
    const float *dyr = dy + r * C;
    float *dxr = dx + r * C;
    double s = rstd[r], gx = 0.0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        gx += (double)dyr[c] * w[c] * lora__load(xr, c);
    gx = lora__block_sum(gx);
    float fs = (float)s, k = (float)(gx * s * s * s / (double)C);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float v = fs * w[c] * dyr[c] - lora__load(xr, c) * k;
        v = accumulate ? dxr[c] + v : v;
        dxr[c] = v;
        if (dx16)
            dx16[r * C + c] = lora__round_bf16(v);
    }
}

/* dw's sum over rows runs in chunks of rows, one partial sum per (chunk, column), added chunk
 * by chunk in a second pass: a fixed order, so deterministic, and 2^8 chunks' worth of threads
 * where one thread per column had C (128 for a q/k norm over N x heads rows). */
#define DW_CHUNKS_MAX 256
#define DW_ROWS_MIN 64

// part (chunks, C) = per chunk of rows, sum over its rows of dy x rstd, the rows in order
template <typename T>
__global__ void rmsnorm_bwd_dw_part_kernel(double *part, const float *dy, const T *x,
                                           const float *rstd, int64_t N, int64_t C,
                                           int64_t rows)
{
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, r0 = (int64_t)blockIdx.y * rows;
    if (c >= C)
        return;
    int64_t r1 = r0 + rows < N ? r0 + rows : N;
    double acc = 0.0;
    for (int64_t r = r0; r < r1; r++)
        acc += (double)dy[r * C + c] * lora__load(x, r * C + c) * (double)rstd[r];
    part[blockIdx.y * C + c] = acc;
}

// dw (C) += the chunks' partial sums, in chunk order
__global__ void rmsnorm_bwd_dw_sum_kernel(float *dw, const double *part, int64_t chunks,
                                          int64_t C)
{
    LORA_CUDA_FOR(c, C)
    {
        double acc = 0.0;
        for (int64_t k = 0; k < chunks; k++)
            acc += part[k * C + c];
        dw[c] += (float)acc;
    }
}

// dw (C) += sum over rows of dy x rstd
template <typename T>
static void rmsnorm_bwd_dw(lora_cuda *cu, float *dw, const float *dy, const T *x,
                           const float *rstd, int64_t N, int64_t C)
{
    int64_t rows = (N + DW_CHUNKS_MAX - 1) / DW_CHUNKS_MAX;
    rows = rows < DW_ROWS_MIN ? DW_ROWS_MIN : rows;
    int64_t chunks = (N + rows - 1) / rows;
    double *part = (double *)lora__cuda_scratch(cu, (size_t)(chunks * C) * sizeof(double));
    if (!part)
        return;
    dim3 grid((unsigned)((C + LORA_CUDA_THREADS - 1) / LORA_CUDA_THREADS), (unsigned)chunks);
    rmsnorm_bwd_dw_part_kernel<T><<<grid, LORA_CUDA_THREADS, 0, cu->stream>>>(part, dy, x, rstd, N, C, rows);
    if (lora__cuda_launched(cu, "rmsnorm_bwd dw"))
        return;
    rmsnorm_bwd_dw_sum_kernel<<<lora__cuda_blocks(C), LORA_CUDA_THREADS, 0, cu->stream>>>(dw, part, chunks, C);
    lora__cuda_launched(cu, "rmsnorm_bwd dw sum");
}

template <typename T>
static void fwd(lora_backend *be, float *y, float *rstd, lora_bf16 *x16, const T *x,
                const float *w, int64_t N, int64_t C, float eps)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N == 0 || C == 0)
        return;
    rmsnorm_fwd_kernel<T><<<(unsigned)N, LORA_CUDA_THREADS, 0, cu->stream>>>(y, rstd, x16, x, w,
                                                                             C, eps);
    lora__cuda_launched(cu, "rmsnorm_fwd");
}

// y (N, C) = x * rsqrt(mean(x^2) + eps) * w (C); rstd (N) when not NULL; y == x allowed
void lora__cuda_rmsnorm_fwd(lora_backend *be, float *y, float *rstd, const float *x,
                            const float *w, int64_t N, int64_t C, float eps)
{
    fwd(be, y, rstd, (lora_bf16 *)NULL, x, w, N, C, eps);
}

// the same, and x16 (N, C) = x rounded to bfloat16 (y != x)
void lora__cuda_rmsnorm_keep_fwd(lora_backend *be, float *y, float *rstd, lora_bf16 *x16,
                                 const float *x, const float *w, int64_t N, int64_t C, float eps)
{
    fwd(be, y, rstd, x16, x, w, N, C, eps);
}

// the same with x (N, C) bfloat16
void lora__cuda_rmsnorm_bf16_fwd(lora_backend *be, float *y, float *rstd, const lora_bf16 *x,
                                 const float *w, int64_t N, int64_t C, float eps)
{
    fwd(be, y, rstd, (lora_bf16 *)NULL, x, w, N, C, eps);
}

// x (N, C) += r; y (N, C) = x * rsqrt(mean(x^2) + eps) * w (C); rstd (N); x16, y16 (N, C)
// bfloat16 x and y when not NULL
void lora__cuda_residual_rmsnorm_fwd(lora_backend *be, float *x, float *y, float *rstd,
                                     lora_bf16 *x16, lora_bf16 *y16, const float *r,
                                     const float *w, int64_t N, int64_t C, float eps)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N == 0 || C == 0)
        return;
    residual_rmsnorm_fwd_kernel<<<(unsigned)N, LORA_CUDA_THREADS, 0, cu->stream>>>(x, y, rstd, x16, y16, r, w, C, eps);
    lora__cuda_launched(cu, "residual_rmsnorm_fwd");
}

template <typename T>
static void bwd(lora_backend *be, float *dx, lora_bf16 *dx16, float *dw, const float *dy,
                const T *x, const float *w, const float *rstd, int64_t N, int64_t C,
                bool accumulate)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N == 0 || C == 0)
        return;
    if (dx) {
        rmsnorm_bwd_dx_kernel<T><<<(unsigned)N, LORA_CUDA_THREADS, 0, cu->stream>>>(
            dx, dx16, dy, x, w, rstd, C, accumulate);
        if (lora__cuda_launched(cu, "rmsnorm_bwd dx"))
            return;
    }
    if (dw)
        rmsnorm_bwd_dw(cu, dw, dy, x, rstd, N, C);
}

// dx (N, C) += through y = x rstd w; dw (C) += sum_n dy x rstd
void lora__cuda_rmsnorm_bwd(lora_backend *be, float *dx, float *dw, const float *dy,
                            const float *x, const float *w, const float *rstd, int64_t N,
                            int64_t C)
{
    bwd(be, dx, (lora_bf16 *)NULL, dw, dy, x, w, rstd, N, C, true);
}

// the same with x (N, C) bfloat16, dx added to (accumulate) or written, and rounded into dx16
// when not NULL
void lora__cuda_rmsnorm_bf16_bwd(lora_backend *be, float *dx, lora_bf16 *dx16, float *dw,
                                 const float *dy, const lora_bf16 *x, const float *w,
                                 const float *rstd, int64_t N, int64_t C, bool accumulate)
{
    bwd(be, dx, dx16, dw, dy, x, w, rstd, N, C, accumulate);
}
