#include "tokenizer/normalize.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "api/error.h"
#include "tokenizer/utf8.h"

/* Every code point from U+30000 on has no decomposition and combining class 0. */
#define TABLE_CPS 0x30000u

enum { BOUNDARY = 1, /* NFC never joins this character to what precedes it */
       STABLE = 2    /* a boundary NFC leaves as it is, that is never joined to what follows */ };

static unsigned char table[TABLE_CPS];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
    /* second halves of compositions: every non-first character of a canonical decomposition */
    static unsigned char second[TABLE_CPS];
    utf8proc_int32_t d[32];
    for (uint32_t cp = 0; cp < TABLE_CPS; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        int bc = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, d, 32,
                                                     UTF8PROC_DECOMPOSE, &bc);
        for (utf8proc_ssize_t k = 1; k < n && k < 32; k++)
            if ((uint32_t)d[k] < TABLE_CPS)
                second[d[k]] = 1;
    }
    for (uint32_t cp = 0; cp < TABLE_CPS; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        int bc = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, d, 32,
                                                     UTF8PROC_DECOMPOSE, &bc);
        if (n < 1 || n > 32)
            continue;
        uint32_t d0 = (uint32_t)d[0];
        int boundary = utf8proc_get_property(d[0])->combining_class == 0 &&
                       !(d0 < TABLE_CPS && second[d0]);
        unsigned char f = boundary ? BOUNDARY : 0;
        if (boundary && !second[cp] && utf8proc_get_property((utf8proc_int32_t)cp)->combining_class == 0) {
            utf8proc_ssize_t m = utf8proc_normalize_utf32(d, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (m == 1 && (uint32_t)d[0] == cp)
                f |= STABLE;
        }
        table[cp] = f;
    }
}

static inline unsigned flags_of(uint32_t cp)
{
    return cp < TABLE_CPS ? table[cp] : BOUNDARY | STABLE;
}

int lora__nfc_is_normal(const unsigned char *s, size_t n)
{
    pthread_once(&table_once, build_table);
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t bad;
        size_t k = lora__utf8_next(s + i, n - i, &cp, &bad);
        if (!k || !(flags_of(cp) & STABLE))
            return 0;
        i += k;
    }
    return 1;
}

static lora_status add_piece(lora__nfc_map *map, size_t norm, size_t src, size_t norm_len,
                             size_t src_len, int exact)
{
    if (map->n && exact && map->pieces[map->n - 1].exact) {
        lora__nfc_piece *p = &map->pieces[map->n - 1];
        p->norm_len += norm_len;
        p->src_len += src_len;
        return LORA_OK;
    }
    void *p = map->pieces;
    lora_status st = lora__grow(&p, &map->cap, map->n + 1, sizeof *map->pieces, "NFC map");
    map->pieces = p;
    if (st)
        return st;
    map->pieces[map->n++] = (lora__nfc_piece){norm, src, norm_len, src_len, exact};
    return LORA_OK;
}

/* Appends NFC of one piece that holds a character NFC may change. */
static lora_status normalize_piece(const unsigned char *s, size_t n, lora__bytebuf *out,
                                   lora__nfc_map *map, size_t src)
{
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t m = utf8proc_map(s, (utf8proc_ssize_t)n, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0)
        return lora__error(m == UTF8PROC_ERROR_NOMEM ? LORA_ERR_OUT_OF_MEMORY : LORA_ERR_INTERNAL,
                           "NFC: %s", utf8proc_errmsg(m));
    int same = (size_t)m == n && memcmp(dst, s, n) == 0;
    size_t at = out->len;
    lora_status st = lora__bytebuf_append(out, dst, (size_t)m);
    free(dst);
    return st ? st : add_piece(map, at, src, (size_t)m, n, same);
}

lora_status lora__nfc(const unsigned char *s, size_t n, lora__bytebuf *out, lora__nfc_map *map)
{
    pthread_once(&table_once, build_table);
    out->len = 0;
    map->n = 0;
    lora_status st = lora__bytebuf_reserve(out, n);
    size_t start = 0; /* the current piece: s[start..i) */
    int dirty = 0;
    for (size_t i = 0; i < n && !st;) {
        uint32_t cp = s[i];
        size_t k = 1, bad;
        if (cp >= 0x80)
            k = lora__utf8_next(s + i, n - i, &cp, &bad);
        unsigned f = flags_of(cp);
        if ((f & BOUNDARY) && i > start) {
            if (dirty) {
                st = normalize_piece(s + start, i - start, out, map, start);
            } else {
                size_t at = out->len;
                st = lora__bytebuf_append(out, s + start, i - start);
                if (!st)
                    st = add_piece(map, at, start, i - start, i - start, 1);
            }
            start = i;
            dirty = 0;
        }
        if (!(f & STABLE))
            dirty = 1;
        i += k ? k : 1;
    }
    if (!st && n > start) {
        if (dirty) {
            st = normalize_piece(s + start, n - start, out, map, start);
        } else {
            size_t at = out->len;
            st = lora__bytebuf_append(out, s + start, n - start);
            if (!st)
                st = add_piece(map, at, start, n - start, n - start, 1);
        }
    }
    return st;
}
