/* The fused LoRA path y += scale (x A^T) B^T and its backward: four small products on
 * cuBLASLt (gemm.c), or for a group of paths over one input 2 + n rather than 2n forward and
 * 2 + 2n rather than 4n backward. They are precise ones (TF32, not bfloat16, in the bf16 math
 * mode; gemm.c says why). A forward of a few rows (decoding) takes matvec.cu's two kernels
 * instead, in float32.
 *
 * t, which only this backend's lora_bwd reads, is laid out (r, N), A x^T: the t's of paths
 * whose A matrices lie back to back (a layer's q, k, v in the adapter's arena) and whose t's do
 * (the session lays them out in that order) are then one matrix, [A_q; A_k; A_v] x^T, made by
 * one product that reads x once. */
#include "internal.h"

// t (rows, N) = A (rows, K) @ x (N, K)^T: one path's t (rows r) or a group's (n r)
static void t_product(lora_cuda *cu, float *t, const float *A, const float *x, int64_t rows,
                      int64_t N, int64_t K, const char *what)
{
    lora__cuda_mm_nt(cu, t, A, x, rows, N, K, 1.0f, 0.0f, true, what);
}

void lora__cuda_lora_up(lora_cuda *cu, float *y, const float *t, const float *B, int64_t N,
                        int64_t out, int64_t r, float scale, const char *what)
{
    lora__cuda_mm_tt(cu, y, t, B, N, out, r, scale, 1.0f, true, what);
}

// t (r, N) = A (r, in) @ x (N, in)^T;  y (N, out) += scale * t^T @ B (out, r)^T
void lora__cuda_lora_fwd(lora_backend *be, float *y, float *t, const float *x, const float *A,
                         const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                         float scale)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu)
        return;
    if (N <= LORA_CUDA_MATVEC_ROWS) {
        if (N * r > 0)
            lora__cuda_lora_small_fwd(cu, y, t, x, A, B, N, in, r, out, scale);
        return;
    }
    t_product(cu, t, A, x, r, N, in, "lora_fwd t");
    lora__cuda_lora_up(cu, y, t, B, N, out, r, scale, "lora_fwd y");
}

/* The number of g's adapted paths (A[i] set) when there are two or more, of one rank, with
 * their A matrices back to back and their t's too, so that one product makes every t; else 0.
 * *first: the first adapted path. */
static int back_to_back(const lora_bf16_group *g, int64_t N, int64_t K, int *first)
{
    int n = 0, f = -1;
    for (int i = 0; i < g->n; i++) {
        if (!g->A[i])
            continue;
        if (f < 0)
            f = i;
        else if (g->r[i] != g->r[f] || g->A[i] != g->A[f] + n * g->r[f] * K ||
                 g->t[i] != g->t[f] + n * g->r[f] * N)
            return 0;
        n++;
    }
    *first = f;
    return n >= 2 && g->r[f] > 0 ? n : 0;
}

// t (n r, N) = [A_1; ...; A_n] (n r, K) @ x (N, K)^T;  each y_i += scale_i * t_i^T @ B_i^T
// (not where g->t_only[i]), N past LORA_CUDA_MATVEC_ROWS
void lora__cuda_lora_fwd_group(lora_backend *be, const lora_bf16_group *g, const float *x,
                               int64_t N, int64_t K)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu)
        return;
    int f, n = back_to_back(g, N, K, &f);
    if (!n) {
        for (int i = 0; i < g->n; i++)
            if (g->A[i] && g->t_only[i])
                t_product(cu, g->t[i], g->A[i], x, g->r[i], N, K, "lora_fwd t");
            else if (g->A[i])
                lora__cuda_lora_fwd(be, g->y[i], g->t[i], x, g->A[i], g->B[i], N, K, g->r[i],
                                    g->out[i], g->scale[i]);
        return;
    }
    cu->lora_fwd_groups++;
    int64_t r = g->r[f];
    t_product(cu, g->t[f], g->A[f], x, n * r, N, K, "lora_fwd_group t");
    for (int i = f; i < g->n; i++)
        if (g->A[i] && !g->t_only[i])
            lora__cuda_lora_up(cu, g->y[i], g->t[i], g->B[i], N, g->out[i], r, g->scale[i],
                               "lora_fwd_group y");
}

// u (N, r) = scale * dy (N, out) @ B (out, r);  dx (N, in) += u @ A (r, in);
// dA (r, in) += u^T @ x (N, in);  dB (out, r) += scale * dy^T @ t (r, N)^T
void lora__cuda_lora_bwd(lora_backend *be, float *dx, float *dA, float *dB, float *u,
                         const float *dy, const float *x, const float *t, const float *A,
                         const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                         float scale)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu)
        return;
    /* u is only an intermediate of dx and dA; dB needs t alone */
    if (dx || dA)
        lora__cuda_mm_nn(cu, u, dy, B, N, r, out, scale, 0.0f, true, "lora_bwd u");
    if (dx)
        lora__cuda_mm_nn(cu, dx, u, A, N, in, r, 1.0f, 1.0f, true, "lora_bwd dx");
    if (dA)
        lora__cuda_mm_tn(cu, dA, u, x, N, r, in, 1.0f, 1.0f, true, "lora_bwd dA");
    if (dB)
        lora__cuda_mm_tt(cu, dB, dy, t, out, r, N, scale, 1.0f, true, "lora_bwd dB");
}

// u (N, n r) = [scale_i * dy_i (N, out_i) @ B_i (out_i, r)];  dx (N, in) += u @ A (n r, in);
// dA (n r, in) += u^T @ x (N, in);  dB_i (out_i, r) += scale_i * dy_i^T @ t_i (r, N)^T
void lora__cuda_lora_bwd_group(lora_backend *be, const lora_lora_group *g, float *dx,
                               float *dA, float *u, const float *x, const float *A, int64_t N,
                               int64_t in, int64_t r)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu)
        return;
    cu->lora_groups++;
    int64_t nr = g->n * r;
    for (int i = 0; i < g->n && (dx || dA); i++)
        lora__cuda_mm_nn_ld(cu, u + i * r, nr, g->dy[i], g->B[i], N, r, g->out[i], g->scale[i],
                            0.0f, true, "lora_bwd_group u");
    if (dx)
        lora__cuda_mm_nn(cu, dx, u, A, N, in, nr, 1.0f, 1.0f, true, "lora_bwd_group dx");
    if (dA)
        lora__cuda_mm_tn(cu, dA, u, x, N, nr, in, 1.0f, 1.0f, true, "lora_bwd_group dA");
    for (int i = 0; i < g->n; i++)
        if (g->dB[i])
            lora__cuda_mm_tt(cu, g->dB[i], g->dy[i], g->t[i], g->out[i], r, N, g->scale[i],
                             1.0f, true, "lora_bwd_group dB");
}
