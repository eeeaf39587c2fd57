#include "util/strbuf.h"

#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/alloc.h"

static int reserve(lora__strbuf *b, size_t extra)
{
    if (b->failed)
        return 0;
    if (extra < b->cap - b->len)
        return 1;
    size_t need = b->len + extra + 1;
    if (need <= b->len) {
        b->failed = (size_t)-1;
        return 0;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    char *p = lora__realloc(b->data, cap);
    if (!p) {
        b->failed = cap;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

void lora__strbuf_add(lora__strbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void lora__strbuf_adds(lora__strbuf *b, const char *s) { lora__strbuf_add(b, s, strlen(s)); }

lora_status lora__strbuf_status(const lora__strbuf *b, const char *what)
{
    return b->failed ? lora__oom(what, b->failed) : LORA_OK;
}

char *lora__strbuf_take(lora__strbuf *b)
{
    if (!reserve(b, 0))
        return NULL;
    b->data[b->len] = '\0';
    char *s = b->data;
    *b = (lora__strbuf){0};
    return s;
}

void lora__strbuf_free(lora__strbuf *b)
{
    free(b->data);
    *b = (lora__strbuf){0};
}
