/* ChatML as Qwen2.5-Instruct's, SmolLM2-Instruct's and the plain template write it:
 * "<|im_start|>role\n", the content verbatim, "<|im_end|>\n". The first two differ from plain
 * ChatML only in the system message they add when the conversation has none. */
#include "chat/render.h"

#define QWEN25_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
#define SMOLLM2_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

static void turn(lora__chat_out *o, const lora__chat_msg *m)
{
    int assistant = m->role == LORA__ROLE_ASSISTANT;
    lora__strbuf_adds(&o->text, "<|im_start|>");
    lora__strbuf_adds(&o->text, lora__role_name(m->role));
    lora__strbuf_adds(&o->text, "\n");
    if (assistant)
        lora__chat_span_open(o);
    lora__strbuf_add(&o->text, m->content, m->len);
    lora__strbuf_adds(&o->text, "<|im_end|>");
    if (assistant)
        lora__chat_span_close(o);
    lora__strbuf_adds(&o->text, "\n");
}

void lora__render_chatml(const lora__chat_msg *m, size_t n, const lora__chat_ctx *c,
                         lora__chat_out *o)
{
    if (m[0].role != LORA__ROLE_SYSTEM) {
        if (c->style.kind == LORA__CHAT_QWEN25)
            lora__strbuf_adds(&o->text, "<|im_start|>system\n" QWEN25_SYSTEM "<|im_end|>\n");
        else if (c->style.kind == LORA__CHAT_SMOLLM2)
            lora__strbuf_adds(&o->text, "<|im_start|>system\n" SMOLLM2_SYSTEM "<|im_end|>\n");
    }
    for (size_t i = 0; i < n; i++)
        turn(o, &m[i]);
    if (c->opts->add_generation_prompt)
        lora__strbuf_adds(&o->text, "<|im_start|>assistant\n");
}
