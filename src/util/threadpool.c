#include "util/threadpool.h"

#include <omp.h>
#include <stdlib.h>

#include "api/error.h"
#include "util/alloc.h"

struct lora_pool {
    int n_threads;
};

lora_status lora__pool_create(int n_threads, lora_pool **out)
{
    *out = NULL;
    lora_pool *p = lora__malloc(sizeof *p);
    if (!p)
        return lora__oom("thread pool", sizeof *p);
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    *out = p;
    return LORA_OK;
}

void lora__pool_free(lora_pool *p) { free(p); }

static int64_t chunk_size(const lora_pool *p, int64_t n, int64_t grain)
{
    if (grain < 1)
        grain = 1;
    int64_t groups = (n + grain - 1) / grain;
    int64_t per = (groups + p->n_threads - 1) / p->n_threads;
    return per * grain;
}

static void run_region(lora_pool_fn fn, void *ctx, int64_t n, int64_t chunk, int teams)
{
#pragma omp parallel num_threads(teams)
    {
        /* confines nested parallelism (OpenBLAS's own) to one thread, for this region only */
        omp_set_num_threads(1);
        /* OpenMP may give fewer threads than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC, a caller's
         * own parallel region with nesting off): each thread then takes every nth range, so
         * the ranges, and the results, are the same whatever the team */
        int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        for (int r = tid; r < teams; r += nth) {
            int64_t begin = (int64_t)r * chunk;
            int64_t end = begin + chunk < n ? begin + chunk : n;
            if (begin < end)
                fn(ctx, begin, end, tid);
        }
    }
}

void lora__pool_run(lora_pool *p, lora_pool_fn fn, void *ctx, int64_t n, int64_t grain)
{
    if (n <= 0)
        return;
    int64_t chunk = chunk_size(p, n, grain);
    if (chunk >= n)
        fn(ctx, 0, n, 0);
    else
        run_region(fn, ctx, n, chunk, (int)((n + chunk - 1) / chunk));
}

void lora__pool_run_blas(lora_pool *p, lora_pool_fn fn, void *ctx, int64_t n, int64_t grain)
{
    if (n <= 0)
        return;
    int64_t chunk = chunk_size(p, n, grain);
    run_region(fn, ctx, n, chunk, (int)((n + chunk - 1) / chunk));
}
