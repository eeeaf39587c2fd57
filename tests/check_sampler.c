/* lora_sampler: Hugging Face warper semantics, determinism, config validation, misuse. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "sample/sampler.h"
#include "util/rng.h"
#include "util/suite.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static lora_sampler *make(const char *json)
{
    lora_sampler *s = NULL;
    lora_status st = lora_sampler_create(json, &s);
    ck_assert_msg(st == LORA_OK, "create %s: %s", json ? json : "NULL", lora_last_error());
    ck_assert_ptr_nonnull(s);
    return s;
}

static int32_t draw(lora_sampler *s, const float *logits, size_t v, const int32_t *tokens,
                    size_t n_tokens, size_t n_prompt)
{
    int32_t t = -1;
    lora_status st = lora_sampler_sample(s, logits, v, tokens, n_tokens, n_prompt, &t);
    ck_assert_msg(st == LORA_OK, "sample: %s", lora_last_error());
    ck_assert_int_ge(t, 0);
    ck_assert_int_lt(t, (int32_t)v);
    return t;
}

/* Bit i is set when token i came up in `draws` draws (v <= 32). */
static unsigned drawn_mask(lora_sampler *s, const float *logits, size_t v, int draws)
{
    unsigned mask = 0;
    for (int i = 0; i < draws; i++)
        mask |= 1u << draw(s, logits, v, NULL, 0, 0);
    return mask;
}

static void histogram(lora_sampler *s, const float *logits, size_t v, int draws, int *counts)
{
    memset(counts, 0, v * sizeof *counts);
    for (int i = 0; i < draws; i++)
        counts[draw(s, logits, v, NULL, 0, 0)]++;
}

static void random_logits(lora_rng *rng, float *logits, size_t v, double lo, double hi)
{
    for (size_t i = 0; i < v; i++)
        logits[i] = (float)(lo + (hi - lo) * lora__rng_uniform_f64(rng));
}

static void log_probs(const double *p, float *logits, size_t v)
{
    for (size_t i = 0; i < v; i++)
        logits[i] = (float)log(p[i]);
}

static void softmax(const float *logits, size_t v, double t, double *p)
{
    double z = 0;
    for (size_t i = 0; i < v; i++)
        z += p[i] = exp(logits[i] / t);
    for (size_t i = 0; i < v; i++)
        p[i] /= z;
}

static size_t argmax_f(const float *x, size_t v)
{
    size_t best = 0;
    for (size_t i = 1; i < v; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* ---- greedy ------------------------------------------------------------------------------- */

START_TEST(greedy_default_is_argmax)
{
    lora_sampler *s = make(NULL);
    lora_rng rng;
    lora__rng_seed(&rng, 1);
    float logits[64];
    for (int trial = 0; trial < 500; trial++) {
        random_logits(&rng, logits, 64, -5, 5);
        ck_assert_int_eq(draw(s, logits, 64, NULL, 0, 0), (int32_t)argmax_f(logits, 64));
    }
    lora_sampler_free(s);
}
END_TEST

START_TEST(greedy_first_index_on_ties)
{
    lora_sampler *s = make("{\"do_sample\": true, \"temperature\": 0}");
    float logits[] = {1, 3, 2, 3, 3};
    ck_assert_int_eq(draw(s, logits, 5, NULL, 0, 0), 1);
    lora_sampler_free(s);
}
END_TEST

START_TEST(temperature_zero_is_greedy)
{
    lora_sampler *s = make("{\"do_sample\": true, \"temperature\": 0, \"top_k\": 5}");
    lora_rng rng;
    lora__rng_seed(&rng, 2);
    float logits[64];
    for (int trial = 0; trial < 500; trial++) {
        random_logits(&rng, logits, 64, -1, 1);
        ck_assert_int_eq(draw(s, logits, 64, NULL, 0, 0), (int32_t)argmax_f(logits, 64));
    }
    lora_sampler_free(s);
}
END_TEST

START_TEST(tiny_temperature_matches_greedy)
{
    lora_sampler *hot = make("{\"do_sample\": true, \"temperature\": 1e-6}");
    lora_sampler *greedy = make(NULL);
    lora_rng rng;
    lora__rng_seed(&rng, 3);
    float logits[64];
    for (int trial = 0; trial < 2000; trial++) {
        random_logits(&rng, logits, 64, -5, 5);
        ck_assert_int_eq(draw(hot, logits, 64, NULL, 0, 0), draw(greedy, logits, 64, NULL, 0, 0));
    }
    lora_sampler_free(hot);
    lora_sampler_free(greedy);
}
END_TEST

START_TEST(set_temperature_switches_to_greedy)
{
    lora_sampler *s = make("{\"do_sample\": true}");
    float logits[] = {0.0f, 0.1f, 0.05f, 0.0f};
    ck_assert_uint_ne(drawn_mask(s, logits, 4, 200), 1u << 1);
    ck_assert_int_eq(lora_sampler_set_temperature(s, 0.0f), LORA_OK);
    ck_assert_uint_eq(drawn_mask(s, logits, 4, 200), 1u << 1);
    lora_sampler_free(s);
}
END_TEST

/* ---- sampling distribution ---------------------------------------------------------------- */

static void check_frequencies(const char *json, double t)
{
    lora_sampler *s = make(json);
    float logits[] = {1.0f, 0.5f, 0.0f, -0.5f, -1.0f};
    double p[5];
    int counts[5];
    softmax(logits, 5, t, p);
    histogram(s, logits, 5, 20000, counts);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(fabs(counts[i] / 20000.0 - p[i]) < 0.02, "%s token %d: %g vs %g", json, i,
                      counts[i] / 20000.0, p[i]);
    lora_sampler_free(s);
}

START_TEST(frequencies_match_softmax)
{
    check_frequencies("{\"do_sample\": true, \"seed\": 11}", 1.0);
}
END_TEST

START_TEST(frequencies_follow_temperature)
{
    check_frequencies("{\"do_sample\": true, \"seed\": 12, \"temperature\": 0.5}", 0.5);
    check_frequencies("{\"do_sample\": true, \"seed\": 13, \"temperature\": 2}", 2.0);
}
END_TEST

START_TEST(inf_logit_wins)
{
    float one[] = {0.0f, INFINITY, 5.0f, -INFINITY};
    lora_sampler *g = make(NULL);
    ck_assert_int_eq(draw(g, one, 4, NULL, 0, 0), 1);
    lora_sampler *w = make("{\"do_sample\": true, \"top_p\": 0.9, \"min_p\": 0.1, "
                           "\"top_k\": 2, \"temperature\": 0.5, \"presence_penalty\": 1}");
    int32_t gen[] = {1};
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(draw(w, one, 4, gen, 1, 0), 1);
    /* Two +inf logits share the mass; greedy takes the first. */
    float two[] = {INFINITY, 0.0f, INFINITY};
    lora_sampler *s = make("{\"do_sample\": true}");
    ck_assert_int_eq(draw(g, two, 3, NULL, 0, 0), 0);
    ck_assert_uint_eq(drawn_mask(s, two, 3, 200), 0x5u);
    lora_sampler_free(g);
    lora_sampler_free(w);
    lora_sampler_free(s);
}
END_TEST

START_TEST(neg_inf_never_drawn)
{
    lora_sampler *s = make("{\"do_sample\": true}");
    float logits[] = {-INFINITY, 0.0f, -INFINITY, 0.0f, -INFINITY};
    ck_assert_uint_eq(drawn_mask(s, logits, 5, 500), 0xau);
    lora_sampler_free(s);
}
END_TEST

START_TEST(logits_not_modified)
{
    lora_sampler *s = make("{\"do_sample\": true, \"temperature\": 0.7, \"top_k\": 4, "
                           "\"top_p\": 0.9, \"min_p\": 0.05, \"repetition_penalty\": 1.3, "
                           "\"presence_penalty\": 0.5, \"frequency_penalty\": 0.2}");
    lora_rng rng;
    lora__rng_seed(&rng, 4);
    float logits[32], copy[32];
    random_logits(&rng, logits, 32, -3, 3);
    memcpy(copy, logits, sizeof logits);
    int32_t tokens[] = {1, 2, 3, 3, 5, 7};
    draw(s, logits, 32, tokens, 6, 2);
    ck_assert_mem_eq(logits, copy, sizeof logits);
    lora_sampler_free(s);
}
END_TEST

/* ---- top_k / top_p / min_p ---------------------------------------------------------------- */

START_TEST(top_k_keeps_k_best)
{
    lora_sampler *s = make("{\"do_sample\": true, \"top_k\": 3, \"seed\": 5}");
    lora_rng rng;
    lora__rng_seed(&rng, 5);
    float logits[20];
    random_logits(&rng, logits, 20, 0, 2);
    /* The three best and their probabilities renormalised among themselves. */
    float rest[20];
    memcpy(rest, logits, sizeof rest);
    size_t best[3];
    double z = 0;
    for (int j = 0; j < 3; j++) {
        best[j] = argmax_f(rest, 20);
        rest[best[j]] = -INFINITY;
        z += exp(logits[best[j]]);
    }
    int counts[20];
    histogram(s, logits, 20, 10000, counts);
    int inside = 0;
    for (int j = 0; j < 3; j++) {
        double want = exp(logits[best[j]]) / z, got = counts[best[j]] / 10000.0;
        ck_assert_int_gt(counts[best[j]], 0);
        ck_assert_msg(fabs(got - want) < 0.03, "token %zu: %g vs %g", best[j], got, want);
        inside += counts[best[j]];
    }
    ck_assert_int_eq(inside, 10000);
    lora_sampler_free(s);
}
END_TEST

START_TEST(top_k_keeps_ties)
{
    lora_sampler *s = make("{\"do_sample\": true, \"top_k\": 2}");
    float logits[] = {3.0f, 2.0f, 2.0f, 2.0f, 1.9f};
    ck_assert_uint_eq(drawn_mask(s, logits, 5, 2000), 0xfu);
    lora_sampler_free(s);
}
END_TEST

START_TEST(top_k_at_least_vocab_is_noop)
{
    lora_sampler *s = make("{\"do_sample\": true, \"top_k\": 9}");
    float logits[] = {0.0f, 0.0f, 0.0f, 0.0f, -1.0f};
    ck_assert_uint_eq(drawn_mask(s, logits, 5, 2000), 0x1fu);
    lora_sampler_free(s);
}
END_TEST

/* probs {0.5, 0.3, 0.15, 0.05}: from the least probable, the cumulative sums are 0.05, 0.2,
 * 0.5, so 1 - top_p = 0.21 drops tokens 3 and 2, 0.19 only token 3. */
START_TEST(top_p_cut)
{
    const double p[] = {0.5, 0.3, 0.15, 0.05};
    float logits[4];
    log_probs(p, logits, 4);
    lora_sampler *a = make("{\"do_sample\": true, \"top_p\": 0.79}");
    ck_assert_uint_eq(drawn_mask(a, logits, 4, 3000), 0x3u);
    lora_sampler *b = make("{\"do_sample\": true, \"top_p\": 0.81}");
    ck_assert_uint_eq(drawn_mask(b, logits, 4, 3000), 0x7u);
    lora_sampler *c = make("{\"do_sample\": true, \"top_p\": 0.04}");
    ck_assert_uint_eq(drawn_mask(c, logits, 4, 500), 0x1u);
    lora_sampler_free(a);
    lora_sampler_free(b);
    lora_sampler_free(c);
}
END_TEST

/* Four equal logits give probabilities of exactly 0.25, so the boundary is exact: a cumulative
 * probability equal to 1 - top_p is dropped. Ties are cut from the highest ids. */
START_TEST(top_p_exact_boundary)
{
    float logits[] = {0.0f, 0.0f, 0.0f, 0.0f};
    lora_sampler *a = make("{\"do_sample\": true, \"top_p\": 0.75}");
    ck_assert_uint_eq(drawn_mask(a, logits, 4, 2000), 0x7u);
    lora_sampler *b = make("{\"do_sample\": true, \"top_p\": 0.5}");
    ck_assert_uint_eq(drawn_mask(b, logits, 4, 2000), 0x3u);
    lora_sampler *c = make("{\"do_sample\": true, \"top_p\": 0.76}");
    ck_assert_uint_eq(drawn_mask(c, logits, 4, 2000), 0xfu);
    lora_sampler_free(a);
    lora_sampler_free(b);
    lora_sampler_free(c);
}
END_TEST

/* top_p sees the probabilities renormalised after top_k: {0.625, 0.375} -> 0.375 <= 0.4. */
START_TEST(top_p_after_top_k)
{
    const double p[] = {0.5, 0.3, 0.15, 0.05};
    float logits[4];
    log_probs(p, logits, 4);
    lora_sampler *s = make("{\"do_sample\": true, \"top_k\": 2, \"top_p\": 0.6}");
    ck_assert_uint_eq(drawn_mask(s, logits, 4, 1000), 0x1u);
    lora_sampler_free(s);
}
END_TEST

/* min_p 0.5 against a top probability of 0.4 drops p < 0.2; the margins (0.201 vs 0.199) are
 * far wider than float rounding of the log-probabilities. */
START_TEST(min_p_cut)
{
    const double keep[] = {0.4, 0.25, 0.201, 0.149};
    const double drop[] = {0.4, 0.25, 0.199, 0.151};
    float logits[4];
    lora_sampler *s = make("{\"do_sample\": true, \"min_p\": 0.5}");
    log_probs(keep, logits, 4);
    ck_assert_uint_eq(drawn_mask(s, logits, 4, 3000), 0x7u);
    log_probs(drop, logits, 4);
    ck_assert_uint_eq(drawn_mask(s, logits, 4, 3000), 0x3u);
    lora_sampler_free(s);
}
END_TEST

/* min_p 1 keeps exactly the tokens tied with the top (p < max p is false for them). */
START_TEST(min_p_exact_boundary)
{
    lora_sampler *s = make("{\"do_sample\": true, \"min_p\": 1}");
    float logits[] = {1.0f, 1.0f, 0.999f, 1.0f};
    ck_assert_uint_eq(drawn_mask(s, logits, 4, 2000), 0xbu);
    lora_sampler_free(s);
}
END_TEST

/* min_p runs after the temperature: at T = 2 token 3's ratio is sqrt(0.149 / 0.4) > 0.5. */
START_TEST(min_p_after_temperature)
{
    const double p[] = {0.4, 0.25, 0.201, 0.149};
    float logits[4];
    log_probs(p, logits, 4);
    lora_sampler *s = make("{\"do_sample\": true, \"min_p\": 0.5, \"temperature\": 2}");
    ck_assert_uint_eq(drawn_mask(s, logits, 4, 3000), 0xfu);
    lora_sampler_free(s);
}
END_TEST

/* Random rows for the reference comparisons: some spread, sometimes rounded to create ties,
 * a few tokens masked to -inf. */
static void random_row(lora_rng *rng, double *x, size_t v, int trial)
{
    double spread = (double[]){0.3, 2.0, 6.0}[trial % 3];
    for (size_t i = 0; i < v; i++) {
        x[i] = spread * lora__rng_normal(rng);
        if (trial % 2)
            x[i] = round(x[i] * 2) / 2;
        if (lora__rng_uniform_f64(rng) < 0.05)
            x[i] = -INFINITY;
    }
}

static const double *rank_values;

/* Most probable first, lower id first among equals. */
static int by_rank_desc(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    if (rank_values[a] != rank_values[b])
        return rank_values[a] > rank_values[b] ? -1 : 1;
    return (a > b) - (a < b);
}

static void rank_all(const double *x, size_t v, size_t *idx)
{
    for (size_t i = 0; i < v; i++)
        idx[i] = i;
    rank_values = x;
    qsort(idx, v, sizeof *idx, by_rank_desc);
}

START_TEST(top_k_matches_reference)
{
    enum { V = 700 };
    static double x[V], ref[V], scratch[V];
    static size_t idx[V];
    lora_rng rng;
    lora__rng_seed(&rng, 21);
    for (int trial = 0; trial < 300; trial++) {
        random_row(&rng, x, V, trial);
        size_t k = 1 + (size_t)(lora__rng_u64(&rng) % (V + 2));
        /* TopKLogitsWarper: remove what is strictly below the k-th largest. */
        rank_all(x, V, idx);
        for (size_t i = 0; i < V; i++)
            ref[i] = k < V && x[i] < x[idx[k - 1]] ? -INFINITY : x[i];
        lora__warp_top_k(x, V, k, scratch);
        ck_assert_msg(memcmp(x, ref, sizeof x) == 0, "trial %d k %zu", trial, k);
    }
}
END_TEST

START_TEST(top_p_matches_full_sort)
{
    enum { V = 700 };
    static double x[V], ref[V], scratch[V];
    static size_t idx[V];
    static lora__ranked order[V];
    const double tops[] = {0.05, 0.3, 0.5, 0.9, 0.99, 0.999};
    lora_rng rng;
    lora__rng_seed(&rng, 22);
    int compared = 0;
    for (int trial = 0; trial < 600; trial++) {
        random_row(&rng, x, V, trial);
        double top_p = tops[trial % 6], max = -INFINITY, z = 0;
        /* TopPLogitsWarper on a full ascending sort, summing probabilities as it goes. */
        rank_all(x, V, idx);
        for (size_t i = 0; i < V; i++)
            max = fmax(max, x[i]);
        for (size_t i = 0; i < V; i++)
            z += exp(x[i] - max);
        memcpy(ref, x, sizeof x);
        double cum = 0, closest = INFINITY;
        for (size_t j = V - 1; j > 0; j--) {
            cum += exp(x[idx[j]] - max) / z;
            closest = fmin(closest, fabs(cum - (1 - top_p)));
            if (cum <= 1 - top_p)
                ref[idx[j]] = -INFINITY;
        }
        lora__warp_top_p(x, V, top_p, scratch, order);
        /* Rounding may only differ where a sum lands on the cut itself. */
        if (closest < 1e-12)
            continue;
        compared++;
        ck_assert_msg(memcmp(x, ref, sizeof x) == 0, "trial %d top_p %g", trial, top_p);
    }
    ck_assert_int_gt(compared, 550);
}
END_TEST

/* ---- penalties ---------------------------------------------------------------------------- */

START_TEST(repetition_divides_positive)
{
    lora_sampler *s = make("{\"repetition_penalty\": 1.5}");
    float logits[] = {2.0f, 1.5f, -1.0f};
    int32_t prompt[] = {0};
    /* 2 / 1.5 = 1.33 < 1.5; multiplying (3.0) would keep token 0. */
    ck_assert_int_eq(draw(s, logits, 3, prompt, 1, 1), 1);
    ck_assert_int_eq(draw(s, logits, 3, NULL, 0, 0), 0);
    lora_sampler_free(s);
}
END_TEST

START_TEST(repetition_multiplies_negative)
{
    lora_sampler *s = make("{\"repetition_penalty\": 1.5}");
    float logits[] = {-1.0f, -1.2f, -5.0f};
    int32_t generated[] = {0};
    /* -1 * 1.5 = -1.5 < -1.2; dividing (-0.67) would keep token 0. */
    ck_assert_int_eq(draw(s, logits, 3, generated, 1, 0), 1);
    lora_sampler_free(s);
}
END_TEST

START_TEST(repetition_once_per_distinct_token)
{
    lora_sampler *s = make("{\"repetition_penalty\": 1.5}");
    float logits[] = {2.0f, 1.0f};
    int32_t tokens[] = {0, 0, 0, 0};
    /* Once: 1.33 > 1; four times would give 0.4. */
    ck_assert_int_eq(draw(s, logits, 2, tokens, 4, 2), 0);
    lora_sampler_free(s);
}
END_TEST

START_TEST(repetition_below_one_boosts)
{
    lora_sampler *s = make("{\"repetition_penalty\": 0.5}");
    float logits[] = {2.0f, 1.5f};
    int32_t tokens[] = {1};
    ck_assert_int_eq(draw(s, logits, 2, tokens, 1, 1), 1);
    lora_sampler_free(s);
}
END_TEST

START_TEST(presence_counts_generated_only)
{
    lora_sampler *s = make("{\"presence_penalty\": 0.6}");
    float logits[] = {1.0f, 0.5f, 0.0f};
    int32_t prompt_only[] = {0, 0, 0};
    ck_assert_int_eq(draw(s, logits, 3, prompt_only, 3, 3), 0);
    int32_t generated[] = {2, 0};
    /* 1 - 0.6 = 0.4 < 0.5 */
    ck_assert_int_eq(draw(s, logits, 3, generated, 2, 1), 1);
    /* Once however often: 1 - 0.6 = 0.4 > 0.3, where three times would give -0.8. */
    float close[] = {1.0f, 0.3f};
    int32_t thrice[] = {0, 0, 0};
    ck_assert_int_eq(draw(s, close, 2, thrice, 3, 0), 0);
    lora_sampler_free(s);
}
END_TEST

START_TEST(frequency_counts_occurrences)
{
    lora_sampler *s = make("{\"frequency_penalty\": 0.3}");
    float logits[] = {1.0f, 0.5f};
    int32_t once[] = {0, 1, 0};
    int32_t twice[] = {0, 0, 0};
    /* n_prompt 2: token 0 generated once (0.7 > 0.5) ... */
    ck_assert_int_eq(draw(s, logits, 2, once, 3, 2), 0);
    ck_assert_int_eq(draw(s, logits, 2, once, 3, 2), 0);
    /* ... or twice (0.4 < 0.5); the prompt's occurrence never counts. */
    ck_assert_int_eq(draw(s, logits, 2, twice, 3, 1), 1);
    lora_sampler_free(s);
}
END_TEST

START_TEST(presence_and_frequency_add)
{
    lora_sampler *s = make("{\"presence_penalty\": 0.2, \"frequency_penalty\": 0.2}");
    float logits[] = {1.0f, 0.45f};
    int32_t gen[] = {0};
    /* 1 - 0.2 - 0.2 = 0.6 > 0.45; with 2 occurrences 0.4 < 0.45. */
    ck_assert_int_eq(draw(s, logits, 2, gen, 1, 0), 0);
    int32_t gen2[] = {0, 0};
    ck_assert_int_eq(draw(s, logits, 2, gen2, 2, 0), 1);
    lora_sampler_free(s);
}
END_TEST

/* ---- determinism -------------------------------------------------------------------------- */

/* 100 tokens over a flat 1000-token vocabulary, each fed back as history. */
static void sequence(lora_sampler *s, int32_t *out)
{
    static float logits[1000];
    for (int i = 0; i < 100; i++)
        out[i] = draw(s, logits, 1000, out, (size_t)i, 0);
}

START_TEST(same_seed_same_sequence)
{
    const char *cfg = "{\"do_sample\": true, \"seed\": 42, \"repetition_penalty\": 1.1}";
    lora_sampler *a = make(cfg), *b = make(cfg);
    lora_sampler *c = make("{\"do_sample\": true, \"seed\": 43, \"repetition_penalty\": 1.1}");
    int32_t sa[100], sb[100], sc[100];
    sequence(a, sa);
    sequence(b, sb);
    sequence(c, sc);
    ck_assert_mem_eq(sa, sb, sizeof sa);
    ck_assert_int_ne(memcmp(sa, sc, sizeof sa), 0);
    lora_sampler_free(a);
    lora_sampler_free(b);
    lora_sampler_free(c);
}
END_TEST

START_TEST(set_seed_restarts)
{
    lora_sampler *a = make("{\"do_sample\": true, \"seed\": 7}");
    lora_sampler *b = make("{\"do_sample\": true}");
    int32_t first[100], again[100], other[100];
    sequence(a, first);
    ck_assert_int_eq(lora_sampler_set_seed(a, 7), LORA_OK);
    sequence(a, again);
    ck_assert_mem_eq(first, again, sizeof first);
    /* set_seed(7) on a fresh sampler equals "seed": 7 in the config. */
    ck_assert_int_eq(lora_sampler_set_seed(b, 7), LORA_OK);
    sequence(b, other);
    ck_assert_mem_eq(first, other, sizeof first);
    lora_sampler_free(a);
    lora_sampler_free(b);
}
END_TEST

START_TEST(rng_deterministic_and_uniform)
{
    lora_rng a, b;
    lora__rng_seed(&a, 99);
    lora__rng_seed(&b, 99);
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(lora__rng_u64(&a), lora__rng_u64(&b));
    lora__rng_seed(&b, 100);
    ck_assert_uint_ne(lora__rng_u64(&a), lora__rng_u64(&b));
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = lora__rng_uniform_f64(&a);
        ck_assert(u >= 0.0 && u < 1.0);
        sum += u;
    }
    ck_assert_double_eq_tol(sum / 100000, 0.5, 0.01);
}
END_TEST

START_TEST(rng_normal_moments)
{
    lora_rng r;
    lora__rng_seed(&r, 0);
    double sum = 0, sq = 0;
    for (int i = 0; i < 200000; i++) {
        double x = lora__rng_normal(&r);
        ck_assert(isfinite(x));
        sum += x;
        sq += x * x;
    }
    ck_assert_double_eq_tol(sum / 200000, 0.0, 0.01);
    ck_assert_double_eq_tol(sq / 200000, 1.0, 0.02);
}
END_TEST

/* ---- eos, stop sequences, max_new_tokens ---------------------------------------------------- */

START_TEST(defaults)
{
    lora_sampler *s = make("{}");
    ck_assert_uint_eq(lora__sampler_max_new_tokens(s), 256);
    ck_assert_int_eq(lora__sampler_is_eos(s, 0), 0);
    int32_t g[] = {0};
    ck_assert_int_eq(lora__sampler_hits_stop(s, g, 1), 0);
    lora_sampler_free(s);
}
END_TEST

START_TEST(eos_one_or_list)
{
    lora_sampler *one = make("{\"eos_token_id\": 7, \"max_new_tokens\": 3}");
    ck_assert_int_eq(lora__sampler_is_eos(one, 7), 1);
    ck_assert_int_eq(lora__sampler_is_eos(one, 8), 0);
    ck_assert_uint_eq(lora__sampler_max_new_tokens(one), 3);
    lora_sampler *list = make("{\"eos_token_id\": [1, 2]}");
    ck_assert_int_eq(lora__sampler_is_eos(list, 1), 1);
    ck_assert_int_eq(lora__sampler_is_eos(list, 2), 1);
    ck_assert_int_eq(lora__sampler_is_eos(list, 3), 0);
    lora_sampler_free(one);
    lora_sampler_free(list);
}
END_TEST

START_TEST(stop_sequences_match_suffix)
{
    lora_sampler *s = make("{\"stop_sequences\": [[5, 6], [9]]}");
    int32_t a[] = {1, 5, 6}, b[] = {5, 6, 1}, c[] = {9}, d[] = {6}, e[] = {4, 9, 5};
    ck_assert_int_eq(lora__sampler_hits_stop(s, a, 3), 1);
    ck_assert_int_eq(lora__sampler_hits_stop(s, b, 3), 0);
    ck_assert_int_eq(lora__sampler_hits_stop(s, c, 1), 1);
    ck_assert_int_eq(lora__sampler_hits_stop(s, d, 1), 0);
    ck_assert_int_eq(lora__sampler_hits_stop(s, e, 2), 1);
    ck_assert_int_eq(lora__sampler_hits_stop(s, e, 3), 0);
    ck_assert_int_eq(lora__sampler_hits_stop(s, NULL, 0), 0);
    lora_sampler_free(s);
}
END_TEST

START_TEST(valid_configs_accepted)
{
    lora_sampler_free(make("{\"do_sample\": true, \"temperature\": 0.7, \"top_k\": 50, "
                           "\"top_p\": 1, \"min_p\": 0, \"repetition_penalty\": 1.1, "
                           "\"presence_penalty\": -0.5, \"frequency_penalty\": 0.5, "
                           "\"seed\": 9223372036854775807, \"max_new_tokens\": 0, "
                           "\"eos_token_id\": [], \"stop_sequences\": []}"));
    lora_sampler_free(make("{\"min_p\": 1, \"top_p\": 1e-9, \"temperature\": 0}"));
    /* Hugging Face writes null for unset keys. */
    lora_sampler *s = make("{\"top_k\": null, \"eos_token_id\": null, \"max_new_tokens\": null}");
    ck_assert_uint_eq(lora__sampler_max_new_tokens(s), 256);
    lora_sampler_free(s);
}
END_TEST

/* ---- limits ------------------------------------------------------------------------------- */

START_TEST(nan_is_numeric)
{
    lora_sampler *s = make("{\"do_sample\": true}");
    float logits[] = {0.0f, 1.0f, NAN, 2.0f};
    int32_t t = -1;
    ck_assert_int_eq(lora_sampler_sample(s, logits, 4, NULL, 0, 0, &t), LORA_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "logits[2]"));
    lora_sampler *g = make(NULL);
    ck_assert_int_eq(lora_sampler_sample(g, logits, 4, NULL, 0, 0, &t), LORA_ERR_NUMERIC);
    lora_sampler_free(s);
    lora_sampler_free(g);
}
END_TEST

START_TEST(all_neg_inf_is_numeric)
{
    lora_sampler *s = make("{\"do_sample\": true}");
    float logits[] = {-INFINITY, -INFINITY, -INFINITY};
    int32_t t = -1;
    ck_assert_int_eq(lora_sampler_sample(s, logits, 3, NULL, 0, 0, &t), LORA_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "-inf"));
    lora_sampler_free(s);
}
END_TEST

START_TEST(history_token_out_of_range)
{
    lora_sampler *s = make(NULL);
    float logits[5] = {0};
    int32_t high[] = {1, 5}, low[] = {-1};
    int32_t t = -1;
    ck_assert_int_eq(lora_sampler_sample(s, logits, 5, high, 2, 1, &t), LORA_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "tokens[1] = 5"));
    ck_assert_int_eq(lora_sampler_sample(s, logits, 5, low, 1, 0, &t), LORA_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "tokens[0] = -1"));
    lora_sampler_free(s);
}
END_TEST

START_TEST(single_token_vocab)
{
    lora_sampler *s = make("{\"do_sample\": true, \"top_k\": 1, \"top_p\": 0.1, \"min_p\": 1}");
    float logits[] = {-3.0f};
    ck_assert_uint_eq(drawn_mask(s, logits, 1, 50), 1u);
    lora_sampler_free(s);
}
END_TEST

/* The workspace grows for a large vocabulary and is reused for smaller ones; the penalty
 * counts left by one call must not leak into the next. */
START_TEST(workspace_grows_and_resets)
{
    lora_sampler *s = make("{\"do_sample\": true, \"temperature\": 0.01, \"top_p\": 0.9, "
                           "\"frequency_penalty\": 0.3}");
    size_t big = 200000;
    float *logits = calloc(big, sizeof *logits);
    ck_assert_ptr_nonnull(logits);
    logits[big - 1] = 10.0f;
    int32_t gen[] = {3, 3};
    ck_assert_int_eq(draw(s, logits, big, gen, 2, 0), (int32_t)(big - 1));
    float small[] = {1.0f, 0.5f};
    int32_t once[] = {0};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(draw(s, small, 2, once, 1, 0), 0);
    free(logits);
    lora_sampler_free(s);
}
END_TEST

/* ---- misuse ------------------------------------------------------------------------------- */

static const struct {
    const char *json;
    const char *names;
} BAD[] = {
    {"{\"top_q\": 0.9}", "'top_q'"},
    {"{\"top_p\": 1.5}", "'top_p'"},
    {"{\"top_p\": 0}", "'top_p'"},
    {"{\"top_p\": \"high\"}", "'top_p'"},
    {"{\"temperature\": -1}", "'temperature'"},
    {"{\"temperature\": 1e39}", "'temperature'"},
    {"{\"temperature\": true}", "'temperature'"},
    {"{\"seed\": -3}", "'seed'"},
    {"{\"seed\": 1.5}", "'seed'"},
    {"{\"eos_token_id\": [1, \"2\"]}", "'eos_token_id'"},
    {"{\"eos_token_id\": -1}", "'eos_token_id'"},
    {"{\"eos_token_id\": 2147483648}", "'eos_token_id'"},
    {"{\"eos_token_id\": \"</s>\"}", "'eos_token_id'"},
    {"{\"top_k\": -1}", "'top_k'"},
    {"{\"top_k\": 2.5}", "'top_k'"},
    {"{\"min_p\": 1.01}", "'min_p'"},
    {"{\"min_p\": -0.1}", "'min_p'"},
    {"{\"repetition_penalty\": 0}", "'repetition_penalty'"},
    {"{\"repetition_penalty\": -1.2}", "'repetition_penalty'"},
    {"{\"repetition_penalty\": 1e-50}", "'repetition_penalty'"},
    {"{\"presence_penalty\": \"a\"}", "'presence_penalty'"},
    {"{\"frequency_penalty\": 1e300}", "'frequency_penalty'"},
    {"{\"max_new_tokens\": -1}", "'max_new_tokens'"},
    {"{\"max_new_tokens\": 10.0}", "'max_new_tokens'"},
    {"{\"do_sample\": 1}", "'do_sample'"},
    {"{\"stop_sequences\": [[]]}", "'stop_sequences'"},
    {"{\"stop_sequences\": [1, 2]}", "'stop_sequences'"},
    {"{\"stop_sequences\": [[1, -2]]}", "'stop_sequences'"},
    {"{\"stop_sequences\": 5}", "'stop_sequences'"},
    {"{\"top_k\": 1, \"top_k\": 2}", "duplicate"},
    /* Fails after lists were allocated: the suite's LSan run checks they are released. */
    {"{\"stop_sequences\": [[1, 2]], \"eos_token_id\": [2], \"top_q\": 1}", "'top_q'"},
    {"[1, 2]", "JSON object"},
    {"{\"top_p\": ", "not valid JSON"},
    {"", "not valid JSON"},
};

START_TEST(config_error_names_key)
{
    static int sentinel;
    lora_sampler *s = (lora_sampler *)&sentinel; /* must come back NULL */
    lora_status st = lora_sampler_create(BAD[_i].json, &s);
    ck_assert_msg(st == LORA_ERR_CONFIG, "%s: %s", BAD[_i].json, lora_status_string(st));
    ck_assert_ptr_null(s);
    const char *msg = lora_last_error();
    ck_assert_msg(strncmp(msg, "lora_sampler_create: ", 21) == 0, "%s", msg);
    ck_assert_msg(strstr(msg, BAD[_i].names), "%s: message '%s' lacks %s", BAD[_i].json, msg,
                  BAD[_i].names);
}
END_TEST

START_TEST(null_arguments)
{
    ck_assert_int_eq(lora_sampler_create(NULL, NULL), LORA_ERR_INVALID_ARGUMENT);
    lora_sampler *s = make(NULL);
    float logits[] = {0.0f, 1.0f};
    int32_t tokens[] = {0}, t = -1;
    ck_assert_int_eq(lora_sampler_sample(NULL, logits, 2, NULL, 0, 0, &t),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_sampler_sample(s, NULL, 2, NULL, 0, 0, &t), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_sampler_sample(s, logits, 2, NULL, 0, 0, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_sampler_sample(s, logits, 0, NULL, 0, 0, &t),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_sampler_sample(s, logits, 2, NULL, 1, 0, &t),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_sampler_sample(s, logits, 2, tokens, 1, 2, &t),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "n_prompt"));
    ck_assert_int_eq(lora_sampler_set_temperature(NULL, 1.0f), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_sampler_set_seed(NULL, 1), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(t, -1);
    lora_sampler_free(s);
}
END_TEST

START_TEST(bad_temperature_setter)
{
    lora_sampler *s = make("{\"do_sample\": true, \"temperature\": 0}");
    ck_assert_int_eq(lora_sampler_set_temperature(s, -0.5f), LORA_ERR_CONFIG);
    ck_assert_int_eq(lora_sampler_set_temperature(s, NAN), LORA_ERR_CONFIG);
    ck_assert_int_eq(lora_sampler_set_temperature(s, INFINITY), LORA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_sampler_set_temperature"));
    /* The failed calls left the sampler greedy. */
    float logits[] = {0.0f, 0.2f, 0.1f};
    ck_assert_uint_eq(drawn_mask(s, logits, 3, 100), 0x2u);
    lora_sampler_free(s);
}
END_TEST

START_TEST(free_null_and_error_cleared)
{
    lora_sampler_free(NULL);
    lora_sampler *s = NULL;
    ck_assert_int_eq(lora_sampler_create("{\"top_q\": 1}", &s), LORA_ERR_CONFIG);
    ck_assert_str_ne(lora_last_error(), "");
    s = make("{}");
    ck_assert_str_eq(lora_last_error(), "");
    lora_sampler_free(s);
}
END_TEST

static Suite *sampler_suite(void)
{
    Suite *suite = suite_create("sampler");
    TCase *greedy = tcase_create("greedy");
    tcase_set_tags(greedy, "core");
    tcase_add_test(greedy, greedy_default_is_argmax);
    tcase_add_test(greedy, greedy_first_index_on_ties);
    tcase_add_test(greedy, temperature_zero_is_greedy);
    tcase_add_test(greedy, tiny_temperature_matches_greedy);
    tcase_add_test(greedy, set_temperature_switches_to_greedy);
    suite_add_tcase(suite, greedy);

    TCase *dist = tcase_create("distribution");
    tcase_set_tags(dist, "core");
    tcase_add_test(dist, frequencies_match_softmax);
    tcase_add_test(dist, frequencies_follow_temperature);
    tcase_add_test(dist, inf_logit_wins);
    tcase_add_test(dist, neg_inf_never_drawn);
    tcase_add_test(dist, logits_not_modified);
    suite_add_tcase(suite, dist);

    TCase *warp = tcase_create("warpers");
    tcase_set_tags(warp, "core");
    tcase_add_test(warp, top_k_keeps_k_best);
    tcase_add_test(warp, top_k_keeps_ties);
    tcase_add_test(warp, top_k_matches_reference);
    tcase_add_test(warp, top_p_matches_full_sort);
    tcase_add_test(warp, top_k_at_least_vocab_is_noop);
    tcase_add_test(warp, top_p_cut);
    tcase_add_test(warp, top_p_exact_boundary);
    tcase_add_test(warp, top_p_after_top_k);
    tcase_add_test(warp, min_p_cut);
    tcase_add_test(warp, min_p_exact_boundary);
    tcase_add_test(warp, min_p_after_temperature);
    suite_add_tcase(suite, warp);

    TCase *pen = tcase_create("penalties");
    tcase_set_tags(pen, "core");
    tcase_add_test(pen, repetition_divides_positive);
    tcase_add_test(pen, repetition_multiplies_negative);
    tcase_add_test(pen, repetition_once_per_distinct_token);
    tcase_add_test(pen, repetition_below_one_boosts);
    tcase_add_test(pen, presence_counts_generated_only);
    tcase_add_test(pen, frequency_counts_occurrences);
    tcase_add_test(pen, presence_and_frequency_add);
    suite_add_tcase(suite, pen);

    TCase *det = tcase_create("determinism");
    tcase_set_tags(det, "core");
    tcase_add_test(det, same_seed_same_sequence);
    tcase_add_test(det, set_seed_restarts);
    tcase_add_test(det, rng_deterministic_and_uniform);
    tcase_add_test(det, rng_normal_moments);
    suite_add_tcase(suite, det);

    TCase *stop = tcase_create("config");
    tcase_set_tags(stop, "core");
    tcase_add_test(stop, defaults);
    tcase_add_test(stop, eos_one_or_list);
    tcase_add_test(stop, stop_sequences_match_suffix);
    tcase_add_test(stop, valid_configs_accepted);
    suite_add_tcase(suite, stop);

    TCase *lim = tcase_create("limits");
    tcase_set_tags(lim, "limits");
    tcase_add_test(lim, nan_is_numeric);
    tcase_add_test(lim, all_neg_inf_is_numeric);
    tcase_add_test(lim, history_token_out_of_range);
    tcase_add_test(lim, single_token_vocab);
    tcase_add_test(lim, workspace_grows_and_resets);
    suite_add_tcase(suite, lim);

    TCase *mis = tcase_create("misuse");
    tcase_set_tags(mis, "misuse");
    tcase_add_loop_test(mis, config_error_names_key, 0, (int)(sizeof BAD / sizeof BAD[0]));
    tcase_add_test(mis, null_arguments);
    tcase_add_test(mis, bad_temperature_setter);
    tcase_add_test(mis, free_null_and_error_cleared);
    suite_add_tcase(suite, mis);
    return suite;
}

int main(void) { return tu_run_suite(sampler_suite()); }
