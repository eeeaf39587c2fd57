/* Data-parallel loops over OpenMP. OpenBLAS (its OpenMP build) runs single-threaded when called
 * inside an active parallel region, and its buffers are locked, so every thread may call BLAS on
 * its own slice: one level of threads, never OpenBLAS's threads on top of ours. */
#ifndef LORA_UTIL_THREADPOOL_H
#define LORA_UTIL_THREADPOOL_H

#include <stdint.h>

#include "lora.h"

typedef struct lora_pool lora_pool;

/* fn processes items [begin, end); tid is 0..n_threads-1, the calling thread's index in the team
 * (a thread may run several ranges one after another, never two at once). */
typedef void (*lora_pool_fn)(void *ctx, int64_t begin, int64_t end, int tid);

lora_status lora__pool_create(int n_threads, lora_pool **out);
void lora__pool_free(lora_pool *p);

/* Splits [0, n) into at most n_threads contiguous ranges whose sizes are multiples of grain
 * (except the last) and runs them in parallel; returns when all are done. Runs inline on the
 * caller's thread when one range covers everything. */
void lora__pool_run(lora_pool *p, lora_pool_fn fn, void *ctx, int64_t n, int64_t grain);

/* As lora__pool_run, for fn that calls BLAS: a single range still runs inside a (one-thread)
 * parallel region whose thread limit is 1, so OpenBLAS never starts threads of its own. */
void lora__pool_run_blas(lora_pool *p, lora_pool_fn fn, void *ctx, int64_t n, int64_t grain);

#endif
