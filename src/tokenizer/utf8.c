#include "tokenizer/utf8.h"

/* The accepted range of the second byte after each lead byte (Unicode Table 3-7); later
 * continuation bytes are always 80..BF. */
static int second_range(unsigned char lead, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF)
        return 2;
    if (lead == 0xE0)
        *lo = 0xA0;
    else if (lead == 0xED)
        *hi = 0x9F;
    if (lead >= 0xE0 && lead <= 0xEF)
        return 3;
    if (lead == 0xF0)
        *lo = 0x90;
    else if (lead == 0xF4)
        *hi = 0x8F;
    if (lead >= 0xF0 && lead <= 0xF4)
        return 4;
    return 0;
}

/* How many bytes of the sequence starting at s[0] are well-formed so far (up to need). */
static size_t valid_prefix(const unsigned char *s, size_t n, size_t *need)
{
    unsigned char lo, hi;
    *need = (size_t)second_range(s[0], &lo, &hi);
    if (*need == 0)
        return 0;
    size_t k = 1;
    while (k < *need && k < n) {
        unsigned char c = s[k];
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF))
            break;
        k++;
    }
    return k;
}

size_t lora__utf8_next(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    size_t k = valid_prefix(s, n, &need);
    if (need == 0 || k < need) {
        *bad = k ? k : 1;
        return 0;
    }
    uint32_t v = need == 2 ? c & 0x1Fu : need == 3 ? c & 0x0Fu : c & 0x07u;
    for (size_t i = 1; i < need; i++)
        v = (v << 6) | (s[i] & 0x3Fu);
    *cp = v;
    return need;
}

size_t lora__utf8_first_invalid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII eight bytes at a time: the bulk of most text */
        while (i + 8 <= n) {
            uint64_t w;
            __builtin_memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t bad;
        size_t k = lora__utf8_next(s + i, n - i, &cp, &bad);
        if (!k)
            return i;
        i += k;
    }
    return n;
}

lora_status lora__utf8_append_lossy(lora__bytebuf *out, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i + lora__utf8_first_invalid(s + i, n - i);
        lora_status st = lora__bytebuf_append(out, s + i, j - i);
        if (st || j == n)
            return st;
        uint32_t cp;
        size_t bad = 1;
        lora__utf8_next(s + j, n - j, &cp, &bad);
        if ((st = lora__bytebuf_append(out, LORA__REPLACEMENT, 3)))
            return st;
        i = j + bad;
    }
    return LORA_OK;
}

size_t lora__utf8_incomplete_tail(const unsigned char *s, size_t n)
{
    /* a lead byte among the last three bytes whose sequence is well-formed but cut by the end */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const unsigned char *p = s + n - back;
        if ((*p & 0xC0) == 0x80)
            continue;
        size_t need;
        size_t k = valid_prefix(p, back, &need);
        return need > back && k == back ? back : 0;
    }
    return 0;
}

size_t lora__utf8_put(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}
