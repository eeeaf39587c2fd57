/* The evaluation entry points: argument checks, then src/eval. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/adapter.h"
#include "api/error.h"
#include "api/handle.h"
#include "eval/eval.h"
#include "model/model.h"

LORA_API lora_status lora_answer_extract(const char *text, size_t len, char **answer_out)
{
    lora__error_clear();
    static const char fn[] = "lora_answer_extract";
    if (answer_out)
        *answer_out = NULL;
    if (!answer_out || (!text && len))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                           !answer_out ? "answer_out" : "text (with len > 0)");
    lora_status st = text ? lora__answer_extract(text, len, answer_out) : LORA_OK;
    return st == LORA_OK ? st : lora__error_prefix(st, "%s", fn);
}

LORA_API lora_status lora_answer_normalize(const char *answer, char **normalized_out)
{
    lora__error_clear();
    static const char fn[] = "lora_answer_normalize";
    if (normalized_out)
        *normalized_out = NULL;
    if (!answer || !normalized_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                           !answer ? "answer" : "normalized_out");
    lora_status st = lora__answer_normalize(answer, strlen(answer), normalized_out);
    return st == LORA_OK ? st : lora__error_prefix(st, "%s", fn);
}

LORA_API lora_status lora_answer_match(const char *predicted, const char *reference,
                                       int *match_out)
{
    lora__error_clear();
    static const char fn[] = "lora_answer_match";
    if (match_out)
        *match_out = 0;
    if (!reference || !match_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                           !reference ? "reference" : "match_out");
    if (!predicted)
        return LORA_OK;
    char *a = NULL, *b = NULL;
    lora_status st = lora__answer_normalize(predicted, strlen(predicted), &a);
    if (st == LORA_OK)
        st = lora__answer_normalize(reference, strlen(reference), &b);
    if (st == LORA_OK)
        *match_out = lora__answer_equal(a, b);
    free(a);
    free(b);
    return st == LORA_OK ? st : lora__error_prefix(st, "%s", fn);
}

LORA_API lora_status lora_pass_at_k(size_t n, size_t c, size_t k, double *pass_out)
{
    lora__error_clear();
    if (!pass_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_pass_at_k: pass_out is NULL");
    *pass_out = 0;
    if (!n || !k || k > n || c > n)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_pass_at_k: n = %zu, c = %zu, k = "
                           "%zu: need 1 <= k <= n and c <= n", n, c, k);
    *pass_out = lora__pass_at_k(n, c, k);
    return LORA_OK;
}

LORA_API lora_status lora_pass_at_k_table(const uint8_t *correct, size_t questions,
                                          size_t rollouts, char **json_out, char **text_out)
{
    lora__error_clear();
    static const char fn[] = "lora_pass_at_k_table";
    if (json_out)
        *json_out = NULL;
    if (text_out)
        *text_out = NULL;
    if (!correct || (!json_out && !text_out))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s", fn,
                           !correct ? "correct is NULL" : "json_out and text_out are NULL");
    if (!questions || !rollouts || questions > ((size_t)-1) / rollouts)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: questions = %zu, rollouts = %zu: "
                           "both must be > 0 and their product an array size", fn, questions,
                           rollouts);
    lora_status st = lora__pass_at_k_table(correct, questions, rollouts, json_out, text_out);
    return st == LORA_OK ? st : lora__error_prefix(st, "%s", fn);
}

LORA_API lora_status lora_forecast_metrics(const float *pred, const float *truth, size_t n,
                                           double *mse_out, double *mae_out, double *r2_out)
{
    lora__error_clear();
    static const char fn[] = "lora_forecast_metrics";
    if (!pred || !truth || !n)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s", fn,
                           !pred ? "pred is NULL" : !truth ? "truth is NULL" : "n is 0");
    lora_status st = lora__forecast_metrics(pred, truth, n, mse_out, mae_out, r2_out);
    return st == LORA_OK ? st : lora__error_prefix(st, "%s", fn);
}

static lora_status flops_of(const lora_config *c, const char *lora_config_json, size_t context,
                            size_t batch, char **json_out)
{
    if (context > (uint64_t)c->max_pos)
        return lora__error(LORA_ERR_RANGE, "context %zu is past max_position_embeddings %lld",
                           context, (long long)c->max_pos);
    lora_adapter_spec spec;
    if (lora_config_json) {
        lora_status st = lora__adapter_spec_parse(lora_config_json, c, LORA_ERR_CONFIG, &spec);
        if (st)
            return lora__error_prefix(st, "lora_config_json");
    }
    lora_flops f;
    lora_status st = lora__flops_count(c, lora_config_json ? &spec : NULL, context, batch, &f);
    if (lora_config_json)
        lora__adapter_spec_free(&spec);
    return st ? st : lora__flops_json(c, &f, json_out);
}

LORA_API lora_status lora_flops_json(const lora_model *model, const char *config_json,
                                     const char *lora_config_json, size_t context,
                                     size_t batch, char **json_out)
{
    lora__error_clear();
    static const char fn[] = "lora_flops_json";
    if (json_out)
        *json_out = NULL;
    if (!json_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: json_out is NULL", fn);
    if (!model == !config_json)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: give a model or config_json, not %s",
                           fn, model ? "both" : "neither");
    if (model && lora__handle_check(model, LORA__KIND_MODEL, fn, "model"))
        return LORA_ERR_INVALID_ARGUMENT;
    if (!context || !batch)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is 0", fn,
                           !context ? "context" : "batch");
    lora_config parsed;
    const lora_config *c = model ? &model->cfg : &parsed;
    lora_status st = LORA_OK;
    if (!model)
        st = lora__config_parse(config_json, strlen(config_json), "config_json", &parsed);
    if (st == LORA_OK)
        st = flops_of(c, lora_config_json, context, batch, json_out);
    return st == LORA_OK ? st : lora__error_prefix(st, "%s", fn);
}

LORA_API lora_status lora_mfu(double flops_per_token, double tokens_per_s,
                              double peak_flops_per_s, double *flops_per_s_out,
                              double *mfu_out)
{
    lora__error_clear();
    static const char fn[] = "lora_mfu";
    if (!isfinite(flops_per_token) || !isfinite(tokens_per_s) || !isfinite(peak_flops_per_s))
        return lora__error(LORA_ERR_NUMERIC, "%s: flops_per_token = %g, tokens_per_s = %g, "
                           "peak_flops_per_s = %g: all must be finite", fn, flops_per_token,
                           tokens_per_s, peak_flops_per_s);
    if (flops_per_token < 0 || tokens_per_s < 0 || !(peak_flops_per_s > 0))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: flops_per_token = %g, tokens_per_s "
                           "= %g must be >= 0 and peak_flops_per_s = %g > 0", fn,
                           flops_per_token, tokens_per_s, peak_flops_per_s);
    double achieved = flops_per_token * tokens_per_s;
    if (!isfinite(achieved))
        return lora__error(LORA_ERR_NUMERIC, "%s: flops_per_token x tokens_per_s overflows", fn);
    if (flops_per_s_out)
        *flops_per_s_out = achieved;
    if (mfu_out)
        *mfu_out = achieved / peak_flops_per_s;
    return LORA_OK;
}
