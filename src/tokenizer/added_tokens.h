/* Added tokens in the input, found as Hugging Face's AddedVocabulary finds them: the leftmost
 * match, the longest at that place; a single_word token only where no word character touches
 * it; lstrip and rstrip tokens take the whitespace beside them. Matching happens on the text
 * before normalization (every token of the Qwen and Llama 3 files is normalized: false; a
 * normalized token is matched the same way). */
#ifndef LORA_TOKENIZER_ADDED_TOKENS_H
#define LORA_TOKENIZER_ADDED_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/internal.h"

/* Finds the next added token in s[from..n) (from: the end of the last one taken; lstrip takes
 * whitespace back to it, never further); special tokens are passed over when skip_special.
 * Returns 1 with its span [*start, *end) and id, 0 when there is none. */
int lora__added_next(const lora_tokenizer *t, const unsigned char *s, size_t n, size_t from,
                     int skip_special, size_t *start, size_t *end, int32_t *id);

/* Sorts the distinct lengths of the added tokens, longest first (after loading). */
lora_status lora__added_prepare(lora_tokenizer *t);

#endif
