/* pass@k: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
 * Trained on Code"), 1 - C(n-c, k) / C(n, k), and avg@k, over n rollouts per question. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/error.h"
#include "eval/eval.h"
#include "util/alloc.h"
#include "util/json_text.h"
#include "util/strbuf.h"

/* C(n-c, k) / C(n, k) is a product of factors in [0, 1], prod_{i=n-c+1}^{n} (1 - k/i) or,
 * equally, prod_{j=0}^{k-1} (1 - c/(n-j)); the binomials themselves overflow a double past
 * n ~ 1000. The shorter product is summed in logarithms, and expm1 keeps the small values
 * of pass@k (one correct rollout in many) accurate to the last digits. */
double lora__pass_at_k(uint64_t n, uint64_t c, uint64_t k)
{
    if (n - c < k)
        return 1.0;
    double s = 0;
    if (c <= k)
        for (uint64_t m = 0; m < c; m++) /* i = n - m runs down from n, never past it */
            s += log1p(-(double)k / (double)(n - m));
    else
        for (uint64_t j = 0; j < k; j++)
            s += log1p(-(double)c / (double)(n - j));
    return -expm1(s);
}

static lora_status table_json(const double *pass, const double *avg, size_t questions,
                              size_t rollouts, size_t correct, size_t solved, char **out)
{
    json_t *o = json_object(), *rows = json_array();
    int bad = !o || !rows;
    if (!bad)
        bad = json_object_set_new(o, "questions", json_integer((json_int_t)questions)) ||
              json_object_set_new(o, "rollouts", json_integer((json_int_t)rollouts)) ||
              json_object_set_new(o, "correct", json_integer((json_int_t)correct)) ||
              json_object_set_new(o, "solved", json_integer((json_int_t)solved));
    for (size_t k = 1; !bad && k <= rollouts; k++) {
        json_t *row = json_pack("{s:I, s:f, s:f}", "k", (json_int_t)k, "pass_at_k",
                                pass[k - 1], "avg_at_k", avg[k - 1]);
        bad = json_array_append_new(rows, row);
    }
    if (!bad) {
        bad = json_object_set_new(o, "table", rows);
        rows = NULL;
    }
    *out = bad ? NULL : lora__json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    json_decref(rows);
    return *out ? LORA_OK : lora__oom("the pass@k JSON", rollouts * 64);
}

static lora_status table_text(const double *pass, const double *avg, size_t rollouts,
                              char **out)
{
    int w = snprintf(NULL, 0, "%zu", rollouts);
    char line[96];
    lora__strbuf b = {0};
    snprintf(line, sizeof line, "%*s  %8s  %8s\n", w, "k", "pass@k", "avg@k");
    lora__strbuf_adds(&b, line);
    for (size_t k = 1; k <= rollouts; k++) {
        snprintf(line, sizeof line, "%*zu  %8.4f  %8.4f\n", w, k, pass[k - 1], avg[k - 1]);
        lora__strbuf_adds(&b, line);
    }
    lora_status st = lora__strbuf_status(&b, "the pass@k table");
    *out = st ? NULL : lora__strbuf_take(&b);
    lora__strbuf_free(&b);
    return st;
}

/* avg@k is the mean accuracy of each question's first k rollouts; pass@k for all k at once
 * by the second product above, one factor more per k. */
lora_status lora__pass_at_k_table(const uint8_t *correct, size_t questions, size_t rollouts,
                                  char **json_out, char **text_out)
{
    double *pass = lora__calloc(2 * rollouts, sizeof *pass);
    if (!pass)
        return lora__oom("the pass@k sums", 2 * rollouts * sizeof *pass);
    double *avg = pass + rollouts;
    size_t total = 0, solved = 0;
    for (size_t q = 0; q < questions; q++) {
        const uint8_t *row = correct + q * rollouts;
        size_t c = 0;
        for (size_t i = 0; i < rollouts; i++)
            c += row[i] != 0;
        total += c;
        solved += c > 0;
        double s = 0;
        size_t first = 0;
        for (size_t k = 1; k <= rollouts; k++) {
            first += row[k - 1] != 0;
            avg[k - 1] += (double)first / (double)k;
            if (rollouts - c < k)
                pass[k - 1] += 1.0;
            else {
                s += log1p(-(double)c / (double)(rollouts - k + 1));
                pass[k - 1] += -expm1(s);
            }
        }
    }
    for (size_t k = 0; k < rollouts; k++) {
        pass[k] /= (double)questions;
        avg[k] /= (double)questions;
    }
    lora_status st = LORA_OK;
    if (json_out)
        st = table_json(pass, avg, questions, rollouts, total, solved, json_out);
    if (st == LORA_OK && text_out)
        st = table_text(pass, avg, rollouts, text_out);
    free(pass);
    if (st && json_out) {
        free(*json_out);
        *json_out = NULL;
    }
    return st;
}
