/* Shared by the CUDA backend's files (C and CUDA alike): the backend's state, the checked-call
 * helpers that record a failure instead of returning it, the cuBLASLt and cuDNN entry points
 * (loaded at run time, cublaslt.c, cudnn.c), the row-major matrix products (gemm.c) and
 * attention on cuDNN (attention_cudnn.c). */
#ifndef LORA_CUDA_INTERNAL_H
#define LORA_CUDA_INTERNAL_H

#include <stdbool.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn_backend.h>

#include "backend_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cuBLASLt plans, cached per product shape (gemm_plans.c; host code only) -------------- */

/* What decides a product's descriptors, layouts and heuristic choice. Every field is 64 bits
 * wide, so the key has no padding and is hashed and compared as bytes. */
typedef struct lora_gemm_key {
    int64_t m, n, k, lda, ldb, ldc;
    int64_t ta, tb;               /* transposes of A and B */
    int64_t ab, c, compute;       /* cudaDataType_t of A and B, of C; cublasComputeType_t */
    int64_t epilogue;             /* cublasLtEpilogue_t */
    int64_t align_a, align_b, align_c; /* the alignments promised to the heuristic */
    int64_t workspace;            /* the heuristic's workspace limit */
} lora_gemm_key;

typedef struct lora_gemm_plan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    size_t workspace;             /* what the algorithm needs of the workspace */
    bool none;                    /* no algorithm for an optional epilogue: nothing to run */
} lora_gemm_plan;

/* A training step of Qwen2.5-0.5B has some 60 distinct product shapes (forward, backward, the
 * head's chunks); 256 leaves room for several sequence lengths before the least recently used
 * plan goes. */
#define LORA_GEMM_PLANS 256

typedef struct lora_gemm_entry {
    lora_gemm_key key;
    uint64_t hash, used;          /* used: the cache's clock at the last find or insert */
    bool live;
    lora_gemm_plan plan;
} lora_gemm_entry;

typedef struct lora_gemm_cache {
    lora_gemm_entry *e;           /* LORA_GEMM_PLANS entries, allocated by the first insert */
    int live;
    uint64_t clock, hits, misses, evictions;
} lora_gemm_cache;

/* The cached plan of key (a hit), or NULL (a miss); both counted. */
lora_gemm_plan *lora__gemm_cache_find(lora_gemm_cache *c, const lora_gemm_key *key);
/* Stores plan under key (not present), in a free entry or in place of the least recently used
 * one, whose plan is then copied to *evicted for the caller to destroy (*was_evicted true).
 * False when the table cannot be allocated: the caller keeps plan. */
bool lora__gemm_cache_insert(lora_gemm_cache *c, const lora_gemm_key *key,
                             const lora_gemm_plan *plan, lora_gemm_plan *evicted,
                             bool *was_evicted);
/* Frees the table; the live entries' plans must have been destroyed (lora__cuda_gemm_free). */
void lora__gemm_cache_drop(lora_gemm_cache *c);

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
    uint64_t scratch_gen;     /* times the scratch moved: a graph recorded before is stale */
    bool capturing;           /* the stream records a graph (graph.c) */
    size_t device_bytes, device_peak;
    struct lora_sdpa *sdpa;   /* cuDNN attention: handle and plans; NULL until first used */
    lora_gemm_cache gemm;     /* cuBLASLt plans of the products (gemm.c) */
    uint64_t lora_groups;     /* grouped LoRA backwards run (lora_bwd_group), ever */
    uint64_t lora_fwd_groups; /* grouped LoRA t products run (lora__cuda_lora_fwd_group), ever */
    /* work queued on the stream, ever: kernels, cuBLASLt products, cuDNN graphs, async copies
     * and fills, graph replays (one each; a recorded graph's ops count as they are recorded) */
    uint64_t launches;
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
/* The launch just made: its configuration error, if any (cudaGetLastError); counted. */
int lora__cuda_launched(lora_cuda *cu, const char *kernel);
/* lora__cuda_check of a call that queued work on the stream (a copy, a fill, a product, a
 * graph), counted as lora__cuda_launched counts a kernel. */
int lora__cuda_queued(lora_cuda *cu, cudaError_t e, const char *what);
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

/* ---- cuDNN, resolved from libcudnn at run time (cudnn.c) --------------------------------- */

typedef struct lora_cudnn {
    size_t version;           /* cudnnGetVersion(): 91900 for 9.19.0 */
    const char *library;      /* the soname that was opened */
    __typeof__(cudnnGetVersion) *get_version;
    __typeof__(cudnnGetErrorString) *error_string;
    __typeof__(cudnnGetLastErrorString) *last_error;
    __typeof__(cudnnCreate) *create;
    __typeof__(cudnnDestroy) *destroy;
    __typeof__(cudnnSetStream) *set_stream;
    __typeof__(cudnnBackendCreateDescriptor) *desc_create;
    __typeof__(cudnnBackendDestroyDescriptor) *desc_destroy;
    __typeof__(cudnnBackendSetAttribute) *set;
    __typeof__(cudnnBackendGetAttribute) *get;
    __typeof__(cudnnBackendFinalize) *finalize;
    __typeof__(cudnnBackendExecute) *execute;
} lora_cudnn;

/* The entry points, loaded once; LORA_ERR_DEVICE naming the library when it is missing. */
lora_status lora__cudnn(const lora_cudnn **out);
/* The same without setting the thread's error: NULL and *why when the library is missing. */
const lora_cudnn *lora__cudnn_get(const char **why);
/* "what: cuDNN's name for s: cuDNN's last error message" into buf. */
void lora__cudnn_describe(const lora_cudnn *dn, cudnnStatus_t s, const char *what, char *buf,
                          size_t cap);
/* Records a failed cuDNN call like lora__cuda_check does (device allocation failures as
 * LORA_ERR_DEVICE_OUT_OF_MEMORY); 0 on success. */
int lora__cuda_check_dnn(lora_cuda *cu, cudnnStatus_t s, const char *what);

/* ---- row-major matrix products on cuBLASLt (gemm.c); float32 storage -------------------- */
/* precise: TF32 inputs rather than bfloat16 ones in the bf16 math mode (the LoRA path's
 * products, gemm.c says why); float32 in the fp32 mode either way. */

/* Y (N, M) = alpha X (N, K) W (M, K)^T + beta Y */
void lora__cuda_mm_nt(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, bool precise,
                      const char *what);
/* Y (N, M) = alpha X (N, K) W (K, M) + beta Y */
void lora__cuda_mm_nn(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, bool precise,
                      const char *what);
/* mm_nn into a Y whose rows are ldy >= M floats apart (K > 0) */
void lora__cuda_mm_nn_ld(lora_cuda *cu, float *Y, int64_t ldy, const float *X, const float *W,
                         int64_t N, int64_t M, int64_t K, float alpha, float beta, bool precise,
                         const char *what);
/* Y (M, K) = alpha X (N, M)^T W (N, K) + beta Y */
void lora__cuda_mm_tn(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, bool precise,
                      const char *what);
/* Y (N, M) = alpha X (K, N)^T W (M, K)^T + beta Y */
void lora__cuda_mm_tt(lora_cuda *cu, float *Y, const float *X, const float *W, int64_t N,
                      int64_t M, int64_t K, float alpha, float beta, bool precise,
                      const char *what);
/* mm_nt and mm_nn with bfloat16 X and W, float32 Y and accumulation */
void lora__cuda_mm_nt_bf16(lora_cuda *cu, float *Y, const lora_bf16 *X, const lora_bf16 *W,
                           int64_t N, int64_t M, int64_t K, float alpha, float beta,
                           const char *what);
void lora__cuda_mm_nn_bf16(lora_cuda *cu, float *Y, const lora_bf16 *X, const lora_bf16 *W,
                           int64_t N, int64_t M, int64_t K, float alpha, float beta,
                           const char *what);
/* Y (N, M) = X (N, K) W (M, K)^T + bias (M), the bias added in the product's epilogue (Y
 * neither zeroed nor read first); X and W float32 (mm_nt's compute type, not precise) or
 * bfloat16. False where the epilogue cannot take it: a bias under 16-byte alignment, K = 0, or
 * no algorithm for the shape with it; nothing is then run or recorded, and the caller adds the
 * bias itself. */
bool lora__cuda_mm_nt_bias(lora_cuda *cu, float *Y, const float *X, const float *W,
                           const float *bias, int64_t N, int64_t M, int64_t K, const char *what);
bool lora__cuda_mm_nt_bf16_bias(lora_cuda *cu, float *Y, const lora_bf16 *X, const lora_bf16 *W,
                                const float *bias, int64_t N, int64_t M, int64_t K,
                                const char *what);
/* Destroys the cached plans' descriptors and frees the table (lora__cuda_backend_free). */
void lora__cuda_gemm_free(lora_cuda *cu);
/* dst (n) = src (n) rounded to bfloat16 (lora__bf16_from_f32's rounding), on the stream;
 * 1 when the launch failed (recorded). */
int lora__cuda_round_bf16(lora_cuda *cu, lora_bf16 *dst, const float *src, size_t n);
/* dst (n) float32 = src (n) bfloat16, exact, on the stream; 1 when the launch failed. */
int lora__cuda_widen_bf16(lora_cuda *cu, float *dst, const lora_bf16 *src, size_t n);

/* ---- products of a few rows (matvec.cu): decoding's; matmul_bf16_fwd and lora_fwd take them
 * for N <= LORA_CUDA_MATVEC_ROWS ------------------------------------------------------------ */

#define LORA_CUDA_MATVEC_ROWS 8
/* y (N, Nout) = x (N, K) @ w (Nout, K)^T + bias (NULL: none), x rounded to bfloat16 */
void lora__cuda_matvec_bf16(lora_cuda *cu, float *y, const float *x, const lora_bf16 *w,
                            const float *bias, int64_t N, int64_t Nout, int64_t K);
/* the same for each product of g, in one launch */
void lora__cuda_matvec_bf16_group(lora_cuda *cu, const lora_bf16_group *g, const float *x,
                                  int64_t N, int64_t K);
/* y (N, out) += scale * t (r, N)^T @ B (out, r)^T on cuBLASLt, a LoRA path's up-product as
 * lora_fwd makes it past LORA_CUDA_MATVEC_ROWS (TF32 in the bf16 math mode) */
void lora__cuda_lora_up(lora_cuda *cu, float *y, const float *t, const float *B, int64_t N,
                        int64_t out, int64_t r, float scale, const char *what);
/* t (r, N) = A (r, in) @ x (N, in)^T;  y (N, out) += scale * t^T @ B (out, r)^T, in float32 */
void lora__cuda_lora_small_fwd(lora_cuda *cu, float *y, float *t, const float *x, const float *A,
                               const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                               float scale);

/* ---- the multi-tensor optimizer: the set (optim_set.c), its kernels (adamw.cu) ----------- */

/* One tensor of a set as the kernels read it. Each tensor owns a run of each grid: the blocks
 * its own launch would have (lora__cuda_set_plan). */
typedef struct lora_cuda_set_tensor {
    float *p;
    const float *g;
    float *m, *v;
    int64_t n;
    int64_t group;
    unsigned sum0, sums;      /* first block and block count in the sum-of-squares grid */
    unsigned upd0, upds;      /* the same in the update's grid */
} lora_cuda_set_tensor;

struct lora_tensor_set {
    size_t n;
    lora_cuda_set_tensor *t;  /* device, n */
    double *part;             /* device, one partial sum per sum-of-squares block */
    double *sums;             /* device, n: each tensor's sum */
    double *host_sums;        /* host, n */
    unsigned sum_blocks, upd_blocks;
    size_t bytes;             /* device bytes of t, part and sums: one allocation */
};

/* Fills the runs of t[0..n) (n and the rest already set) and the grids' sizes. */
void lora__cuda_set_plan(lora_cuda_set_tensor *t, size_t n, uint64_t *sum_blocks,
                         uint64_t *upd_blocks);

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
lora_status lora__cuda_graph_begin(lora_backend *be);
lora_status lora__cuda_graph_end(lora_backend *be, lora_graph **out);
lora_status lora__cuda_graph_launch(lora_backend *be, const lora_graph *g);
void lora__cuda_graph_free(lora_backend *be, lora_graph *g);
void lora__cuda_kv_store_bf16(lora_backend *be, lora_bf16 *cache, const float *src,
                              const int32_t *pos, int64_t B, int64_t T, int64_t S, int64_t row);
void lora__cuda_rope_kv_store_bf16(lora_backend *be, float *q, float *k, float *v,
                                   lora_bf16 *k_cache, lora_bf16 *v_cache,
                                   const lora_lora_up *lu, const int32_t *pos, const float *cos,
                                   const float *sin, int64_t B, int64_t T, int64_t S, int64_t H,
                                   int64_t KVH, int64_t D);
void lora__cuda_argmax(lora_backend *be, int32_t *out, const float *x, int64_t n, int32_t *feed,
                       const int32_t *last_pos);
void lora__cuda_embedding_bwd_grouped(lora_backend *be, float *dtable, const float *dx,
                                      const int32_t *ids, const int32_t *order,
                                      const int32_t *runs, int64_t n_runs, int64_t C);
void lora__cuda_rmsnorm_fwd(lora_backend *be, float *y, float *rstd, const float *x,
                            const float *w, int64_t N, int64_t C, float eps);
void lora__cuda_residual_rmsnorm_fwd(lora_backend *be, float *x, float *y, float *rstd,
                                     lora_bf16 *x16, lora_bf16 *y16, const float *r,
                                     const float *w, int64_t N, int64_t C, float eps);
void lora__cuda_residual_lora_rmsnorm_fwd(lora_backend *be, float *x, float *y, float *rstd,
                                          lora_bf16 *x16, lora_bf16 *y16, const float *r,
                                          const lora_lora_up *lu, const float *w, int64_t N,
                                          int64_t C, float eps);
void lora__cuda_rmsnorm_bwd(lora_backend *be, float *dx, float *dw, const float *dy,
                            const float *x, const float *w, const float *rstd, int64_t N,
                            int64_t C);
void lora__cuda_rmsnorm_bf16_fwd(lora_backend *be, float *y, float *rstd, const lora_bf16 *x,
                                 const float *w, int64_t N, int64_t C, float eps);
void lora__cuda_rmsnorm_bf16_bwd(lora_backend *be, float *dx, lora_bf16 *dx16, float *dw,
                                 const float *dy, const lora_bf16 *x, const float *w,
                                 const float *rstd, int64_t N, int64_t C, bool accumulate);
void lora__cuda_rmsnorm_keep_fwd(lora_backend *be, float *y, float *rstd, lora_bf16 *x16,
                                 const float *x, const float *w, int64_t N, int64_t C,
                                 float eps);
void lora__cuda_rope_fwd(lora_backend *be, float *x, const int32_t *pos, const float *cos,
                         const float *sin, int64_t N, int64_t heads, int64_t D);
void lora__cuda_rope_bwd(lora_backend *be, float *dx, const int32_t *pos, const float *cos,
                         const float *sin, int64_t N, int64_t heads, int64_t D);
void lora__cuda_rope_bf16_fwd(lora_backend *be, lora_bf16 *dst, const float *x,
                              const int32_t *pos, const float *cos, const float *sin, int64_t N,
                              int64_t heads, int64_t D);
void lora__cuda_qkv_keep_fwd(lora_backend *be, lora_bf16 *q16, lora_bf16 *k16, lora_bf16 *v16,
                             const float *q, const float *k, const float *v,
                             const lora_lora_up *lu, const int32_t *pos, const float *cos,
                             const float *sin, int64_t N, int64_t H, int64_t KVH, int64_t D);
/* rope_kv_store_bf16 with lu for any number of rows, in tiles (qkv_keep.cu): q and k
 * (+ LoRA) rotated in place, k and v (+ LoRA) rounded into the caches at pos; cu entered */
void lora__cuda_qkv_cache_fwd(lora_cuda *cu, float *q, float *k, const float *v,
                              lora_bf16 *k_cache, lora_bf16 *v_cache, const lora_lora_up *lu,
                              const int32_t *pos, const float *cos, const float *sin, int64_t B,
                              int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D);
void lora__cuda_attention_fwd(lora_backend *be, float *out, const float *q, const float *k,
                              const float *v, const lora_attention_shape *shape);
void lora__cuda_attention_bwd(lora_backend *be, float *dq, float *dk, float *dv,
                              const float *dout, const float *q, const float *k,
                              const float *v, const lora_attention_shape *shape);
void lora__cuda_swiglu_fwd(lora_backend *be, float *h, const float *gate, const float *up,
                           int64_t N, int64_t n_inter);
void lora__cuda_swiglu_bwd(lora_backend *be, float *dgate, float *dup, const float *dh,
                           const float *gate, const float *up, int64_t N, int64_t n_inter);
void lora__cuda_swiglu_bf16_fwd(lora_backend *be, float *h, const lora_bf16 *gate,
                                const lora_bf16 *up, int64_t N, int64_t n_inter);
void lora__cuda_swiglu_bf16_bwd(lora_backend *be, float *dgate, float *dup,
                                lora_bf16 *dgate16, lora_bf16 *dup16, const float *dh,
                                const lora_bf16 *gate, const lora_bf16 *up, int64_t N,
                                int64_t n_inter);
void lora__cuda_swiglu_keep_fwd(lora_backend *be, float *h, lora_bf16 *h16, lora_bf16 *gate16,
                                lora_bf16 *up16, const float *gate, const float *up, int64_t N,
                                int64_t n_inter);
void lora__cuda_swiglu_lora_keep_fwd(lora_backend *be, float *h, lora_bf16 *h16,
                                     lora_bf16 *gate16, lora_bf16 *up16, const float *gate,
                                     const float *up, const lora_lora_up *lu, int64_t N,
                                     int64_t n_inter);
void lora__cuda_lora_fwd(lora_backend *be, float *y, float *t, const float *x, const float *A,
                         const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                         float scale);
/* the LoRA paths of g (those with A; where t_only, their t alone), for matmul_bf16_fwd_group's
 * many rows */
void lora__cuda_lora_fwd_group(lora_backend *be, const lora_bf16_group *g, const float *x,
                               int64_t N, int64_t K);
void lora__cuda_lora_bwd_group(lora_backend *be, const lora_lora_group *g, float *dx,
                               float *dA, float *u, const float *x, const float *A, int64_t N,
                               int64_t in, int64_t r);
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
lora_status lora__cuda_tensor_set_create(lora_backend *be, const lora_tensor_ref *t, size_t n,
                                         lora_tensor_set **out);
void lora__cuda_tensor_set_free(lora_backend *be, lora_tensor_set *set);
lora_status lora__cuda_sum_squares_set(lora_backend *be, const lora_tensor_set *set,
                                       double *acc);
void lora__cuda_adamw_set(lora_backend *be, const lora_tensor_set *set,
                          const lora_adamw_args a[2]);
void lora__cuda_cross_entropy_fwd(lora_backend *be, float *nll, float *lse,
                                  const float *logits, const int32_t *targets, int64_t N,
                                  int64_t V);
void lora__cuda_cross_entropy_bwd(lora_backend *be, float *dlogits, const float *logits,
                                  const float *lse, const int32_t *targets, const float *dnll,
                                  int64_t N, int64_t V);
void lora__cuda_matmul_bf16_fwd(lora_backend *be, float *y, const float *x, const lora_bf16 *w,
                                const float *bias, int64_t N, int64_t Nout, int64_t K);
void lora__cuda_matmul_bf16_fwd_group(lora_backend *be, const lora_bf16_group *g,
                                      const float *x, int64_t N, int64_t K);
void lora__cuda_matmul_bf16_bwd(lora_backend *be, float *dx, const float *dy,
                                const lora_bf16 *dy16, const lora_bf16 *w, int64_t N,
                                int64_t Nout, int64_t K, bool accumulate);
void lora__cuda_embedding_bf16_fwd(lora_backend *be, float *x, const int32_t *ids,
                                   const lora_bf16 *table, int64_t N, int64_t C);
void lora__cuda_to_bf16(lora_backend *be, lora_bf16 *dst, const float *src, size_t n);
void lora__cuda_from_bf16(lora_backend *be, float *dst, const lora_bf16 *src, size_t n);
void lora__cuda_attention_bf16kv_fwd(lora_backend *be, float *out, const float *q,
                                     const lora_bf16 *k, const lora_bf16 *v,
                                     const lora_attention_shape *shape);
void lora__cuda_attention_bf16_fwd(lora_backend *be, lora_bf16 *out, float *stats,
                                   const lora_bf16 *q, const lora_bf16 *k, const lora_bf16 *v,
                                   const lora_attention_shape *shape);
void lora__cuda_attention_bf16_bwd(lora_backend *be, float *dq, float *dk, float *dv,
                                   const float *dout, const lora_bf16 *q, const lora_bf16 *k,
                                   const lora_bf16 *v, const lora_bf16 *out,
                                   const float *stats, const lora_attention_shape *shape);
void lora__cuda_ce_chunk_fwd(lora_backend *be, double *state, const float *logits,
                             const int32_t *targets, int64_t N, int64_t Vc, int64_t v0);
void lora__cuda_ce_chunk_finish(lora_backend *be, float *nll, float *lse, const double *state,
                                const int32_t *targets, int64_t N);
void lora__cuda_ce_chunk_bwd(lora_backend *be, float *dlogits, lora_bf16 *dlogits16,
                             const float *logits, const float *lse, const int32_t *targets,
                             const float *dnll, int64_t N, int64_t Vc, int64_t v0);

/* ---- attention: cuDNN's fused SDPA (attention_cudnn.c) and the reference kernels --------- */

/* The reference kernels (attention_reference.cu), float32 throughout; the table's entries run
 * them for what cuDNN does not take. */
void lora__cuda_attention_ref_fwd(lora_backend *be, float *out, const float *q, const float *k,
                                  const float *v, const lora_attention_shape *shape);
void lora__cuda_attention_ref_bwd(lora_backend *be, float *dq, float *dk, float *dv,
                                  const float *dout, const float *q, const float *k,
                                  const float *v, const lora_attention_shape *shape);

/* Attention on cuDNN's flash attention, for BF16 math, causal from position 0 (pos0 == 0, no
 * key0), D a multiple of 8 up to 256, cuDNN >= 9.10.2: true when it was queued (or its failure
 * recorded), false when the caller is to run the reference kernels (the reason is kept for
 * lora__cuda_sdpa_info). Inputs are rounded to bfloat16, as the products of BF16 math are.
 * seq_len (B device int32, or NULL: all T) are the valid rows of each sequence, queries and keys
 * alike: the forward writes 0 to the rows past them, the backward adds nothing there. */
bool lora__cuda_sdpa_fwd(lora_cuda *cu, float *out, const float *q, const float *k,
                         const float *v, const lora_attention_shape *shape,
                         const int32_t *seq_len);
bool lora__cuda_sdpa_bwd(lora_cuda *cu, float *dq, float *dk, float *dv, const float *dout,
                         const float *q, const float *k, const float *v,
                         const lora_attention_shape *shape, const int32_t *seq_len);
/* The same over kept bfloat16 q, k, v (B, T, ...) with S == T and no seq_len, read where they
 * are: the forward writes its bfloat16 output and its softmax statistics (B*H*T floats) to out
 * and stats, and the backward reads them there instead of running the forward again. */
bool lora__cuda_sdpa_bf16_fwd(lora_cuda *cu, lora_bf16 *out, float *stats, const lora_bf16 *q,
                              const lora_bf16 *k, const lora_bf16 *v,
                              const lora_attention_shape *shape);
bool lora__cuda_sdpa_bf16_bwd(lora_cuda *cu, float *dq, float *dk, float *dv, const float *dout,
                              const lora_bf16 *q, const lora_bf16 *k, const lora_bf16 *v,
                              const lora_bf16 *out, const float *stats,
                              const lora_attention_shape *shape);
/* The handle, the cached plans and their descriptors (lora__cuda_backend_free). */
void lora__cuda_sdpa_free(lora_cuda *cu);

typedef struct lora_cuda_sdpa_info {
    bool loaded;              /* libcudnn opened, version new enough */
    size_t version;           /* cudnnGetVersion(), 0 when not loaded */
    bool handle;              /* cudnnCreate succeeded on this backend */
    int plans;                /* plans cached now */
    uint64_t plans_built;     /* execution plans finalized, ever */
    uint64_t plan_hits;       /* calls served by a cached plan */
    uint64_t cudnn_calls;     /* forward and backward calls that ran on cuDNN */
    uint64_t reference_calls; /* calls left to the reference kernels */
    char why[320];            /* the last reason for the reference kernels ("" if none) */
} lora_cuda_sdpa_info;
void lora__cuda_sdpa_info(const lora_backend *be, lora_cuda_sdpa_info *out);

/* Builds and finalizes every tensor and operation descriptor of the forward (bwd false) or
 * backward graph of a shape, and the operation graph over them, without a device or handle;
 * LORA_ERR_DEVICE naming the call that failed (or the library that is missing). What a machine
 * without a GPU can check of the graphs (engine heuristics and plans need the device). */
lora_status lora__cuda_sdpa_check_graph(int64_t B, int64_t T, int64_t H, int64_t KVH,
                                        int64_t D, bool bwd, int *n_ops);

/* Conversions around cuDNN (attention_convert.cu), rows of W values of B sequences, of which
 * the first T of each are converted, src/dst row r of sequence b at b * S + r:
 * bf16 dst (B, T, W) = src (B, S, W) rounded to nearest even; */
void lora__cuda_rows_to_bf16(lora_cuda *cu, void *dst, const float *src, int64_t B, int64_t T,
                             int64_t S, int64_t W, const char *what);
/* dst (B, S, W) [+]= src (B, T, W) (accumulate), rows t >= len[b] left alone (accumulate) or
 * zeroed (not); len may be NULL (all T). */
void lora__cuda_rows_from_bf16(lora_cuda *cu, float *dst, const void *src, int64_t B, int64_t T,
                               int64_t S, int64_t W, const int32_t *len, bool accumulate,
                               const char *what);
/* p[0..n) = value */
void lora__cuda_fill_i32(lora_cuda *cu, int32_t *p, int64_t n, int32_t value, const char *what);

#ifdef __cplusplus
}
#endif

#endif
