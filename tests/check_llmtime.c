/* LLMTIME: the coursework's known answer, rounding, round trips, tolerant decoding of model
 * output, options and misuse. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "util/rng.h"
#include "util/suite.h"

static char *encode(const float *x, size_t steps, size_t dims, const char *opts, double *alpha)
{
    char *text = NULL;
    lora_status st = lora_llmtime_encode(x, steps, dims, opts, &text, alpha);
    ck_assert_msg(st == LORA_OK, "encode %s: %s", opts ? opts : "NULL", lora_last_error());
    ck_assert_ptr_nonnull(text);
    return text;
}

static size_t decode(const char *text, double alpha, size_t dims, float *out, size_t cap)
{
    size_t steps = 99;
    lora_status st = lora_llmtime_decode(text, strlen(text), alpha, dims, out, cap, &steps);
    ck_assert_msg(st == LORA_OK, "decode '%s': %s", text, lora_last_error());
    ck_assert_uint_le(steps * dims, cap);
    return steps;
}

/* ---- encoding ------------------------------------------------------------------------------ */

START_TEST(known_answer)
{
    const float x[] = {1, 2, 2, 4, 3, 6};
    double alpha = 0;
    char *text = encode(x, 3, 2, NULL, &alpha);
    ck_assert_str_eq(text, "1.67,3.33;3.33,6.67;5.00,10.00");
    ck_assert(alpha == 10.0 / 6.0);
    float back[6];
    ck_assert_uint_eq(decode(text, alpha, 2, back, 6), 3);
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq_tol(back[i], x[i], 0.005 / alpha + 1e-6);
    lora_string_free(text);
}
END_TEST

START_TEST(rounding_is_printf)
{
    /* %.*f of the double value * alpha: exact binary ties go to even */
    const float x[] = {1.5f, 2.5f, -3.5f, 0.125f};
    char *text = encode(x, 4, 1, "{\"alpha\":1,\"decimals\":0}", NULL);
    ck_assert_str_eq(text, "2;2;-4;0");
    lora_string_free(text);
    text = encode(x + 3, 1, 1, "{\"alpha\":1}", NULL);
    ck_assert_str_eq(text, "0.12");
    lora_string_free(text);
    const float y[] = {1, -2, 0.0001f, -0.0001f};
    double alpha = 0;
    text = encode(y, 2, 2, "{\"target\":100,\"decimals\":3}", &alpha);
    ck_assert(alpha == 50.0);
    ck_assert_str_eq(text, "50.000,-100.000;0.005,-0.005");
    lora_string_free(text);
    /* a negative value that rounds to zero keeps its sign, as printf and Python write it */
    text = encode(y + 2, 1, 2, "{\"alpha\":1}", NULL);
    ck_assert_str_eq(text, "0.00,-0.00");
    lora_string_free(text);
}
END_TEST

START_TEST(all_zero_series_has_alpha_one)
{
    const float x[] = {0, 0, 0};
    double alpha = 0;
    char *text = encode(x, 3, 1, "{\"decimals\":1}", &alpha);
    ck_assert(alpha == 1.0);
    ck_assert_str_eq(text, "0.0;0.0;0.0");
    lora_string_free(text);
}
END_TEST

START_TEST(round_trip_random)
{
    lora_rng rng;
    lora__rng_seed(&rng, 1234);
    for (int trial = 0; trial < 200; trial++) {
        size_t steps = 1 + lora__rng_u64(&rng) % 40, dims = 1 + lora__rng_u64(&rng) % 5;
        int decimals = (int)(lora__rng_u64(&rng) % 6);
        double scale = pow(10, (double)(lora__rng_u64(&rng) % 9) - 4);
        float *x = malloc(steps * dims * sizeof *x), *y = malloc(steps * dims * sizeof *y);
        for (size_t i = 0; i < steps * dims; i++)
            x[i] = (float)(scale * lora__rng_normal(&rng));
        char opts[64];
        snprintf(opts, sizeof opts, "{\"decimals\":%d}", decimals);
        double alpha = 0;
        char *text = encode(x, steps, dims, opts, &alpha);
        ck_assert_uint_eq(decode(text, alpha, dims, y, steps * dims), steps);
        double tol = 0.5 * pow(10, -decimals) / alpha;
        for (size_t i = 0; i < steps * dims; i++)
            ck_assert_msg(fabs((double)y[i] - x[i]) <= tol * (1 + 1e-9) + fabs(x[i]) * 1.2e-7,
                          "trial %d value %zu: %g -> %g (alpha %g, decimals %d)", trial, i,
                          (double)x[i], (double)y[i], alpha, decimals);
        lora_string_free(text);
        free(x);
        free(y);
    }
}
END_TEST

/* ---- decoding model output ----------------------------------------------------------------- */

static const double A = 10.0 / 6.0;

static const struct {
    const char *text;
    size_t dims, steps;
} PREFIXES[] = {
    {"1.67,3.3", 2, 0},                            /* last number cut: decimals differ */
    {"1.67,3.33;3.3", 2, 1},                       /* step with one number of two */
    {"1.67,3.33;3.33,6.6", 2, 1},
    {"1.67,3.33;3.33,6.67;", 2, 2},
    {"1.67,3.33;3.33,6.67", 2, 2},
    {"", 2, 0},
    {" \n\t", 1, 0},
    {"abc", 1, 0},
    {"1.67,3.33;x", 2, 1},
    {"1.67,3.33;3.33,6.67<|im_end|>", 2, 1},       /* stray text after a step drops it */
    {"1.67;3.33", 2, 0},                           /* too few numbers */
    {"1.67,3.33,5.00;1.00,2.00,3.00", 2, 0},       /* too many */
    {"1.67,3.33;;5.00,10.00", 2, 1},
    {"1e3,2.00", 2, 0},
    {"1.,2.", 2, 0},
    {".5,1.5", 2, 0},
    {"--1.00,2.00", 2, 0},
    {"1.00 2.00", 2, 0},
    {"nan,inf", 2, 0},
    {" 1.67 , 3.33 ;\n 3.33,\t6.67 \n", 2, 2},     /* whitespace around numbers */
    {"+1.67,-3.33", 2, 1},
    {"10;20;30;40", 1, 4},
    {"10;20;3.0;40", 1, 2},
};

START_TEST(decode_well_formed_prefix)
{
    float out[16];
    size_t n = decode(PREFIXES[_i].text, A, PREFIXES[_i].dims, out, 16);
    ck_assert_msg(n == PREFIXES[_i].steps, "'%s' (dims %zu): %zu steps, want %zu",
                  PREFIXES[_i].text, PREFIXES[_i].dims, n, PREFIXES[_i].steps);
}
END_TEST

START_TEST(decode_values)
{
    float out[4];
    ck_assert_uint_eq(decode(" 1.67 , 3.33 ;\n -3.33,\t6.67 \n", A, 2, out, 4), 2);
    const double want[] = {1.67, 3.33, -3.33, 6.67};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(out[i], (float)(want[i] / A));
    /* len, not the NUL, ends the text */
    size_t steps = 0;
    ck_assert_int_eq(lora_llmtime_decode("5.00;6.00", 4, 1.0, 1, out, 4, &steps), LORA_OK);
    ck_assert_uint_eq(steps, 1);
    ck_assert_float_eq(out[0], 5.0f);
    /* a number beyond float range once divided by alpha ends the text */
    ck_assert_uint_eq(decode("1.0;1000000000000000000000000000000000000000.0", 1e-3, 1, out, 4),
                      1);
}
END_TEST

START_TEST(decode_cap_limits)
{
    float out[7];
    for (int i = 0; i < 7; i++)
        out[i] = -42;
    const char *text = "1.00,2.00;3.00,4.00;5.00,6.00";
    ck_assert_uint_eq(decode(text, 1, 2, out, 5), 2);
    ck_assert_float_eq(out[3], 4.0f);
    ck_assert_float_eq(out[4], -42.0f); /* past the decoded steps: untouched */
    ck_assert_uint_eq(decode(text, 1, 2, out, 1), 0);
    ck_assert_uint_eq(decode(text, 1, 2, NULL, 0), 0);
    ck_assert_uint_eq(decode(text, 1, 2, out, 7), 3);
    ck_assert_float_eq(out[6], -42.0f);
}
END_TEST

/* ---- errors -------------------------------------------------------------------------------- */

static const struct {
    const char *opts, *needle;
} BAD_OPTS[] = {
    {"{\"alpha\":0}", "'alpha'"},
    {"{\"alpha\":-1}", "'alpha'"},
    {"{\"alpha\":\"2\"}", "'alpha'"},
    {"{\"target\":0}", "'target'"},
    {"{\"target\":true}", "'target'"},
    {"{\"decimals\":10}", "'decimals'"},
    {"{\"decimals\":-1}", "'decimals'"},
    {"{\"decimals\":1.5}", "'decimals'"},
    {"{\"scale\":1}", "unknown key 'scale'"},
    {"{\"alpha\":1,\"target\":2}", "exclude each other"},
    {"[]", "JSON object"},
    {"{", "not valid JSON"},
};

START_TEST(options_errors_name_key)
{
    const float x[] = {1, 2};
    char *text = (char *)"unset";
    double alpha = -7;
    ck_assert_int_eq(lora_llmtime_encode(x, 2, 1, BAD_OPTS[_i].opts, &text, &alpha),
                     LORA_ERR_CONFIG);
    ck_assert_ptr_null(text);
    ck_assert(alpha == -7);
    ck_assert_msg(strstr(lora_last_error(), "lora_llmtime_encode: ") &&
                  strstr(lora_last_error(), BAD_OPTS[_i].needle), "%s: '%s'",
                  BAD_OPTS[_i].opts, lora_last_error());
}
END_TEST

START_TEST(null_options_are_defaults)
{
    const float x[] = {1, 2};
    char *text = encode(x, 2, 1, "{\"alpha\":null,\"target\":null,\"decimals\":null}", NULL);
    ck_assert_str_eq(text, "5.00;10.00");
    lora_string_free(text);
}
END_TEST

START_TEST(non_finite_is_numeric)
{
    float x[] = {1, 2, 3, 4};
    char *text = NULL;
    x[3] = NAN;
    ck_assert_int_eq(lora_llmtime_encode(x, 2, 2, NULL, &text, NULL), LORA_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "step 1, dim 1"));
    x[3] = -INFINITY;
    ck_assert_int_eq(lora_llmtime_encode(x, 2, 2, NULL, &text, NULL), LORA_ERR_NUMERIC);
    x[3] = FLT_MAX;
    ck_assert_int_eq(lora_llmtime_encode(x, 2, 2, "{\"alpha\":1e300}", &text, NULL),
                     LORA_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "overflows"));
    const float tiny[] = {1e-45f};
    ck_assert_int_eq(lora_llmtime_encode(tiny, 1, 1, "{\"target\":1e300}", &text, NULL),
                     LORA_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "alpha"));
    ck_assert_ptr_null(text);
    /* the largest floats still encode at 9 decimals */
    const float big[] = {FLT_MAX, -FLT_MAX};
    text = encode(big, 2, 1, "{\"alpha\":1,\"decimals\":9}", NULL);
    ck_assert_uint_eq(strlen(text), 2 * (39 + 10) + 1 + 1);
    lora_string_free(text);
}
END_TEST

START_TEST(misuse)
{
    const float x[] = {1};
    float out[1];
    char *text = NULL;
    size_t steps = 5;
    ck_assert_int_eq(lora_llmtime_encode(NULL, 1, 1, NULL, &text, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_llmtime_encode(x, 0, 1, NULL, &text, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_llmtime_encode(x, 1, 0, NULL, &text, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_llmtime_encode(x, 1, 1, NULL, NULL, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_llmtime_encode(x, (size_t)1 << 40, (size_t)1 << 40, NULL, &text, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(text);
    ck_assert_int_eq(lora_llmtime_decode(NULL, 0, 1, 1, out, 1, &steps),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(steps, 0);
    ck_assert_int_eq(lora_llmtime_decode("1", 1, 1, 0, out, 1, &steps),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_llmtime_decode("1", 1, 1, 1, NULL, 1, &steps),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_llmtime_decode("1", 1, 1, 1, out, 1, NULL), LORA_ERR_INVALID_ARGUMENT);
    const double bad_alpha[] = {0, -1, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(lora_llmtime_decode("1", 1, bad_alpha[i], 1, out, 1, &steps),
                         LORA_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_llmtime_decode: alpha"));
    }
}
END_TEST

/* The coursework's ids of the known answer with the Qwen tokenizer: one token per digit. */
START_TEST(qwen_token_ids)
{
    lora_tokenizer *t = NULL;
    ck_assert_msg(lora_tokenizer_load("tests/fixtures/qwen-tokenizer", NULL, &t) == LORA_OK, "%s",
                  lora_last_error());
    const char *text = "1.67,3.33;3.33,6.67;5.00,10.00";
    static const int32_t want[] = {16, 13, 21, 22, 11, 18, 13, 18, 18, 26, 18, 13, 18, 18, 11,
                                   21, 13, 21, 22, 26, 20, 13, 15, 15, 11, 16, 15, 13, 15, 15};
    int32_t ids[64];
    size_t n = 0;
    ck_assert_int_eq(lora_tokenizer_encode(t, text, strlen(text), 0, ids, 64, &n), LORA_OK);
    ck_assert_uint_eq(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(ids[i] == want[i], "id %zu: %d, want %d", i, ids[i], want[i]);
    lora_tokenizer_free(t);
}
END_TEST

static Suite *llmtime_suite(void)
{
    Suite *suite = suite_create("llmtime");
    TCase *enc = tcase_create("encode");
    tcase_set_tags(enc, "core");
    tcase_set_timeout(enc, 60);
    tcase_add_test(enc, known_answer);
    tcase_add_test(enc, rounding_is_printf);
    tcase_add_test(enc, all_zero_series_has_alpha_one);
    tcase_add_test(enc, round_trip_random);
    tcase_add_test(enc, qwen_token_ids);
    suite_add_tcase(suite, enc);

    TCase *dec = tcase_create("decode");
    tcase_set_tags(dec, "core");
    tcase_add_loop_test(dec, decode_well_formed_prefix, 0,
                        (int)(sizeof PREFIXES / sizeof PREFIXES[0]));
    tcase_add_test(dec, decode_values);
    suite_add_tcase(suite, dec);

    TCase *lim = tcase_create("limits");
    tcase_set_tags(lim, "limits");
    tcase_add_test(lim, decode_cap_limits);
    tcase_add_test(lim, non_finite_is_numeric);
    suite_add_tcase(suite, lim);

    TCase *mis = tcase_create("misuse");
    tcase_set_tags(mis, "misuse");
    tcase_add_loop_test(mis, options_errors_name_key, 0, (int)(sizeof BAD_OPTS / sizeof BAD_OPTS[0]));
    tcase_add_test(mis, null_options_are_defaults);
    tcase_add_test(mis, misuse);
    suite_add_tcase(suite, mis);
    return suite;
}

int main(void) { return tu_run_suite(llmtime_suite()); }
