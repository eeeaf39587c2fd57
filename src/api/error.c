#include "api/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Big enough for a path, a key and a shape; longer messages are cut, never overflowed. */
#define LORA_ERROR_CAP 1024

static _Thread_local char error_msg[LORA_ERROR_CAP];

lora_status lora__error(lora_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_msg, sizeof error_msg, fmt, ap);
    va_end(ap);
    return status;
}

lora_status lora__error_prefix(lora_status status, const char *fmt, ...)
{
    char prefix[LORA_ERROR_CAP];
    char old[LORA_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_msg, sizeof old);
    /* prefix + ": " + old, cut to the buffer */
    size_t k = strlen(prefix);
    if (k > sizeof error_msg - 3)
        k = sizeof error_msg - 3;
    memcpy(error_msg, prefix, k);
    memcpy(error_msg + k, ": ", 2);
    k += 2;
    size_t rest = strlen(old);
    if (rest > sizeof error_msg - 1 - k)
        rest = sizeof error_msg - 1 - k;
    memcpy(error_msg + k, old, rest);
    error_msg[k + rest] = '\0';
    return status;
}

void lora__error_clear(void) { error_msg[0] = '\0'; }

lora_status lora__oom(const char *what, size_t bytes)
{
    return lora__error(LORA_ERR_OUT_OF_MEMORY, "out of memory allocating %zu bytes for %s", bytes,
                       what);
}

LORA_API const char *lora_last_error(void) { return error_msg; }

LORA_API const char *lora_status_string(lora_status status)
{
    switch (status) {
    case LORA_OK: return "LORA_OK";
    case LORA_ERR_INVALID_ARGUMENT: return "LORA_ERR_INVALID_ARGUMENT";
    case LORA_ERR_OUT_OF_MEMORY: return "LORA_ERR_OUT_OF_MEMORY";
    case LORA_ERR_IO: return "LORA_ERR_IO";
    case LORA_ERR_FORMAT: return "LORA_ERR_FORMAT";
    case LORA_ERR_CONFIG: return "LORA_ERR_CONFIG";
    case LORA_ERR_UNSUPPORTED: return "LORA_ERR_UNSUPPORTED";
    case LORA_ERR_SHAPE: return "LORA_ERR_SHAPE";
    case LORA_ERR_RANGE: return "LORA_ERR_RANGE";
    case LORA_ERR_STATE: return "LORA_ERR_STATE";
    case LORA_ERR_NUMERIC: return "LORA_ERR_NUMERIC";
    case LORA_ERR_DEVICE: return "LORA_ERR_DEVICE";
    case LORA_ERR_DEVICE_OUT_OF_MEMORY: return "LORA_ERR_DEVICE_OUT_OF_MEMORY";
    case LORA_ERR_CANCELLED: return "LORA_ERR_CANCELLED";
    case LORA_ERR_INTERNAL: return "LORA_ERR_INTERNAL";
    }
    return "LORA_ERR_UNKNOWN";
}

LORA_API void lora_string_free(char *s) { free(s); }
