/* The CPU backend's memory entries: host memory, so allocation is the library's allocator and
 * the transfers are plain copies. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "cpu/cpu.h"
#include "util/alloc.h"

lora_status lora__cpu_mem_alloc(lora_backend *be, size_t bytes, const char *what, void **p)
{
    (void)be;
    size_t rounded = (bytes + 63) / 64 * 64;
    *p = lora__aligned_alloc(64, rounded ? rounded : 64);
    return *p ? LORA_OK : lora__oom(what, bytes);
}

void lora__cpu_mem_free(lora_backend *be, void *p, size_t bytes)
{
    (void)be;
    (void)bytes;
    free(p);
}

void lora__cpu_copy(lora_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memcpy(dst, src, bytes);
}

void lora__cpu_zero(lora_backend *be, void *dst, size_t bytes)
{
    (void)be;
    if (bytes)
        memset(dst, 0, bytes);
}

lora_status lora__cpu_transfer(lora_backend *be, void *dst, const void *src, size_t bytes)
{
    lora__cpu_copy(be, dst, src, bytes);
    return LORA_OK;
}

lora_status lora__cpu_sync(lora_backend *be)
{
    (void)be;
    return LORA_OK;
}
