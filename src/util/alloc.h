/* Every heap allocation of the library goes through these, so that a test can make the k-th
 * one fail (lora__fault_alloc) and check that each error path cleans up. The memory is plain
 * malloc memory and free() releases it: it crosses into jansson, PCRE2 and lora_string_free.
 * Allocations made inside OpenBLAS and utf8proc stay outside (neither takes an allocator), and
 * so do OpenSSL's (its allocator is process-wide: the host program's). */
#ifndef LORA_UTIL_ALLOC_H
#define LORA_UTIL_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "api/error.h"

void *lora__malloc(size_t n);
void *lora__calloc(size_t n, size_t size);
void *lora__realloc(void *p, size_t n);
void *lora__aligned_alloc(size_t align, size_t n);
char *lora__strdup(const char *s);
char *lora__strndup(const char *s, size_t n);
int lora__asprintf(char **out, const char *fmt, ...) LORA__PRINTF(2, 3);

/* PCRE2's general-context allocator (pcre2_general_context_create). */
void *lora__pcre2_malloc(size_t n, void *ctx);
void lora__pcre2_free(void *p, void *ctx);

/* ---- test control ---------------------------------------------------------------------------
 * Armed, the allocations above (and jansson's, routed here from the first arming on, except
 * while held) are counted from 1, and the k-th fails (ONCE) or every one from the k-th on fails
 * (FROM), as if the heap were exhausted. Not for production use: the counter is process-wide. */
typedef enum lora__fault_mode {
    LORA__FAULT_OFF,
    LORA__FAULT_ONCE,
    LORA__FAULT_FROM
} lora__fault_mode;

/* While a thread holds (depth > 0), jansson's allocations on it are not failed
 * (util/json_text.h says why); delta is +1 or -1. */
void lora__fault_hold(int delta);
/* Arms (or, with LORA__FAULT_OFF, disarms) and zeroes both counters. */
void lora__fault_alloc(uint64_t k, lora__fault_mode mode);
/* Allocations seen and failures injected since the last lora__fault_alloc. */
uint64_t lora__fault_alloc_count(void);
uint64_t lora__fault_alloc_injected(void);

#endif
