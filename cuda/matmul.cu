/* y = x w^T + b and its backward: the products on cuBLASLt (gemm.c), the bias in their
 * epilogue where cuBLASLt takes it there, else here (set first, the product added). With a
 * bfloat16 w (a GPU model's frozen base weights) the float32 operand is rounded to bfloat16
 * into the op scratch first, then one bfloat16 x bfloat16 product accumulates in float32 into
 * the float32 result: cuBLASLt has no mixed form. */
#include "common.cuh"

/* y (N, Nout) = bias, row by row: the product then adds onto it (beta 1) */
__global__ void bias_rows_kernel(float *y, const float *bias, int64_t N, int64_t Nout)
{
    LORA_CUDA_FOR(i, N * Nout)
    y[i] = bias[i % Nout];
}

/* the bias where the epilogue could not take it; 1 when the launch failed (recorded) */
static int bias_rows(lora_cuda *cu, float *y, const float *bias, int64_t N, int64_t Nout,
                     const char *what)
{
    bias_rows_kernel<<<lora__cuda_blocks(N * Nout), LORA_CUDA_THREADS, 0, cu->stream>>>(
        y, bias, N, Nout);
    return lora__cuda_launched(cu, what);
}

/* dbias (Nout) += column sums of dy (N, Nout), a thread per column, rows in order */
__global__ void bias_grad_kernel(float *dbias, const float *dy, int64_t N, int64_t Nout)
{
    LORA_CUDA_FOR(c, Nout)
    {
        float acc = dbias[c]; /* added into directly, in the CPU backend's order */
        for (int64_t r = 0; r < N; r++)
            acc += dy[r * Nout + c];
        dbias[c] = acc;
    }
}

// y (N, Nout) = x (N, K) @ w (Nout, K)^T + bias (Nout)
void lora__cuda_matmul_fwd(lora_backend *be, float *y, const float *x, const float *w,
                           const float *bias, int64_t N, int64_t Nout, int64_t K)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N * Nout == 0)
        return;
    if (bias && (lora__cuda_mm_nt_bias(cu, y, x, w, bias, N, Nout, K, "matmul_fwd") ||
                 bias_rows(cu, y, bias, N, Nout, "matmul_fwd bias")))
        return;
    lora__cuda_mm_nt(cu, y, x, w, N, Nout, K, 1.0f, bias ? 1.0f : 0.0f, false,
                     "matmul_fwd");
}

// dx (N, K) += dy (N, Nout) @ w (Nout, K); dw (Nout, K) += dy^T @ x; dbias += sum_n dy
void lora__cuda_matmul_bwd(lora_backend *be, float *dx, float *dw, float *dbias,
                           const float *dy, const float *x, const float *w, int64_t N,
                           int64_t Nout, int64_t K)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu)
        return;
    if (dx)
        lora__cuda_mm_nn(cu, dx, dy, w, N, K, Nout, 1.0f, 1.0f, false, "matmul_bwd dx");
    if (dw)
        lora__cuda_mm_tn(cu, dw, dy, x, N, Nout, K, 1.0f, 1.0f, false, "matmul_bwd dw");
    if (dbias && Nout > 0 && !cu->err) {
        bias_grad_kernel<<<lora__cuda_blocks(Nout), LORA_CUDA_THREADS, 0, cu->stream>>>(
            dbias, dy, N, Nout);
        lora__cuda_launched(cu, "matmul_bwd dbias");
    }
}

/* a (rows, cols) float32 operand in bfloat16, in the op scratch; NULL on failure (recorded) */
static const lora_bf16 *rounded(lora_cuda *cu, const float *a, int64_t rows, int64_t cols)
{
    size_t n = (size_t)(rows * cols);
    lora_bf16 *h = (lora_bf16 *)lora__cuda_scratch(cu, n * sizeof(lora_bf16));
    if (!h || lora__cuda_round_bf16(cu, h, a, n))
        return NULL;
    return h;
}

/* y (N, Nout) = xb (N, K) @ w (Nout, K)^T + bias (Nout; NULL: none), both bfloat16: the bias
 * in the product's epilogue where cuBLASLt takes it there, else set first and added onto */
static void product_bf16(lora_cuda *cu, float *y, const lora_bf16 *xb, const lora_bf16 *w,
                         const float *bias, int64_t N, int64_t Nout, int64_t K, const char *what)
{
    if (bias && (lora__cuda_mm_nt_bf16_bias(cu, y, xb, w, bias, N, Nout, K, what) ||
                 bias_rows(cu, y, bias, N, Nout, what)))
        return;
    lora__cuda_mm_nt_bf16(cu, y, xb, w, N, Nout, K, 1.0f, bias ? 1.0f : 0.0f, what);
}

// y (N, Nout) = x (N, K) @ w (Nout, K)^T + bias (Nout), w bfloat16
void lora__cuda_matmul_bf16_fwd(lora_backend *be, float *y, const float *x, const lora_bf16 *w,
                                const float *bias, int64_t N, int64_t Nout, int64_t K)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N * Nout == 0)
        return;
    if (N <= LORA_CUDA_MATVEC_ROWS) {
        lora__cuda_matvec_bf16(cu, y, x, w, bias, N, Nout, K);
        return;
    }
    const lora_bf16 *xb = K ? rounded(cu, x, N, K) : NULL;
    if (K && !xb)
        return;
    product_bf16(cu, y, xb, w, bias, N, Nout, K, "matmul_bf16_fwd");
}

// each y[i] (N, out[i]) = x (N, K) @ w[i]^T + bias[i]: one launch for a few rows; for more,
// x rounded once for all the group's products, or its rounding g->x16 read
void lora__cuda_matmul_bf16_fwd_group(lora_backend *be, const lora_bf16_group *g,
                                      const float *x, int64_t N, int64_t K)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N == 0)
        return;
    if (N <= LORA_CUDA_MATVEC_ROWS) {
        lora__cuda_matvec_bf16_group(cu, g, x, N, K);
        return;
    }
    const lora_bf16 *xb = g->x16 ? g->x16 : K ? rounded(cu, x, N, K) : NULL;
    if (K && !xb)
        return;
    for (int i = 0; i < g->n; i++)
        if (g->out[i] > 0)
            product_bf16(cu, g->y[i], xb, g->w[i], g->bias[i], N, g->out[i], K,
                         "matmul_bf16_fwd_group");
    /* the LoRA paths read x itself (float32 operands), not the op scratch */
    lora__cuda_lora_fwd_group(be, g, x, N, K);
}

// dx (N, K) += (or, not accumulating, =) dy (N, Nout) @ w (Nout, K), w bfloat16; dy rounded
// here, or given rounded (dy16)
void lora__cuda_matmul_bf16_bwd(lora_backend *be, float *dx, const float *dy,
                                const lora_bf16 *dy16, const lora_bf16 *w, int64_t N,
                                int64_t Nout, int64_t K, bool accumulate)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || !dx || N * K == 0)
        return;
    const lora_bf16 *dyb = dy16 ? dy16 : Nout ? rounded(cu, dy, N, Nout) : NULL;
    if (Nout && !dyb)
        return;
    lora__cuda_mm_nn_bf16(cu, dx, dyb, w, N, K, Nout, 1.0f, accumulate ? 1.0f : 0.0f,
                          "matmul_bf16_bwd dx");
}
