/* The streaming decoder: bytes of a character split across tokens wait for the rest, so every
 * piece of output is whole characters and their concatenation is lora_tokenizer_decode's. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "api/handle.h"
#include "tokenizer/internal.h"
#include "tokenizer/utf8.h"
#include "util/alloc.h"

struct lora_detokenizer {
    lora_tokenizer *t;
    int skip_special;
    lora__bytebuf pending; /* bytes not yet shown: at most an incomplete character */
    lora__bytebuf text;    /* the last call's output */
};

LORA_API lora_status lora_detokenizer_create(lora_tokenizer *tokenizer, unsigned flags,
                                             lora_detokenizer **out)
{
    lora__error_clear();
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_detokenizer_create: out is NULL");
    *out = NULL;
    lora_status st = lora__handle_check(tokenizer, LORA__KIND_TOKENIZER, "lora_detokenizer_create",
                                        "tokenizer");
    if (st)
        return st;
    if (flags & ~LORA_DECODE_SKIP_SPECIAL)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_detokenizer_create: unknown flags "
                           "0x%x", flags & ~LORA_DECODE_SKIP_SPECIAL);
    lora_detokenizer *d = lora__calloc(1, sizeof *d);
    if (!d)
        return lora__error_prefix(lora__oom("detokenizer", sizeof *d), "lora_detokenizer_create");
    if ((st = lora__handle_add(d, LORA__KIND_DETOKENIZER))) {
        free(d);
        return lora__error_prefix(st, "lora_detokenizer_create");
    }
    lora__tokenizer_retain(tokenizer);
    d->t = tokenizer;
    d->skip_special = (flags & LORA_DECODE_SKIP_SPECIAL) != 0;
    *out = d;
    return LORA_OK;
}

static lora_status check_out(const lora_detokenizer *d, const char **text, size_t *len,
                             const char *where)
{
    lora_status st = lora__handle_check(d, LORA__KIND_DETOKENIZER, where, "detok");
    if (st)
        return st;
    if (!text || !len)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", where,
                           !text ? "text" : "len");
    return LORA_OK;
}

/* Shows pending bytes up to `keep` from the end as text. */
static lora_status show(lora_detokenizer *d, size_t keep, const char **text, size_t *len)
{
    d->text.len = 0;
    size_t n = d->pending.len - keep;
    lora_status st = lora__utf8_append_lossy(&d->text, d->pending.p, n);
    if (st)
        return st;
    if (keep)
        memmove(d->pending.p, d->pending.p + n, keep);
    d->pending.len = keep;
    *text = d->text.p ? (const char *)d->text.p : "";
    *len = d->text.len;
    return LORA_OK;
}

LORA_API lora_status lora_detokenizer_push(lora_detokenizer *detok, int32_t id,
                                           const char **text, size_t *len)
{
    lora__error_clear();
    lora_status st = check_out(detok, text, len, "lora_detokenizer_push");
    if (st)
        return st;
    *text = "";
    *len = 0;
    size_t before = detok->pending.len;
    st = lora__decode_bytes(detok->t, &id, 1, detok->skip_special, &detok->pending,
                            "lora_detokenizer_push");
    if (st) {
        detok->pending.len = before;
        return st;
    }
    return show(detok, lora__utf8_incomplete_tail(detok->pending.p, detok->pending.len), text, len);
}

LORA_API lora_status lora_detokenizer_flush(lora_detokenizer *detok, const char **text,
                                            size_t *len)
{
    lora__error_clear();
    lora_status st = check_out(detok, text, len, "lora_detokenizer_flush");
    if (st)
        return st;
    *text = "";
    *len = 0;
    return show(detok, 0, text, len);
}

LORA_API void lora_detokenizer_free(lora_detokenizer *detok)
{
    if (!lora__handle_freeable(detok, LORA__KIND_DETOKENIZER, "lora_detokenizer_free", "detok"))
        return;
    lora__handle_remove(detok);
    lora__tokenizer_release(detok->t);
    lora__bytebuf_free(&detok->pending);
    lora__bytebuf_free(&detok->text);
    free(detok);
}
