/* lora__chat_render: picks the renderer (options, then the tokenizer's forced name, then its
 * recognised template) and collects the text with its assistant spans. */
#include <stdio.h>
#include <stdlib.h>

#include "api/error.h"
#include "chat/render.h"
#include "tokenizer/tokenizer.h"
#include "util/alloc.h"

void lora__chat_span_open(lora__chat_out *o) { o->open = o->text.len; }

void lora__chat_span_close(lora__chat_out *o)
{
    if (!o->want_spans || o->failed)
        return;
    if (o->n_spans == o->cap_spans) {
        size_t cap = o->cap_spans ? 2 * o->cap_spans : 8;
        lora__span *p = lora__realloc(o->spans, cap * sizeof *p);
        if (!p) {
            o->failed = cap * sizeof *p;
            return;
        }
        o->spans = p;
        o->cap_spans = cap;
    }
    o->spans[o->n_spans++] = (lora__span){o->open, o->text.len};
}

static lora_status pick_help(lora_status st, const char *what)
{
    return lora__error(st, "%s: pick a built-in template (%s) with the \"template\" option or "
                       "the tokenizer's \"chat_template\" load option, or give a \"format\" "
                       "string such as \"Human: {q} Assistant:\"", what,
                       lora__chat_builtin_names);
}

static lora_status pick(const lora__chat_source *src, const lora__chat_opts *o,
                        lora__chat_style *style)
{
    if (o->format) {
        style->kind = LORA__CHAT_FORMAT;
        return LORA_OK;
    }
    if (o->template_name && lora__chat_style_named(o->template_name, style))
        return LORA_OK;
    if (src->override) {
        if (lora__chat_style_named(src->override, style))
            return LORA_OK;
        char what[256];
        snprintf(what, sizeof what, "the tokenizer's chat_template option '%s' is not a "
                 "built-in name", src->override);
        return pick_help(LORA_ERR_CONFIG, what);
    }
    if (!src->template_text)
        return pick_help(LORA_ERR_UNSUPPORTED, "the tokenizer has no chat template");
    if (lora__chat_style_recognise(src->template_text, style))
        return LORA_OK;
    return pick_help(LORA_ERR_UNSUPPORTED,
                     "the tokenizer's chat template is not one liblora recognises");
}

static lora_status render(const lora__chat_msg *m, size_t n, const lora__chat_ctx *c,
                          lora__chat_out *o)
{
    switch (c->style.kind) {
    case LORA__CHAT_QWEN25:
    case LORA__CHAT_SMOLLM2:
    case LORA__CHAT_CHATML: lora__render_chatml(m, n, c, o); break;
    case LORA__CHAT_QWEN3: lora__render_qwen3(m, n, c, o); break;
    case LORA__CHAT_LLAMA3: lora__render_llama3(m, n, c, o); break;
    case LORA__CHAT_FORMAT: return lora__render_format(m, n, c, o);
    }
    return LORA_OK;
}

lora_status lora__chat_render_source(const lora__chat_source *src, const json_t *messages,
                                     const json_t *options, char **text, lora__span **spans,
                                     size_t *n_spans)
{
    *text = NULL;
    if (spans) {
        *spans = NULL;
        *n_spans = 0;
    }
    lora__chat_opts opts;
    lora__chat_ctx ctx = {.opts = &opts, .bos = src->bos, .eos = src->eos};
    lora_status st = lora__chat_options(options, &opts);
    if (st == LORA_OK)
        st = pick(src, &opts, &ctx.style);
    lora__chat_msg *m = NULL;
    size_t n = 0;
    if (st == LORA_OK)
        st = lora__chat_messages(messages, &m, &n);
    lora__chat_out out = {.want_spans = spans != NULL};
    if (st == LORA_OK)
        st = render(m, n, &ctx, &out);
    free(m);
    if (st == LORA_OK)
        st = lora__strbuf_status(&out.text, "the rendered conversation");
    if (st == LORA_OK && out.failed)
        st = lora__oom("assistant spans", out.failed);
    if (st == LORA_OK)
        *text = lora__strbuf_take(&out.text);
    if (st == LORA_OK && !*text)
        st = lora__oom("the rendered conversation", out.text.len + 1);
    if (st != LORA_OK) {
        lora__strbuf_free(&out.text);
        free(out.spans);
        return st;
    }
    if (spans) {
        *spans = out.spans;
        *n_spans = out.n_spans;
    }
    return LORA_OK;
}

lora_status lora__chat_render(const lora_tokenizer *t, const json_t *messages,
                              const json_t *options, char **text, lora__span **spans,
                              size_t *n_spans)
{
    lora__chat_source src = {
        .template_text = lora__tokenizer_chat_template(t),
        .override = lora__tokenizer_template_override(t),
        .bos = lora__tokenizer_special_text(t, LORA__BOS),
        .eos = lora__tokenizer_special_text(t, LORA__EOS),
    };
    return lora__chat_render_source(&src, messages, options, text, spans, n_spans);
}
