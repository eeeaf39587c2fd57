/* The tokenized samples of one file, end to end, shared read-only by the datasets split from
 * it. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "data/dataset.h"
#include "util/alloc.h"

lora_status lora__store_create(lora__store **out)
{
    *out = NULL;
    lora__store *st = lora__calloc(1, sizeof *st);
    if (!st || !(st->off = lora__calloc(1, sizeof *st->off))) {
        free(st);
        return lora__oom("a dataset", sizeof *st);
    }
    atomic_init(&st->refs, 1);
    *out = st;
    return LORA_OK;
}

/* The capacity to grow cap to for need items (cap itself when it suffices). */
static size_t grown(size_t cap, size_t need)
{
    size_t c = cap ? cap : 64;
    while (c < need)
        c *= 2;
    return c;
}

/* Reallocates *p to c items; on failure *p stays valid with its old size. */
static int resize(void *p, size_t c, size_t size)
{
    void **pp = p;
    void *q = lora__realloc(*pp, c * size);
    if (!q)
        return 0;
    *pp = q;
    return 1;
}

lora_status lora__store_add(lora__store *st, const lora__sample *s, size_t max_length)
{
    size_t n = s->n < max_length ? s->n : max_length;
    size_t ct = grown(st->cap_tokens, st->n_tokens + n);
    if (ct != st->cap_tokens) {
        if (!resize(&st->ids, ct, sizeof *st->ids) || !resize(&st->loss, ct, 1))
            return lora__oom("the tokenized samples", ct * sizeof *st->ids);
        st->cap_tokens = ct;
    }
    /* off holds one entry more than truncated */
    size_t cs = grown(st->cap_samples, st->n + 2);
    if (cs != st->cap_samples) {
        if (!resize(&st->off, cs, sizeof *st->off) || !resize(&st->truncated, cs, 1))
            return lora__oom("the sample offsets", cs * sizeof *st->off);
        st->cap_samples = cs;
    }
    if (n) {
        memcpy(st->ids + st->n_tokens, s->ids, n * sizeof *st->ids);
        memcpy(st->loss + st->n_tokens, s->loss, n);
    }
    st->truncated[st->n] = s->n > n;
    st->n_tokens += n;
    st->off[++st->n] = st->n_tokens;
    return LORA_OK;
}

lora_status lora__store_note_error(lora__store *st, const char *msg)
{
    if (st->n_errors == LORA__KEPT_ERRORS)
        return LORA_OK;
    if (!(st->errors[st->n_errors] = lora__strdup(msg)))
        return lora__oom("a bad line's message", strlen(msg));
    st->n_errors++;
    return LORA_OK;
}

void lora__store_retain(lora__store *st) { atomic_fetch_add(&st->refs, 1); }

void lora__store_release(lora__store *st)
{
    if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    free(st->ids);
    free(st->loss);
    free(st->off);
    free(st->truncated);
    for (size_t i = 0; i < st->n_errors; i++)
        free(st->errors[i]);
    free(st);
}
