/* Shared by the CUDA backend's files (C and CUDA alike): the backend's state, the checked-call
 * helpers that record a failure instead of returning it, the cuBLASLt entry points (loaded at
 * run time, cublaslt.c) and the row-major matrix products over them (gemm.c). */
#ifndef LORA_CUDA_INTERNAL_H
#define LORA_CUDA_INTERNAL_H

#include <stdbool.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "backend_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lora_cuda {
    int ordinal;
    lora_cuda_math math;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *lt_ws;              /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    /* the first failure since the last lora__cuda_sync; dead: a sticky device error */
    lora_status err;
    bool dead;
    char msg[320];
    char *arena;
    size_t arena_cap, arena_used, arena_peak;
    void *scratch;            /* private to one op at a time (attention's row statistics...) */
    size_t scratch_cap;
    size_t device_bytes, device_peak;
} lora_cuda;

/* The backend's state, the device made current for the calling thread; NULL when a failure is
 * pending (the op then does nothing: its inputs may be garbage already). */
lora_cuda *lora__cuda_enter(lora_backend *be);

/* Record a failure (the first one wins) and return 1; 0 when call succeeded. CUDA's
 * cudaErrorMemoryAllocation and cuBLAS's CUBLAS_STATUS_ALLOC_FAILED become
 * LORA_ERR_DEVICE_OUT_OF_MEMORY; an error that poisons the context marks the backend dead. */
int lora__cuda_check(lora_cuda *cu, cudaError_t e, const char *what);
int lora__cuda_check_blas(lora_cuda *cu, cublasStatus_t s, const char *what);
/* The recorded failure as a status and message (cleared unless the backend is dead). */
lora_status lora__cuda_report(lora_cuda *cu);
/* The launch just made: its configuration error, if any (cudaGetLastError). */
int lora__cuda_launched(lora_cuda *cu, const char *kernel);
void lora__cuda_fail(lora_cuda *cu, lora_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Device allocations counted in the memory report; NULL (and the failure recorded) when out of
 * memory. */
void *lora__cuda_malloc(lora_cuda *cu, size_t bytes, const char *what);
void lora__cuda_free_mem(lora_cuda *cu, void *p, size_t bytes);
/* The op scratch, grown to at least bytes; NULL (recorded) when it cannot be. */
void *lora__cuda_scratch(lora_cuda *cu, size_t bytes);

/* ---- cuBLASLt, resolved from libcublasLt at run time (cublaslt.c) ------------------------- */

typedef struct lora_cublaslt {
    __typeof__(cublasLtCreate) *create;
    __typeof__(cublasLtDestroy) *destroy;
    __typeof__(cublasLtMatmulDescCreate) *desc_create;
    __typeof__(cublasLtMatmulDescDestroy) *desc_destroy;
    __typeof__(cublasLtMatmulDescSetAttribute) *desc_set;
    __typeof__(cublasLtMatrixLayoutCreate) *layout_create;
    __typeof__(cublasLtMatrixLayoutDestroy) *layout_destroy;
    __typeof__(cublasLtMatmulPreferenceCreate) *pref_create;
    __typeof__(cublasLtMatmulPreferenceDestroy) *pref_destroy;
    __typeof__(cublasLtMatmulPreferenceSetAttribute) *pref_set;
    __typeof__(cublasLtMatmulAlgoGetHeuristic) *heuristic;
    __typeof__(cublasLtMatmul) *matmul;
    __typeof__(cublasLtGetStatusName) *status_name;
    __typeof__(cublasLtGetStatusString) *status_string;
} lora_cublaslt;

/* The entry points, loaded once; LORA_ERR_DEVICE naming the library when it is missing. */
lora_status lora__cublaslt(const lora_cublaslt **out);

/* ---- row-major matrix products on cuBLASLt (gemm.c); float32 storage -------------------- */

/* Y (N, M) = alpha X (N, K) W (M, K)^T + beta Y */
void lora__cuda_mm_nt(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, const char *what);
/* Y (N, M) = alpha X (N, K) W (K, M) + beta Y */
void lora__cuda_mm_nn(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, const char *what);
/* Y (M, K) = alpha X (N, M)^T W (N, K) + beta Y */
void lora__cuda_mm_tn(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, const char *what);
/* mm_nt and mm_nn with bfloat16 X and W, float32 Y and accumulation */
void lora__cuda_mm_nt_bf16(lora_cuda *cu, float *Y, const lora_bf16 *X, const lora_bf16 *W,
                           int64_t N, int64_t M, int64_t K, float alpha, float beta,
                           const char *what);
void lora__cuda_mm_nn_bf16(lora_cuda *cu, float *Y, const lora_bf16 *X, const lora_bf16 *W,
                           int64_t N, int64_t M, int64_t K, float alpha, float beta,
                           const char *what);
/* dst (n) = src (n) rounded to bfloat16 (lora__bf16_from_f32's rounding), on the stream;
 * 1 when the launch failed (recorded). */
int lora__cuda_round_bf16(lora_cuda *cu, lora_bf16 *dst, const float *src, size_t n);

/* ---- the op table's entries (one file each; semantics in src/backend.h) ------------------- */

void lora__cuda_matmul_fwd(lora_backend *be, float *y, const float *x, const float *w,
                           const float *bias, int64_t N, int64_t Nout, int64_t K);
void lora__cuda_matmul_bwd(lora_backend *be, float *dx, float *dw, float *dbias,
                           const float *dy, const float *x, const float *w, int64_t N,
                           int64_t Nout, int64_t K);
void lora__cuda_embedding_fwd(lora_backend *be, float *x, const int32_t *ids,
                              const float *table, int64_t N, int64_t C);
void lora__cuda_embedding_bwd(lora_backend *be, float *dtable, const float *dx,
                              const int32_t *ids, int64_t N, int64_t C);
void lora__cuda_rmsnorm_fwd(lora_backend *be, float *y, float *rstd, const float *x,
                            const float *w, int64_t N, int64_t C, float eps);
void lora__cuda_rmsnorm_bwd(lora_backend *be, float *dx, float *dw, const float *dy,
                            const float *x, const float *w, const float *rstd, int64_t N,
                            int64_t C);
void lora__cuda_rope_fwd(lora_backend *be, float *x, const int32_t *pos, const float *cos,
                         const float *sin, int64_t N, int64_t heads, int64_t D);
void lora__cuda_rope_bwd(lora_backend *be, float *dx, const int32_t *pos, const float *cos,
                         const float *sin, int64_t N, int64_t heads, int64_t D);
void lora__cuda_attention_fwd(lora_backend *be, float *out, const float *q, const float *k,
                              const float *v, const lora_attention_shape *shape);
void lora__cuda_attention_bwd(lora_backend *be, float *dq, float *dk, float *dv,
                              const float *dout, const float *q, const float *k,
                              const float *v, const lora_attention_shape *shape);
void lora__cuda_swiglu_fwd(lora_backend *be, float *h, const float *gate, const float *up,
                           int64_t N, int64_t n_inter);
void lora__cuda_swiglu_bwd(lora_backend *be, float *dgate, float *dup, const float *dh,
                           const float *gate, const float *up, int64_t N, int64_t n_inter);
void lora__cuda_lora_fwd(lora_backend *be, float *y, float *t, const float *x, const float *A,
                         const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                         float scale);
void lora__cuda_lora_bwd(lora_backend *be, float *dx, float *dA, float *dB, float *u,
                         const float *dy, const float *x, const float *t, const float *A,
                         const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                         float scale);
void lora__cuda_dropout_fwd(lora_backend *be, float *out, const float *x, int64_t N, int64_t n,
                            float p, uint64_t seed, uint64_t module);
void lora__cuda_dropout_bwd(lora_backend *be, float *dx, const float *dy, int64_t N, int64_t n,
                            float p, uint64_t seed, uint64_t module);
void lora__cuda_residual_fwd(lora_backend *be, float *y, const float *x, int64_t n);
lora_status lora__cuda_mem_alloc(lora_backend *be, size_t bytes, const char *what, void **p);
void lora__cuda_mem_free(lora_backend *be, void *p, size_t bytes);
void lora__cuda_copy(lora_backend *be, void *dst, const void *src, size_t bytes);
void lora__cuda_zero(lora_backend *be, void *dst, size_t bytes);
lora_status lora__cuda_sum_squares_acc(lora_backend *be, const float *x, size_t n, double *acc);
void lora__cuda_cross_entropy_fwd(lora_backend *be, float *nll, float *lse,
                                  const float *logits, const int32_t *targets, int64_t N,
                                  int64_t V);
void lora__cuda_cross_entropy_bwd(lora_backend *be, float *dlogits, const float *logits,
                                  const float *lse, const int32_t *targets, const float *dnll,
                                  int64_t N, int64_t V);
void lora__cuda_matmul_bf16_fwd(lora_backend *be, float *y, const float *x, const lora_bf16 *w,
                                const float *bias, int64_t N, int64_t Nout, int64_t K);
void lora__cuda_matmul_bf16_bwd(lora_backend *be, float *dx, const float *dy,
                                const lora_bf16 *w, int64_t N, int64_t Nout, int64_t K);
void lora__cuda_embedding_bf16_fwd(lora_backend *be, float *x, const int32_t *ids,
                                   const lora_bf16 *table, int64_t N, int64_t C);
void lora__cuda_to_bf16(lora_backend *be, lora_bf16 *dst, const float *src, size_t n);
void lora__cuda_attention_bf16kv_fwd(lora_backend *be, float *out, const float *q,
                                     const lora_bf16 *k, const lora_bf16 *v,
                                     const lora_attention_shape *shape);
void lora__cuda_ce_chunk_fwd(lora_backend *be, double *state, const float *logits,
                             const int32_t *targets, int64_t N, int64_t Vc, int64_t v0);
void lora__cuda_ce_chunk_finish(lora_backend *be, float *nll, float *lse, const double *state,
                                const int32_t *targets, int64_t N);
void lora__cuda_ce_chunk_bwd(lora_backend *be, float *dlogits, const float *logits,
                             const float *lse, const int32_t *targets, const float *dnll,
                             int64_t N, int64_t Vc, int64_t v0);

#ifdef __cplusplus
}
#endif

#endif
