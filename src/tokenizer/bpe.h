/* Byte-pair encoding of one pre-token, as Hugging Face's BPE model does it: start from one
 * symbol per byte, then repeatedly merge the adjacent pair of lowest merge rank (the leftmost
 * among equals). Candidates sit in a binary heap over a linked list of symbols, so a piece of
 * n bytes costs O(n log n) whatever its content; short pieces are remembered per call. */
#ifndef LORA_TOKENIZER_BPE_H
#define LORA_TOKENIZER_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/hashmap.h"
#include "tokenizer/internal.h"

/* The tokens of one piece: ids and the number of the piece's bytes each covers. */
typedef struct lora__bpe_out {
    int32_t *ids;
    uint32_t *lens;
    size_t n, cap;
} lora__bpe_out;

typedef struct lora__bpe_sym lora__bpe_sym;

/* One caller's scratch; zero-initialise, free with lora__bpe_work_free. */
typedef struct lora__bpe_work {
    lora__bpe_sym *syms;
    size_t syms_cap;
    uint64_t *heap;
    size_t heap_cap;
    lora__strmap cache;      /* piece bytes -> offset in pool */
    int cache_ready;
    uint32_t *pool;          /* per cached piece: count, then (id, len) pairs */
    size_t pool_n, pool_cap;
} lora__bpe_work;

/* Sets out to the tokens of the piece b[0..n) (n >= 1). */
lora_status lora__bpe_encode(const lora_tokenizer *t, lora__bpe_work *w, const unsigned char *b,
                             size_t n, lora__bpe_out *out);
void lora__bpe_work_free(lora__bpe_work *w);
void lora__bpe_out_free(lora__bpe_out *o);

#endif
