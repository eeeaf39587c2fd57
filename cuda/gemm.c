/* Row-major matrix products on cuBLASLt, float32 results. cuBLASLt is column-major: a
 * row-major (R, C) matrix is a column-major (C, R) one with the same leading dimension, so each
 * product below is computed transposed, Y^T = op(W) op(X), with no data moved.
 *
 * Float32 inputs: the compute type is the backend's math mode, CUBLAS_COMPUTE_32F_FAST_16BF
 * (the tensor cores take bfloat16-rounded inputs, accumulation stays float32) or
 * CUBLAS_COMPUTE_32F. A precise product (the LoRA path's) takes CUBLAS_COMPUTE_32F_FAST_TF32 in
 * the bf16 mode instead: rounding its inputs to bfloat16 doubled the error of the fixtures'
 * LoRA logits (tiny-qwen3: 1.7e-2 to 3.0e-2, measured on the CUDA emulator), and these products
 * (rank r on one side) are bound by reading their float32 operands, not by the tensor cores. Bfloat16 inputs (both of them: cuBLASLt has no mixed bf16 x f32 form):
 * CUBLAS_COMPUTE_32F, float32 accumulation into the float32 result.
 *
 * The descriptors, layouts and the heuristic's algorithm are built once per shape (the key of
 * gemm_plans.c) and kept on the backend: a step's thousand-odd products then each cost one
 * cublasLtMatmul call on the host. */
#include <stdio.h>
#include <string.h>

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

static void plan_destroy(const lora_cublaslt *lt, lora_gemm_plan *p)
{
    if (p->lc)
        lt->layout_destroy(p->lc);
    if (p->lb)
        lt->layout_destroy(p->lb);
    if (p->la)
        lt->layout_destroy(p->la);
    if (p->desc)
        lt->desc_destroy(p->desc);
}

/* The descriptors and layouts of key and the heuristic's first algorithm for them; false
 * (recorded, nothing left to destroy) when cuBLASLt refuses or has none. With a bias (the
 * epilogue's, which the caller can do without) the heuristic sees the pointer, and no
 * algorithm builds a plan of none, not recorded. */
static bool plan_build(lora_cuda *cu, const lora_cublaslt *lt, const lora_gemm_key *key,
                       const float *bias, lora_gemm_plan *p, const char *ctx)
{
    memset(p, 0, sizeof *p);
    cublasOperation_t opa = key->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = key->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t epi = (cublasLtEpilogue_t)key->epilogue;
    cudaDataType_t ab = (cudaDataType_t)key->ab, ct = (cudaDataType_t)key->c;
    uint64_t m = (uint64_t)key->m, n = (uint64_t)key->n, k = (uint64_t)key->k;
    uint32_t al_a = (uint32_t)key->align_a, al_b = (uint32_t)key->align_b;
    uint32_t al_c = (uint32_t)key->align_c; /* the alignments are 4-byte attributes */
    size_t ws = (size_t)key->workspace;
    cublasLtMatmulPreference_t pref = NULL;
#define OK(call) !lora__cuda_check_blas(cu, (call), ctx)
    bool ok = OK(lt->desc_create(&p->desc, (cublasComputeType_t)key->compute, CUDA_R_32F)) &&
              OK(lt->desc_set(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa)) &&
              OK(lt->desc_set(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb)) &&
              OK(lt->desc_set(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi)) &&
              (!bias || OK(lt->desc_set(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                        sizeof bias))) &&
              OK(lt->layout_create(&p->la, ab, key->ta ? k : m, key->ta ? m : k, key->lda)) &&
              OK(lt->layout_create(&p->lb, ab, key->tb ? n : k, key->tb ? k : n, key->ldb)) &&
              OK(lt->layout_create(&p->lc, ct, m, n, key->ldc)) && OK(lt->pref_create(&pref)) &&
              OK(lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws)) &&
              OK(lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, 4)) &&
              OK(lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, 4)) &&
              OK(lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, 4)) &&
              OK(lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, 4));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasStatus_t hs = ok ? lt->heuristic(cu->lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1,
                                           &heur, &found)
                           : CUBLAS_STATUS_SUCCESS;
    bool none = ok && bias &&
                (hs == CUBLAS_STATUS_NOT_SUPPORTED || (hs == CUBLAS_STATUS_SUCCESS && found < 1));
    if (ok && !none && (ok = OK(hs)) && found < 1) {
        lora__cuda_fail(cu, LORA_ERR_DEVICE, "%s: cuBLASLt has no algorithm for it", ctx);
        ok = false;
    }
#undef OK
    if (pref)
        lt->pref_destroy(pref);
    if (!ok || none) {
        plan_destroy(lt, p);
        memset(p, 0, sizeof *p);
        p->none = none;
        return ok;
    }
    p->algo = heur.algo;
    p->workspace = heur.workspaceSize;
    return true;
}

/* C (m, n) = alpha op(A) op(B) + beta C (+ bias (m) broadcast over the columns, in the
 * epilogue), column-major, op = transpose when t; A and B of type ab (float32 or bfloat16), C
 * float32. The plan of the shape comes from the backend's cache; a miss builds it (descriptors,
 * layouts, the heuristic's choice) and keeps it. False only with a bias the epilogue cannot
 * take (under 16-byte alignment, an empty sum, no algorithm): nothing run, nothing recorded. */
static bool gemm(lora_cuda *cu, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                 cudaDataType_t ab, const void *A, int64_t lda, const void *B, int64_t ldb,
                 float beta, float *C, int64_t ldc, const float *bias, bool precise,
                 const char *what)
{
    if (m == 0 || n == 0 || cu->err || cu->dead)
        return true;
    /* no preference declares the bias's alignment, and cuBLASLt's bias kernels may read it in
     * 16-byte vectors (a fault on a slice with less) */
    if (bias && (k == 0 || (uintptr_t)bias % 16))
        return false;
    if (k == 0) { /* an empty sum: C = beta C; every caller has beta 0 or 1, and ldc == m */
        if (beta == 0.0f)
            lora__cuda_queued(cu, cudaMemsetAsync(C, 0, (size_t)(m * n) * sizeof *C, cu->stream),
                             what);
        return true;
    }
    const lora_cublaslt *lt;
    if (lora__cublaslt(&lt)) {
        lora__cuda_fail(cu, LORA_ERR_DEVICE, "%s: cuBLASLt is not loaded", what);
        return true;
    }
    bool half = ab == CUDA_R_16BF;
    uint32_t elem = half ? 2 : 4;
    lora_gemm_key key = {
        .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc, .ta = ta, .tb = tb,
        .ab = ab, .c = CUDA_R_32F,
        .compute = half || cu->math != LORA_CUDA_MATH_BF16 ? CUBLAS_COMPUTE_32F
                   : precise                              ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                          : CUBLAS_COMPUTE_32F_FAST_16BF,
        .epilogue = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT,
        .align_a = alignment(A, elem),
        .align_b = alignment(B, elem), .align_c = alignment(C, 4),
        .workspace = (int64_t)cu->lt_ws_bytes};
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s (%lldx%lldx%lld, %s%s%s%s)", what, (long long)m,
             (long long)n, (long long)k, ta ? "T" : "N", tb ? "T" : "N", half ? ", bf16" : "",
             bias ? ", bias" : "");
    lora_gemm_plan built, *plan = lora__gemm_cache_find(&cu->gemm, &key);
    if (!plan) {
        if (!plan_build(cu, lt, &key, bias, &built, ctx))
            return true;
        plan = &built;
    }
    bool run = !plan->none;
    /* the bias is the call's, the descriptor the shape's: set before every product */
    if (run && bias)
        run = !lora__cuda_check_blas(cu, lt->desc_set(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                      &bias, sizeof bias), ctx);
    if (run) {
        cu->launches++;
        (void)lora__cuda_check_blas(cu, lt->matmul(cu->lt, plan->desc, &alpha, A, plan->la, B,
                                                   plan->lb, &beta, C, plan->lc, C, plan->lc,
                                                   &plan->algo, cu->lt_ws, plan->workspace,
                                                   cu->stream), ctx);
    }
    bool none = plan->none;
    if (plan == &built) {
        lora_gemm_plan old;
        bool evicted;
        if (!lora__gemm_cache_insert(&cu->gemm, &key, &built, &old, &evicted))
            plan_destroy(lt, &built); /* no table (out of host memory): this call's plan only */
        else if (evicted)
            plan_destroy(lt, &old);
    }
    return !none;
}

void lora__cuda_gemm_free(lora_cuda *cu)
{
    const lora_cublaslt *lt;
    if (cu->gemm.e && lora__cublaslt(&lt) == LORA_OK)
        for (int i = 0; i < LORA_GEMM_PLANS; i++)
            if (cu->gemm.e[i].live)
                plan_destroy(lt, &cu->gemm.e[i].plan);
    lora__gemm_cache_drop(&cu->gemm);
}

/* Y (N, M) = X (N, K) W (M, K)^T is Y^T (M x N, ld M) = op_T(W^T: K x M, ld K) X^T (K x N, ld K) */
void lora__cuda_mm_nt(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, bool precise,
                      const char *what)
{
    gemm(cu, true, false, M, N, K, alpha, CUDA_R_32F, W, K, X, K, beta, Y, M, NULL, precise,
         what);
}

/* Y (N, M) = X (N, K) W (K, M) is Y^T (M x N) = W^T (M x K, ld M) X^T (K x N, ld K) */
void lora__cuda_mm_nn(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, bool precise,
                      const char *what)
{
    lora__cuda_mm_nn_ld(cu, Y, M, X, W, N, M, K, alpha, beta, precise, what);
}

/* mm_nn into Y rows ldy floats apart: Y^T (M x N, ld ldy) */
void lora__cuda_mm_nn_ld(lora_cuda *cu, float *Y, int64_t ldy, const float *X, const float *W,
                         int64_t N, int64_t M, int64_t K, float alpha, float beta, bool precise,
                         const char *what)
{
    gemm(cu, false, false, M, N, K, alpha, CUDA_R_32F, W, M, X, K, beta, Y, ldy, NULL, precise,
         what);
}

/* Y (M, K) = X (N, M)^T W (N, K) is Y^T (K x M) = W^T (K x N, ld K) op_T(X^T: M x N, ld M) */
void lora__cuda_mm_tn(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, bool precise,
                      const char *what)
{
    gemm(cu, false, true, K, M, N, alpha, CUDA_R_32F, W, K, X, M, beta, Y, K, NULL, precise,
         what);
}

/* Y (N, M) = X (K, N)^T W (M, K)^T is Y^T (M x N) = op_T(W^T: K x M, ld K) op_T(X^T: N x K, ld N) */
void lora__cuda_mm_tt(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, bool precise,
                      const char *what)
{
    gemm(cu, true, true, M, N, K, alpha, CUDA_R_32F, W, K, X, N, beta, Y, M, NULL, precise,
         what);
}

void lora__cuda_mm_nt_bf16(lora_cuda *cu, float *Y, const lora_bf16 *X, const lora_bf16 *W,
                           int64_t N, int64_t M, int64_t K, float alpha, float beta,
                           const char *what)
{
    gemm(cu, true, false, M, N, K, alpha, CUDA_R_16BF, W, K, X, K, beta, Y, M, NULL, false,
         what);
}

void lora__cuda_mm_nn_bf16(lora_cuda *cu, float *Y, const lora_bf16 *X, const lora_bf16 *W,
                           int64_t N, int64_t M, int64_t K, float alpha, float beta,
                           const char *what)
{
    gemm(cu, false, false, M, N, K, alpha, CUDA_R_16BF, W, M, X, K, beta, Y, M, NULL, false,
         what);
}

bool lora__cuda_mm_nt_bias(lora_cuda *cu, float *Y, const float *X, const float *W,
                           const float *bias, int64_t N, int64_t M, int64_t K, const char *what)
{
    return gemm(cu, true, false, M, N, K, 1.0f, CUDA_R_32F, W, K, X, K, 0.0f, Y, M, bias, false,
                what);
}

bool lora__cuda_mm_nt_bf16_bias(lora_cuda *cu, float *Y, const lora_bf16 *X, const lora_bf16 *W,
                                const float *bias, int64_t N, int64_t M, int64_t K,
                                const char *what)
{
    return gemm(cu, true, false, M, N, K, 1.0f, CUDA_R_16BF, W, K, X, K, 0.0f, Y, M, bias, false,
                what);
}
