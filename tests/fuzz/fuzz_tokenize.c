/* Tokenizing arbitrary bytes with the Qwen2.5 tokenizer fixture (loaded once per process). The
 * first byte chooses the LORA_ENCODE_* flags, the rest is the text. Checked besides memory
 * safety: the ids decode, in one call and streamed, to the same text; valid NFC text with
 * special tokens taken as text decodes back to itself; the byte spans of the tokens (the
 * internal encoder with offsets) lie in the text, in order, never inside a UTF-8 character; the
 * input read as ids decodes or fails cleanly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lora.h"
#include "tokenizer/normalize.h"
#include "tokenizer/tokenizer.h"

static lora_tokenizer *tok;

/* The detokenizer's output over ids must be what lora_tokenizer_decode gives. */
static void check_stream(const int32_t *ids, size_t n, unsigned flags, const char *whole,
                         size_t whole_len)
{
    lora_detokenizer *d;
    if (lora_detokenizer_create(tok, flags, &d) != LORA_OK)
        fz_die("lora_detokenizer_create");
    char *acc = malloc(whole_len + 1);
    size_t len = 0;
    const char *piece;
    size_t piece_len;
    for (size_t i = 0; i <= n; i++) {
        lora_status st = i < n ? lora_detokenizer_push(d, ids[i], &piece, &piece_len)
                               : lora_detokenizer_flush(d, &piece, &piece_len);
        if (st != LORA_OK || len + piece_len > whole_len)
            fz_die("streamed decoding differs from lora_tokenizer_decode (length)");
        memcpy(acc + len, piece, piece_len);
        len += piece_len;
    }
    if (len != whole_len || memcmp(acc, whole, len) != 0)
        fz_die("streamed decoding differs from lora_tokenizer_decode");
    free(acc);
    lora_detokenizer_free(d);
}

static int continuation(const char *text, size_t len, size_t at)
{
    return at < len && ((unsigned char)text[at] & 0xC0) == 0x80;
}

/* The spans of the offset encoder over the same text, against the ids of the public call. */
static void check_spans(const char *text, size_t len, unsigned flags, const int32_t *ids,
                        size_t n)
{
    lora__encoding e = {0};
    if (lora__tokenizer_encode(tok, text, len, flags, &e) != LORA_OK || e.n != n)
        fz_die("lora__tokenizer_encode disagrees with lora_tokenizer_encode");
    for (size_t k = 0; k < n; k++) {
        if (e.ids[k] != ids[k])
            fz_die("the offset encoder gives other ids");
        if (e.start[k] > e.end[k] || e.end[k] > len || (k && e.start[k] < e.start[k - 1]) ||
            (k && e.end[k] < e.end[k - 1]))
            fz_die("a token span is out of the text or out of order");
        /* invalid bytes replaced by U+FFFD have no character boundaries to respect */
        if (!(flags & LORA_ENCODE_UTF8_REPLACE) &&
            (continuation(text, len, e.start[k]) || continuation(text, len, e.end[k])))
            fz_die("a token span splits a UTF-8 character");
    }
    lora__encoding_free(&e);
}

static void encode_decode(const char *text, size_t len, unsigned flags)
{
    /* a token covers at least one byte of the text, or of the U+FFFD (3 bytes) replacing one */
    size_t cap = 3 * len + 1, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        fz_die("malloc");
    lora_status st = lora_tokenizer_encode(tok, text, len, flags, ids, cap, &n);
    if (st == LORA_ERR_RANGE && n > cap)
        fz_die("more tokens than three per byte of the text");
    if (st != LORA_OK) {
        free(ids);
        return;
    }
    check_spans(text, len, flags, ids, n);
    for (unsigned skip = 0; skip < 2; skip++) {
        char *out = NULL;
        size_t out_len = 0;
        if (lora_tokenizer_decode(tok, ids, n, skip, &out, &out_len) != LORA_OK)
            fz_die("lora_tokenizer_decode of lora_tokenizer_encode's ids");
        if (!skip && flags == LORA_ENCODE_SPECIAL_AS_TEXT &&
            lora__nfc_is_normal((const unsigned char *)text, len) &&
            (out_len != len || memcmp(out, text, len) != 0))
            fz_die("valid NFC text does not decode back to itself");
        check_stream(ids, n, skip, out, out_len);
        lora_string_free(out);
    }
    free(ids);
}

/* The input's bytes as ids, some inside the vocabulary and some not. */
static void decode_raw(const uint8_t *data, size_t size)
{
    size_t n = size / 4;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    uint32_t vocab = (uint32_t)lora_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, data + 4 * i, 4);
        ids[i] = (int32_t)(v & 0x80000000u ? v : v % (vocab + 8));
    }
    char *out = NULL;
    if (lora_tokenizer_decode(tok, ids, n, 0, &out, NULL) == LORA_OK)
        lora_string_free(out);
    free(ids);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (lora_tokenizer_load(fz_fixture("qwen-tokenizer"), NULL, &tok) != LORA_OK)
        fz_die("lora_tokenizer_load");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned flags = data[0] & (LORA_ENCODE_SPECIAL_AS_TEXT | LORA_ENCODE_UTF8_REPLACE);
    encode_decode((const char *)data + 1, size - 1, flags);
    decode_raw(data + 1, size - 1);
    return 0;
}
