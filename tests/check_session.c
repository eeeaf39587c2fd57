/* Sessions: forward passes, KV cache, padding, log-probabilities, threads and generation. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "util/suite.h"

static const char *const fixtures[] = {"tests/fixtures/tiny-qwen2", "tests/fixtures/tiny-qwen3",
                                       "tests/fixtures/tiny-llama"};

#define T 12
static const int32_t ids12[T] = {5, 17, 42, 3, 99, 7, 250, 11, 64, 128, 1, 33};

static lora_model *model;
static lora_session *sess;
static size_t V;

static void open_fixture(const char *dir, const char *session_opts)
{
    ck_assert_msg(lora_model_load(dir, "{\"threads\": 2}", &model) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_msg(lora_session_create(model, session_opts, &sess) == LORA_OK, "%s",
                  lora_last_error());
    V = lora_model_vocab_size(model);
}

static void close_fixture(void)
{
    lora_session_free(sess);
    lora_model_free(model);
    sess = NULL;
    model = NULL;
}

static void setup_qwen2(void) { open_fixture(fixtures[0], "{\"max_context\": 32}"); }

#define max_rel tu_max_rel_err

static float *full_logits(const int32_t *ids, size_t n)
{
    float *l = malloc(n * V * sizeof *l);
    ck_assert_msg(lora_session_logits(sess, ids, NULL, 1, n, l) == LORA_OK, "%s",
                  lora_last_error());
    return l;
}

static int32_t argmax(const float *x, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

START_TEST(kv_cache_matches_full_forward)
{
    open_fixture(fixtures[_i], NULL);
    float *full = full_logits(ids12, T);
    float *step = malloc(V * sizeof *step);
    /* prefill 5, then one token at a time */
    ck_assert_int_eq(lora_session_append(sess, ids12, 5, step), LORA_OK);
    ck_assert_msg(max_rel(step, full + 4 * V, V) < 1e-5, "prefill row 4");
    for (size_t t = 5; t < T; t++) {
        ck_assert_int_eq(lora_session_append(sess, &ids12[t], 1, step), LORA_OK);
        double e = max_rel(step, full + t * V, V);
        ck_assert_msg(e < 1e-5, "row %zu: rel err %g", t, e);
    }
    ck_assert_uint_eq(lora_session_position(sess), T);
    lora_session_reset(sess);
    ck_assert_uint_eq(lora_session_position(sess), 0);
    ck_assert_int_eq(lora_session_append(sess, ids12, T, step), LORA_OK);
    ck_assert(max_rel(step, full + (T - 1) * V, V) < 1e-5);
    free(full);
    free(step);
    close_fixture();
}
END_TEST

START_TEST(padded_batch_matches_single)
{
    int32_t batch[2 * T];
    memcpy(batch, ids12, sizeof ids12);
    memcpy(batch + T, ids12, sizeof ids12);
    for (int t = 7; t < T; t++)
        batch[T + t] = -1; /* padding may hold anything */
    int32_t lengths[2] = {T, 7};
    float *b = malloc(2 * T * V * sizeof *b);
    ck_assert_msg(lora_session_logits(sess, batch, lengths, 2, T, b) == LORA_OK, "%s",
                  lora_last_error());
    float *one = full_logits(ids12, T);
    ck_assert(max_rel(b, one, T * V) < 1e-6);
    ck_assert(max_rel(b + T * V, one, 7 * V) < 1e-6);
    for (size_t i = (T + 7) * V; i < 2 * T * V; i++)
        ck_assert(b[i] == 0.0f);
    free(b);
    free(one);
}
END_TEST

START_TEST(logprobs_agree_with_logits)
{
    float *l = full_logits(ids12, T);
    float lp[T];
    ck_assert_int_eq(lora_session_logprobs(sess, ids12, NULL, 1, T, lp), LORA_OK);
    ck_assert(lp[0] == 0.0f);
    double total = 0;
    for (size_t t = 1; t < T; t++) {
        const float *row = l + (t - 1) * V;
        double m = row[argmax(row, V)], s = 0;
        for (size_t v = 0; v < V; v++)
            s += exp(row[v] - m);
        double want = row[ids12[t]] - m - log(s);
        ck_assert_msg(fabs(lp[t] - want) < 1e-5, "t=%zu %g vs %g", t, lp[t], want);
        total += want;
    }
    /* the loss with every label counted is the mean negative log-probability */
    float loss;
    size_t counted;
    ck_assert_int_eq(lora_session_loss(sess, ids12, ids12, 1, T, &loss, &counted), LORA_OK);
    ck_assert_uint_eq(counted, T - 1);
    ck_assert(fabs(loss + total / (T - 1)) < 1e-5);
    free(l);
}
END_TEST

START_TEST(loss_ignores_minus_100)
{
    int32_t labels[T];
    for (int t = 0; t < T; t++)
        labels[t] = -100;
    float loss = -1;
    size_t counted = 99;
    ck_assert_int_eq(lora_session_loss(sess, ids12, labels, 1, T, &loss, &counted), LORA_OK);
    ck_assert(loss == 0.0f);
    ck_assert_uint_eq(counted, 0);
    labels[5] = ids12[5];
    float lp[T];
    ck_assert_int_eq(lora_session_loss(sess, ids12, labels, 1, T, &loss, &counted), LORA_OK);
    ck_assert_int_eq(lora_session_logprobs(sess, ids12, NULL, 1, T, lp), LORA_OK);
    ck_assert_uint_eq(counted, 1);
    ck_assert(fabs(loss + lp[5]) < 1e-5);
}
END_TEST

START_TEST(thread_count_does_not_change_results)
{
    lora_session *one;
    ck_assert_int_eq(lora_session_create(model, "{\"threads\": 1}", &one), LORA_OK);
    float *a = full_logits(ids12, T);
    float *b = malloc(T * V * sizeof *b);
    ck_assert_int_eq(lora_session_logits(one, ids12, NULL, 1, T, b), LORA_OK);
    ck_assert(max_rel(a, b, T * V) < 1e-6);
    free(a);
    free(b);
    lora_session_free(one);
}
END_TEST

/* Every matrix product of a 4 x 64 batch runs split across both threads; the results must be
 * bit-identical every time (a BLAS whose buffers are not thread-safe fails this). */
START_TEST(parallel_products_are_deterministic)
{
    enum { B = 4, L = 64 };
    int32_t *ids = malloc(B * L * sizeof *ids);
    for (int i = 0; i < B * L; i++)
        ids[i] = (int32_t)((i * 7919u + 13u) % V);
    float *ref = malloc(B * L * V * sizeof *ref), *again = malloc(B * L * V * sizeof *again);
    ck_assert_int_eq(lora_session_logits(sess, ids, NULL, B, L, ref), LORA_OK);
    for (int rep = 0; rep < 30; rep++) {
        ck_assert_int_eq(lora_session_logits(sess, ids, NULL, B, L, again), LORA_OK);
        ck_assert_msg(memcmp(ref, again, B * L * V * sizeof *ref) == 0, "repetition %d differs", rep);
    }
    free(ids);
    free(ref);
    free(again);
}
END_TEST

typedef struct worker {
    lora_model *m;
    float *out;
    int ok;
} worker;

static void *run_worker(void *arg)
{
    worker *w = arg;
    lora_session *s;
    w->ok = lora_session_create(w->m, "{\"threads\": 2}", &s) == LORA_OK;
    for (int rep = 0; w->ok && rep < 20; rep++)
        w->ok = lora_session_logits(s, ids12, NULL, 1, T, w->out) == LORA_OK;
    lora_session_free(s);
    return NULL;
}

START_TEST(two_sessions_in_two_threads)
{
    float *ref = full_logits(ids12, T);
    worker w[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        w[i] = (worker){model, malloc(T * V * sizeof(float)), 0};
        pthread_create(&th[i], NULL, run_worker, &w[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        ck_assert(w[i].ok);
        ck_assert(max_rel(w[i].out, ref, T * V) < 1e-6);
        free(w[i].out);
    }
    free(ref);
}
END_TEST

START_TEST(session_keeps_model_alive)
{
    lora_model_free(model); /* the session's reference keeps the weights */
    model = NULL;
    float *l = malloc(T * V * sizeof *l);
    ck_assert_int_eq(lora_session_logits(sess, ids12, NULL, 1, T, l), LORA_OK);
    free(l);
}
END_TEST

typedef struct seen {
    int32_t tok[64];
    size_t n;
    size_t stop_after;
} seen;

static int on_token(int32_t tok, void *user)
{
    seen *s = user;
    s->tok[s->n++] = tok;
    return s->stop_after && s->n >= s->stop_after;
}

START_TEST(greedy_generation_follows_argmax)
{
    lora_sampler *smp;
    ck_assert_int_eq(lora_sampler_create("{\"max_new_tokens\": 8}", &smp), LORA_OK);
    int32_t out[16];
    size_t n;
    seen cb = {{0}, 0, 0};
    ck_assert_msg(lora_generate(sess, smp, ids12, 5, out, 16, &n, on_token, &cb) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_uint_eq(n, 8);
    ck_assert_uint_eq(cb.n, 8);
    ck_assert(memcmp(cb.tok, out, 8 * sizeof *out) == 0);
    /* the cache holds the prompt and all generated tokens but the last */
    ck_assert_uint_eq(lora_session_position(sess), 5 + 7);
    int32_t seq[13];
    memcpy(seq, ids12, 5 * sizeof *seq);
    memcpy(seq + 5, out, 8 * sizeof *seq);
    float *l = full_logits(seq, 12);
    for (size_t i = 0; i < 8; i++)
        ck_assert_int_eq(out[i], argmax(l + (4 + i) * V, V));
    free(l);
    lora_sampler_free(smp);
}
END_TEST

START_TEST(generation_stops)
{
    lora_sampler *smp;
    int32_t out[16], first[16];
    size_t n, n0;
    ck_assert_int_eq(lora_sampler_create("{\"max_new_tokens\": 6}", &smp), LORA_OK);
    ck_assert_int_eq(lora_generate(sess, smp, ids12, 5, first, 16, &n0, NULL, NULL), LORA_OK);
    lora_sampler_free(smp);
    ck_assert_uint_eq(n0, 6);

    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"max_new_tokens\": 6, \"eos_token_id\": [%d]}", first[2]);
    ck_assert_int_eq(lora_sampler_create(cfg, &smp), LORA_OK);
    lora_session_reset(sess);
    ck_assert_int_eq(lora_generate(sess, smp, ids12, 5, out, 16, &n, NULL, NULL), LORA_OK);
    size_t want = 0; /* greedy tokens may repeat: eos ends at its first occurrence */
    while (first[want] != first[2])
        want++;
    ck_assert_uint_eq(n, want + 1); /* eos is emitted, then generation ends */
    lora_sampler_free(smp);

    snprintf(cfg, sizeof cfg, "{\"max_new_tokens\": 6, \"stop_sequences\": [[%d, %d]]}", first[1],
             first[2]);
    ck_assert_int_eq(lora_sampler_create(cfg, &smp), LORA_OK);
    lora_session_reset(sess);
    ck_assert_int_eq(lora_generate(sess, smp, ids12, 5, out, 16, &n, NULL, NULL), LORA_OK);
    want = 1;
    while (first[want - 1] != first[1] || first[want] != first[2])
        want++;
    ck_assert_uint_eq(n, want + 1);

    lora_session_reset(sess); /* capacity */
    ck_assert_int_eq(lora_generate(sess, smp, ids12, 5, out, 2, &n, NULL, NULL), LORA_OK);
    ck_assert_uint_eq(n, 2);

    lora_session_reset(sess); /* callback */
    seen cb = {{0}, 0, 1};
    ck_assert_int_eq(lora_generate(sess, smp, ids12, 5, out, 16, &n, on_token, &cb), LORA_OK);
    ck_assert_uint_eq(n, 1);
    lora_sampler_free(smp);
}
END_TEST

START_TEST(context_fills)
{
    lora_sampler *smp;
    ck_assert_int_eq(lora_sampler_create("{\"max_new_tokens\": 100}", &smp), LORA_OK);
    int32_t out[100];
    size_t n;
    ck_assert_int_eq(lora_generate(sess, smp, ids12, T, out, 100, &n, NULL, NULL), LORA_ERR_RANGE);
    ck_assert_uint_eq(n, 32 - T + 1); /* max_context 32: the last token is never appended */
    ck_assert(strstr(lora_last_error(), "max_context = 32"));
    lora_sampler_free(smp);
}
END_TEST

START_TEST(sampled_generation_reproduces)
{
    lora_sampler *smp;
    ck_assert_int_eq(lora_sampler_create("{\"do_sample\": true, \"temperature\": 1.5, "
                                         "\"max_new_tokens\": 12, \"seed\": 42}", &smp), LORA_OK);
    int32_t a[12], b[12];
    size_t na, nb;
    ck_assert_int_eq(lora_generate(sess, smp, ids12, 3, a, 12, &na, NULL, NULL), LORA_OK);
    lora_session_reset(sess);
    ck_assert_int_eq(lora_sampler_set_seed(smp, 42), LORA_OK);
    ck_assert_int_eq(lora_generate(sess, smp, ids12, 3, b, 12, &nb, NULL, NULL), LORA_OK);
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(a, b, na * sizeof *a) == 0);
    lora_sampler_free(smp);
}
END_TEST

START_TEST(bad_ids_and_sizes)
{
    float *l = malloc(2 * T * V * sizeof *l);
    int32_t bad[T];
    memcpy(bad, ids12, sizeof bad);
    bad[3] = (int32_t)V;
    ck_assert_int_eq(lora_session_logits(sess, bad, NULL, 1, T, l), LORA_ERR_RANGE);
    ck_assert_msg(strstr(lora_last_error(), "ids[0][3] = 384"), "%s", lora_last_error());
    bad[3] = -5;
    ck_assert_int_eq(lora_session_logprobs(sess, bad, NULL, 1, T, l), LORA_ERR_RANGE);
    int32_t lengths[1] = {0};
    ck_assert_int_eq(lora_session_logits(sess, ids12, lengths, 1, T, l), LORA_ERR_RANGE);
    ck_assert(strstr(lora_last_error(), "lengths[0] = 0"));
    ck_assert_int_eq(lora_session_logits(sess, ids12, NULL, 0, T, l), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_session_logits(sess, ids12, NULL, 1, T, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_session_logits(NULL, ids12, NULL, 1, T, l), LORA_ERR_INVALID_ARGUMENT);
    int32_t *longer = calloc(300, sizeof *longer);
    ck_assert_int_eq(lora_session_logits(sess, longer, NULL, 1, 300, l), LORA_ERR_RANGE);
    ck_assert(strstr(lora_last_error(), "max_position_embeddings"));
    free(longer);
    int32_t labels[T];
    memcpy(labels, ids12, sizeof labels);
    labels[4] = 1000;
    float loss;
    ck_assert_int_eq(lora_session_loss(sess, ids12, labels, 1, T, &loss, NULL), LORA_ERR_RANGE);
    ck_assert(strstr(lora_last_error(), "labels[0][4] = 1000"));
    free(l);
}
END_TEST

START_TEST(append_refuses_overflow_and_bad_ids)
{
    int32_t many[40] = {0};
    ck_assert_int_eq(lora_session_append(sess, many, 20, NULL), LORA_OK);
    ck_assert_int_eq(lora_session_append(sess, many, 13, NULL), LORA_ERR_RANGE);
    ck_assert_uint_eq(lora_session_position(sess), 20); /* nothing appended */
    int32_t bad = (int32_t)V;
    ck_assert_int_eq(lora_session_append(sess, &bad, 1, NULL), LORA_ERR_RANGE);
    ck_assert_uint_eq(lora_session_position(sess), 20);
    ck_assert_int_eq(lora_session_append(sess, many, 0, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_session_append(sess, many, 12, NULL), LORA_OK);
    ck_assert_uint_eq(lora_session_position(sess), 32);
}
END_TEST

START_TEST(session_options_checked)
{
    lora_session *s = (lora_session *)1;
    ck_assert_int_eq(lora_session_create(model, "{\"max_context\": 0}", &s), LORA_ERR_CONFIG);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(lora_session_create(model, "{\"max_context\": 257}", &s), LORA_ERR_CONFIG);
    ck_assert_int_eq(lora_session_create(model, "{\"batch\": 2}", &s), LORA_ERR_CONFIG);
    ck_assert(strstr(lora_last_error(), "'batch'"));
    /* the CPU keeps float32 activations: "bf16" is refused, the others are what it does */
    ck_assert_int_eq(lora_session_create(model, "{\"train_activations\": \"bf16\"}", &s),
                     LORA_ERR_UNSUPPORTED);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(lora_last_error(), "'train_activations'") &&
                  strstr(lora_last_error(), "cpu"), "%s", lora_last_error());
    ck_assert_int_eq(lora_session_create(model, "{\"train_activations\": \"fp16\"}", &s),
                     LORA_ERR_CONFIG);
    ck_assert_int_eq(lora_session_create(model, "{\"train_activations\": 1}", &s),
                     LORA_ERR_CONFIG);
    const char *ok[] = {"{\"train_activations\": \"auto\"}",
                        "{\"train_activations\": \"float32\"}"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(lora_session_create(model, ok[i], &s), LORA_OK);
        lora_session_free(s);
    }
    ck_assert_int_eq(lora_session_create(NULL, NULL, &s), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_session_create(model, NULL, NULL), LORA_ERR_INVALID_ARGUMENT);
    lora_session_free(NULL);
    lora_session_reset(NULL);
    ck_assert_uint_eq(lora_session_position(NULL), 0);
}
END_TEST

START_TEST(generate_arguments_checked)
{
    lora_sampler *smp;
    ck_assert_int_eq(lora_sampler_create(NULL, &smp), LORA_OK);
    int32_t out[4];
    size_t n;
    ck_assert_int_eq(lora_generate(sess, smp, ids12, 0, out, 4, &n, NULL, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_generate(sess, NULL, ids12, 2, out, 4, &n, NULL, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_generate(sess, smp, ids12, 2, NULL, 4, &n, NULL, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    int32_t bad = -1;
    ck_assert_int_eq(lora_generate(sess, smp, &bad, 1, out, 4, &n, NULL, NULL), LORA_ERR_RANGE);
    ck_assert_uint_eq(n, 0);
    lora_sampler_free(smp);
}
END_TEST

static Suite *session_suite(void)
{
    Suite *s = suite_create("session");
    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_set_timeout(core, 60);
    tcase_add_loop_test(core, kv_cache_matches_full_forward, 0, 3);
    suite_add_tcase(s, core);

    TCase *fwd = tcase_create("forward");
    tcase_set_tags(fwd, "core");
    tcase_set_timeout(fwd, 60);
    tcase_add_checked_fixture(fwd, setup_qwen2, close_fixture);
    tcase_add_test(fwd, padded_batch_matches_single);
    tcase_add_test(fwd, logprobs_agree_with_logits);
    tcase_add_test(fwd, loss_ignores_minus_100);
    tcase_add_test(fwd, thread_count_does_not_change_results);
    tcase_add_test(fwd, two_sessions_in_two_threads);
    tcase_add_test(fwd, parallel_products_are_deterministic);
    tcase_add_test(fwd, session_keeps_model_alive);
    tcase_add_test(fwd, greedy_generation_follows_argmax);
    tcase_add_test(fwd, generation_stops);
    tcase_add_test(fwd, sampled_generation_reproduces);
    suite_add_tcase(s, fwd);

    TCase *limits = tcase_create("limits");
    tcase_set_tags(limits, "limits");
    tcase_add_checked_fixture(limits, setup_qwen2, close_fixture);
    tcase_add_test(limits, context_fills);
    tcase_add_test(limits, append_refuses_overflow_and_bad_ids);
    suite_add_tcase(s, limits);

    TCase *misuse = tcase_create("misuse");
    tcase_set_tags(misuse, "misuse");
    tcase_add_checked_fixture(misuse, setup_qwen2, close_fixture);
    tcase_add_test(misuse, bad_ids_and_sizes);
    tcase_add_test(misuse, session_options_checked);
    tcase_add_test(misuse, generate_arguments_checked);
    suite_add_tcase(s, misuse);
    return s;
}

int main(void) { return tu_run_suite(session_suite()); }
