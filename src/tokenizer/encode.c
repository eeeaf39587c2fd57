/* Text to ids: UTF-8 check (or repair), added tokens, then per stretch between them NFC, the
 * pre-tokenizer regex and BPE; every id with the byte span of the caller's text it came from. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/normalize.h"
#include "tokenizer/utf8.h"
#include "util/alloc.h"

/* Where the repaired text differs from the caller's: after[k] is the repaired offset just past
 * the k-th U+FFFD, delta[k] what to add to repaired offsets from there on. */
typedef struct repair_map {
    size_t *after;
    size_t *delta;
    size_t n, cap_a, cap_d;
} repair_map;

typedef struct encoder {
    const lora_tokenizer *t;
    unsigned flags;
    int offsets;             /* fill start and end */
    lora__encoding *out;
    size_t cap;
    repair_map repair;
    lora__bytebuf norm;      /* the NFC of the current stretch, when it differs */
    lora__nfc_map nfc;
    size_t piece_at;         /* nfc cursor */
    lora__pretok_run pre;
    lora__bpe_work bpe;
    lora__bpe_out toks;
} encoder;

static lora_status emit(encoder *e, int32_t id, size_t start, size_t end)
{
    lora__encoding *o = e->out;
    if (o->n == e->cap) {
        size_t c = e->cap ? 2 * e->cap : 256;
        int32_t *ids = lora__realloc(o->ids, c * sizeof *ids);
        if (!ids)
            return lora__oom("token ids", c * sizeof *ids);
        o->ids = ids;
        if (e->offsets) {
            size_t *s = lora__realloc(o->start, c * sizeof *s);
            if (s)
                o->start = s;
            size_t *t = s ? lora__realloc(o->end, c * sizeof *t) : NULL;
            if (!t)
                return lora__oom("token offsets", c * sizeof *t);
            o->end = t;
        }
        e->cap = c;
    }
    o->ids[o->n] = id;
    if (e->offsets) {
        o->start[o->n] = start;
        o->end[o->n] = end;
    }
    o->n++;
    return LORA_OK;
}

/* A repaired-text offset (at a character boundary) in the caller's text. */
static size_t unrepair(const repair_map *r, size_t x)
{
    size_t lo = 0, hi = r->n; /* the number of replacements ending at or before x */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->after[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? x + r->delta[lo - 1] : x;
}

/* Replaces each maximal ill-formed subpart by U+FFFD, recording where. */
static lora_status repair(encoder *e, const unsigned char *s, size_t n, size_t first_bad,
                          lora__bytebuf *fixed)
{
    repair_map *r = &e->repair;
    size_t i = 0, bad_at = first_bad;
    lora_status st = LORA_OK;
    while (!st) {
        if ((st = lora__bytebuf_append(fixed, s + i, bad_at - i)) || bad_at == n)
            break;
        uint32_t cp;
        size_t bad = 1;
        lora__utf8_next(s + bad_at, n - bad_at, &cp, &bad);
        if ((st = lora__bytebuf_append(fixed, LORA__REPLACEMENT, 3)))
            break;
        void *a = r->after, *d = r->delta;
        st = lora__grow(&a, &r->cap_a, r->n + 1, sizeof *r->after, "UTF-8 repair map");
        r->after = a;
        if (!st)
            st = lora__grow(&d, &r->cap_d, r->n + 1, sizeof *r->delta, "UTF-8 repair map");
        r->delta = d;
        if (st)
            break;
        i = bad_at + bad;
        r->after[r->n] = fixed->len;
        r->delta[r->n] = i - fixed->len;
        r->n++;
        bad_at = i + lora__utf8_first_invalid(s + i, n - i);
    }
    return st;
}

/* A normalized-text offset in the stretch's own text: exact inside unchanged pieces; inside a
 * piece NFC changed, a start maps to the piece's start and an end to its end. */
static size_t denormalize(encoder *e, size_t x, int is_end)
{
    const lora__nfc_map *m = &e->nfc;
    size_t k = e->piece_at;
    size_t probe = is_end && x > 0 ? x - 1 : x;
    while (k + 1 < m->n && m->pieces[k].norm + m->pieces[k].norm_len <= probe)
        k++;
    while (k > 0 && m->pieces[k].norm > probe)
        k--;
    e->piece_at = k;
    const lora__nfc_piece *p = &m->pieces[k];
    if (p->exact)
        return p->src + (x - p->norm);
    return is_end ? p->src + p->src_len : p->src;
}

/* One stretch of text between added tokens: base is its offset in the (repaired) text. */
static lora_status encode_stretch(encoder *e, const unsigned char *s, size_t n, size_t base)
{
    const lora_tokenizer *t = e->t;
    const unsigned char *text = s;
    int mapped = 0;
    lora_status st;
    if (t->nfc && !lora__nfc_is_normal(s, n)) {
        if ((st = lora__nfc(s, n, &e->norm, &e->nfc)))
            return st;
        text = e->norm.p;
        n = e->norm.len;
        mapped = 1;
        e->piece_at = 0;
    }
    lora__pretok_run_reset(&e->pre, text, n);
    for (;;) {
        size_t a, b;
        int done;
        if ((st = lora__pretok_next(&e->pre, &a, &b, &done)) || done)
            return st;
        if ((st = lora__bpe_encode(t, &e->bpe, text + a, b - a, &e->toks)))
            return st;
        size_t at = a;
        for (size_t k = 0; k < e->toks.n && !st; k++) {
            size_t ts = at, te = at + e->toks.lens[k];
            at = te;
            if (e->offsets) {
                /* whole characters: a token holding part of one covers all of it */
                while (ts > 0 && (text[ts] & 0xC0) == 0x80)
                    ts--;
                while (te < n && (text[te] & 0xC0) == 0x80)
                    te++;
                if (mapped) {
                    ts = denormalize(e, ts, 0);
                    te = denormalize(e, te, 1);
                }
                ts = unrepair(&e->repair, base + ts);
                te = unrepair(&e->repair, base + te);
            }
            st = emit(e, e->toks.ids[k], ts, te);
        }
        if (st)
            return st;
    }
}

static lora_status encode_all(encoder *e, const unsigned char *s, size_t n)
{
    const lora_tokenizer *t = e->t;
    int skip_special = (e->flags & LORA_ENCODE_SPECIAL_AS_TEXT) != 0;
    size_t pos = 0;
    lora_status st = LORA_OK;
    while (pos < n && !st) {
        size_t a, b;
        int32_t id;
        int found = lora__added_next(t, s, n, pos, skip_special, &a, &b, &id);
        size_t stop = found ? a : n;
        if (stop > pos)
            st = encode_stretch(e, s + pos, stop - pos, pos);
        if (!st && found)
            st = emit(e, id, unrepair(&e->repair, a), unrepair(&e->repair, b));
        pos = found ? b : n;
    }
    return st;
}

static void encoder_free(encoder *e)
{
    free(e->repair.after);
    free(e->repair.delta);
    lora__bytebuf_free(&e->norm);
    free(e->nfc.pieces);
    lora__pretok_run_free(&e->pre);
    lora__bpe_work_free(&e->bpe);
    lora__bpe_out_free(&e->toks);
}

lora_status lora__encode(const lora_tokenizer *t, const char *text, size_t len, unsigned flags,
                         int offsets, lora__encoding *out)
{
    memset(out, 0, sizeof *out);
    encoder e = {0};
    e.t = t;
    e.flags = flags;
    e.offsets = offsets;
    e.out = out;
    const unsigned char *s = (const unsigned char *)text;
    size_t bad = lora__utf8_first_invalid(s, len);
    lora__bytebuf fixed = {0};
    lora_status st = LORA_OK;
    if (bad < len) {
        if (!(flags & LORA_ENCODE_UTF8_REPLACE))
            return lora__error(LORA_ERR_FORMAT, "invalid UTF-8 at byte %zu (0x%02X)", bad, s[bad]);
        st = repair(&e, s, len, bad, &fixed);
        s = fixed.p;
        len = fixed.len;
    }
    if (!st)
        st = lora__pretok_run_init(&e.pre, &t->pre);
    if (!st)
        st = encode_all(&e, s, len);
    /* callers may index the arrays even when empty */
    if (!st && !out->ids) {
        st = emit(&e, 0, 0, 0);
        out->n = 0;
    }
    encoder_free(&e);
    lora__bytebuf_free(&fixed);
    if (st)
        lora__encoding_free(out);
    return st;
}

void lora__encoding_free(lora__encoding *e)
{
    if (!e)
        return;
    free(e->ids);
    free(e->start);
    free(e->end);
    memset(e, 0, sizeof *e);
}
