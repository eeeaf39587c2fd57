/* The fused LoRA path y += scale (x A^T) B^T and its backward: four small products on
 * cuBLASLt (gemm.c), or for a group of paths over one input 2 + 2n for n paths rather than
 * 4n. They are precise ones (TF32, not bfloat16, in the bf16 math mode; gemm.c
 * says why). A forward of a few rows (decoding) takes matvec.cu's two kernels instead, in
 * float32. */
#include "internal.h"

// t (N, r) = x (N, in) @ A (r, in)^T;  y (N, out) += scale * t @ B (out, r)^T
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
    lora__cuda_mm_nt(cu, t, x, A, N, r, in, 1.0f, 0.0f, true, "lora_fwd t");
    lora__cuda_mm_nt(cu, y, t, B, N, out, r, scale, 1.0f, true, "lora_fwd y");
}

// u (N, r) = scale * dy (N, out) @ B (out, r);  dx (N, in) += u @ A (r, in);
// dA (r, in) += u^T @ x (N, in);  dB (out, r) += scale * dy^T @ t (N, r)
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
        lora__cuda_mm_tn(cu, dB, dy, t, N, out, r, scale, 1.0f, true, "lora_bwd dB");
}

// u (N, n r) = [scale_i * dy_i (N, out_i) @ B_i (out_i, r)];  dx (N, in) += u @ A (n r, in);
// dA (n r, in) += u^T @ x (N, in);  dB_i (out_i, r) += scale_i * dy_i^T @ t_i (N, r)
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
            lora__cuda_mm_tn(cu, g->dB[i], g->dy[i], g->t[i], N, g->out[i], r, g->scale[i],
                             1.0f, true, "lora_bwd_group dB");
}
