/* Chat rendering as the dataset code uses it: the text and where the assistant's loss is. */
#ifndef LORA_CHAT_CHAT_H
#define LORA_CHAT_CHAT_H

#include <jansson.h>
#include <stddef.h>

#include "lora.h"

/* A byte range of rendered text: [start, end). */
typedef struct lora__span {
    size_t start, end;
} lora__span;

/* Renders messages (a JSON array of {"role", "content"}) with options (a JSON object of
 * lora_chat_render's options, or NULL) into *text (malloc'd, NUL-terminated). *spans gets one
 * span per assistant turn (malloc'd, NULL when there is none): the text the template writes
 * for the turn after its header, up to and including its end-of-turn token text
 * ("<|im_end|>", "<|eot_id|>"), not the newline after it. That is the content (trimmed for
 * llama3; for qwen3 including the think block the template writes, or without the reasoning
 * it drops); for format strings, " " + content + eos, the space included since byte-level BPE
 * joins it to the reply's first word. NULL/0 when spans is NULL. Errors name the message index
 * or option key and start with no function name (the caller prefixes file:line or its own
 * name); on failure *text and *spans are NULL. */
lora_status lora__chat_render(const lora_tokenizer *t, const json_t *messages,
                              const json_t *options, char **text, lora__span **spans,
                              size_t *n_spans);

#endif
