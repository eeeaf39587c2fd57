/* Llama 3 Instruct: bos, then "<|start_header_id|>role<|end_header_id|>\n\n" + content trimmed
 * as Python's str.strip() does + "<|eot_id|>" per message. Llama 3.1, 3.2 and 3.3 always open
 * with a system header holding "Cutting Knowledge Date: December 2023", "Today Date: ..." and
 * the (trimmed) system message; 3.0 writes a system message like any other turn. */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "chat/render.h"

#define FIXED_DATE "26 Jul 2024"

/* Python's str.isspace(): Unicode White_Space less U+180E, plus U+001C..U+001F. */
static int py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

/* The character at s (valid UTF-8, as jansson guarantees) and its length. */
static uint32_t utf8_at(const unsigned char *s, size_t *len)
{
    if (s[0] < 0x80) {
        *len = 1;
        return s[0];
    }
    size_t k = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    uint32_t c = s[0] & (0x7f >> k);
    for (size_t i = 1; i < k; i++)
        c = c << 6 | (s[i] & 0x3f);
    *len = k;
    return c;
}

static void trimmed(const char *s, size_t n, const char **out, size_t *out_n)
{
    const unsigned char *b = (const unsigned char *)s, *e = b + n;
    size_t k;
    while (b < e && py_space(utf8_at(b, &k)))
        b += k;
    while (e > b) {
        const unsigned char *p = e - 1;
        while (p > b && (*p & 0xc0) == 0x80)
            p--;
        if (!py_space(utf8_at(p, &k)))
            break;
        e = p;
    }
    *out = (const char *)b;
    *out_n = (size_t)(e - b);
}

static void add_trimmed(lora__chat_out *o, const lora__chat_msg *m)
{
    const char *s;
    size_t n;
    trimmed(m->content, m->len, &s, &n);
    lora__strbuf_add(&o->text, s, n);
}

static void turn(lora__chat_out *o, const lora__chat_msg *m)
{
    int assistant = m->role == LORA__ROLE_ASSISTANT;
    lora__strbuf_adds(&o->text, "<|start_header_id|>");
    lora__strbuf_adds(&o->text, lora__role_name(m->role));
    lora__strbuf_adds(&o->text, "<|end_header_id|>\n\n");
    if (assistant)
        lora__chat_span_open(o);
    add_trimmed(o, m);
    lora__strbuf_adds(&o->text, "<|eot_id|>");
    if (assistant)
        lora__chat_span_close(o);
}

/* strftime_now("%d %b %Y") in the C locale, as transformers gives Llama 3.2's template. */
static void add_today(lora__strbuf *b)
{
    static const char MONTHS[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    if (!localtime_r(&now, &tm)) {
        lora__strbuf_adds(b, FIXED_DATE);
        return;
    }
    /* %d and %s never depend on the locale; %b would */
    char date[32];
    snprintf(date, sizeof date, "%02d %s %d", tm.tm_mday, MONTHS[tm.tm_mon], tm.tm_year + 1900);
    lora__strbuf_adds(b, date);
}

static void system_header(lora__chat_out *o, const lora__chat_msg *sys, const lora__chat_ctx *c)
{
    lora__strbuf_adds(&o->text, "<|start_header_id|>system<|end_header_id|>\n\n"
                                "Cutting Knowledge Date: December 2023\nToday Date: ");
    if (c->opts->date_string)
        lora__strbuf_adds(&o->text, c->opts->date_string);
    else if (c->style.preamble == LORA__LLAMA3_TODAY)
        add_today(&o->text);
    else
        lora__strbuf_adds(&o->text, FIXED_DATE);
    lora__strbuf_adds(&o->text, "\n\n");
    if (sys)
        add_trimmed(o, sys);
    lora__strbuf_adds(&o->text, "<|eot_id|>");
}

void lora__render_llama3(const lora__chat_msg *m, size_t n, const lora__chat_ctx *c,
                         lora__chat_out *o)
{
    if (c->bos)
        lora__strbuf_adds(&o->text, c->bos);
    size_t first = 0;
    if (c->style.preamble != LORA__LLAMA3_NO_PREAMBLE) {
        const lora__chat_msg *sys = m[0].role == LORA__ROLE_SYSTEM ? &m[0] : NULL;
        system_header(o, sys, c);
        first = sys ? 1 : 0;
    }
    for (size_t i = first; i < n; i++)
        turn(o, &m[i]);
    if (c->opts->add_generation_prompt)
        lora__strbuf_adds(&o->text, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}
