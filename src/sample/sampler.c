/* The lora_sampler handle: validation, workspace, and the order in which the warpers run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "api/handle.h"
#include "sample/sampler.h"
#include "util/alloc.h"
#include "util/rng.h"

struct lora_sampler {
    lora__sampler_config cfg;
    lora_rng rng;
    /* Workspace for one row, grown to the largest vocabulary seen and reused. */
    size_t cap;
    double *work;         /* the logits being transformed; the caller's stay untouched */
    double *scratch;      /* for top_k's selection and top_p's weights */
    lora__ranked *order;  /* top_p's candidates, partitioned by rank */
    size_t *counts;       /* occurrences in the generated tokens; zero between calls */
};

LORA_API lora_status lora_sampler_create(const char *config_json, lora_sampler **out)
{
    lora__error_clear();
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_sampler_create: out is NULL");
    *out = NULL;
    lora_sampler *s = lora__calloc(1, sizeof *s);
    if (!s)
        return lora__error_prefix(lora__oom("the sampler", sizeof *s), "lora_sampler_create");
    lora_status st = lora__sampler_config_parse(config_json, &s->cfg);
    if (st != LORA_OK) {
        free(s);
        return st;
    }
    if ((st = lora__handle_add(s, LORA__KIND_SAMPLER))) {
        lora__sampler_config_release(&s->cfg);
        free(s);
        return lora__error_prefix(st, "lora_sampler_create");
    }
    lora__rng_seed(&s->rng, s->cfg.seed);
    *out = s;
    return LORA_OK;
}

LORA_API void lora_sampler_free(lora_sampler *sampler)
{
    if (!lora__handle_freeable(sampler, LORA__KIND_SAMPLER, "lora_sampler_free", "sampler"))
        return;
    lora__handle_remove(sampler);
    lora__sampler_config_release(&sampler->cfg);
    free(sampler->work);
    free(sampler->scratch);
    free(sampler->order);
    free(sampler->counts);
    free(sampler);
}

LORA_API lora_status lora_sampler_set_temperature(lora_sampler *sampler, float temperature)
{
    lora__error_clear();
    lora_status st = lora__handle_check(sampler, LORA__KIND_SAMPLER,
                                        "lora_sampler_set_temperature", "sampler");
    if (st)
        return st;
    if (!(temperature >= 0) || isinf(temperature))
        return lora__error(LORA_ERR_CONFIG, "lora_sampler_set_temperature: temperature %g is "
                           "negative or not finite", (double)temperature);
    sampler->cfg.temperature = temperature;
    return LORA_OK;
}

LORA_API lora_status lora_sampler_set_seed(lora_sampler *sampler, uint64_t seed)
{
    lora__error_clear();
    lora_status st = lora__handle_check(sampler, LORA__KIND_SAMPLER, "lora_sampler_set_seed",
                                        "sampler");
    if (st)
        return st;
    lora__rng_seed(&sampler->rng, seed);
    return LORA_OK;
}

static lora_status check_args(const lora_sampler *sampler, const float *logits, size_t n_vocab,
                              const int32_t *tokens, size_t n_tokens, size_t n_prompt,
                              const int32_t *token_out)
{
    lora_status st = lora__handle_check(sampler, LORA__KIND_SAMPLER, "lora_sampler_sample",
                                        "sampler");
    if (st)
        return st;
    if (!logits || !token_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_sampler_sample: %s is NULL",
                           !logits ? "logits" : "token_out");
    if (n_vocab == 0 || n_vocab > (size_t)INT32_MAX + 1)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_sampler_sample: n_vocab %zu is "
                           "outside 1..2^31", n_vocab);
    if (!tokens && n_tokens > 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_sampler_sample: tokens is NULL "
                           "but n_tokens is %zu", n_tokens);
    if (n_prompt > n_tokens)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_sampler_sample: n_prompt %zu > "
                           "n_tokens %zu", n_prompt, n_tokens);
    return LORA_OK;
}

static lora_status check_tokens(const int32_t *tokens, size_t n_tokens, size_t n_vocab)
{
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || (size_t)tokens[i] >= n_vocab)
            return lora__error(LORA_ERR_RANGE, "lora_sampler_sample: tokens[%zu] = %d is "
                               "outside 0..%zu", i, tokens[i], n_vocab - 1);
    return LORA_OK;
}

/* +inf is allowed (that token wins); NaN, or nothing above -inf, leaves nothing to choose. */
static lora_status check_logits(const float *logits, size_t n_vocab)
{
    int any = 0;
    for (size_t i = 0; i < n_vocab; i++) {
        if (isnan(logits[i]))
            return lora__error(LORA_ERR_NUMERIC, "lora_sampler_sample: logits[%zu] is NaN", i);
        any |= logits[i] != -INFINITY;
    }
    if (!any)
        return lora__error(LORA_ERR_NUMERIC, "lora_sampler_sample: every one of the %zu logits "
                           "is -inf", n_vocab);
    return LORA_OK;
}

/* Grows the workspace to n entries; nothing in it outlives a call except counts, which must be
 * zero, so fresh blocks replace the old ones only once all of them are allocated. */
static lora_status reserve(lora_sampler *s, size_t n)
{
    if (n <= s->cap)
        return LORA_OK;
    double *work = lora__malloc(n * sizeof *work), *scratch = lora__malloc(n * sizeof *scratch);
    lora__ranked *order = lora__malloc(n * sizeof *order);
    size_t *counts = lora__calloc(n, sizeof *counts);
    if (!work || !scratch || !order || !counts) {
        free(work);
        free(scratch);
        free(order);
        free(counts);
        return lora__error_prefix(lora__oom("the sampler workspace", n * (2 * sizeof *work +
                                            sizeof *order + sizeof *counts)),
                                  "lora_sampler_sample");
    }
    free(s->work);
    free(s->scratch);
    free(s->order);
    free(s->counts);
    s->work = work;
    s->scratch = scratch;
    s->order = order;
    s->counts = counts;
    s->cap = n;
    return LORA_OK;
}

static void apply_penalties(lora_sampler *s, const float *logits, size_t n_vocab,
                            const int32_t *tokens, size_t n_tokens, size_t n_prompt)
{
    const lora__sampler_config *c = &s->cfg;
    for (size_t i = 0; i < n_vocab; i++)
        s->work[i] = logits[i];
    if (c->repetition_penalty != 1.0f)
        lora__warp_repetition(s->work, logits, tokens, n_tokens, c->repetition_penalty);
    if (c->presence_penalty != 0.0f || c->frequency_penalty != 0.0f)
        lora__warp_presence_frequency(s->work, s->counts, tokens + n_prompt, n_tokens - n_prompt,
                                      c->presence_penalty, c->frequency_penalty);
}

/* Temperature, top_k, top_p, min_p in Hugging Face's order, then one uniform draw. */
static size_t sample_warped(lora_sampler *s, size_t n_vocab)
{
    const lora__sampler_config *c = &s->cfg;
    if (c->temperature != 1.0f)
        lora__warp_temperature(s->work, n_vocab, c->temperature);
    lora__warp_top_k(s->work, n_vocab, c->top_k, s->scratch);
    lora__warp_top_p(s->work, n_vocab, c->top_p, s->scratch, s->order);
    lora__warp_min_p(s->work, n_vocab, c->min_p);
    return lora__sample_softmax(s->work, n_vocab, lora__rng_uniform_f64(&s->rng));
}

LORA_API lora_status lora_sampler_sample(lora_sampler *sampler, const float *logits,
                                         size_t n_vocab, const int32_t *tokens,
                                         size_t n_tokens, size_t n_prompt, int32_t *token_out)
{
    lora__error_clear();
    lora_status st = check_args(sampler, logits, n_vocab, tokens, n_tokens, n_prompt, token_out);
    if (st == LORA_OK)
        st = check_tokens(tokens, n_tokens, n_vocab);
    if (st == LORA_OK)
        st = check_logits(logits, n_vocab);
    if (st == LORA_OK)
        st = reserve(sampler, n_vocab);
    if (st != LORA_OK)
        return st;
    apply_penalties(sampler, logits, n_vocab, tokens, n_tokens, n_prompt);
    /* Greedy takes the argmax, which top_k, top_p and min_p never change. */
    int greedy = !sampler->cfg.do_sample || sampler->cfg.temperature == 0.0f;
    size_t token = greedy ? lora__argmax(sampler->work, n_vocab) : sample_warped(sampler, n_vocab);
    *token_out = (int32_t)token;
    return LORA_OK;
}

size_t lora__sampler_max_new_tokens(const lora_sampler *s) { return s->cfg.max_new_tokens; }

int lora__sampler_plain_greedy(const lora_sampler *s)
{
    const lora__sampler_config *c = &s->cfg;
    return (!c->do_sample || c->temperature == 0.0f) && c->repetition_penalty == 1.0f &&
           c->presence_penalty == 0.0f && c->frequency_penalty == 0.0f;
}

int lora__sampler_is_eos(const lora_sampler *s, int32_t token)
{
    for (size_t i = 0; i < s->cfg.n_eos; i++)
        if (s->cfg.eos[i] == token)
            return 1;
    return 0;
}

int lora__sampler_hits_stop(const lora_sampler *s, const int32_t *generated, size_t n)
{
    const lora__sampler_config *c = &s->cfg;
    for (size_t i = 0; i < c->n_stop; i++) {
        size_t start = i ? c->stop_end[i - 1] : 0, len = c->stop_end[i] - start;
        if (len <= n && memcmp(generated + n - len, c->stop_ids + start,
                               len * sizeof *generated) == 0)
            return 1;
    }
    return 0;
}
