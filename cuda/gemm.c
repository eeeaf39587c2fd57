/* Row-major matrix products on cuBLASLt, float32 results. cuBLASLt is column-major: a
 * row-major (R, C) matrix is a column-major (C, R) one with the same leading dimension, so each
 * product below is computed transposed, Y^T = op(W) op(X), with no data moved.
 *
 * Float32 inputs: the compute type is the backend's math mode, CUBLAS_COMPUTE_32F_FAST_16BF
 * (the tensor cores take bfloat16-rounded inputs, accumulation stays float32) or
 * CUBLAS_COMPUTE_32F. Bfloat16 inputs (both of them: cuBLASLt has no mixed bf16 x f32 form):
 * CUBLAS_COMPUTE_32F, float32 accumulation into the float32 result. */
#include <stdio.h>

#include "internal.h"

/* The largest power of two up to 256 that divides the address, at least the element size:
 * cuBLASLt assumes 256-byte alignment unless told, and slices inside an arena or a weight
 * block may have less. */
static uint32_t alignment(const void *p, uint32_t elem)
{
    uintptr_t a = (uintptr_t)p;
    uint32_t k = 256;
    while (k > elem && a % k)
        k /= 2;
    return k;
}

/* C (m, n) = alpha op(A) op(B) + beta C, column-major, op = transpose when t; A and B of type
 * ab (float32 or bfloat16), C float32. */
static void gemm(lora_cuda *cu, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                 cudaDataType_t ab, const void *A, int64_t lda, const void *B, int64_t ldb,
                 float beta, float *C, int64_t ldc, const char *what)
{
    if (m == 0 || n == 0 || cu->err || cu->dead)
        return;
    if (k == 0) { /* an empty sum: C = beta C; every caller has beta 0 or 1, and ldc == m */
        if (beta == 0.0f)
            lora__cuda_check(cu, cudaMemsetAsync(C, 0, (size_t)(m * n) * sizeof *C, cu->stream),
                             what);
        return;
    }
    const lora_cublaslt *lt;
    if (lora__cublaslt(&lt)) {
        lora__cuda_fail(cu, LORA_ERR_DEVICE, "%s: cuBLASLt is not loaded", what);
        return;
    }
    bool half = ab == CUDA_R_16BF;
    cublasComputeType_t compute = !half && cu->math == LORA_CUDA_MATH_BF16
                                      ? CUBLAS_COMPUTE_32F_FAST_16BF
                                      : CUBLAS_COMPUTE_32F;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulDesc_t desc = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    uint32_t elem = half ? 2 : 4; /* the alignments are 4-byte attributes */
    uint32_t al_a = alignment(A, elem), al_b = alignment(B, elem), al_c = alignment(C, 4);
    size_t ws = cu->lt_ws_bytes;
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s (%lldx%lldx%lld, %s%s%s)", what, (long long)m, (long long)n,
             (long long)k, ta ? "T" : "N", tb ? "T" : "N", half ? ", bf16" : "");
#define OK(call) !lora__cuda_check_blas(cu, (call), ctx)
    int ok = OK(lt->desc_create(&desc, compute, CUDA_R_32F)) &&
             OK(lt->desc_set(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa)) &&
             OK(lt->desc_set(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb)) &&
             OK(lt->layout_create(&la, ab, (uint64_t)(ta ? k : m), (uint64_t)(ta ? m : k), lda)) &&
             OK(lt->layout_create(&lb, ab, (uint64_t)(tb ? n : k), (uint64_t)(tb ? k : n), ldb)) &&
             OK(lt->layout_create(&lc, CUDA_R_32F, (uint64_t)m, (uint64_t)n, ldc)) &&
             OK(lt->pref_create(&pref)) &&
             OK(lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws)) &&
             OK(lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, 4)) &&
             OK(lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, 4)) &&
             OK(lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, 4)) &&
             OK(lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, 4));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    if (ok && OK(lt->heuristic(cu->lt, desc, la, lb, lc, lc, pref, 1, &heur, &found))) {
        if (found < 1)
            lora__cuda_fail(cu, LORA_ERR_DEVICE, "%s: cuBLASLt has no algorithm for it", ctx);
        else
            (void)OK(lt->matmul(cu->lt, desc, &alpha, A, la, B, lb, &beta, C, lc, C, lc,
                                &heur.algo, cu->lt_ws, heur.workspaceSize, cu->stream));
    }
#undef OK
    if (pref)
        lt->pref_destroy(pref);
    if (lc)
        lt->layout_destroy(lc);
    if (lb)
        lt->layout_destroy(lb);
    if (la)
        lt->layout_destroy(la);
    if (desc)
        lt->desc_destroy(desc);
}

/* Y (N, M) = X (N, K) W (M, K)^T is Y^T (M x N, ld M) = op_T(W^T: K x M, ld K) X^T (K x N, ld K) */
void lora__cuda_mm_nt(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, const char *what)
{
    gemm(cu, true, false, M, N, K, alpha, CUDA_R_32F, W, K, X, K, beta, Y, M, what);
}

/* Y (N, M) = X (N, K) W (K, M) is Y^T (M x N) = W^T (M x K, ld M) X^T (K x N, ld K) */
void lora__cuda_mm_nn(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, const char *what)
{
    gemm(cu, false, false, M, N, K, alpha, CUDA_R_32F, W, M, X, K, beta, Y, M, what);
}

/* Y (M, K) = X (N, M)^T W (N, K) is Y^T (K x M) = W^T (K x N, ld K) op_T(X^T: M x N, ld M) */
void lora__cuda_mm_tn(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, const char *what)
{
    gemm(cu, false, true, K, M, N, alpha, CUDA_R_32F, W, K, X, M, beta, Y, K, what);
}

void lora__cuda_mm_nt_bf16(lora_cuda *cu, float *Y, const lora_bf16 *X, const lora_bf16 *W,
                           int64_t N, int64_t M, int64_t K, float alpha, float beta,
                           const char *what)
{
    gemm(cu, true, false, M, N, K, alpha, CUDA_R_16BF, W, K, X, K, beta, Y, M, what);
}

void lora__cuda_mm_nn_bf16(lora_cuda *cu, float *Y, const lora_bf16 *X, const lora_bf16 *W,
                           int64_t N, int64_t M, int64_t K, float alpha, float beta,
                           const char *what)
{
    gemm(cu, false, false, M, N, K, alpha, CUDA_R_16BF, W, M, X, K, beta, Y, M, what);
}
