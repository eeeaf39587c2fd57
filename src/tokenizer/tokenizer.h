/* The tokenizer as the rest of the library sees it (chat templates, datasets). */
#ifndef LORA_TOKENIZER_TOKENIZER_H
#define LORA_TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "lora.h"

/* ids with the byte span of the input each came from: token k covers text[start[k], end[k]).
 * Spans never split a UTF-8 character; where NFC changed the text, a token's span covers the
 * original characters its normalized ones came from. */
typedef struct lora__encoding {
    int32_t *ids;   // (n)
    size_t *start;  // (n)
    size_t *end;    // (n)
    size_t n;
} lora__encoding;

/* As lora_tokenizer_encode, into malloc'd arrays; free with lora__encoding_free. */
lora_status lora__tokenizer_encode(const lora_tokenizer *t, const char *text, size_t len,
                                   unsigned flags, lora__encoding *out);
void lora__encoding_free(lora__encoding *e);

typedef enum lora__special { LORA__BOS, LORA__EOS, LORA__PAD } lora__special;

/* The id of the bos/eos/pad token named by tokenizer_config.json, -1 when there is none. */
int32_t lora__tokenizer_special_id(const lora_tokenizer *t, lora__special which);
/* Its text ("<|im_end|>"), NULL when there is none. */
const char *lora__tokenizer_special_text(const lora_tokenizer *t, lora__special which);
/* tokenizer_config.json's chat_template text, NULL when absent. */
const char *lora__tokenizer_chat_template(const lora_tokenizer *t);
/* The built-in template name chosen by the load's "chat_template" option ("auto": NULL). */
const char *lora__tokenizer_template_override(const lora_tokenizer *t);

void lora__tokenizer_retain(lora_tokenizer *t);

/* A tokenizer from the texts of tokenizer.json and tokenizer_config.json (NULL: none), as
 * lora_tokenizer_load would make from files; label names the source in messages. */
lora_status lora__tokenizer_from_text(const char *tokenizer_json, const char *config_json,
                                      const char *label, lora_tokenizer **out);

#endif
