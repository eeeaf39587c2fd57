/* Thread-local error messages: every failing internal function sets one and returns its status. */
#ifndef LORA_API_ERROR_H
#define LORA_API_ERROR_H

#include "lora.h"

#if defined(__GNUC__)
#  define LORA__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define LORA__PRINTF(a, b)
#endif

/* Sets the calling thread's message (printf format) and returns status, so that failures read
 * `return lora__error(LORA_ERR_FORMAT, "%s: header length %llu", path, n);`. */
lora_status lora__error(lora_status status, const char *fmt, ...) LORA__PRINTF(2, 3);

/* Prefixes the current message with "context: ", keeping the status, so that a caller can say
 * which public function or file the failure was under. Returns status. */
lora_status lora__error_prefix(lora_status status, const char *fmt, ...) LORA__PRINTF(2, 3);

/* Empties the calling thread's message; public entry points call it first. */
void lora__error_clear(void);

/* LORA_ERR_OUT_OF_MEMORY with a message naming what could not be allocated. */
lora_status lora__oom(const char *what, size_t bytes);

#endif
