#include "util/alloc.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int armed;            /* a lora__fault_mode */
static _Atomic uint64_t fail_at, seen, injected;

/* 1 when this allocation is to fail; costs one relaxed load while disarmed. */
static int fault(void)
{
    int mode = atomic_load_explicit(&armed, memory_order_relaxed);
    if (mode == LORA__FAULT_OFF)
        return 0;
    uint64_t k = atomic_fetch_add(&seen, 1) + 1, at = atomic_load(&fail_at);
    if (mode == LORA__FAULT_ONCE ? k != at : k < at)
        return 0;
    atomic_fetch_add(&injected, 1);
    return 1;
}

void *lora__malloc(size_t n) { return fault() ? NULL : malloc(n); }

void *lora__calloc(size_t n, size_t size) { return fault() ? NULL : calloc(n, size); }

void *lora__realloc(void *p, size_t n) { return fault() ? NULL : realloc(p, n); }

void *lora__aligned_alloc(size_t align, size_t n)
{
    return fault() ? NULL : aligned_alloc(align, n);
}

char *lora__strdup(const char *s) { return fault() ? NULL : strdup(s); }

char *lora__strndup(const char *s, size_t n) { return fault() ? NULL : strndup(s, n); }

int lora__asprintf(char **out, const char *fmt, ...)
{
    if (fault())
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(out, fmt, ap);
    va_end(ap);
    return r;
}

void *lora__pcre2_malloc(size_t n, void *ctx)
{
    (void)ctx;
    return lora__malloc(n);
}

void lora__pcre2_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

/* jansson's allocator is process-wide and belongs to the host program, so production code
 * leaves it alone; only a test that arms faults routes it here (malloc-compatible, so values
 * allocated before stay valid). */
static _Thread_local int held;

void lora__fault_hold(int delta) { held += delta; }

static void *jansson_malloc(size_t n) { return held ? malloc(n) : lora__malloc(n); }

static void route_jansson(void) { json_set_alloc_funcs(jansson_malloc, free); }

void lora__fault_alloc(uint64_t k, lora__fault_mode mode)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (mode != LORA__FAULT_OFF)
        pthread_once(&once, route_jansson);
    atomic_store(&armed, LORA__FAULT_OFF);
    atomic_store(&seen, 0);
    atomic_store(&injected, 0);
    atomic_store(&fail_at, k);
    atomic_store(&armed, (int)mode);
}

uint64_t lora__fault_alloc_count(void) { return atomic_load(&seen); }

uint64_t lora__fault_alloc_injected(void) { return atomic_load(&injected); }
