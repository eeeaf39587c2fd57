/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF) and the
 * "maximal subpart" replacement that Python's errors="replace" and Rust's from_utf8_lossy share:
 * each maximal prefix of a well-formed sequence that cannot be completed becomes one U+FFFD. */
#ifndef LORA_TOKENIZER_UTF8_H
#define LORA_TOKENIZER_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "lora.h"
#include "tokenizer/bytebuf.h"

#define LORA__REPLACEMENT "\xEF\xBF\xBD"

/* The length (1..4) of the well-formed character at s[0..n) and its code point, or 0 when s
 * starts an ill-formed sequence; then *bad is the length of its maximal subpart (>= 1).
 * n must be >= 1. */
size_t lora__utf8_next(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad);

/* The offset of the first byte of the first ill-formed sequence, or n when all is valid. */
size_t lora__utf8_first_invalid(const unsigned char *s, size_t n);

/* Appends s[0..n) with every maximal subpart replaced by U+FFFD. */
lora_status lora__utf8_append_lossy(lora__bytebuf *out, const unsigned char *s, size_t n);

/* The number of trailing bytes of s[0..n) that are an incomplete but still completable
 * character (0..3): what a stream must hold back until more bytes come. */
size_t lora__utf8_incomplete_tail(const unsigned char *s, size_t n);

/* Encodes cp (<= U+10FFFF, not a surrogate) into out; returns the length. */
size_t lora__utf8_put(uint32_t cp, unsigned char out[4]);

#endif
