/* Evaluation: answers extracted from realistic model outputs, normalised and matched; pass@k
 * against exact binomials; avg@k tables; forecast metrics by hand; FLOPs counted by hand for
 * Qwen2.5-0.5B and the tiny fixtures; MFU; limits and misuse. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "util/rng.h"
#include "util/suite.h"

#define QWEN25_CONFIG "tests/fixtures/qwen2.5-0.5b-config/config.json"
#define QWEN2 "tests/fixtures/tiny-qwen2"
#define QWEN3 "tests/fixtures/tiny-qwen3"
#define ALL_LINEAR_R16 "{\"r\":16,\"lora_alpha\":32,\"target_modules\":\"all-linear\"}"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* ---- answer extraction ---------------------------------------------------------------------- */

static const struct {
    const char *text, *answer; /* NULL: no answer */
} EXTRACT[] = {
    {"Let's add: 3 + 4 = 7. The answer is \\boxed{7}.", "7"},
    {"So the probability is \\boxed{\\frac{1}{2}}.", "1/2"},
    {"First guess: \\boxed{3}. Wait, that double counts. Final answer: \\boxed{5}", "5"},
    {"$\\boxed{\\dfrac{3}{4}}$", "3/4"},
    {"\\boxed {12}", "12"},
    {"\\fbox{9}", "9"},
    {"So the total cost is \\boxed{\\$1,234.00}.", "1234"},
    {"The discount is \\boxed{50\\%}", "50"},
    {"Solving, we get \\boxed{x = -3}", "-3"},
    {"\\boxed{\\text{Monday}}", "Monday"},
    {"\\boxed{-\\frac{1}{2}}", "-1/2"},
    {"\\boxed{\\frac12}", "1/2"},
    {"each angle is \\boxed{90^\\circ}", "90"},
    {"\\boxed{1\\,000}", "1000"},
    {"\\boxed{\\boxed{8}}", "8"},
    {"\\boxed{\\frac{\\sqrt{3}}{2}}", "(\\sqrt{3})/2"},
    {"\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"},
    {"He earns \\boxed{18 \\text{ dollars}}", "18"},
    {"\\boxed{\\text{(B)}}", "(B)"},
    /* a last box cut off by max_new_tokens gives way to the complete one before it */
    {"so far \\boxed{4}; checking again the answer is \\boxed{12", "4"},
    {"\\boxed{} hmm, 17", "17"},
    {"Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether.\n"
     "#### 72", "72"},
    {"#### 1,234", "1234"},
    {"The answer is 10.\n#### $10\n", "10"},
    /* a Markdown heading is not GSM8K's marker */
    {"#### Step 1\nShe has 5 apples.", "5"},
    {"She earned $18.", "18"},
    {"The temperature dropped to -5 degrees.", "-5"},
    {"3-5 = -2", "-2"},
    {"x = (-7)", "-7"},
    {"It costs $1,234.56.", "1234.56"},
    {"The answer is 5.0", "5"},
    {"The answer is 5.", "5"},
    {"About 0.25 of them, i.e. 25%.", "25"},
    {"In all, 1,234,567 people.", "1234567"},
    {"The ratio is 3/4.", "3/4"},
    {"There are 12 eggs in 3 cartons, so 36", "36"},
    {"x = \xe2\x88\x92" "3", "-3"},
    {"The probability is .5", "0.5"},
    {"Code: 007", "7"},
    {"Answer: -0", "0"},
    {"1,2345 is not grouped", "2345"},
    {"no digits at all", NULL},
    {"", NULL},
};

START_TEST(extract_answers)
{
    const char *text = EXTRACT[_i].text, *want = EXTRACT[_i].answer;
    char *got = (char *)"unset";
    ck_assert_int_eq(lora_answer_extract(text, strlen(text), &got), LORA_OK);
    if (!want)
        ck_assert_msg(got == NULL, "'%s': got '%s', want none", text, got);
    else
        ck_assert_msg(got && !strcmp(got, want), "'%s': got '%s', want '%s'", text,
                      got ? got : "(none)", want);
    lora_string_free(got);
}
END_TEST

START_TEST(extract_uses_len)
{
    /* the bytes past len are not text: the answer is the one inside it */
    const char text[] = "\\boxed{3} and then \\boxed{4}";
    char *got = NULL;
    ck_assert_int_eq(lora_answer_extract(text, 10, &got), LORA_OK);
    ck_assert_str_eq(got, "3");
    lora_string_free(got);
    ck_assert_int_eq(lora_answer_extract(text, 27, &got), LORA_OK); /* the second box is cut */
    ck_assert_str_eq(got, "3");
    lora_string_free(got);
    ck_assert_int_eq(lora_answer_extract(NULL, 0, &got), LORA_OK);
    ck_assert_ptr_null(got);
    /* a NUL byte is a space: the answer returned is the whole of it, normalised */
    const char nul[] = "#### -0\0\0 cm";
    ck_assert_int_eq(lora_answer_extract(nul, sizeof nul - 1, &got), LORA_OK);
    ck_assert_str_eq(got, "0");
    lora_string_free(got);
    const char escaped[] = "\\boxed{\\\0 7}"; /* "\" and a NUL: a space, as "\ " is */
    ck_assert_int_eq(lora_answer_extract(escaped, sizeof escaped - 1, &got), LORA_OK);
    ck_assert_str_eq(got, "7");
    lora_string_free(got);
}
END_TEST

/* ---- normalisation -------------------------------------------------------------------------- */

static const struct {
    const char *in, *out;
} NORMALIZE[] = {
    {"  42  ", "42"},          {"$5", "5"},             {"5.00", "5"},
    {"5.50", "5.5"},           {"+5", "5"},             {"-0", "0"},
    {"-0.000", "0"},           {"1,234", "1234"},       {"1,23", "1,23"},
    {"0,5", "0,5"},            {"0,123", "0,123"},      {"\\$1,000,000.", "1000000"},
    {"50\\%", "50"},           {"50%", "50"},           {"\\mathrm{Tuesday}", "Tuesday"},
    {"{7}", "7"},              {"{{7}}.", "7"},         {"x=\\frac{3}{4}", "3/4"},
    {"\\frac{a+b}{2}", "(a+b)/2"}, {"\\dfrac{-1}{2}", "-1/2"}, {"\\tfrac{6}{08}", "6/8"},
    {"0.5", "0.5"},            {".5", "0.5"},           {"-.5", "-0.5"},
    {"007", "7"},              {"3/0", "3/0"},          {"Hello   world!", "Hello world"},
    {"", ""},                  {"1{,}000", "1000"},     {"5\\ \\text{cm}", "5"},
    {"\xe2\x88\x92" "4", "-4"}, {"45\xc2\xb0", "45"},   {"\\left(1,2\\right)", "(1,2)"},
    {"\\displaystyle 12", "12"}, {"2\\pi", "2\\pi"},    {"1e5", "1e5"},
    {"y = 2x + 3", "2x + 3"},  {"3 apples and 2 pears", "3 apples and 2 pears"},
    {"\\textbf{\\textit{yes}}", "yes"}, {"a \\\\ b", "a \\\\ b"},
    /* text that one LaTeX pass leaves and a second simplifies: the pass repeats */
    {"\\boxed\\ 7", "7"},      {"\\fr\\text{ac12}", "1/2"},
};

START_TEST(normalize_answers)
{
    char *got = (char *)"unset";
    ck_assert_int_eq(lora_answer_normalize(NORMALIZE[_i].in, &got), LORA_OK);
    ck_assert_msg(got && !strcmp(got, NORMALIZE[_i].out), "'%s': got '%s', want '%s'",
                  NORMALIZE[_i].in, got ? got : "(null)", NORMALIZE[_i].out);
    lora_string_free(got);
}
END_TEST

START_TEST(normalize_deep_nesting)
{
    /* nesting past the recursion limit is copied, not followed; it must not crash */
    size_t depth = 20000;
    char *s = malloc(depth * 7 + 8);
    ck_assert_ptr_nonnull(s);
    size_t n = 0;
    for (size_t i = 0; i < depth; i++) {
        memcpy(s + n, "\\text{", 6);
        n += 6;
    }
    s[n++] = '7';
    memset(s + n, '}', depth);
    n += depth;
    s[n] = '\0';
    char *got = NULL;
    ck_assert_int_eq(lora_answer_normalize(s, &got), LORA_OK);
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_nonnull(strchr(got, '7'));
    lora_string_free(got);
    ck_assert_int_eq(lora_answer_extract(s, n, &got), LORA_OK);
    ck_assert_ptr_nonnull(got);
    lora_string_free(got);
    free(s);
}
END_TEST

START_TEST(extract_many_unclosed_boxes)
{
    /* 100,000 boxes cut off before a complete one: one pass, not one scan per box (which
     * would take minutes and hit the case's timeout) */
    const size_t copies = 100000;
    const char unit[] = "\\boxed{", last[] = "\\boxed{5} and 6";
    size_t n = copies * 7 + sizeof last - 1;
    char *t = malloc(n);
    ck_assert_ptr_nonnull(t);
    for (size_t i = 0; i < copies; i++)
        memcpy(t + 7 * i, unit, 7);
    memcpy(t + 7 * copies, last, sizeof last - 1);
    char *got = NULL;
    ck_assert_int_eq(lora_answer_extract(t, n, &got), LORA_OK);
    ck_assert_str_eq(got, "5");
    lora_string_free(got);
    free(t);
}
END_TEST

/* ---- matching --------------------------------------------------------------------------------- */

static const struct {
    const char *pred, *ref;
    int match;
} MATCH[] = {
    {"42", "42", 1},
    {"42.0", "42", 1},
    {"1,234", "1234", 1},
    {"$1,234", "1234.00", 1},
    {"0.5", "1/2", 1},
    {"\\frac{2}{4}", "0.5", 1},
    {"\\dfrac{1}{3}", "1/3", 1},
    {"2/6", "\\frac{1}{3}", 1},
    {"4/2", "2", 1},
    {"0.333", "1/3", 0},
    {"0.3333333333333", "1/3", 1},
    {"41", "42", 0},
    {"-42", "42", 0},
    /* integers compare digit for digit, past a double's 16 digits */
    {"12345678901234567890", "12345678901234567891", 0},
    {"12345678901234567890", "12,345,678,901,234,567,890", 1},
    {"1000000.0000001", "1000000", 1},
    {"1.0001", "1", 0},
    {"1e3", "1000", 0},
    {"Monday", "monday", 0},
    {"\\text{Monday}", "Monday", 1},
    {"$5", "5 dollars", 1},
    {"-0", "0", 1},
    {"50\\%", "50", 1},
    {"(B)", "B", 0},
    {"x = 7", "7", 1},
    {"3/0", "3/0", 1},
};

START_TEST(match_answers)
{
    int m = -1;
    ck_assert_int_eq(lora_answer_match(MATCH[_i].pred, MATCH[_i].ref, &m), LORA_OK);
    ck_assert_msg(m == MATCH[_i].match, "'%s' vs '%s': got %d", MATCH[_i].pred, MATCH[_i].ref, m);
    /* symmetric */
    ck_assert_int_eq(lora_answer_match(MATCH[_i].ref, MATCH[_i].pred, &m), LORA_OK);
    ck_assert_int_eq(m, MATCH[_i].match);
}
END_TEST

START_TEST(score_gsm8k_style)
{
    /* the reference solution goes through extraction for its "####" line, the model output
     * through extraction for its box; then they match; no answer never matches */
    const char *ref = "Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned "
                      "0.2 x 50 = $10.\n#### 10";
    const char *outputs[] = {"She earns $0.2 a minute, so 50 minutes give \\boxed{\\$10.00}.",
                             "0.2 * 50 = 10", "The answer is 12.", "I don't know."};
    const int want[] = {1, 1, 0, 0};
    char *r = NULL;
    ck_assert_int_eq(lora_answer_extract(ref, strlen(ref), &r), LORA_OK);
    ck_assert_str_eq(r, "10");
    for (int i = 0; i < 4; i++) {
        char *p = (char *)"unset";
        int m = -1;
        ck_assert_int_eq(lora_answer_extract(outputs[i], strlen(outputs[i]), &p), LORA_OK);
        ck_assert_int_eq(lora_answer_match(p, r, &m), LORA_OK);
        ck_assert_msg(m == want[i], "%s: %d", outputs[i], m);
        lora_string_free(p);
    }
    lora_string_free(r);
}
END_TEST

/* ---- pass@k --------------------------------------------------------------------------------- */

static long double binom(unsigned n, unsigned k)
{
    long double b = 1;
    for (unsigned i = 1; i <= k; i++)
        b = b * (long double)(n - k + i) / (long double)i;
    return b;
}

static double pass(size_t n, size_t c, size_t k)
{
    double p = -1;
    ck_assert_msg(lora_pass_at_k(n, c, k, &p) == LORA_OK, "%s", lora_last_error());
    return p;
}

START_TEST(pass_at_k_exact_small)
{
    /* every (n, c, k) up to n = 40 against 1 - C(n-c,k)/C(n,k) from long double binomials,
     * exact in a 64-bit mantissa up to C(40, 20) ~ 1.4e11 */
    for (unsigned n = 1; n <= 40; n++)
        for (unsigned c = 0; c <= n; c++)
            for (unsigned k = 1; k <= n; k++) {
                long double want = n - c < k ? 1.0L : 1.0L - binom(n - c, k) / binom(n, k);
                double got = pass(n, c, k);
                ck_assert_msg(fabsl((long double)got - want) <= 1e-14L + 1e-13L * want,
                              "n %u c %u k %u: %.17g vs %.17Lg", n, c, k, got, want);
            }
    /* by hand: 1 - C(3,2)/C(5,2) = 1 - 3/10 */
    ck_assert_double_eq_tol(pass(5, 2, 2), 0.7, 1e-15);
    ck_assert(pass(10, 0, 5) == 0.0);
    ck_assert(pass(10, 10, 1) == 1.0);
    ck_assert(pass(10, 6, 5) == 1.0); /* n - c = 4 < k: every 5 include a correct one */
    ck_assert_double_eq_tol(pass(10, 3, 1), 0.3, 1e-15);
}
END_TEST

START_TEST(pass_at_k_large_n)
{
    /* n = 1000: the binomials (C(1000,500) ~ 2.7e299) are near a double's range; the estimate
     * is checked against lgammal */
    const size_t n = 1000;
    const size_t cs[] = {1, 10, 100, 500, 990};
    const size_t ks[] = {1, 2, 10, 100, 500, 1000};
    for (size_t a = 0; a < sizeof cs / sizeof cs[0]; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++) {
            size_t c = cs[a], k = ks[b];
            long double want = 1;
            if (n - c >= k) {
                long double lr = lgammal(n - c + 1) - lgammal(n - c - k + 1) - lgammal(n + 1) +
                                 lgammal(n - k + 1);
                want = -expm1l(lr);
            }
            double got = pass(n, c, k);
            /* lgammal(1001) ~ 5912 carries ~1e-15 absolute, so the small values of want are
             * known to ~1e-12 relative only */
            ck_assert_msg(fabsl((long double)got - want) <= 1e-10L * want + 1e-14L,
                          "n %zu c %zu k %zu: %.17g vs %.17Lg", n, c, k, got, want);
        }
    ck_assert_double_eq_tol(pass(1000, 1, 1), 0.001, 1e-18);
    /* a tiny pass@k keeps its relative precision: 1 in 10^6, k = 1 */
    ck_assert_double_eq_tol(pass(1000000, 1, 1) * 1e6, 1.0, 1e-9);
    /* monotone in k and c */
    double prev = 0;
    for (size_t k = 1; k <= 1000; k++) {
        double p = pass(1000, 7, k);
        ck_assert(p >= prev && p <= 1.0);
        prev = p;
    }
}
END_TEST

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    ck_assert_msg(j != NULL, "bad JSON: %s: %s", err.text, text);
    return j;
}

static double row_value(json_t *j, size_t k, const char *key)
{
    json_t *row = json_array_get(json_object_get(j, "table"), k - 1);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "k")), (json_int_t)k);
    json_t *v = json_object_get(row, key);
    ck_assert_msg(json_is_number(v), "row %zu has no %s", k, key);
    return json_number_value(v);
}

START_TEST(pass_at_k_table_by_hand)
{
    /* question 1: rollouts wrong, right, wrong, right (c = 2); question 2: all right.
     * pass@k of q1: 1/2, 1 - C(2,2)/C(4,2) = 5/6, 1, 1; of q2: 1 throughout.
     * avg@k of q1 over its first k rollouts: 0, 1/2, 1/3, 2/4; of q2: 1. */
    const uint8_t correct[] = {0, 1, 0, 1, 1, 1, 1, 1};
    char *json = NULL, *text = NULL;
    ck_assert_int_eq(lora_pass_at_k_table(correct, 2, 4, &json, &text), LORA_OK);
    json_t *j = parse(json);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "questions")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "rollouts")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "correct")), 6);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "solved")), 2);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "table")), 4);
    const double want_pass[] = {0.75, (5.0 / 6 + 1) / 2, 1, 1};
    const double want_avg[] = {0.5, 0.75, (1.0 / 3 + 1) / 2, 0.75};
    for (size_t k = 1; k <= 4; k++) {
        ck_assert_double_eq_tol(row_value(j, k, "pass_at_k"), want_pass[k - 1], 1e-15);
        ck_assert_double_eq_tol(row_value(j, k, "avg_at_k"), want_avg[k - 1], 1e-15);
    }
    json_decref(j);
    ck_assert_str_eq(text, "k    pass@k     avg@k\n"
                           "1    0.7500    0.5000\n"
                           "2    0.9167    0.7500\n"
                           "3    1.0000    0.6667\n"
                           "4    1.0000    0.7500\n");
    lora_string_free(json);
    lora_string_free(text);
    /* either output alone; the k column widens with n */
    uint8_t ten[12] = {0};
    ten[11] = 1;
    ck_assert_int_eq(lora_pass_at_k_table(ten, 1, 12, NULL, &text), LORA_OK);
    ck_assert_int_eq(strncmp(text, " k    pass@k     avg@k\n 1    0.0833    0.0000\n", 46), 0);
    lora_string_free(text);
}
END_TEST

START_TEST(pass_at_k_table_random)
{
    /* the table's pass@k is the mean of lora_pass_at_k over questions; avg@n is pass@1 */
    lora_rng rng;
    lora__rng_seed(&rng, 99);
    const size_t Q = 25, n = 64;
    uint8_t *m = malloc(Q * n);
    size_t counts[25];
    for (size_t q = 0; q < Q; q++) {
        unsigned p = (unsigned)(lora__rng_u64(&rng) % 101);
        counts[q] = 0;
        for (size_t i = 0; i < n; i++) {
            m[q * n + i] = lora__rng_u64(&rng) % 100 < p ? (uint8_t)(1 + lora__rng_u64(&rng) % 7)
                                                        : 0;
            counts[q] += m[q * n + i] != 0;
        }
    }
    char *json = NULL;
    ck_assert_int_eq(lora_pass_at_k_table(m, Q, n, &json, NULL), LORA_OK);
    json_t *j = parse(json);
    for (size_t k = 1; k <= n; k++) {
        double want = 0;
        for (size_t q = 0; q < Q; q++)
            want += pass(n, counts[q], k);
        want /= (double)Q;
        ck_assert_double_eq_tol(row_value(j, k, "pass_at_k"), want, 1e-13);
        if (k > 1)
            ck_assert(row_value(j, k, "pass_at_k") >= row_value(j, k - 1, "pass_at_k"));
    }
    ck_assert_double_eq_tol(row_value(j, n, "avg_at_k"), row_value(j, 1, "pass_at_k"), 1e-15);
    json_decref(j);
    lora_string_free(json);
    free(m);
}
END_TEST

/* ---- forecast metrics -------------------------------------------------------------------------- */

START_TEST(forecast_by_hand)
{
    /* errors 0, -1, 1, -1: MSE 3/4, MAE 3/4; truth mean 11/4, SS_tot = 1.75^2 + 0.25^2 +
     * 0.75^2 + 2.25^2 = 8.75, R^2 = 1 - 3 / 8.75 */
    const float pred[] = {1, 2, 3, 4}, truth[] = {1, 3, 2, 5};
    double mse = -1, mae = -1, r2 = -1;
    ck_assert_int_eq(lora_forecast_metrics(pred, truth, 4, &mse, &mae, &r2), LORA_OK);
    ck_assert_double_eq_tol(mse, 0.75, 1e-15);
    ck_assert_double_eq_tol(mae, 0.75, 1e-15);
    ck_assert_double_eq_tol(r2, 1 - 3 / 8.75, 1e-15);
    /* predicting the mean gives R^2 = 0; a perfect forecast 1; worse than the mean < 0 */
    const float mean[] = {2.75f, 2.75f, 2.75f, 2.75f};
    ck_assert_int_eq(lora_forecast_metrics(mean, truth, 4, NULL, NULL, &r2), LORA_OK);
    ck_assert_double_eq_tol(r2, 0, 1e-15);
    ck_assert_int_eq(lora_forecast_metrics(truth, truth, 4, &mse, &mae, &r2), LORA_OK);
    ck_assert(mse == 0 && mae == 0 && r2 == 1);
    const float bad[] = {5, 1, 5, 1};
    ck_assert_int_eq(lora_forecast_metrics(bad, truth, 4, NULL, NULL, &r2), LORA_OK);
    ck_assert(r2 < 0);
    /* a constant truth: 1 for a perfect forecast, else 0 (scikit-learn); 0.1f's double sum
     * over 3 values does not divide back to it exactly, which must not matter */
    const float c[] = {0.1f, 0.1f, 0.1f}, off[] = {0.1f, 0.2f, 0.1f};
    ck_assert_int_eq(lora_forecast_metrics(c, c, 3, NULL, NULL, &r2), LORA_OK);
    ck_assert(r2 == 1);
    ck_assert_int_eq(lora_forecast_metrics(off, c, 3, &mse, NULL, &r2), LORA_OK);
    ck_assert(r2 == 0);
    ck_assert_double_eq_tol(mse, pow(0.2f - 0.1f, 2) / 3, 1e-12);
}
END_TEST

START_TEST(forecast_of_llmtime_text)
{
    /* a model's continuation decoded with LLMTIME, then scored: the thin path a caller takes */
    const float truth[] = {1, 2, 3, 4};
    const char *forecast = "1.00;2.50;2.50;4.00;junk";
    float pred[4];
    size_t steps = 0;
    ck_assert_int_eq(lora_llmtime_decode(forecast, strlen(forecast), 1.0, 1, pred, 4, &steps),
                     LORA_OK);
    ck_assert_uint_eq(steps, 4);
    double mse, mae, r2;
    ck_assert_int_eq(lora_forecast_metrics(pred, truth, steps, &mse, &mae, &r2), LORA_OK);
    /* errors 0, .5, -.5, 0: MSE .125, MAE .25; SS_tot = 5, SS_res = .5 */
    ck_assert_double_eq_tol(mse, 0.125, 1e-12);
    ck_assert_double_eq_tol(mae, 0.25, 1e-12);
    ck_assert_double_eq_tol(r2, 0.9, 1e-12);
}
END_TEST

START_TEST(forecast_non_finite)
{
    float pred[] = {1, 2, 3}, truth[] = {1, 2, 3};
    double mse = -7;
    pred[2] = NAN;
    ck_assert_int_eq(lora_forecast_metrics(pred, truth, 3, &mse, NULL, NULL), LORA_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_forecast_metrics: pred[2]"));
    ck_assert(mse == -7);
    pred[2] = 3;
    truth[0] = -INFINITY;
    ck_assert_int_eq(lora_forecast_metrics(pred, truth, 3, &mse, NULL, NULL), LORA_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "truth[0]"));
    /* the largest floats square without overflow in double */
    const float big[] = {3.4e38f, -3.4e38f};
    const float zero[] = {0, 0};
    double r2;
    ck_assert_int_eq(lora_forecast_metrics(big, zero, 2, &mse, NULL, &r2), LORA_OK);
    ck_assert(isfinite(mse) && r2 == 0);
}
END_TEST

/* ---- FLOPs ---------------------------------------------------------------------------------- */

static json_t *flops(const lora_model *m, const char *config, const char *lora, size_t context,
                     size_t batch)
{
    char *text = NULL;
    lora_status st = lora_flops_json(m, config, lora, context, batch, &text);
    ck_assert_msg(st == LORA_OK, "%s", lora_last_error());
    json_t *j = parse(text);
    lora_string_free(text);
    return j;
}

/* The integer at a dotted path, e.g. "forward.per_layer.q_proj". */
static long long at(json_t *j, const char *path)
{
    char key[64];
    const char *p = path;
    while (j && *p) {
        size_t n = strcspn(p, ".");
        ck_assert_uint_lt(n, sizeof key);
        memcpy(key, p, n);
        key[n] = '\0';
        j = json_object_get(j, key);
        p += n + (p[n] == '.');
    }
    ck_assert_msg(json_is_integer(j), "no integer at %s", path);
    return json_integer_value(j);
}

START_TEST(flops_qwen25_by_hand)
{
    /* Qwen2.5-0.5B: C = 896, I = 4864, L = 24, H = 14, KVH = 2, D = 64, V = 151936, tied.
     * One layer's projections (out x in):
     *   q 896 x 896 = 802,816      k 128 x 896 = 114,688     v 114,688
     *   o 896 x 896 = 802,816      gate, up 4864 x 896 = 4,358,144 each, down 896 x 4864 the same
     *   sum 1,605,632 + 229,376 + 13,074,432 = 14,909,440 weights
     * 24 layers: 357,826,560; lm_head (the tied embedding) 151936 x 896 = 136,134,656;
     * matmul weights 493,961,216, so 2 x that = 987,922,432 FLOPs per token of products.
     * Attention at T = 1024: 4 H D = 3,584 per key seen, mean (T + 1) / 2 = 512.5 keys,
     *   x 24 layers = 43,008 x 1025 = 44,083,200; full context 86,016 x 1024 = 88,080,384.
     * LoRA r = 16 on all seven: sum of in + out per layer 1792 + 1024 + 1024 + 1792 + 3 x 5760
     *   = 22,912, x 16 x 24 = 8,798,208 parameters, 17,596,416 FLOPs forward.
     * forward = 987,922,432 + 44,083,200 + 17,596,416 = 1,049,602,048
     * LoRA training = 2 x 987,922,432 + 3 x 44,083,200 + 3 x 17,596,416 = 2,160,883,712
     *   (the ~2.16 GFLOP/token of DESIGN.md's GPU target)
     * full training = 3 x (987,922,432 + 44,083,200) = 3,096,016,896
     * N = 494,032,768 parameters (matmul weights + 24 x (2 x 896 norms + 1,152 qkv biases) +
     * 896 final norm): 2N = 988,065,536 ~ forward products, 6N = 2,964,196,608 ~ full training
     * less its attention (3 x 44,083,200 = 132,249,600). */
    char *cfg = slurp(QWEN25_CONFIG);
    json_t *j = flops(NULL, cfg, ALL_LINEAR_R16, 1024, 8);
    ck_assert_int_eq(at(j, "forward.per_layer.q_proj"), 2 * 802816);
    ck_assert_int_eq(at(j, "forward.per_layer.k_proj"), 2 * 114688);
    ck_assert_int_eq(at(j, "forward.per_layer.down_proj"), 2 * 4358144);
    ck_assert_int_eq(at(j, "forward.projections"), 2LL * 357826560);
    ck_assert_int_eq(at(j, "forward.lm_head"), 2LL * 136134656);
    ck_assert_int_eq(at(j, "matmul_parameters"), 493961216);
    ck_assert_int_eq(at(j, "parameters"), 494032768);
    ck_assert_int_eq(at(j, "forward.attention"), 44083200);
    ck_assert_int_eq(at(j, "forward.attention_full_context"), 88080384);
    ck_assert_int_eq(at(j, "adapter_parameters"), 8798208);
    ck_assert_int_eq(at(j, "forward.adapter"), 17596416);
    ck_assert_int_eq(at(j, "forward.per_token"), 1049602048);
    ck_assert_int_eq(at(j, "train.per_token"), 2160883712LL);
    ck_assert_int_eq(at(j, "train.forward_per_token") + at(j, "train.backward_per_token"),
                     2160883712LL);
    ck_assert_int_eq(at(j, "tokens_per_step"), 8 * 1024);
    ck_assert_int_eq(at(j, "train.per_step"), 2160883712LL * 8192);
    ck_assert_int_eq(at(j, "forward.per_step"), 1049602048LL * 8192);
    ck_assert_int_eq(at(j, "rule_of_thumb.forward_2N"), 988065536);
    ck_assert_int_eq(at(j, "rule_of_thumb.train_6N"), 2964196608LL);
    /* element-wise, per token: RMSNorm 4 x 896 x 49 = 175,616; RoPE 3 x 64 x 16 heads x 24 =
     * 73,728; SwiGLU 5 x 4864 x 24 = 583,680; softmax 6 x 14 x 512.5 x 24 = 1,033,200;
     * residual 2 x 896 x 24 = 43,008; q/k/v biases 1,152 x 24 = 27,648; LoRA scale and add
     * 2 x out per module = 2 x (896 + 128 + 128 + 896 + 4864 + 4864 + 896) x 24 = 608,256 */
    ck_assert_int_eq(at(j, "forward.elementwise.rmsnorm"), 175616);
    ck_assert_int_eq(at(j, "forward.elementwise.rope"), 73728);
    ck_assert_int_eq(at(j, "forward.elementwise.swiglu"), 583680);
    ck_assert_int_eq(at(j, "forward.elementwise.softmax"), 1033200);
    ck_assert_int_eq(at(j, "forward.elementwise.residual"), 43008);
    ck_assert_int_eq(at(j, "forward.elementwise.bias"), 27648);
    ck_assert_int_eq(at(j, "forward.elementwise.adapter"), 608256);
    ck_assert_int_eq(at(j, "forward.elementwise.total"),
                     175616 + 73728 + 583680 + 1033200 + 43008 + 27648 + 608256);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "train"), "mode")),
                     "adapters");
    json_decref(j);

    j = flops(NULL, cfg, NULL, 1024, 1);
    ck_assert_int_eq(at(j, "adapter_parameters"), 0);
    ck_assert_int_eq(at(j, "forward.per_token"), 987922432 + 44083200);
    ck_assert_int_eq(at(j, "train.per_token"), 3096016896LL);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "train"), "mode")),
                     "full");
    /* the rules of thumb hold to a few percent at this context */
    double fwd = (double)at(j, "forward.per_token"), train = (double)at(j, "train.per_token");
    ck_assert(fabs(fwd / (double)at(j, "rule_of_thumb.forward_2N") - 1) < 0.05);
    ck_assert(fabs(train / (double)at(j, "rule_of_thumb.train_6N") - 1) < 0.05);
    json_decref(j);
    free(cfg);
}
END_TEST

START_TEST(flops_tiny_qwen2_by_hand)
{
    /* tiny-qwen2: C = 64, I = 160, L = 2, H = 4, KVH = 2, D = 16, V = 384, tied, max 256.
     * Projections: q 64x64 = 4096, k, v 32x64 = 2048, o 4096, gate, up, down 10240:
     * 43,008 per layer, 86,016 in all, 172,032 FLOPs; lm_head 2 x 384 x 64 = 49,152.
     * Attention at T = 256: L x 2 H D (T + 1) = 2 x 2 x 64 x 257 = 65,792; full context
     * 4 L H D T = 4 x 2 x 64 x 256 = 131,072.
     * The fixture's adapter, r 4 on all seven: in + out = 128 + 96 + 96 + 128 + 3 x 224 =
     * 1,120 per layer, x 4 x 2 = 8,960 parameters, 17,920 FLOPs.
     * forward 172,032 + 49,152 + 65,792 + 17,920 = 304,896;
     * LoRA training 2 x 221,184 + 3 x 65,792 + 3 x 17,920 = 693,504;
     * full training 3 x 286,976 = 860,928. */
    char *lora = slurp(QWEN2 "/adapter/adapter_config.json");
    lora_model *m = NULL;
    ck_assert_msg(lora_model_load(QWEN2, NULL, &m) == LORA_OK, "%s", lora_last_error());
    json_t *j = flops(m, NULL, lora, 256, 3);
    ck_assert_int_eq(at(j, "forward.projections"), 172032);
    ck_assert_int_eq(at(j, "forward.lm_head"), 49152);
    ck_assert_int_eq(at(j, "forward.attention"), 65792);
    ck_assert_int_eq(at(j, "forward.attention_full_context"), 131072);
    ck_assert_int_eq(at(j, "adapter_parameters"), 8960);
    ck_assert_int_eq(at(j, "forward.per_token"), 304896);
    ck_assert_int_eq(at(j, "train.per_token"), 693504);
    ck_assert_int_eq(at(j, "train.per_step"), 693504LL * 3 * 256);
    ck_assert_int_eq(at(j, "parameters"), (long long)lora_model_num_parameters(m));
    /* the adapter's own count agrees */
    lora_adapter *a = NULL;
    ck_assert_int_eq(lora_adapter_load(m, QWEN2 "/adapter", &a), LORA_OK);
    json_t *info = parse(lora_adapter_info_json(a));
    ck_assert_int_eq(json_integer_value(json_object_get(info, "trainable_parameters")), 8960);
    json_decref(info);
    lora_adapter_free(a);
    /* a model and its config.json give the same counts */
    char *cfg = slurp(QWEN2 "/config.json");
    json_t *k = flops(NULL, cfg, lora, 256, 3);
    ck_assert(json_equal(j, k));
    json_decref(k);
    json_decref(j);
    /* one token sees one key either way: L x 2 H D x 2 = 4 L H D x 1 = 512 */
    j = flops(m, NULL, NULL, 1, 1);
    ck_assert_int_eq(at(j, "forward.attention"), 512);
    ck_assert_int_eq(at(j, "forward.attention_full_context"), 512);
    ck_assert_int_eq(at(j, "train.per_token"), 3 * (172032 + 49152 + 512));
    json_decref(j);
    /* q_proj of layer 1 only (layers_to_transform), at r 2 (rank_pattern over r 8):
     * 2 x (64 + 64) = 256 parameters */
    j = flops(m, NULL, "{\"r\":8,\"target_modules\":[\"q_proj\"],\"layers_to_transform\":[1],"
                       "\"rank_pattern\":{\"q_proj\":2}}", 16, 1);
    ck_assert_int_eq(at(j, "adapter_parameters"), 256);
    ck_assert_int_eq(at(j, "forward.adapter"), 512);
    json_decref(j);
    free(cfg);
    free(lora);
    lora_model_free(m);
}
END_TEST

START_TEST(flops_tiny_qwen3_untied)
{
    /* tiny-qwen3: C = 64, I = 128, L = 2, H = 4, KVH = 2, D = 24 (H D = 96 != C), V = 352,
     * untied, q/k norms. Projections: q 96x64 = 6144, k, v 48x64 = 3072, o 64x96 = 6144,
     * gate, up, down 8192: 43,008 per layer. The untied input embedding is a lookup, so
     * matmul weights are 2 x 43,008 + 352 x 64 = 108,544, while N counts both embeddings:
     * 2 x 22,528 + 2 x (43,008 + 2 x 24 q/k norms + 128) + 64 = 131,488.
     * RMSNorm: 4 x 64 x 5 + q/k norms 4 x 24 x 6 heads x 2 layers = 1,280 + 1,152. */
    char *cfg = slurp(QWEN3 "/config.json");
    json_t *j = flops(NULL, cfg, NULL, 8, 1);
    ck_assert_int_eq(at(j, "forward.per_layer.q_proj"), 2 * 6144);
    ck_assert_int_eq(at(j, "forward.per_layer.o_proj"), 2 * 6144);
    ck_assert_int_eq(at(j, "matmul_parameters"), 108544);
    ck_assert_int_eq(at(j, "parameters"), 131488);
    ck_assert_int_eq(at(j, "forward.elementwise.rmsnorm"), 2432);
    ck_assert_int_eq(at(j, "forward.elementwise.bias"), 0);
    /* attention: L x 2 H D (T + 1) = 2 x 2 x 96 x 9 */
    ck_assert_int_eq(at(j, "forward.attention"), 3456);
    ck_assert_int_eq(at(j, "forward.per_token"), 2 * 108544 + 3456);
    json_decref(j);
    free(cfg);
}
END_TEST

START_TEST(flops_limits)
{
    char *cfg = slurp(QWEN25_CONFIG);
    char *text = (char *)"unset";
    /* the context runs to max_position_embeddings (32768), not past it */
    json_t *j = flops(NULL, cfg, NULL, 32768, 1);
    ck_assert_int_eq(at(j, "forward.attention"), 43008LL * 32769);
    json_decref(j);
    ck_assert_int_eq(lora_flops_json(NULL, cfg, NULL, 32769, 1, &text), LORA_ERR_RANGE);
    ck_assert_ptr_null(text);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_flops_json: context 32769"));
    /* per-step counts that pass 2^63 */
    ck_assert_int_eq(lora_flops_json(NULL, cfg, NULL, 32768, (size_t)1 << 40, &text),
                     LORA_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "2^63"));
    free(cfg);
}
END_TEST

/* ---- MFU ------------------------------------------------------------------------------------- */

START_TEST(mfu_values)
{
    /* 2.16 GFLOP/token at 100k tokens/s = 216 TFLOP/s, of a 989 TFLOP/s peak: 21.8% */
    double achieved = 0, mfu = 0;
    ck_assert_int_eq(lora_mfu(2.16e9, 1e5, 989e12, &achieved, &mfu), LORA_OK);
    ck_assert_double_eq_tol(achieved, 2.16e14, 1);
    ck_assert_double_eq_tol(mfu, 2.16e14 / 989e12, 1e-15);
    ck_assert_int_eq(lora_mfu(1, 0, 1, NULL, &mfu), LORA_OK);
    ck_assert(mfu == 0);
    ck_assert_int_eq(lora_mfu(NAN, 1, 1, &achieved, &mfu), LORA_ERR_NUMERIC);
    ck_assert_int_eq(lora_mfu(1, INFINITY, 1, &achieved, &mfu), LORA_ERR_NUMERIC);
    ck_assert_int_eq(lora_mfu(1e300, 1e300, 1, &achieved, &mfu), LORA_ERR_NUMERIC);
    ck_assert_int_eq(lora_mfu(-1, 1, 1, &achieved, &mfu), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_mfu(1, 1, 0, &achieved, &mfu), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_mfu: "));
}
END_TEST

/* ---- misuse ---------------------------------------------------------------------------------- */

START_TEST(answer_misuse)
{
    char *out = (char *)"unset";
    int m = 5;
    ck_assert_int_eq(lora_answer_extract("1", 1, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_answer_extract(NULL, 3, &out), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_answer_extract: text"));
    out = (char *)"unset";
    ck_assert_int_eq(lora_answer_normalize(NULL, &out), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(lora_answer_normalize("1", NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_answer_match("1", NULL, &m), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(m, 0);
    ck_assert_int_eq(lora_answer_match("1", "1", NULL), LORA_ERR_INVALID_ARGUMENT);
    /* no prediction is not a misuse: it never matches */
    m = 5;
    ck_assert_int_eq(lora_answer_match(NULL, "1", &m), LORA_OK);
    ck_assert_int_eq(m, 0);
    ck_assert_str_eq(lora_last_error(), "");
}
END_TEST

START_TEST(pass_at_k_misuse)
{
    double p = 7;
    ck_assert_int_eq(lora_pass_at_k(5, 1, 1, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_pass_at_k(0, 0, 1, &p), LORA_ERR_INVALID_ARGUMENT);
    ck_assert(p == 0);
    ck_assert_int_eq(lora_pass_at_k(5, 1, 0, &p), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_pass_at_k(5, 1, 6, &p), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_pass_at_k: n = 5, c = 1, k = 6"));
    ck_assert_int_eq(lora_pass_at_k(5, 6, 1, &p), LORA_ERR_INVALID_ARGUMENT);
    const uint8_t c[4] = {1, 0, 1, 0};
    char *j = (char *)"unset", *t = (char *)"unset";
    ck_assert_int_eq(lora_pass_at_k_table(NULL, 1, 4, &j, &t), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(j);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(lora_pass_at_k_table(c, 1, 4, NULL, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_pass_at_k_table(c, 0, 4, &j, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_pass_at_k_table(c, 1, 0, &j, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_pass_at_k_table(c, (size_t)1 << 40, (size_t)1 << 40, &j, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_pass_at_k_table: questions"));
}
END_TEST

START_TEST(forecast_misuse)
{
    const float x[] = {1};
    double v;
    ck_assert_int_eq(lora_forecast_metrics(NULL, x, 1, &v, &v, &v), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_forecast_metrics(x, NULL, 1, &v, &v, &v), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_forecast_metrics(x, x, 0, &v, &v, &v), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_forecast_metrics: n is 0"));
}
END_TEST

static const struct {
    const char *lora;
    lora_status status;
    const char *needle;
} BAD_LORA[] = {
    {"{\"rank\":8}", LORA_ERR_CONFIG, "rank"},
    {"{\"r\":0}", LORA_ERR_CONFIG, "'r'"},
    {"{\"target_modules\":[\"qkv\"]}", LORA_ERR_CONFIG, "qkv"},
    {"{\"use_dora\":true}", LORA_ERR_UNSUPPORTED, "use_dora"},
    {"{\"layers_to_transform\":[24]}", LORA_ERR_CONFIG, "layers_to_transform"},
    {"{", LORA_ERR_CONFIG, "line 1"},
};

START_TEST(flops_bad_lora_config)
{
    char *cfg = slurp(QWEN25_CONFIG), *text = (char *)"unset";
    ck_assert_int_eq(lora_flops_json(NULL, cfg, BAD_LORA[_i].lora, 16, 1, &text),
                     BAD_LORA[_i].status);
    ck_assert_ptr_null(text);
    ck_assert_msg(strstr(lora_last_error(), "lora_flops_json: lora_config_json: ") &&
                  strstr(lora_last_error(), BAD_LORA[_i].needle), "%s: '%s'", BAD_LORA[_i].lora,
                  lora_last_error());
    free(cfg);
}
END_TEST

START_TEST(flops_misuse)
{
    char *cfg = slurp(QWEN2 "/config.json"), *text = (char *)"unset";
    lora_model *m = NULL;
    ck_assert_int_eq(lora_model_load(QWEN2, NULL, &m), LORA_OK);
    ck_assert_int_eq(lora_flops_json(NULL, cfg, NULL, 16, 1, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_flops_json(NULL, NULL, NULL, 16, 1, &text), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(text);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "neither"));
    ck_assert_int_eq(lora_flops_json(m, cfg, NULL, 16, 1, &text), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "both"));
    ck_assert_int_eq(lora_flops_json(m, NULL, NULL, 0, 1, &text), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_flops_json(m, NULL, NULL, 16, 0, &text), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_flops_json(NULL, "{\"model_type\":", NULL, 16, 1, &text),
                     LORA_ERR_FORMAT);
    ck_assert_int_eq(lora_flops_json(NULL, "{\"model_type\":\"gpt2\"}", NULL, 16, 1, &text),
                     LORA_ERR_UNSUPPORTED);
    ck_assert_int_eq(lora_flops_json(NULL, "{\"model_type\":\"qwen2\"}", NULL, 16, 1, &text),
                     LORA_ERR_CONFIG);
    ck_assert_ptr_null(text);
    lora_model_free(m);
    free(cfg);
}
END_TEST

static Suite *eval_suite(void)
{
    Suite *suite = suite_create("eval");
    TCase *ans = tcase_create("answers");
    tcase_set_tags(ans, "core");
    tcase_add_loop_test(ans, extract_answers, 0, (int)(sizeof EXTRACT / sizeof EXTRACT[0]));
    tcase_add_test(ans, extract_uses_len);
    tcase_add_loop_test(ans, normalize_answers, 0,
                        (int)(sizeof NORMALIZE / sizeof NORMALIZE[0]));
    tcase_add_loop_test(ans, match_answers, 0, (int)(sizeof MATCH / sizeof MATCH[0]));
    tcase_add_test(ans, score_gsm8k_style);
    suite_add_tcase(suite, ans);

    TCase *pk = tcase_create("pass_at_k");
    tcase_set_tags(pk, "core");
    tcase_add_test(pk, pass_at_k_exact_small);
    tcase_add_test(pk, pass_at_k_table_by_hand);
    tcase_add_test(pk, pass_at_k_table_random);
    suite_add_tcase(suite, pk);

    TCase *fc = tcase_create("forecast");
    tcase_set_tags(fc, "core");
    tcase_add_test(fc, forecast_by_hand);
    tcase_add_test(fc, forecast_of_llmtime_text);
    suite_add_tcase(suite, fc);

    TCase *fl = tcase_create("flops");
    tcase_set_tags(fl, "core");
    tcase_add_test(fl, flops_qwen25_by_hand);
    tcase_add_test(fl, flops_tiny_qwen2_by_hand);
    tcase_add_test(fl, flops_tiny_qwen3_untied);
    tcase_add_test(fl, mfu_values);
    suite_add_tcase(suite, fl);

    TCase *lim = tcase_create("limits");
    tcase_set_tags(lim, "limits");
    tcase_set_timeout(lim, 60);
    tcase_add_test(lim, pass_at_k_large_n);
    tcase_add_test(lim, normalize_deep_nesting);
    tcase_add_test(lim, extract_many_unclosed_boxes);
    tcase_add_test(lim, forecast_non_finite);
    tcase_add_test(lim, flops_limits);
    suite_add_tcase(suite, lim);

    TCase *mis = tcase_create("misuse");
    tcase_set_tags(mis, "misuse");
    tcase_add_test(mis, answer_misuse);
    tcase_add_test(mis, pass_at_k_misuse);
    tcase_add_test(mis, forecast_misuse);
    tcase_add_loop_test(mis, flops_bad_lora_config, 0,
                        (int)(sizeof BAD_LORA / sizeof BAD_LORA[0]));
    tcase_add_test(mis, flops_misuse);
    suite_add_tcase(suite, mis);
    return suite;
}

int main(void) { return tu_run_suite(eval_suite()); }
