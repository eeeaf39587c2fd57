#include "util/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "api/error.h"

/* About 50 microseconds of polling before a worker sleeps: longer than the gap between two
 * matrix-vector products while decoding, far shorter than any pause between requests. */
#define SPIN_ROUNDS 20000

struct lora_pool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint_fast64_t generation;  /* bumped once per job */
    atomic_int sleeping;
    atomic_int pending;               /* workers still running the current job */
    atomic_bool stop;
    /* The current job; written before generation is bumped, read after it is seen. */
    lora_pool_fn fn;
    void *ctx;
    int64_t n, chunk;
};

typedef struct worker_arg {
    lora_pool *pool;
    int tid;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_share(lora_pool *p, int tid)
{
    int64_t begin = (int64_t)tid * p->chunk;
    int64_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
    if (begin < end)
        p->fn(p->ctx, begin, end, tid);
}

static uint_fast64_t wait_for_job(lora_pool *p, uint_fast64_t seen)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        uint_fast64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen)
            return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleeping, 1);
    uint_fast64_t g;
    while ((g = atomic_load(&p->generation)) == seen)
        pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->sleeping, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    lora_pool *p = wa->pool;
    int tid = wa->tid;
    free(wa);
    uint_fast64_t seen = 0;
    for (;;) {
        seen = wait_for_job(p, seen);
        if (atomic_load(&p->stop))
            return NULL;
        run_share(p, tid);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

/* Wakes sleeping workers. The seq_cst order of "bump generation, then read sleeping" against the
 * worker's "increment sleeping, then read generation" guarantees one side sees the other. */
static void publish(lora_pool *p)
{
    atomic_fetch_add(&p->generation, 1);
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

lora_status lora__pool_create(int n_threads, lora_pool **out)
{
    *out = NULL;
    if (n_threads < 1)
        n_threads = 1;
    lora_pool *p = calloc(1, sizeof *p);
    if (!p)
        return lora__oom("thread pool", sizeof *p);
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            lora__pool_free(p);
            return lora__oom("thread pool", sizeof *p->workers * (size_t)n_threads);
        }
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) {
            wa->pool = p;
            wa->tid = i;
        }
        if (!wa || pthread_create(&p->workers[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n_threads = i; /* only workers 1..i-1 exist; free joins those */
            lora__pool_free(p);
            return lora__error(LORA_ERR_OUT_OF_MEMORY, "could not start worker thread %d of %d",
                               i, n_threads);
        }
    }
    *out = p;
    return LORA_OK;
}

void lora__pool_free(lora_pool *p)
{
    if (!p)
        return;
    if (p->n_threads > 1) {
        atomic_store(&p->stop, true);
        publish(p);
        for (int i = 1; i < p->n_threads; i++)
            pthread_join(p->workers[i - 1], NULL);
    }
    free(p->workers);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

int lora__pool_threads(const lora_pool *p) { return p->n_threads; }

void lora__pool_run(lora_pool *p, lora_pool_fn fn, void *ctx, int64_t n, int64_t grain)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int64_t groups = (n + grain - 1) / grain;
    int64_t per = (groups + p->n_threads - 1) / p->n_threads;
    int64_t chunk = per * grain;
    if (p->n_threads == 1 || chunk >= n) {
        fn(ctx, 0, n, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = chunk;
    atomic_store(&p->pending, p->n_threads - 1);
    publish(p);
    run_share(p, 0);
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_ROUNDS)
            cpu_relax();
        else
            sched_yield();
    }
}
