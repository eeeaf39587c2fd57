/* The pieces behind lora__chat_render: a checked conversation, its options, the renderer
 * chosen for it, and the text being built with its assistant spans. */
#ifndef LORA_CHAT_RENDER_H
#define LORA_CHAT_RENDER_H

#include <jansson.h>
#include <stddef.h>

#include "chat/chat.h"
#include "util/strbuf.h"

typedef enum lora__role { LORA__ROLE_SYSTEM, LORA__ROLE_USER, LORA__ROLE_ASSISTANT } lora__role;

/* One message; the strings point into the caller's JSON. */
typedef struct lora__chat_msg {
    lora__role role;
    const char *content;
    size_t len;
    const char *reasoning;  /* "reasoning_content", NULL when absent or null */
    size_t reasoning_len;
} lora__chat_msg;

/* "system", "user", "assistant" */
const char *lora__role_name(lora__role r);

/* Checks messages (see chat.h) into a malloc'd array of n >= 1 messages. */
lora_status lora__chat_messages(const json_t *messages, lora__chat_msg **out, size_t *n);

/* ---- options (chat_options.c) -------------------------------------------------------------- */

typedef struct lora__chat_opts {
    const char *template_name;  /* "template", NULL when not given */
    const char *format;         /* "format", NULL when not given */
    size_t format_len;
    int add_generation_prompt;  /* default 0 */
    int enable_thinking;        /* default 1 */
    const char *date_string;    /* NULL: the template's own date */
} lora__chat_opts;

/* Reads lora_chat_render's options (NULL: defaults); the strings point into options.
 * LORA_ERR_CONFIG names the key. */
lora_status lora__chat_options(const json_t *options, lora__chat_opts *o);

/* ---- renderers and their recognition (template_detect.c) ----------------------------------- */

typedef enum lora__chat_kind {
    LORA__CHAT_QWEN25,
    LORA__CHAT_QWEN3,
    LORA__CHAT_LLAMA3,
    LORA__CHAT_CHATML,
    LORA__CHAT_FORMAT,
    LORA__CHAT_SMOLLM2,
} lora__chat_kind;

/* Llama 3 templates differ in their system header: 3.0 has none of its own, 3.1 and 3.3 write
 * a knowledge cutoff and a fixed date, 3.2 today's date. */
typedef enum lora__llama3_preamble {
    LORA__LLAMA3_NO_PREAMBLE,
    LORA__LLAMA3_FIXED_DATE,
    LORA__LLAMA3_TODAY,
} lora__llama3_preamble;

typedef struct lora__chat_style {
    lora__chat_kind kind;
    lora__llama3_preamble preamble;
} lora__chat_style;

/* The built-in names, comma separated, for messages. */
extern const char lora__chat_builtin_names[];
/* 1 and *out when name is a built-in renderer's name, else 0. */
int lora__chat_style_named(const char *name, lora__chat_style *out);
/* The built-in name of a kind ("qwen2.5", ...). */
const char *lora__chat_kind_name(lora__chat_kind kind);
/* 1 and *out when template_text is one of the known templates, else 0. */
int lora__chat_style_recognise(const char *template_text, lora__chat_style *out);

/* ---- output --------------------------------------------------------------------------------- */

typedef struct lora__chat_out {
    lora__strbuf text;
    lora__span *spans;      /* NULL when not wanted */
    size_t n_spans, cap_spans;
    int want_spans;
    size_t open;            /* start of the assistant span being written */
    size_t failed;          /* bytes of a span list allocation that failed */
} lora__chat_out;

/* An assistant span starts / ends at the current end of the text. */
void lora__chat_span_open(lora__chat_out *o);
void lora__chat_span_close(lora__chat_out *o);

/* What the renderers need beyond the messages. */
typedef struct lora__chat_ctx {
    const lora__chat_opts *opts;
    lora__chat_style style;
    const char *bos, *eos;  /* special token texts, NULL when the tokenizer has none */
} lora__chat_ctx;

void lora__render_chatml(const lora__chat_msg *m, size_t n, const lora__chat_ctx *c,
                         lora__chat_out *o);
void lora__render_qwen3(const lora__chat_msg *m, size_t n, const lora__chat_ctx *c,
                        lora__chat_out *o);
void lora__render_llama3(const lora__chat_msg *m, size_t n, const lora__chat_ctx *c,
                         lora__chat_out *o);
/* Format strings can refuse a conversation (LORA_ERR_CONFIG / LORA_ERR_FORMAT). */
lora_status lora__render_format(const lora__chat_msg *m, size_t n, const lora__chat_ctx *c,
                                lora__chat_out *o);

/* A format string's "{name}" placeholders: one pass, so substituted text is never rescanned. */
typedef struct lora__placeholder {
    const char *name;  /* "{q}" */
    const char *value;
    size_t len;
} lora__placeholder;

void lora__fill_placeholders(lora__strbuf *b, const char *fmt, size_t len,
                             const lora__placeholder *ph, size_t n);
/* Offset of the first occurrence of needle in fmt[0, len), len when there is none. */
size_t lora__find(const char *fmt, size_t len, const char *needle);

/* ---- the tokenizer's part, so that tests can render without one ---------------------------- */

typedef struct lora__chat_source {
    const char *template_text;  /* tokenizer_config.json's chat_template, or NULL */
    const char *override;       /* a built-in name the tokenizer's load forced, or NULL */
    const char *bos, *eos;      /* special token texts, or NULL */
} lora__chat_source;

/* lora__chat_render with the tokenizer's part given directly. */
lora_status lora__chat_render_source(const lora__chat_source *src, const json_t *messages,
                                     const json_t *options, char **text, lora__span **spans,
                                     size_t *n_spans);

#endif
