/* A fixed pool of worker threads for data-parallel loops. The caller's thread works too, so a
 * pool of n threads starts n - 1 workers. Between jobs, workers spin briefly (decode issues a
 * job every few microseconds) and then sleep on a condition variable. */
#ifndef LORA_UTIL_THREADPOOL_H
#define LORA_UTIL_THREADPOOL_H

#include <stdint.h>

#include "lora.h"

typedef struct lora_pool lora_pool;

/* fn processes items [begin, end); tid is 0..n_threads-1. */
typedef void (*lora_pool_fn)(void *ctx, int64_t begin, int64_t end, int tid);

lora_status lora__pool_create(int n_threads, lora_pool **out);
void lora__pool_free(lora_pool *p);
int lora__pool_threads(const lora_pool *p);

/* Splits [0, n) into at most n_threads contiguous ranges whose sizes are multiples of grain
 * (except the last) and runs them in parallel; returns when all are done. Runs inline when one
 * range covers everything. Not reentrant: fn must not call lora__pool_run on the same pool. */
void lora__pool_run(lora_pool *p, lora_pool_fn fn, void *ctx, int64_t n, int64_t grain);

#endif
