/* The CPU backend: the reference implementation of src/backend.h, OpenBLAS for matrix
 * products and the session's thread pool for everything else. */
#ifndef LORA_CPU_CPU_H
#define LORA_CPU_CPU_H

#include "backend.h"
#include "util/threadpool.h"

extern const lora_backend_ops lora__cpu_ops;

#define LORA_CPU_MAX_THREADS 64

/* The CPU backend's state: the thread pool and a scratch buffer per thread, kept between ops
 * (attention's score blocks) and grown on demand. */
typedef struct lora_cpu {
    lora_pool *pool;
    int n_threads;
    float *scratch[LORA_CPU_MAX_THREADS];
    size_t scratch_cap[LORA_CPU_MAX_THREADS];
} lora_cpu;

/* A backend with n_threads threads. */
lora_status lora__cpu_backend_create(int n_threads, lora_backend **out);
void lora__cpu_backend_free(lora_backend *be);

static inline lora_pool *lora__cpu_pool(lora_backend *be) { return ((lora_cpu *)be->impl)->pool; }

/* Makes every thread's scratch hold at least floats; 0 when memory ran out (the buffers keep
 * their old sizes, and the caller takes a path that needs no scratch). */
int lora__cpu_reserve_scratch(lora_backend *be, size_t floats);
static inline float *lora__cpu_scratch(lora_backend *be, int tid)
{
    return ((lora_cpu *)be->impl)->scratch[tid];
}

/* Rows per parallel chunk so that a chunk does roughly `work` flops worth of effort. */
static inline int64_t lora__cpu_grain(int64_t row_cost)
{
    int64_t g = row_cost > 0 ? 16384 / row_cost : 1;
    return g < 1 ? 1 : g;
}

/* The op table's entries; semantics and shapes in src/backend.h. */
void lora__cpu_matmul_fwd(lora_backend *be, float *y, const float *x, const float *w,
                          const float *bias, int64_t N, int64_t Nout, int64_t K);
void lora__cpu_matmul_bwd(lora_backend *be, float *dx, float *dw, float *dbias, const float *dy,
                          const float *x, const float *w, int64_t N, int64_t Nout, int64_t K);
void lora__cpu_embedding_fwd(lora_backend *be, float *x, const int32_t *ids, const float *table,
                             int64_t N, int64_t C);
void lora__cpu_embedding_bwd(lora_backend *be, float *dtable, const float *dx,
                             const int32_t *ids, int64_t N, int64_t C);
void lora__cpu_rmsnorm_fwd(lora_backend *be, float *y, float *rstd, const float *x,
                           const float *w, int64_t N, int64_t C, float eps);
void lora__cpu_rmsnorm_bwd(lora_backend *be, float *dx, float *dw, const float *dy,
                           const float *x, const float *w, const float *rstd, int64_t N,
                           int64_t C);
void lora__cpu_rope_fwd(lora_backend *be, float *x, const int32_t *pos, const float *cos,
                        const float *sin, int64_t N, int64_t heads, int64_t D);
void lora__cpu_rope_bwd(lora_backend *be, float *dx, const int32_t *pos, const float *cos,
                        const float *sin, int64_t N, int64_t heads, int64_t D);
void lora__cpu_attention_fwd(lora_backend *be, float *out, const float *q, const float *k,
                             const float *v, const lora_attention_shape *shape);
void lora__cpu_attention_bwd(lora_backend *be, float *dq, float *dk, float *dv,
                             const float *dout, const float *q, const float *k, const float *v,
                             const lora_attention_shape *shape);
void lora__cpu_swiglu_fwd(lora_backend *be, float *h, const float *gate, const float *up,
                          int64_t N, int64_t n_inter);
void lora__cpu_swiglu_bwd(lora_backend *be, float *dgate, float *dup, const float *dh,
                          const float *gate, const float *up, int64_t N, int64_t n_inter);
void lora__cpu_lora_fwd(lora_backend *be, float *y, float *t, const float *x, const float *A,
                        const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                        float scale);
void lora__cpu_lora_bwd(lora_backend *be, float *dx, float *dA, float *dB, float *u,
                        const float *dy, const float *x, const float *t, const float *A,
                        const float *B, int64_t N, int64_t in, int64_t r, int64_t out,
                        float scale);
/* The blocked GEMM forms of attention for T >= LORA_CPU_ATTN_GEMM_MIN queries: return 0, having
 * done nothing, when their scratch cannot be had. */
#define LORA_CPU_ATTN_GEMM_MIN 16
/* The per-row forms: the reference, and the path for decoding. */
void lora__cpu_attention_fwd_rows(lora_backend *be, float *out, const float *q, const float *k,
                                  const float *v, const lora_attention_shape *shape);
void lora__cpu_attention_bwd_rows(lora_backend *be, float *dq, float *dk, float *dv,
                                  const float *dout, const float *q, const float *k,
                                  const float *v, const lora_attention_shape *shape);
int lora__cpu_attention_fwd_gemm(lora_backend *be, float *out, const float *q, const float *k,
                                 const float *v, const lora_attention_shape *shape);
int lora__cpu_attention_bwd_gemm(lora_backend *be, float *dq, float *dk, float *dv,
                                 const float *dout, const float *q, const float *k,
                                 const float *v, const lora_attention_shape *shape);
void lora__cpu_dropout_fwd(lora_backend *be, float *out, const float *x, int64_t N, int64_t n,
                           float p, uint64_t seed, uint64_t module);
void lora__cpu_dropout_bwd(lora_backend *be, float *dx, const float *dy, int64_t N, int64_t n,
                           float p, uint64_t seed, uint64_t module);
void lora__cpu_residual_fwd(lora_backend *be, float *y, const float *x, int64_t n);
lora_status lora__cpu_mem_alloc(lora_backend *be, size_t bytes, const char *what, void **p);
void lora__cpu_mem_free(lora_backend *be, void *p, size_t bytes);
void lora__cpu_copy(lora_backend *be, void *dst, const void *src, size_t bytes);
void lora__cpu_zero(lora_backend *be, void *dst, size_t bytes);
/* upload and download alike: host memory on both sides */
lora_status lora__cpu_transfer(lora_backend *be, void *dst, const void *src, size_t bytes);
lora_status lora__cpu_sync(lora_backend *be);
/* be is unused and may be NULL (src/train/optim.c's host path) */
lora_status lora__cpu_sum_squares(lora_backend *be, const float *x, size_t n, double *acc);
void lora__cpu_adamw(lora_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                     const lora_adamw_args *a);
void lora__cpu_sgd(lora_backend *be, float *p, const float *g, float *buf, size_t n,
                   const lora_sgd_args *a);
void lora__cpu_cross_entropy_fwd(lora_backend *be, float *nll, float *lse, const float *logits,
                                 const int32_t *targets, int64_t N, int64_t V);
void lora__cpu_cross_entropy_bwd(lora_backend *be, float *dlogits, const float *logits,
                                 const float *lse, const int32_t *targets, const float *dnll,
                                 int64_t N, int64_t V);

#endif
