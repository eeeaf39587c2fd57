/* NFC (utf8proc) with a map back to the text it came from.
 *
 * The text is cut before every character that NFC can never join to what precedes it (its
 * canonical decomposition starts with a starter that is not the second half of any
 * composition); NFC of the whole is then NFC of each piece. Pieces made only of characters NFC
 * leaves alone are copied as they are and map byte for byte; any other piece (a base letter
 * with its combining marks, a Hangul syllable in jamo) is normalized alone and maps as a whole:
 * a token that starts inside it starts at the piece's first original byte, one that ends inside
 * it ends at its last. */
#ifndef LORA_TOKENIZER_NORMALIZE_H
#define LORA_TOKENIZER_NORMALIZE_H

#include <stddef.h>

#include "lora.h"
#include "tokenizer/bytebuf.h"

typedef struct lora__nfc_piece {
    size_t norm;      /* first byte in the normalized text */
    size_t src;       /* first byte in the source text */
    size_t norm_len, src_len;
    int exact;        /* 1: byte for byte the same */
} lora__nfc_piece;

typedef struct lora__nfc_map {
    lora__nfc_piece *pieces;
    size_t n, cap;
} lora__nfc_map;

/* 1 when NFC leaves s[0..n) (valid UTF-8) unchanged. */
int lora__nfc_is_normal(const unsigned char *s, size_t n);

/* Sets out to the NFC of s[0..n) (valid UTF-8, out->len reset to 0) and map to its pieces, in
 * order, covering both texts. */
lora_status lora__nfc(const unsigned char *s, size_t n, lora__bytebuf *out, lora__nfc_map *map);

#endif
