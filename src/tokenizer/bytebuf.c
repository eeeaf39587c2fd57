#include "tokenizer/bytebuf.h"

#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/alloc.h"

lora_status lora__grow(void **p, size_t *cap, size_t need, size_t size, const char *what)
{
    if (need <= *cap)
        return LORA_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / size)
            return lora__oom(what, SIZE_MAX);
        c *= 2;
    }
    void *q = lora__realloc(*p, c * size);
    if (!q)
        return lora__oom(what, c * size);
    *p = q;
    *cap = c;
    return LORA_OK;
}

lora_status lora__bytebuf_reserve(lora__bytebuf *b, size_t more)
{
    if (more > SIZE_MAX - b->len - 1)
        return lora__oom("text", SIZE_MAX);
    /* one spare byte so that callers may NUL-terminate */
    void *p = b->p;
    lora_status st = lora__grow(&p, &b->cap, b->len + more + 1, 1, "text");
    b->p = p;
    return st;
}

lora_status lora__bytebuf_append(lora__bytebuf *b, const void *data, size_t n)
{
    lora_status st = lora__bytebuf_reserve(b, n);
    if (st)
        return st;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    return LORA_OK;
}

void lora__bytebuf_free(lora__bytebuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
