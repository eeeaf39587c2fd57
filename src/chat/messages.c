/* A conversation's JSON checked once, so that renderers only see what they can render. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "chat/render.h"
#include "util/alloc.h"

static const struct {
    const char *name;
    lora__role role;
} ROLES[] = {
    {"system", LORA__ROLE_SYSTEM},
    {"user", LORA__ROLE_USER},
    {"assistant", LORA__ROLE_ASSISTANT},
};

const char *lora__role_name(lora__role r) { return ROLES[r].name; }

/* Roles the real templates know but liblora does not render. */
static const char *const TOOL_ROLES[] = {"tool", "ipython", "function"};

static lora_status role_of(size_t i, const char *name, lora__role *out)
{
    for (size_t k = 0; k < sizeof ROLES / sizeof ROLES[0]; k++)
        if (strcmp(name, ROLES[k].name) == 0) {
            *out = ROLES[k].role;
            return LORA_OK;
        }
    for (size_t k = 0; k < sizeof TOOL_ROLES / sizeof TOOL_ROLES[0]; k++)
        if (strcmp(name, TOOL_ROLES[k]) == 0)
            return lora__error(LORA_ERR_UNSUPPORTED, "message %zu: role '%s' (tool calling) is "
                               "not supported", i, name);
    return lora__error(LORA_ERR_FORMAT, "message %zu: unknown role '%s' (system, user or "
                       "assistant)", i, name);
}

static lora_status check_one(size_t i, const json_t *m, lora__chat_msg *out)
{
    if (!json_is_object(m))
        return lora__error(LORA_ERR_FORMAT, "message %zu is not a JSON object", i);
    const json_t *role = json_object_get(m, "role");
    const json_t *content = json_object_get(m, "content");
    if (!json_is_string(role))
        return lora__error(LORA_ERR_FORMAT, "message %zu: 'role' %s", i,
                           role ? "must be a string" : "is missing");
    lora_status st = role_of(i, json_string_value(role), &out->role);
    if (st != LORA_OK)
        return st;
    /* Datasets with one schema for all rows write null where a message has no tool calls. */
    const json_t *calls = json_object_get(m, "tool_calls");
    if (calls && !json_is_null(calls))
        return lora__error(LORA_ERR_UNSUPPORTED, "message %zu: 'tool_calls' (tool calling) is "
                           "not supported", i);
    if (!json_is_string(content))
        return lora__error(LORA_ERR_FORMAT, "message %zu: 'content' %s", i,
                           content ? "must be a string" : "is missing");
    if (out->role == LORA__ROLE_SYSTEM && i > 0)
        return lora__error(LORA_ERR_FORMAT, "message %zu: a system message may only come first",
                           i);
    out->content = json_string_value(content);
    out->len = json_string_length(content);
    const json_t *reasoning = json_object_get(m, "reasoning_content");
    out->reasoning = NULL;
    out->reasoning_len = 0;
    if (reasoning && !json_is_null(reasoning)) {
        if (!json_is_string(reasoning) || out->role != LORA__ROLE_ASSISTANT)
            return lora__error(LORA_ERR_FORMAT, "message %zu: 'reasoning_content' must be a "
                               "string (or null) of an assistant message", i);
        out->reasoning = json_string_value(reasoning);
        out->reasoning_len = json_string_length(reasoning);
    }
    return LORA_OK;
}

lora_status lora__chat_messages(const json_t *messages, lora__chat_msg **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(messages))
        return lora__error(LORA_ERR_FORMAT, "messages must be a JSON array");
    size_t count = json_array_size(messages);
    if (count == 0)
        return lora__error(LORA_ERR_FORMAT, "messages is empty: a conversation needs at least "
                           "one message");
    lora__chat_msg *m = lora__malloc(count * sizeof *m);
    if (!m)
        return lora__oom("messages", count * sizeof *m);
    for (size_t i = 0; i < count; i++) {
        lora_status st = check_one(i, json_array_get(messages, i), &m[i]);
        if (st != LORA_OK) {
            free(m);
            return st;
        }
    }
    *out = m;
    *n = count;
    return LORA_OK;
}
