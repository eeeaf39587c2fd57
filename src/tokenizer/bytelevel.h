/* GPT-2's byte-level alphabet (HF ByteLevel): every byte is shown as one printable character, so
 * that a vocabulary of strings covers arbitrary bytes. Bytes 0x21..0x7E, 0xA1..0xAC and
 * 0xAE..0xFF stand for themselves; the other 68 map to U+0100.. in byte order. */
#ifndef LORA_TOKENIZER_BYTELEVEL_H
#define LORA_TOKENIZER_BYTELEVEL_H

#include <stddef.h>
#include <stdint.h>

/* The code point that shows byte b. */
uint32_t lora__bytelevel_char(unsigned char b);
/* The byte a code point shows, or -1 for a code point outside the alphabet. */
int lora__bytelevel_byte(uint32_t cp);

/* Writes the raw bytes that the byte-level string s[0..n) (valid UTF-8) stands for into out
 * (room for n bytes: raw text is never longer) and returns their number; when some character
 * is outside the alphabet the string stands for its own UTF-8 bytes, as HF's decoder falls
 * back. */
size_t lora__bytelevel_decode(const char *s, size_t n, unsigned char *out);

/* Writes the byte-level string of raw bytes b[0..n) into out (room for 2 n bytes); returns its
 * length. */
size_t lora__bytelevel_encode(const unsigned char *b, size_t n, char *out);

#endif
