/* Format strings instead of a chat template, e.g. "Human: {q} Assistant:". Each user turn is
 * the format with {q} its content and {system} the system message (the first user turn only;
 * empty elsewhere and when there is none); each assistant turn is a space, its content and the
 * eos token text. The user turn already ends where the reply starts, so there is no separate
 * generation prompt. */
#include <string.h>

#include "api/error.h"
#include "chat/render.h"

size_t lora__find(const char *fmt, size_t len, const char *needle)
{
    const char *p = memmem(fmt, len, needle, strlen(needle));
    return p ? (size_t)(p - fmt) : len;
}

void lora__fill_placeholders(lora__strbuf *b, const char *fmt, size_t len,
                             const lora__placeholder *ph, size_t n)
{
    size_t i = 0, plain = 0;
    while (i < len) {
        size_t k = n;
        if (fmt[i] == '{')
            for (k = 0; k < n; k++)
                if (len - i >= strlen(ph[k].name) &&
                    memcmp(fmt + i, ph[k].name, strlen(ph[k].name)) == 0)
                    break;
        if (k == n) {
            i++;
            continue;
        }
        lora__strbuf_add(b, fmt + plain, i - plain);
        lora__strbuf_add(b, ph[k].value, ph[k].len);
        i += strlen(ph[k].name);
        plain = i;
    }
    lora__strbuf_add(b, fmt + plain, len - plain);
}

static lora_status check(const lora__chat_msg *m, size_t n, const lora__chat_ctx *c,
                         int has_system)
{
    const lora__chat_opts *o = c->opts;
    size_t users = 0, replies = 0;
    for (size_t i = 0; i < n; i++) {
        users += m[i].role == LORA__ROLE_USER;
        replies += m[i].role == LORA__ROLE_ASSISTANT;
    }
    if (has_system && lora__find(o->format, o->format_len, "{system}") == o->format_len)
        return lora__error(LORA_ERR_CONFIG, "message 0: a system message, and key 'format' "
                           "has no {system} to hold it");
    if (has_system && !users)
        return lora__error(LORA_ERR_FORMAT, "message 0: a system message with no user turn "
                           "to carry its {system}");
    if (replies && !c->eos)
        return lora__error(LORA_ERR_CONFIG, "key 'format': assistant turns end with the eos "
                           "token, and the tokenizer has none");
    return LORA_OK;
}

lora_status lora__render_format(const lora__chat_msg *m, size_t n, const lora__chat_ctx *c,
                                lora__chat_out *o)
{
    const lora__chat_msg *sys = m[0].role == LORA__ROLE_SYSTEM ? &m[0] : NULL;
    lora_status st = check(m, n, c, sys != NULL);
    if (st != LORA_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        if (m[i].role == LORA__ROLE_USER) {
            lora__placeholder ph[2] = {
                {"{q}", m[i].content, m[i].len},
                {"{system}", sys ? sys->content : "", sys ? sys->len : 0},
            };
            lora__fill_placeholders(&o->text, c->opts->format, c->opts->format_len, ph, 2);
            sys = NULL;
        } else if (m[i].role == LORA__ROLE_ASSISTANT) {
            /* the span takes the space: byte-level BPE joins it to the reply's first word */
            lora__chat_span_open(o);
            lora__strbuf_adds(&o->text, " ");
            lora__strbuf_add(&o->text, m[i].content, m[i].len);
            lora__strbuf_adds(&o->text, c->eos);
            lora__chat_span_close(o);
        }
    }
    return LORA_OK;
}
