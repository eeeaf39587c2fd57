/* Qwen3's hybrid-thinking template. Beyond ChatML: an assistant turn after the last real user
 * question shows its reasoning in a <think> block (always for the final message), earlier
 * turns lose theirs; reasoning comes from "reasoning_content" or from the "<think>...</think>"
 * the content holds before "</think>"; enable_thinking false opens the reply with an empty think block. */
#include <string.h>

#include "chat/render.h"

#define NO_MATCH ((size_t)-1)

typedef struct piece {
    const char *s;
    size_t n;
} piece;

static int starts_with(piece p, const char *x)
{
    size_t k = strlen(x);
    return p.n >= k && memcmp(p.s, x, k) == 0;
}

static int ends_with(piece p, const char *x)
{
    size_t k = strlen(x);
    return p.n >= k && memcmp(p.s + p.n - k, x, k) == 0;
}

static size_t find_last(piece p, const char *x)
{
    size_t k = strlen(x);
    for (size_t i = p.n >= k ? p.n - k + 1 : 0; i-- > 0;)
        if (memcmp(p.s + i, x, k) == 0)
            return i;
    return NO_MATCH;
}

static piece lstrip_nl(piece p)
{
    while (p.n && *p.s == '\n')
        p.s++, p.n--;
    return p;
}

static piece rstrip_nl(piece p)
{
    while (p.n && p.s[p.n - 1] == '\n')
        p.n--;
    return p;
}

/* The template's messages[::-1] scan: the last user message that is not a tool response, or
 * the last message when there is none. */
static size_t last_query(const lora__chat_msg *m, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        piece c = {m[i].content, m[i].len};
        if (m[i].role == LORA__ROLE_USER &&
            !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>")))
            return i;
    }
    return n - 1;
}

/* content.split('</think>')[-1].lstrip('\n') and
 * content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
static void split_think(piece content, piece *answer, piece *reasoning)
{
    size_t last = find_last(content, "</think>");
    size_t first = lora__find(content.s, content.n, "</think>");
    const size_t close = strlen("</think>"), open = strlen("<think>");
    *answer = lstrip_nl((piece){content.s + last + close, content.n - last - close});
    piece before = rstrip_nl((piece){content.s, first});
    size_t tag = find_last(before, "<think>");
    if (tag != NO_MATCH)
        before = (piece){before.s + tag + open, before.n - tag - open};
    *reasoning = lstrip_nl(before);
}

static void assistant(lora__chat_out *o, const lora__chat_msg *m, int show_thinking)
{
    piece answer = {m->content, m->len}, reasoning = {"", 0};
    if (m->reasoning)
        reasoning = (piece){m->reasoning, m->reasoning_len};
    else if (lora__find(m->content, m->len, "</think>") != m->len)
        split_think(answer, &answer, &reasoning);
    lora__strbuf_adds(&o->text, "<|im_start|>assistant\n");
    lora__chat_span_open(o);
    if (show_thinking == 2 || (show_thinking && reasoning.n)) {
        piece r = rstrip_nl(lstrip_nl(reasoning));
        answer = lstrip_nl(answer);
        lora__strbuf_adds(&o->text, "<think>\n");
        lora__strbuf_add(&o->text, r.s, r.n);
        lora__strbuf_adds(&o->text, "\n</think>\n\n");
    }
    lora__strbuf_add(&o->text, answer.s, answer.n);
    lora__strbuf_adds(&o->text, "<|im_end|>");
    lora__chat_span_close(o);
    lora__strbuf_adds(&o->text, "\n");
}

void lora__render_qwen3(const lora__chat_msg *m, size_t n, const lora__chat_ctx *c,
                        lora__chat_out *o)
{
    size_t query = last_query(m, n);
    for (size_t i = 0; i < n; i++) {
        if (m[i].role == LORA__ROLE_ASSISTANT) {
            /* 2: the final message always shows a think block, 1: when it has reasoning */
            assistant(o, &m[i], i > query ? (i == n - 1 ? 2 : 1) : 0);
            continue;
        }
        lora__strbuf_adds(&o->text, "<|im_start|>");
        lora__strbuf_adds(&o->text, lora__role_name(m[i].role));
        lora__strbuf_adds(&o->text, "\n");
        lora__strbuf_add(&o->text, m[i].content, m[i].len);
        lora__strbuf_adds(&o->text, "<|im_end|>\n");
    }
    if (c->opts->add_generation_prompt) {
        lora__strbuf_adds(&o->text, "<|im_start|>assistant\n");
        if (!c->opts->enable_thinking)
            lora__strbuf_adds(&o->text, "<think>\n\n</think>\n\n");
    }
}
