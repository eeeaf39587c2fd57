/* lora_chat_render: JSON text in, a rendered conversation out. */
#include <stdlib.h>

#include "api/error.h"
#include "api/handle.h"
#include "chat/chat.h"
#include "util/json_text.h"

LORA_API lora_status lora_chat_render(const lora_tokenizer *tokenizer, const char *messages_json,
                                      const char *options_json, char **text_out)
{
    lora__error_clear();
    static const char fn[] = "lora_chat_render";
    if (text_out)
        *text_out = NULL;
    if (lora__handle_check(tokenizer, LORA__KIND_TOKENIZER, fn, "tokenizer"))
        return LORA_ERR_INVALID_ARGUMENT;
    if (!messages_json || !text_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                           !messages_json ? "messages_json" : "text_out");
    json_error_t err;
    json_t *messages = lora__json_loads(messages_json, JSON_REJECT_DUPLICATES, &err);
    if (!messages)
        return lora__error(LORA_ERR_FORMAT, "%s: messages_json is not valid JSON: %s (line %d, "
                           "column %d)", fn, err.text, err.line, err.column);
    json_t *options = NULL;
    if (options_json && !(options = lora__json_loads(options_json, JSON_REJECT_DUPLICATES, &err))) {
        json_decref(messages);
        return lora__error(LORA_ERR_CONFIG, "%s: options_json is not valid JSON: %s (line %d, "
                           "column %d)", fn, err.text, err.line, err.column);
    }
    lora_status st = lora__chat_render(tokenizer, messages, options, text_out, NULL, NULL);
    json_decref(messages);
    json_decref(options);
    return st == LORA_OK ? st : lora__error_prefix(st, "%s", fn);
}
