/* A growable byte string whose appends never fail one by one: the first allocation failure
 * sticks, later appends do nothing, and the builder asks once at the end. */
#ifndef LORA_UTIL_STRBUF_H
#define LORA_UTIL_STRBUF_H

#include <stddef.h>

#include "lora.h"

typedef struct lora__strbuf {
    char *data;     /* NUL-terminated once anything was added */
    size_t len, cap;
    size_t failed;  /* bytes of the allocation that failed, 0 while none did */
} lora__strbuf;

void lora__strbuf_add(lora__strbuf *b, const char *s, size_t n);
void lora__strbuf_adds(lora__strbuf *b, const char *s);
/* LORA_OK, or LORA_ERR_OUT_OF_MEMORY naming what (the buffer stays valid to free). */
lora_status lora__strbuf_status(const lora__strbuf *b, const char *what);
/* The malloc'd NUL-terminated text (never NULL unless out of memory); b is emptied. */
char *lora__strbuf_take(lora__strbuf *b);
void lora__strbuf_free(lora__strbuf *b);

#endif
