/* Reading a JSONL file into tokenized samples: every line checked, bad ones failing the load
 * (strict) or skipped and counted (lenient). */
#include <string.h>

#include "api/error.h"
#include "data/dataset.h"
#include "util/json_text.h"

#define WHERE "lora_dataset_load"

/* 1 when a token the model predicts (any after the first: Hugging Face shifts labels, and a
 * packed sample's first label is dropped) is in the loss once cut to max_length. */
static int has_loss(const lora__sample *s, size_t max_length)
{
    size_t n = s->n < max_length ? s->n : max_length;
    for (size_t k = 1; k < n; k++)
        if (s->loss[k])
            return 1;
    return 0;
}

/* One line to a sample: LORA_ERR_FORMAT (with its message) makes it a bad line. */
static lora_status parse_line(const lora_tokenizer *t, const lora__dataset_config *cfg,
                              const char *line, size_t len, lora__line_kind kind,
                              lora__sample *s)
{
    *s = (lora__sample){0};
    if (kind == LORA__LINE_TOO_LONG)
        return lora__error(LORA_ERR_FORMAT, "line longer than %zu bytes", LORA__MAX_LINE_BYTES);
    size_t bad = lora__utf8_invalid_at(line, len);
    if (bad < len)
        return lora__error(LORA_ERR_FORMAT, "invalid UTF-8 at byte %zu of the line", bad);
    json_error_t err;
    json_t *obj = lora__json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    if (!obj)
        return lora__error(LORA_ERR_FORMAT, "invalid JSON: %s (column %d)", err.text,
                           err.column);
    lora_status st = lora__sample_make(t, cfg, obj, s);
    json_decref(obj);
    if (st == LORA_OK && !has_loss(s, cfg->max_length))
        st = s->n > cfg->max_length
                 ? lora__error(LORA_ERR_FORMAT, "no token in the loss after truncation to "
                               "max_length %zu", cfg->max_length)
                 : lora__error(LORA_ERR_FORMAT, "no token in the loss");
    if (st != LORA_OK)
        lora__sample_free(s);
    return st;
}

static lora_status read_all(const lora_tokenizer *t, const char *path,
                            const lora__dataset_config *cfg, lora__jsonl *r, lora__store *store)
{
    for (;;) {
        const char *line;
        size_t len;
        lora__line_kind kind;
        lora_status st = lora__jsonl_next(r, &line, &len, &kind);
        if (st != LORA_OK)
            return lora__error_prefix(st, WHERE ": %s", path);
        if (kind == LORA__LINE_END)
            return LORA_OK;
        store->lines++;
        lora__sample s;
        st = parse_line(t, cfg, line, len, kind, &s);
        if (st == LORA_OK) {
            st = lora__store_add(store, &s, cfg->max_length);
            lora__sample_free(&s);
        }
        if (st == LORA_OK)
            continue;
        lora__error_prefix(st, WHERE ": %s:%zu", path, r->line);
        if (st != LORA_ERR_FORMAT || cfg->strict)
            return st;
        store->skipped++;
        if ((st = lora__store_note_error(store, lora_last_error())) != LORA_OK)
            return st;
    }
}

lora_status lora__dataset_read(const lora_tokenizer *t, const char *path,
                               const lora__dataset_config *cfg, lora__store **out)
{
    *out = NULL;
    lora__jsonl r;
    lora_status st = lora__jsonl_open(&r, path);
    if (st != LORA_OK)
        return lora__error_prefix(st, WHERE);
    lora__store *store = NULL;
    if ((st = lora__store_create(&store)) == LORA_OK)
        st = read_all(t, path, cfg, &r, store);
    lora__jsonl_close(&r);
    if (st == LORA_OK && store->n == 0)
        st = store->n_errors
                 ? lora__error(LORA_ERR_FORMAT, WHERE ": %s: no usable sample (%zu lines, %zu "
                               "bad; the first: %s)", path, store->lines, store->skipped,
                               store->errors[0])
                 : lora__error(LORA_ERR_FORMAT, WHERE ": %s: no usable sample (%zu lines)",
                               path, store->lines);
    if (st != LORA_OK) {
        lora__store_release(store);
        return st;
    }
    *out = store;
    return LORA_OK;
}
