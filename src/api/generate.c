/* lora_generate: prefill, then sample and append one token at a time. */
#include <stdlib.h>

#include "api/error.h"
#include "api/handle.h"
#include "model/session.h"
#include "sample/sampler.h"
#include "util/alloc.h"

/* Appends ids; *tok: the greedy token where the device chose it, else -1 and the host samples
 * from logits. Decided per step: a callback may change the sampler's temperature. */
static lora_status feed(lora_session *s, const lora_sampler *smp, const int32_t *ids, size_t n,
                        float *logits, int32_t *tok)
{
    *tok = -1;
    return lora__sampler_plain_greedy(smp) ? lora__session_append_greedy(s, ids, n, logits, tok)
                                           : lora_session_append(s, ids, n, logits);
}

LORA_API lora_status lora_generate(lora_session *s, lora_sampler *smp, const int32_t *prompt,
                                   size_t n, int32_t *out, size_t cap, size_t *n_out,
                                   lora_token_cb cb, void *user)
{
    lora__error_clear();
    static const char fn[] = "lora_generate";
    if (n_out)
        *n_out = 0;
    lora_status st = lora__handle_check(s, LORA__KIND_SESSION, fn, "session");
    if (!st)
        st = lora__handle_check(smp, LORA__KIND_SAMPLER, fn, "sampler");
    if (st)
        return st;
    if (!n_out || (n && !prompt) || (cap && !out))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                           !n_out ? "n_out" : (n && !prompt) ? "prompt" : "out");
    if (n == 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT,
                           "%s: n = 0: a prompt of at least one token is needed (to continue, "
                           "pass the last generated token)", fn);
    size_t V = (size_t)s->model->cfg.vocab;
    float *logits = lora__malloc(V * sizeof *logits);
    if (!logits)
        return lora__oom("logits", V * sizeof *logits);
    int32_t tok;
    st = feed(s, smp, prompt, n, logits, &tok);
    size_t n_prompt = (size_t)s->pos;
    size_t limit = lora__sampler_max_new_tokens(smp);
    limit = limit < cap ? limit : cap;
    for (size_t i = 0; !st && i < limit; i++) {
        if (tok < 0 &&
            (st = lora_sampler_sample(smp, logits, V, s->tokens, (size_t)s->pos, n_prompt, &tok)))
            break;
        out[i] = tok;
        *n_out = i + 1;
        if ((cb && cb(tok, user)) || lora__sampler_is_eos(smp, tok) ||
            lora__sampler_hits_stop(smp, out, i + 1) || i + 1 == limit)
            break;
        if (s->pos == s->max_ctx) {
            st = lora__error(LORA_ERR_RANGE, "%s: the context is full (max_context = %lld) after "
                             "%zu new tokens", fn, (long long)s->max_ctx, i + 1);
            break;
        }
        int32_t last = tok;
        st = feed(s, smp, &last, 1, logits, &tok);
    }
    free(logits);
    return st;
}
