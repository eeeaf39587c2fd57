/* One JSONL object to ids and a loss mask: the text as the model sees it, and which of its
 * bytes are the model's to predict. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "chat/chat.h"
#include "data/dataset.h"
#include "tokenizer/tokenizer.h"
#include "util/alloc.h"

static lora__format detect(const json_t *line)
{
    if (json_object_get(line, "messages"))
        return LORA__FORMAT_MESSAGES;
    if (json_object_get(line, "prompt") || json_object_get(line, "completion"))
        return LORA__FORMAT_PROMPT_COMPLETION;
    if (json_object_get(line, "text"))
        return LORA__FORMAT_TEXT;
    return LORA__FORMAT_AUTO;
}

static lora_status get_string(const json_t *line, const char *key, const char **out)
{
    const json_t *v = json_object_get(line, key);
    if (!v)
        return lora__error(LORA_ERR_FORMAT, "missing key '%s'", key);
    if (!json_is_string(v))
        return lora__error(LORA_ERR_FORMAT, "key '%s' must be a string", key);
    *out = json_string_value(v);
    return LORA_OK;
}

static lora_status check_messages(const json_t *msgs)
{
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return lora__error(LORA_ERR_FORMAT, "key 'messages' must be a non-empty array");
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m) {
        if (!json_is_object(m))
            return lora__error(LORA_ERR_FORMAT, "messages[%zu] is not an object", i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const json_t *content = json_object_get(m, "content");
        if (!role)
            return lora__error(LORA_ERR_FORMAT, "messages[%zu]: key 'role' is missing or not "
                               "a string", i);
        if (strcmp(role, "system") != 0 && strcmp(role, "user") != 0 &&
            strcmp(role, "assistant") != 0)
            return lora__error(LORA_ERR_FORMAT, "messages[%zu]: unknown role '%s' (system, "
                               "user or assistant)", i, role);
        if (!json_is_string(content))
            return lora__error(LORA_ERR_FORMAT, "messages[%zu]: key 'content' is missing or "
                               "not a string", i);
        if (strcmp(role, "assistant") == 0 && json_string_length(content) == 0)
            return lora__error(LORA_ERR_FORMAT, "messages[%zu]: empty assistant turn", i);
    }
    return LORA_OK;
}

/* A malloc'd concatenation of up to four strings (NULL ones left out). */
static char *concat(const char *const parts[4], size_t *len)
{
    size_t n = 0;
    for (int i = 0; i < 4; i++)
        n += parts[i] ? strlen(parts[i]) : 0;
    char *s = lora__malloc(n + 1);
    if (!s)
        return NULL;
    size_t at = 0;
    for (int i = 0; i < 4; i++)
        if (parts[i]) {
            size_t k = strlen(parts[i]);
            memcpy(s + at, parts[i], k);
            at += k;
        }
    s[at] = '\0';
    *len = at;
    return s;
}

/* bos (when the tokenizer names one, as Hugging Face's tokenizer(text) adds it), a, b, then
 * eos. The loss span is everything, or with a completion b, b and the eos. */
static lora_status plain_text(const lora_tokenizer *t, const char *a, const char *b,
                              char **text, size_t *len, lora__span *span)
{
    const char *bos = lora__tokenizer_special_text(t, LORA__BOS);
    const char *eos = lora__tokenizer_special_text(t, LORA__EOS);
    const char *parts[4] = {bos, a, b, eos};
    *text = concat(parts, len);
    if (!*text)
        return lora__oom("a sample's text", strlen(a) + (b ? strlen(b) : 0));
    span->start = b ? (bos ? strlen(bos) : 0) + strlen(a) : 0;
    span->end = *len;
    return LORA_OK;
}

/* Token k is in the loss when its bytes overlap a span (Hugging Face's
 * return_assistant_tokens_mask marks the tokens holding the span's characters). */
static void mark_loss(const lora__encoding *e, const lora__span *spans, size_t n_spans,
                      unsigned char *loss)
{
    size_t s = 0;
    for (size_t k = 0; k < e->n; k++) {
        while (s < n_spans && spans[s].end <= e->start[k])
            s++;
        /* an empty token span (none in byte-level BPE) counts when it lies inside */
        loss[k] = s < n_spans && (e->end[k] > spans[s].start || e->start[k] >= spans[s].start);
    }
}

static lora_status render(const lora_tokenizer *t, const lora__dataset_config *cfg,
                          const json_t *line, lora__format format, char **text, size_t *len,
                          lora__span **spans, size_t *n_spans)
{
    const char *a = NULL, *b = NULL;
    lora_status st;
    if (format == LORA__FORMAT_MESSAGES) {
        const json_t *msgs = json_object_get(line, "messages");
        if (!msgs)
            return lora__error(LORA_ERR_FORMAT, "missing key 'messages'");
        if ((st = check_messages(msgs)) != LORA_OK)
            return st;
        if ((st = lora__chat_render(t, msgs, cfg->chat, text, spans, n_spans)) != LORA_OK)
            return st;
        *len = strlen(*text);
        return LORA_OK;
    }
    *spans = lora__malloc(sizeof **spans);
    if (!*spans)
        return lora__oom("a span", sizeof **spans);
    *n_spans = 1;
    if (format == LORA__FORMAT_TEXT) {
        if ((st = get_string(line, "text", &a)) != LORA_OK)
            return st;
        return plain_text(t, a, NULL, text, len, *spans);
    }
    if ((st = get_string(line, "prompt", &a)) != LORA_OK ||
        (st = get_string(line, "completion", &b)) != LORA_OK)
        return st;
    return plain_text(t, a, b, text, len, *spans);
}

lora_status lora__sample_make(const lora_tokenizer *t, const lora__dataset_config *cfg,
                              const json_t *line, lora__sample *out)
{
    *out = (lora__sample){0};
    if (!json_is_object(line))
        return lora__error(LORA_ERR_FORMAT, "not a JSON object");
    lora__format format = cfg->format == LORA__FORMAT_AUTO ? detect(line) : cfg->format;
    if (format == LORA__FORMAT_AUTO)
        return lora__error(LORA_ERR_FORMAT, "no key 'messages', 'prompt' and 'completion', "
                           "or 'text'");
    char *text = NULL;
    size_t len = 0, n_spans = 0;
    lora__span *spans = NULL;
    lora__encoding e = {0};
    lora_status st = render(t, cfg, line, format, &text, &len, &spans, &n_spans);
    if (st == LORA_OK)
        st = lora__tokenizer_encode(t, text, len, 0, &e);
    if (st == LORA_OK) {
        out->loss = lora__malloc(e.n ? e.n : 1);
        if (!out->loss) {
            st = lora__oom("a loss mask", e.n);
        } else {
            if (cfg->loss_all)
                memset(out->loss, 1, e.n);
            else
                mark_loss(&e, spans, n_spans, out->loss);
            out->ids = e.ids;
            out->n = e.n;
            e.ids = NULL;
        }
    }
    lora__encoding_free(&e);
    free(text);
    free(spans);
    return st;
}

void lora__sample_free(lora__sample *s)
{
    free(s->ids);
    free(s->loss);
    *s = (lora__sample){0};
}
