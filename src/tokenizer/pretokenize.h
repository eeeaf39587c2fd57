/* The Split pre-tokenizer (behavior "Isolated"): a PCRE2 regex cuts a text into pieces, every
 * match and every stretch between matches being one piece. Compiled with UTF and UCP, run by
 * the JIT when the platform has one, else by the interpreter; both under a match limit that
 * grows with the text, the interpreter under a depth limit, the JIT on a stack of bounded size,
 * so no input can exhaust the machine stack. */
#ifndef LORA_TOKENIZER_PRETOKENIZE_H
#define LORA_TOKENIZER_PRETOKENIZE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>

#include "lora.h"

typedef struct lora__pretok {
    pcre2_code *re;              /* NULL: the text is one piece */
    pcre2_general_context *gc;   /* PCRE2 allocates through util/alloc.h */
    int jit;                     /* 1 when re is JIT-compiled */
} lora__pretok;

/* Compiles pattern[0..len) (a regex, or a literal string when literal is 1). Errors name where
 * (the tokenizer.json key) and PCRE2's message with its offset. */
lora_status lora__pretok_compile(lora__pretok *p, const char *pattern, size_t len, int literal,
                                 const char *where);
void lora__pretok_free(lora__pretok *p);

/* One caller's matching state over one text. */
typedef struct lora__pretok_run {
    const lora__pretok *p;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *stack;  /* made on the first match that outgrows PCRE2's default */
    const unsigned char *text;
    size_t len, pos;
    size_t match_start, match_end;  /* the next match, when have_match */
    int have_match;
} lora__pretok_run;

lora_status lora__pretok_run_init(lora__pretok_run *r, const lora__pretok *p);
/* Starts on a new text (valid UTF-8). */
void lora__pretok_run_reset(lora__pretok_run *r, const unsigned char *text, size_t len);
/* The next piece [*start, *end); returns LORA_OK and sets *done to 1 after the last piece.
 * LORA_ERR_RANGE when the regex hits a limit (names the byte offset). */
lora_status lora__pretok_next(lora__pretok_run *r, size_t *start, size_t *end, int *done);
void lora__pretok_run_free(lora__pretok_run *r);

#endif
