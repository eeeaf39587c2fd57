/* Growable arrays for the tokenizer's per-call work: amortised doubling, errors as values. */
#ifndef LORA_TOKENIZER_BYTEBUF_H
#define LORA_TOKENIZER_BYTEBUF_H

#include <stddef.h>
#include <stdint.h>

#include "lora.h"

typedef struct lora__bytebuf {
    unsigned char *p;
    size_t len, cap;
} lora__bytebuf;

/* Makes room for `more` bytes past len. */
lora_status lora__bytebuf_reserve(lora__bytebuf *b, size_t more);
lora_status lora__bytebuf_append(lora__bytebuf *b, const void *data, size_t n);
void lora__bytebuf_free(lora__bytebuf *b);

/* A growable array of elements of `size` bytes: `cap` counts elements. */
lora_status lora__grow(void **p, size_t *cap, size_t need, size_t size, const char *what);

#endif
