/* Device memory of the CUDA backend: counted allocations (for the peak report), the op
 * scratch, the planned arena, and synchronous transfers. */
#include <stdatomic.h>
#include <stdio.h>

#include "api/error.h"
#include "internal.h"

#define ARENA_ALIGN 256 /* cudaMalloc's own alignment: every slice suits cuBLASLt's best kernels */

/* What every backend of the process holds on each device, for lora_device_memory: backends
 * of one device (a model's, each session's) run on different threads. */
static _Atomic size_t held[LORA_CUDA_COUNTED_DEVICES], held_peak[LORA_CUDA_COUNTED_DEVICES];

static void count(int ordinal, size_t bytes, bool add)
{
    if (ordinal < 0 || ordinal >= LORA_CUDA_COUNTED_DEVICES)
        return;
    if (!add) {
        atomic_fetch_sub(&held[ordinal], bytes);
        return;
    }
    size_t now = atomic_fetch_add(&held[ordinal], bytes) + bytes;
    size_t peak = atomic_load(&held_peak[ordinal]);
    while (now > peak && !atomic_compare_exchange_weak(&held_peak[ordinal], &peak, now))
        ;
}

void lora__cuda_device_memory(int ordinal, size_t *in_use, size_t *peak, bool reset_peak)
{
    *in_use = *peak = 0;
    if (ordinal < 0 || ordinal >= LORA_CUDA_COUNTED_DEVICES)
        return;
    *in_use = atomic_load(&held[ordinal]);
    *peak = reset_peak ? atomic_exchange(&held_peak[ordinal], *in_use)
                       : atomic_load(&held_peak[ordinal]);
}

void *lora__cuda_malloc(lora_cuda *cu, size_t bytes, const char *what)
{
    void *p = NULL;
    char ctx[96];
    snprintf(ctx, sizeof ctx, "cudaMalloc %zu bytes (%s)", bytes, what);
    if (lora__cuda_check(cu, cudaMalloc(&p, bytes ? bytes : 1), ctx))
        return NULL;
    cu->device_bytes += bytes;
    if (cu->device_bytes > cu->device_peak)
        cu->device_peak = cu->device_bytes;
    count(cu->ordinal, bytes, true);
    return p;
}

void lora__cuda_free_mem(lora_cuda *cu, void *p, size_t bytes)
{
    if (!p)
        return;
    (void)cudaFree(p);
    cu->device_bytes -= bytes;
    count(cu->ordinal, bytes, false);
}

void *lora__cuda_scratch(lora_cuda *cu, size_t bytes)
{
    if (bytes <= cu->scratch_cap)
        return cu->scratch;
    /* a recorded op would keep the old block's address; the recording that needs more fails
     * (graph.c: the step runs as it is, the next one records again) */
    if (cu->capturing) {
        lora__cuda_fail(cu, LORA_ERR_STATE, "op scratch of %zu bytes needed while a graph "
                        "records (%zu held)", bytes, cu->scratch_cap);
        return NULL;
    }
    cu->scratch_gen++;
    /* cudaFree waits for the device, so no queued op still reads the old block */
    lora__cuda_free_mem(cu, cu->scratch, cu->scratch_cap);
    cu->scratch_cap = 0;
    cu->scratch = lora__cuda_malloc(cu, bytes, "op scratch");
    if (cu->scratch)
        cu->scratch_cap = bytes;
    return cu->scratch;
}

size_t lora__cuda_arena_size(size_t bytes)
{
    return (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

lora_status lora__cuda_arena_plan(lora_backend *be, size_t bytes)
{
    lora_cuda *cu = be->impl;
    lora_status st = lora__cuda_report(cu);
    if (st)
        return st;
    if (cu->arena_used)
        return lora__error(LORA_ERR_STATE, "cuda:%d: arena plan with %zu bytes still taken",
                           cu->ordinal, cu->arena_used);
    bytes = lora__cuda_arena_size(bytes);
    if (bytes <= cu->arena_cap)
        return LORA_OK;
    if (lora__cuda_check(cu, cudaSetDevice(cu->ordinal), "cudaSetDevice"))
        return lora__cuda_report(cu);
    size_t old = cu->arena_cap;
    /* the old arena goes first, so that a plan needs only its own size on the device */
    lora__cuda_free_mem(cu, cu->arena, cu->arena_cap);
    cu->arena = NULL;
    cu->arena_cap = 0;
    cu->arena = lora__cuda_malloc(cu, bytes, "arena");
    if (cu->arena) {
        cu->arena_cap = bytes;
        return LORA_OK;
    }
    st = lora__cuda_report(cu);
    if (old) {
        /* best effort: the previous plan back, so that the shapes it served still run */
        void *p = NULL;
        if (cudaMalloc(&p, old) == cudaSuccess) {
            cu->arena = p;
            cu->arena_cap = old;
            cu->device_bytes += old;
        } else
            (void)cudaGetLastError();
    }
    return st;
}

lora_status lora__cuda_arena_take(lora_backend *be, size_t bytes, void **p)
{
    lora_cuda *cu = be->impl;
    *p = NULL;
    bytes = lora__cuda_arena_size(bytes);
    if (bytes > cu->arena_cap - cu->arena_used)
        return lora__error(LORA_ERR_INTERNAL, "cuda:%d: arena planned for %zu bytes, %zu taken, "
                           "%zu more asked", cu->ordinal, cu->arena_cap, cu->arena_used, bytes);
    *p = cu->arena + cu->arena_used;
    cu->arena_used += bytes;
    if (cu->arena_used > cu->arena_peak)
        cu->arena_peak = cu->arena_used;
    return LORA_OK;
}

void lora__cuda_arena_reset(lora_backend *be) { ((lora_cuda *)be->impl)->arena_used = 0; }

void lora__cuda_memory(const lora_backend *be, lora_cuda_memory *out)
{
    const lora_cuda *cu = be->impl;
    out->arena_bytes = cu->arena_cap;
    out->arena_peak = cu->arena_peak;
    out->device_bytes = cu->device_bytes;
    out->device_peak = cu->device_peak;
}

static lora_status copy(lora_backend *be, void *dst, const void *src, size_t bytes,
                        enum cudaMemcpyKind kind, const char *what)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (cu && bytes)
        lora__cuda_queued(cu, cudaMemcpyAsync(dst, src, bytes, kind, cu->stream), what);
    return lora__cuda_sync(be);
}

lora_status lora__cuda_upload(lora_backend *be, void *dst, const void *src, size_t bytes)
{
    return copy(be, dst, src, bytes, cudaMemcpyHostToDevice, "cudaMemcpy to the device");
}

lora_status lora__cuda_download(lora_backend *be, void *dst, const void *src, size_t bytes)
{
    return copy(be, dst, src, bytes, cudaMemcpyDeviceToHost, "cudaMemcpy from the device");
}

lora_status lora__cuda_fill(lora_backend *be, void *dst, int byte, size_t bytes)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (cu && bytes)
        lora__cuda_queued(cu, cudaMemsetAsync(dst, byte, bytes, cu->stream), "cudaMemset");
    return lora__cuda_sync(be);
}

/* ---- the op table's memory entries ---------------------------------------------------------- */

lora_status lora__cuda_mem_alloc(lora_backend *be, size_t bytes, const char *what, void **p)
{
    *p = NULL;
    lora_cuda *cu = lora__cuda_enter(be);
    if (cu)
        *p = lora__cuda_malloc(cu, bytes, what);
    /* reports the failure of this allocation, or the one pending before it */
    lora_status st = lora__cuda_report(be->impl);
    if (st && *p) {
        lora__cuda_free_mem(be->impl, *p, bytes);
        *p = NULL;
    }
    return st;
}

void lora__cuda_mem_free(lora_backend *be, void *p, size_t bytes)
{
    lora_cuda *cu = be->impl;
    if (!p)
        return;
    (void)cudaSetDevice(cu->ordinal);
    lora__cuda_free_mem(cu, p, bytes);
}

void lora__cuda_copy(lora_backend *be, void *dst, const void *src, size_t bytes)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (cu && bytes)
        lora__cuda_queued(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                             cu->stream), "cudaMemcpy on the device");
}

void lora__cuda_zero(lora_backend *be, void *dst, size_t bytes)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (cu && bytes)
        lora__cuda_queued(cu, cudaMemsetAsync(dst, 0, bytes, cu->stream), "cudaMemset");
}

lora_status lora__cuda_sum_squares_acc(lora_backend *be, const float *x, size_t n, double *acc)
{
    double s;
    lora_status st = lora__cuda_sum_squares(be, x, n, &s);
    if (!st)
        *acc += s;
    return st;
}
