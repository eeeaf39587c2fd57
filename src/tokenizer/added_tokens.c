#include "tokenizer/added_tokens.h"

#include <stdlib.h>
#include <utf8proc.h>

#include "api/error.h"
#include "tokenizer/utf8.h"
#include "util/alloc.h"

static int by_length_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

lora_status lora__added_prepare(lora_tokenizer *t)
{
    t->added_lens = lora__malloc((t->n_added ? t->n_added : 1) * sizeof *t->added_lens);
    if (!t->added_lens)
        return lora__oom("added tokens", t->n_added * sizeof *t->added_lens);
    for (size_t i = 0; i < t->n_added; i++)
        t->added_lens[i] = t->added[i].len;
    qsort(t->added_lens, t->n_added, sizeof *t->added_lens, by_length_desc);
    size_t k = 0;
    for (size_t i = 0; i < t->n_added; i++)
        if (k == 0 || t->added_lens[k - 1] != t->added_lens[i])
            t->added_lens[k++] = t->added_lens[i];
    t->n_added_lens = k;
    return LORA_OK;
}

/* Rust's char::is_whitespace: Unicode White_Space. */
static int is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Letters, numbers and '_': what single_word tokens must not touch. */
static int is_word(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* The character that ends at s[i) (i > 0; valid UTF-8) and where it starts. */
static uint32_t char_before(const unsigned char *s, size_t i, size_t *at)
{
    size_t j = i - 1;
    while (j > 0 && (s[j] & 0xC0) == 0x80)
        j--;
    uint32_t cp = 0;
    size_t bad;
    lora__utf8_next(s + j, i - j, &cp, &bad);
    *at = j;
    return cp;
}

static uint32_t char_at(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    uint32_t cp = 0;
    size_t bad;
    *len = lora__utf8_next(s + i, n - i, &cp, &bad);
    if (!*len)
        *len = 1;
    return cp;
}

/* The longest added token starting at s[i]; NULL when none. */
static const lora__added_token *longest_at(const lora_tokenizer *t, const unsigned char *s,
                                           size_t n, size_t i)
{
    for (size_t k = 0; k < t->n_added_lens; k++) {
        size_t len = t->added_lens[k];
        if (len > n - i)
            continue;
        int64_t a = lora__strmap_get(&t->added_map, s + i, len);
        if (a >= 0)
            return &t->added[a];
    }
    return NULL;
}

int lora__added_next(const lora_tokenizer *t, const unsigned char *s, size_t n, size_t from,
                     int skip_special, size_t *start, size_t *end, int32_t *id)
{
    if (!t->n_added)
        return 0;
    size_t i = from;
    while (i < n) {
        if (!(t->added_first[s[i]] & 1)) {
            i++;
            continue;
        }
        const lora__added_token *a = longest_at(t, s, n, i);
        if (!a) {
            i++;
            continue;
        }
        size_t b = i, e = i + a->len, at, len;
        /* a skipped match still consumes its text, as in Hugging Face's scan */
        int ok = !(skip_special && a->special);
        if (ok && a->single_word)
            ok = (b == 0 || !is_word(char_before(s, b, &at))) &&
                 (e == n || !is_word(char_at(s, n, e, &len)));
        if (!ok) {
            i = e;
            continue;
        }
        if (a->lstrip)
            while (b > from && is_space(char_before(s, b, &at)))
                b = at;
        if (a->rstrip)
            while (e < n && is_space(char_at(s, n, e, &len)))
                e += len;
        *start = b;
        *end = e;
        *id = a->id;
        return 1;
    }
    return 0;
}
