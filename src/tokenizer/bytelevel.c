#include "tokenizer/bytelevel.h"

#include <string.h>

#include "tokenizer/utf8.h"

static int shows_itself(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t lora__bytelevel_char(unsigned char b)
{
    if (shows_itself(b))
        return b;
    /* the n-th byte (in byte order) that does not show itself is U+0100 + n: 0x00..0x20 are
     * the first 33, 0x7F..0xA0 the next 34, 0xAD the last */
    if (b <= 0x20)
        return 0x100u + b;
    if (b <= 0xA0)
        return 0x100u + 33 + (b - 0x7Fu);
    return 0x100u + 67;
}

int lora__bytelevel_byte(uint32_t cp)
{
    if (cp < 0x100)
        return shows_itself(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    unsigned n = cp - 0x100;
    return n < 33 ? (int)n : n < 67 ? (int)(0x7F + n - 33) : 0xAD;
}

size_t lora__bytelevel_decode(const char *s, size_t n, unsigned char *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t bad;
        size_t len = lora__utf8_next(u + i, n - i, &cp, &bad);
        int b = len ? lora__bytelevel_byte(cp) : -1;
        if (b < 0) {
            memcpy(out, s, n);
            return n;
        }
        out[k++] = (unsigned char)b;
        i += len;
    }
    return k;
}

size_t lora__bytelevel_encode(const unsigned char *b, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += lora__utf8_put(lora__bytelevel_char(b[i]), (unsigned char *)out + k);
    return k;
}
