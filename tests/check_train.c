/* Training: overfitting with LoRA and full fine-tuning, accumulation, recomputation, non-finite
 * steps, adapter hot swap across threads. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/adapter.h"
#include "lora.h"
#include "model/model.h"
#include "model/session.h"
#include "train/bucket.h"
#include "train/forward_backward.h"
#include "util/st_build.h"
#include "util/suite.h"

#define QWEN2 "tests/fixtures/tiny-qwen2"
#define T 10

static lora_model *model;
static lora_session *sess;

static void setup(void)
{
    ck_assert_msg(lora_model_load(QWEN2, "{\"threads\": 2}", &model) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_int_eq(lora_session_create(model, NULL, &sess), LORA_OK);
}

static void teardown(void)
{
    lora_session_free(sess);
    lora_model_free(model);
}

static lora_adapter *new_adapter(const char *cfg, uint64_t seed)
{
    lora_adapter *a;
    ck_assert_msg(lora_adapter_create(model, cfg, seed, &a) == LORA_OK, "%s", lora_last_error());
    return a;
}

static void attach(lora_session *s, lora_adapter *a)
{
    float one = 1.0f;
    ck_assert_msg(lora_session_set_adapters(s, &a, &one, a ? 1 : 0) == LORA_OK, "%s",
                  lora_last_error());
}

/* Four short "documents" over the fixture's vocabulary; labels = ids (every token counted). */
static void sample(int i, int32_t *ids)
{
    for (int t = 0; t < T; t++)
        ids[t] = (int32_t)((i * 97 + t * 31 + (t * t) % 7) % 384);
}

static double epoch(lora_optimizer *o)
{
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        int32_t ids[T];
        sample(i, ids);
        float loss;
        ck_assert_msg(lora_train_step(o, ids, ids, 1, T, &loss) == LORA_OK, "%s",
                      lora_last_error());
        sum += loss;
    }
    return sum / 4;
}

/* The overfitting exercise runs on a tiny model of its own whose embeddings are large enough
 * (initializer_range 0.2) for logits to separate: with the fixture's 0.02 and a frozen tied
 * head, even a perfect adapter cannot push the loss 10x down. */
static const char tiny_cfg[] =
    "{\"model_type\": \"qwen2\", \"vocab_size\": 384, \"hidden_size\": 64,"
    " \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"max_position_embeddings\": 64,"
    " \"tie_word_embeddings\": true, \"initializer_range\": 0.2}";

static char *tiny_dir;

static void setup_tiny(void)
{
    tiny_dir = tu_st_mkdtemp();
    ck_assert_int_eq(lora_model_init_checkpoint(tiny_cfg, tiny_dir, 5, NULL), LORA_OK);
    ck_assert_int_eq(lora_model_load(tiny_dir, "{\"threads\": 2}", &model), LORA_OK);
    ck_assert_int_eq(lora_session_create(model, NULL, &sess), LORA_OK);
}

static void teardown_tiny(void)
{
    teardown();
    tu_st_rmtree(tiny_dir);
    free(tiny_dir);
}

static void overfit(const char *opt_cfg)
{
    lora_optimizer *o;
    ck_assert_msg(lora_optimizer_create(sess, opt_cfg, &o) == LORA_OK, "%s", lora_last_error());
    double first = epoch(o), prev = first, last = first;
    for (int e = 1; e < 5; e++) {
        last = epoch(o);
        ck_assert_msg(last < prev, "epoch %d: loss %g did not fall below %g", e, last, prev);
        prev = last;
    }
    ck_assert_msg(last * 10 < first, "loss fell from %g to %g only", first, last);
    lora_optimizer_free(o);
}

START_TEST(lora_overfits)
{
    lora_adapter *a = new_adapter("{\"r\": 8, \"lora_alpha\": 32, \"target_modules\": "
                                  "\"all-linear\"}", 1);
    attach(sess, a);
    overfit("{\"lr\": 0.01, \"weight_decay\": 0}");
    lora_adapter_free(a);
}
END_TEST

START_TEST(full_finetune_overfits)
{
    overfit("{\"train\": \"full\", \"lr\": 0.01, \"weight_decay\": 0}");
}
END_TEST

/* Same data, same seed: the updated adapters must match bit for bit (accumulation of two
 * micro-batches of equal token counts equals one batch of two), and to rounding. */
static float *trained_adapter(const char *opt_cfg, int micro, size_t *n)
{
    lora_adapter *a = new_adapter("{\"r\": 4, \"target_modules\": [\"q_proj\", \"v_proj\"], "
                                  "\"init_lora_weights\": false}", 7);
    attach(sess, a);
    lora_optimizer *o;
    ck_assert_msg(lora_optimizer_create(sess, opt_cfg, &o) == LORA_OK, "%s", lora_last_error());
    int32_t ids[2 * T];
    sample(0, ids);
    sample(1, ids + T);
    for (int step = 0; step < 3; step++) {
        if (micro)
            for (int i = 0; i < 2; i++)
                ck_assert_int_eq(lora_train_step(o, ids + i * T, ids + i * T, 1, T, NULL), LORA_OK);
        else
            ck_assert_int_eq(lora_train_step(o, ids, ids, 2, T, NULL), LORA_OK);
    }
    *n = a->arena_floats;
    float *out = malloc(*n * sizeof *out);
    memcpy(out, a->arena, *n * sizeof *out);
    lora_optimizer_free(o);
    attach(sess, NULL);
    lora_adapter_free(a);
    return out;
}

START_TEST(accumulation_matches_one_batch)
{
    size_t n, n2;
    float *one = trained_adapter("{\"lr\": 0.01}", 0, &n);
    float *two = trained_adapter("{\"lr\": 0.01, \"gradient_accumulation_steps\": 2}", 1, &n2);
    ck_assert_uint_eq(n, n2);
    ck_assert_double_lt(tu_max_rel_err(two, one, n), 1e-5);
    free(one);
    free(two);
}
END_TEST

START_TEST(recompute_is_exact)
{
    size_t n, n2;
    float *plain = trained_adapter("{\"lr\": 0.01}", 0, &n);
    float *re = trained_adapter("{\"lr\": 0.01, \"recompute\": true}", 0, &n2);
    ck_assert_uint_eq(n, n2);
    ck_assert(memcmp(plain, re, n * sizeof *plain) == 0);
    free(plain);
    free(re);
}
END_TEST

/* Gradients of one packed row against the same samples as a padded batch of two rows. */
static void packed_vs_batch(bool full, bool recompute)
{
    enum { L1 = 4, L2 = 6, P = L1 + L2 };
    lora_adapter *a = full ? NULL : new_adapter("{\"r\": 2, \"lora_alpha\": 4, "
                                                "\"init_lora_weights\": false, "
                                                "\"target_modules\": \"all-linear\"}", 5);
    attach(sess, a);
    int32_t all[T], packed[P], plab[P], pos[P], batch[2 * L2], blab[2 * L2];
    sample(2, all);
    for (int t = 0; t < P; t++) {
        packed[t] = all[t];
        plab[t] = t == L1 ? -100 : all[t]; /* the second sample's first token: not predicted */
        pos[t] = t < L1 ? t : t - L1;
    }
    for (int t = 0; t < L2; t++) {
        batch[t] = t < L1 ? all[t] : 0;
        blab[t] = t < L1 ? all[t] : -100;
        batch[L2 + t] = blab[L2 + t] = all[L1 + t];
    }
    size_t n = full ? model->arena_floats : a->arena_floats;
    float *g1 = calloc(n, sizeof *g1), *g2 = calloc(n, sizeof *g2);
    lora_grads gp = {{full ? NULL : g1}, full ? g1 : NULL};
    lora_grads gb = {{full ? NULL : g2}, full ? g2 : NULL};
    double lp, lb, lmix;
    size_t cp, cb;
    ck_assert_int_eq(lora__forward_backward(sess, packed, plab, pos, 1, P, 1.0f, recompute, &gp,
                                            &lp, &cp), LORA_OK);
    ck_assert_int_eq(lora__forward_backward(sess, batch, blab, NULL, 2, L2, 1.0f, recompute, &gb,
                                            &lb, &cb), LORA_OK);
    ck_assert_uint_eq(cp, cb);
    ck_assert_msg(fabs(lp - lb) <= 1e-6 * fabs(lb), "packed %.9g, batch %.9g", lp, lb);
    ck_assert_double_lt(tu_max_rel_err(g1, g2, n), 1e-5);
    /* without position ids the second sample attends to the first: another loss */
    lora_grads none = {{NULL}, NULL};
    ck_assert_int_eq(lora__forward_backward(sess, packed, plab, NULL, 1, P, 1.0f, false, &none,
                                            &lmix, &cp), LORA_OK);
    ck_assert(fabs(lmix - lb) > 1e-4);
    free(g1);
    free(g2);
    lora_adapter_free(a);
}

START_TEST(packed_row_equals_padded_batch)
{
    packed_vs_batch(false, false);
    packed_vs_batch(false, true);
    packed_vs_batch(true, false);
}
END_TEST

/* Device training's row lengths: eight per octave, at most 7 tokens or 12.5% of padding, never
 * past the model's positions. */
START_TEST(sequence_buckets)
{
    const int64_t cases[][3] = {{1, 256, 1},     {8, 256, 8},     {9, 256, 16},
                                {24, 256, 24},   {100, 256, 104}, {250, 256, 256},
                                {256, 256, 256}, {300, 256, 300}, {1000, 4096, 1024},
                                {1025, 4096, 1152}, {4000, 4096, 4096}, {4000, 32768, 4096}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ck_assert_msg(lora__seq_bucket(cases[i][0], cases[i][1]) == cases[i][2],
                      "bucket of %lld (max %lld): %lld, want %lld", (long long)cases[i][0],
                      (long long)cases[i][1],
                      (long long)lora__seq_bucket(cases[i][0], cases[i][1]),
                      (long long)cases[i][2]);
    for (int64_t t = 64; t <= 8192; t++) {
        int64_t b = lora__seq_bucket(t, 1 << 20);
        ck_assert(b >= t && 8 * (b - t) <= t);
    }
}
END_TEST

/* A batch padded to a bucket trains like the batch itself (the padding is never counted and
 * the causal attention keeps it from the real tokens), plain and packed, and the padding is
 * what bucket.h says. */
START_TEST(padded_batch_trains_alike)
{
    lora_adapter *a = new_adapter("{\"r\": 2, \"lora_alpha\": 4, \"init_lora_weights\": false, "
                                  "\"target_modules\": \"all-linear\"}", 6);
    attach(sess, a);
    enum { T2 = 16 };
    int32_t ids[2 * T], labels[2 * T], pos[2 * T];
    sample(3, ids);
    sample(4, ids + T);
    for (int i = 0; i < 2 * T; i++) {
        labels[i] = i % 7 == 0 ? -100 : ids[i];
        pos[i] = i % T < 4 ? i % T : i % T - 4; /* two samples per row */
    }
    for (int packed = 0; packed < 2; packed++) {
        const int32_t *p = packed ? pos : NULL;
        int32_t *ids2, *labels2, *pos2;
        ck_assert_int_eq(lora__pad_batch(ids, labels, p, 2, T, T2, &ids2, &labels2, &pos2),
                         LORA_OK);
        ck_assert(ids2[T2 + T] == 0 && labels2[T2 + T2 - 1] == -100 && ids2[T - 1] == ids[T - 1]);
        if (packed)
            ck_assert(pos2[T2 + T] == pos[2 * T - 1] + 1 && pos2[T2 - 1] == pos[T - 1] + T2 - T);
        else
            ck_assert_ptr_null(pos2);
        size_t n = a->arena_floats;
        float *g1 = calloc(n, sizeof *g1), *g2 = calloc(n, sizeof *g2);
        lora_grads ga = {{g1}, NULL}, gb = {{g2}, NULL};
        double l1, l2;
        size_t c1, c2;
        ck_assert_int_eq(lora__forward_backward(sess, ids, labels, p, 2, T, 1.0f, false, &ga,
                                                &l1, &c1), LORA_OK);
        ck_assert_int_eq(lora__forward_backward(sess, ids2, labels2, pos2, 2, T2, 1.0f, false,
                                                &gb, &l2, &c2), LORA_OK);
        ck_assert_uint_eq(c1, c2);
        ck_assert_msg(fabs(l1 - l2) <= 1e-6 * fabs(l1), "loss %.9g, padded %.9g", l1, l2);
        ck_assert_double_lt(tu_max_rel_err(g2, g1, n), 1e-5);
        free(g1), free(g2), free(ids2), free(labels2), free(pos2);
    }
    attach(sess, NULL);
    lora_adapter_free(a);
}
END_TEST

/* The public packed step: positions are validated, and the step trains like the plain one
 * when the row holds a single sample. */
START_TEST(packed_step_checks_positions)
{
    lora_adapter *a = new_adapter("{\"r\": 2}", 1);
    attach(sess, a);
    lora_optimizer *o;
    ck_assert_int_eq(lora_optimizer_create(sess, "{\"lr\": 0.01}", &o), LORA_OK);
    int32_t ids[T], pos[T];
    sample(0, ids);
    for (int t = 0; t < T; t++)
        pos[t] = t;
    float lp, l;
    ck_assert_int_eq(lora_train_step_packed(o, ids, ids, pos, 1, T, &lp), LORA_OK);
    pos[3] = 7;
    ck_assert_int_eq(lora_train_step_packed(o, ids, ids, pos, 1, T, &l), LORA_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "position_ids[0][3]"));
    pos[3] = 3;
    pos[0] = 1;
    ck_assert_int_eq(lora_train_step_packed(o, ids, ids, pos, 1, T, &l), LORA_ERR_RANGE);
    ck_assert_int_eq(lora_train_step_packed(NULL, ids, ids, pos, 1, T, &l),
                     LORA_ERR_INVALID_ARGUMENT);
    lora_optimizer_free(o);
    /* a fresh run of plain steps from the same start gives the same first loss */
    lora_adapter *b = new_adapter("{\"r\": 2}", 1);
    attach(sess, b);
    ck_assert_int_eq(lora_optimizer_create(sess, "{\"lr\": 0.01}", &o), LORA_OK);
    ck_assert_int_eq(lora_train_step(o, ids, ids, 1, T, &l), LORA_OK);
    ck_assert(l == lp);
    lora_optimizer_free(o);
    lora_adapter_free(a);
    lora_adapter_free(b);
}
END_TEST

/* With a fixed mask stream the training loss is a deterministic function of the adapter:
 * the analytic gradient under dropout matches central differences. */
START_TEST(dropout_gradient_matches_differences)
{
    lora_adapter *a = new_adapter("{\"r\": 2, \"lora_alpha\": 4, \"lora_dropout\": 0.3, "
                                  "\"init_lora_weights\": false, \"target_modules\": "
                                  "[\"q_proj\", \"down_proj\"]}", 4);
    attach(sess, a);
    int32_t ids[T];
    sample(1, ids);
    float *grad = calloc(a->arena_floats, sizeof *grad);
    lora_grads g = {{grad}, NULL}, none = {{NULL}, NULL};
    double loss, plus, minus;
    size_t counted;
    sess->dropout_on = true;
    sess->dropout_seed = 77;
    ck_assert_int_eq(lora__forward_backward(sess, ids, ids, NULL, 1, T, 1.0f, false, &g, &loss, &counted),
                     LORA_OK);
    /* dropout really acts: the same adapter without it gives another loss */
    sess->dropout_on = false;
    double plain;
    ck_assert_int_eq(lora__forward_backward(sess, ids, ids, NULL, 1, T, 1.0f, false, &none, &plain,
                                            &counted), LORA_OK);
    ck_assert(fabs(plain - loss) > 1e-6);
    sess->dropout_on = true;
    const size_t probes[3] = {0, 37, a->arena_floats - 1}; /* an A, and the last B */
    for (int k = 0; k < 3; k++) {
        float *w = a->arena + probes[k], saved = *w, eps = 1e-2f;
        *w = saved + eps;
        ck_assert_int_eq(lora__forward_backward(sess, ids, ids, NULL, 1, T, 1.0f, false, &none, &plus,
                                                &counted), LORA_OK);
        *w = saved - eps;
        ck_assert_int_eq(lora__forward_backward(sess, ids, ids, NULL, 1, T, 1.0f, false, &none, &minus,
                                                &counted), LORA_OK);
        *w = saved;
        double fd = (plus - minus) / (2 * eps);
        ck_assert_msg(fabs(fd - grad[probes[k]]) <= 2e-2 * fabs(fd) + 1e-4,
                      "element %zu: analytic %g, differences %g", probes[k], grad[probes[k]], fd);
    }
    sess->dropout_on = false;
    free(grad);
    lora_adapter_free(a);
}
END_TEST

/* Dropout is a training matter: inference with a dropout adapter is deterministic. */
START_TEST(dropout_off_at_inference)
{
    lora_adapter *a = new_adapter("{\"r\": 4, \"lora_dropout\": 0.5, \"init_lora_weights\": "
                                  "false}", 2);
    attach(sess, a);
    int32_t ids[T];
    sample(2, ids);
    float *x = malloc(T * 384 * sizeof *x), *y = malloc(T * 384 * sizeof *y);
    lora_optimizer *o;
    ck_assert_int_eq(lora_optimizer_create(sess, "{\"lr\": 1e-9, \"seed\": 5}", &o), LORA_OK);
    ck_assert_int_eq(lora_session_logits(sess, ids, NULL, 1, T, x), LORA_OK);
    float loss;
    ck_assert_int_eq(lora_train_step(o, ids, ids, 1, T, &loss), LORA_OK);
    float eval;
    ck_assert_int_eq(lora_session_loss(sess, ids, ids, 1, T, &eval, NULL), LORA_OK);
    ck_assert(fabsf(eval - loss) > 1e-5); /* the training step saw masked inputs */
    ck_assert_int_eq(lora_session_logits(sess, ids, NULL, 1, T, y), LORA_OK);
    ck_assert_double_lt(tu_max_rel_err(y, x, T * 384), 1e-6); /* lr 1e-9: no visible update */
    free(x);
    free(y);
    lora_optimizer_free(o);
    lora_adapter_free(a);
}
END_TEST

/* N steps equal N/2 steps, a checkpoint, fresh handles that load it, and N/2 more. */
static void run_steps(lora_optimizer *o, int from, int to)
{
    for (int step = from; step < to; step++) {
        int32_t ids[2 * T];
        sample(step % 4, ids);
        sample((step + 1) % 4, ids + T);
        for (int micro = 0; micro < 2; micro++)
            ck_assert_msg(lora_train_step(o, ids + micro * T, ids + micro * T, 1, T, NULL) ==
                          LORA_OK, "%s", lora_last_error());
    }
}

static const char resume_adapter[] = "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": "
                                     "\"all-linear\", \"lora_dropout\": 0.1}";
static const char resume_opt[] = "{\"lr\": 0.01, \"lr_scheduler_type\": \"cosine\", "
                                 "\"warmup_steps\": 2, \"num_training_steps\": 8, "
                                 "\"max_grad_norm\": 1.0, \"loraplus_lr_ratio\": 4, "
                                 "\"gradient_accumulation_steps\": 2}";

START_TEST(resume_is_bit_exact)
{
    char *dir = tu_st_mkdtemp();
    char ck[1100];
    snprintf(ck, sizeof ck, "%s/ckpt", dir);
    /* straight through */
    lora_adapter *a = new_adapter(resume_adapter, 9);
    attach(sess, a);
    lora_optimizer *o;
    ck_assert_int_eq(lora_optimizer_create(sess, resume_opt, &o), LORA_OK);
    run_steps(o, 0, 8);
    float *straight = malloc(a->arena_floats * sizeof *straight);
    memcpy(straight, a->arena, a->arena_floats * sizeof *straight);
    lora_optimizer_free(o);
    lora_adapter_free(a);

    /* half, checkpoint (twice: the second replaces the first), then fresh handles */
    a = new_adapter(resume_adapter, 9);
    attach(sess, a);
    ck_assert_int_eq(lora_optimizer_create(sess, resume_opt, &o), LORA_OK);
    run_steps(o, 0, 3);
    ck_assert_int_eq(lora_optimizer_save_checkpoint(o, ck, 3), LORA_OK);
    run_steps(o, 3, 4);
    ck_assert_msg(lora_optimizer_save_checkpoint(o, ck, 4) == LORA_OK, "%s", lora_last_error());
    lora_optimizer_free(o);
    /* mid-accumulation there is nothing consistent to save */
    ck_assert_int_eq(lora_optimizer_create(sess, resume_opt, &o), LORA_OK);
    int32_t ids[T];
    sample(0, ids);
    ck_assert_int_eq(lora_train_step(o, ids, ids, 1, T, NULL), LORA_OK);
    ck_assert_int_eq(lora_optimizer_save_checkpoint(o, dir, 0), LORA_ERR_STATE);
    ck_assert(strstr(lora_last_error(), "update boundary"));
    lora_optimizer_free(o);
    lora_adapter_free(a);

    lora_session *s2;
    ck_assert_int_eq(lora_session_create(model, NULL, &s2), LORA_OK);
    lora_adapter *b = new_adapter(resume_adapter, 12345); /* other init: the load overwrites it */
    attach(s2, b);
    ck_assert_int_eq(lora_optimizer_create(s2, resume_opt, &o), LORA_OK);
    uint64_t pos = 0;
    ck_assert_msg(lora_optimizer_load_checkpoint(o, ck, &pos) == LORA_OK, "%s", lora_last_error());
    ck_assert_uint_eq(pos, 4);
    ck_assert_msg(strstr(lora_optimizer_stats_json(o), "\"step\":4"), "%s",
                  lora_optimizer_stats_json(o));
    run_steps(o, 4, 8);
    ck_assert(memcmp(straight, b->arena, b->arena_floats * sizeof *straight) == 0);

    /* a checkpoint of another shape or configuration is refused, nothing changed */
    memcpy(straight, b->arena, b->arena_floats * sizeof *straight);
    lora_optimizer *other;
    ck_assert_int_eq(lora_optimizer_create(s2, "{\"lr\": 0.01}", &other), LORA_OK);
    ck_assert_int_eq(lora_optimizer_load_checkpoint(other, ck, NULL), LORA_ERR_CONFIG);
    ck_assert(memcmp(straight, b->arena, b->arena_floats * sizeof *straight) == 0);
    lora_optimizer_free(other);
    ck_assert_int_eq(lora_optimizer_load_checkpoint(o, "/nonexistent", NULL), LORA_ERR_IO);
    free(straight);
    lora_optimizer_free(o);
    lora_adapter_free(b);
    lora_session_free(s2);
    tu_st_rmtree(dir);
    free(dir);
}
END_TEST

/* A NaN in the embedding row of a token in the batch makes loss and gradients NaN: the step is
 * skipped and neither the adapter nor the optimizer moves. */
START_TEST(nan_step_is_skipped)
{
    lora_adapter *a = new_adapter("{\"r\": 4, \"init_lora_weights\": false}", 3);
    attach(sess, a);
    lora_optimizer *o;
    ck_assert_int_eq(lora_optimizer_create(sess, "{\"lr\": 0.01, \"max_consecutive_skips\": 2}",
                                           &o), LORA_OK);
    int32_t ids[T];
    sample(2, ids);
    ck_assert_int_eq(lora_train_step(o, ids, ids, 1, T, NULL), LORA_OK);
    float *before = malloc(a->arena_floats * sizeof *before);
    memcpy(before, a->arena, a->arena_floats * sizeof *before);
    float saved = model->embed[(size_t)ids[3] * 64];
    model->embed[(size_t)ids[3] * 64] = NAN;
    float loss;
    ck_assert_int_eq(lora_train_step(o, ids, ids, 1, T, &loss), LORA_OK);
    ck_assert(isnan(loss));
    ck_assert(memcmp(before, a->arena, a->arena_floats * sizeof *before) == 0);
    const char *stats = lora_optimizer_stats_json(o);
    ck_assert_msg(strstr(stats, "\"step\":1") && strstr(stats, "\"skipped\":true") &&
                  strstr(stats, "\"skips\":1"), "%s", stats);
    /* a second skip in a row reaches max_consecutive_skips */
    ck_assert_int_eq(lora_train_step(o, ids, ids, 1, T, NULL), LORA_ERR_NUMERIC);
    ck_assert(memcmp(before, a->arena, a->arena_floats * sizeof *before) == 0);
    model->embed[(size_t)ids[3] * 64] = saved;
    ck_assert_int_eq(lora_train_step(o, ids, ids, 1, T, NULL), LORA_OK);
    ck_assert(strstr(lora_optimizer_stats_json(o), "\"step\":2"));
    ck_assert(memcmp(before, a->arena, a->arena_floats * sizeof *before) != 0);
    free(before);
    lora_optimizer_free(o);
    lora_adapter_free(a);
}
END_TEST

START_TEST(optimizer_misuse)
{
    lora_optimizer *o = (lora_optimizer *)1;
    ck_assert_int_eq(lora_optimizer_create(sess, NULL, &o), LORA_ERR_STATE);
    ck_assert_ptr_null(o);
    ck_assert(strstr(lora_last_error(), "no adapter is attached"));
    ck_assert_int_eq(lora_optimizer_create(sess, "{\"train\": \"some\"}", &o), LORA_ERR_CONFIG);
    ck_assert(strstr(lora_last_error(), "'train'"));
    ck_assert_int_eq(lora_optimizer_create(sess, "{\"train\": \"full\", \"lr\": -1}", &o),
                     LORA_ERR_CONFIG);
    ck_assert(strstr(lora_last_error(), "'lr'"));
    ck_assert_int_eq(lora_optimizer_create(sess, "{\"train\": \"full\", \"gradient_accumulation_steps\": 0}", &o),
                     LORA_ERR_CONFIG);
    lora_adapter *a = new_adapter("{\"r\": 2, \"lora_dropout\": 0.1}", 1);
    attach(sess, a);
    ck_assert_int_eq(lora_optimizer_create(sess, "{\"seed\": -1}", &o), LORA_ERR_CONFIG);
    ck_assert(strstr(lora_last_error(), "'seed'"));
    lora_adapter *b = new_adapter("{\"r\": 2}", 1);
    attach(sess, b);
    ck_assert_int_eq(lora_optimizer_create(sess, NULL, &o), LORA_OK);
    attach(sess, a); /* swapped under the optimizer */
    int32_t ids[T];
    sample(0, ids);
    ck_assert_int_eq(lora_train_step(o, ids, ids, 1, T, NULL), LORA_ERR_STATE);
    attach(sess, b);
    ids[2] = 384;
    ck_assert_int_eq(lora_train_step(o, ids, ids, 1, T, NULL), LORA_ERR_RANGE);
    ids[2] = 1;
    int32_t labels[T];
    memcpy(labels, ids, sizeof labels);
    labels[4] = -7;
    ck_assert_int_eq(lora_train_step(o, ids, labels, 1, T, NULL), LORA_ERR_RANGE);
    ck_assert(strstr(lora_last_error(), "labels[0][4] = -7"));
    ck_assert_int_eq(lora_optimizer_set_lr(o, -1.0), LORA_ERR_CONFIG);
    ck_assert_int_eq(lora_optimizer_set_lr(o, 0.5), LORA_OK);
    lora_optimizer_free(o);
    lora_optimizer_free(NULL);
    ck_assert_ptr_null(lora_optimizer_stats_json(NULL));
    lora_adapter_free(a);
    lora_adapter_free(b);
}
END_TEST

/* The optimizer keeps its session alive, and the session its adapters. */
START_TEST(handles_freed_in_any_order)
{
    lora_adapter *a = new_adapter("{\"r\": 2}", 1);
    attach(sess, a);
    lora_optimizer *o;
    ck_assert_int_eq(lora_optimizer_create(sess, NULL, &o), LORA_OK);
    lora_adapter_free(a);
    lora_session_free(sess);
    sess = NULL;
    int32_t ids[T];
    sample(1, ids);
    ck_assert_int_eq(lora_train_step(o, ids, ids, 1, T, NULL), LORA_OK);
    lora_optimizer_free(o);
}
END_TEST

typedef struct server {
    lora_adapter *adapter;
    int32_t out[8];
    int ok;
} server;

static void serve(server *sv)
{
    lora_session *s;
    lora_sampler *smp;
    size_t n;
    int32_t prompt[4] = {5, 6, 7, 8};
    sv->ok = lora_session_create(model, NULL, &s) == LORA_OK &&
             lora_sampler_create("{\"max_new_tokens\": 8}", &smp) == LORA_OK;
    float one = 1.0f;
    for (int rep = 0; sv->ok && rep < 10; rep++) {
        lora_session_reset(s);
        sv->ok = lora_session_set_adapters(s, &sv->adapter, &one, 1) == LORA_OK &&
                 lora_generate(s, smp, prompt, 4, sv->out, 8, &n, NULL, NULL) == LORA_OK && n == 8;
    }
    lora_sampler_free(smp);
    lora_session_free(s);
}

static void *serve_thread(void *arg)
{
    serve(arg);
    return NULL;
}

START_TEST(two_adapters_two_threads)
{
    server sv[2], ref[2];
    for (int i = 0; i < 2; i++) {
        lora_adapter *a = new_adapter("{\"r\": 4, \"init_lora_weights\": false, "
                                      "\"lora_alpha\": 64, \"target_modules\": \"all-linear\"}",
                                      (uint64_t)i + 10);
        sv[i] = (server){a, {0}, 0};
        ref[i] = (server){a, {0}, 0};
        serve(&ref[i]);
        ck_assert(ref[i].ok);
    }
    ck_assert_msg(memcmp(ref[0].out, ref[1].out, sizeof ref[0].out) != 0,
                  "the two adapters should steer generation differently");
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, serve_thread, &sv[i]);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        ck_assert(sv[i].ok);
        ck_assert(memcmp(sv[i].out, ref[i].out, sizeof ref[i].out) == 0);
        lora_adapter_free(sv[i].adapter);
    }
}
END_TEST

/* Two adapters at once add their deltas with their scales; scale 0 is the base model. */
START_TEST(adapters_sum_with_scales)
{
    lora_adapter *a = new_adapter("{\"r\": 4, \"init_lora_weights\": false}", 1);
    lora_adapter *b = new_adapter("{\"r\": 2, \"init_lora_weights\": false, "
                                  "\"target_modules\": [\"q_proj\", \"o_proj\"]}", 2);
    int32_t ids[T];
    sample(3, ids);
    size_t V = 384, n = T * V;
    float *base = malloc(n * 4), *la = malloc(n * 4), *lb = malloc(n * 4), *lab = malloc(n * 4);
    ck_assert_int_eq(lora_session_logits(sess, ids, NULL, 1, T, base), LORA_OK);
    float s1 = 0.5f, s2 = 2.0f;
    ck_assert_int_eq(lora_session_set_adapters(sess, &a, &s1, 1), LORA_OK);
    ck_assert_int_eq(lora_session_logits(sess, ids, NULL, 1, T, la), LORA_OK);
    ck_assert_int_eq(lora_session_set_adapters(sess, &b, &s2, 1), LORA_OK);
    ck_assert_int_eq(lora_session_logits(sess, ids, NULL, 1, T, lb), LORA_OK);
    lora_adapter *both[2] = {a, b};
    float scales[2] = {s1, s2};
    ck_assert_int_eq(lora_session_set_adapters(sess, both, scales, 2), LORA_OK);
    ck_assert_int_eq(lora_session_logits(sess, ids, NULL, 1, T, lab), LORA_OK);
    ck_assert(tu_max_rel_err(la, base, n) > 1e-3 && tu_max_rel_err(lb, base, n) > 1e-3);
    ck_assert(tu_max_rel_err(lab, la, n) > 1e-3);
    float zero = 0.0f;
    ck_assert_int_eq(lora_session_set_adapters(sess, &a, &zero, 1), LORA_OK);
    ck_assert_int_eq(lora_session_logits(sess, ids, NULL, 1, T, la), LORA_OK);
    ck_assert(memcmp(la, base, n * 4) == 0);
    ck_assert_int_eq(lora_session_set_adapters(sess, NULL, NULL, 0), LORA_OK);
    ck_assert_int_eq(lora_session_logits(sess, ids, NULL, 1, T, la), LORA_OK);
    ck_assert(memcmp(la, base, n * 4) == 0);
    float nan = NAN;
    ck_assert_int_eq(lora_session_set_adapters(sess, &a, &nan, 1), LORA_ERR_INVALID_ARGUMENT);
    free(base);
    free(la);
    free(lb);
    free(lab);
    lora_adapter_free(a);
    lora_adapter_free(b);
}
END_TEST

static Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_set_timeout(core, 120);
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, accumulation_matches_one_batch);
    tcase_add_test(core, recompute_is_exact);
    tcase_add_test(core, packed_row_equals_padded_batch);
    tcase_add_test(core, packed_step_checks_positions);
    tcase_add_test(core, sequence_buckets);
    tcase_add_test(core, padded_batch_trains_alike);
    tcase_add_test(core, adapters_sum_with_scales);
    tcase_add_test(core, two_adapters_two_threads);
    tcase_add_test(core, handles_freed_in_any_order);
    tcase_add_test(core, resume_is_bit_exact);
    tcase_add_test(core, dropout_gradient_matches_differences);
    tcase_add_test(core, dropout_off_at_inference);
    suite_add_tcase(s, core);

    TCase *fit = tcase_create("overfit");
    tcase_set_tags(fit, "core");
    tcase_set_timeout(fit, 120);
    tcase_add_checked_fixture(fit, setup_tiny, teardown_tiny);
    tcase_add_test(fit, lora_overfits);
    tcase_add_test(fit, full_finetune_overfits);
    suite_add_tcase(s, fit);

    TCase *limits = tcase_create("limits");
    tcase_set_tags(limits, "limits");
    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_add_test(limits, nan_step_is_skipped);
    suite_add_tcase(s, limits);

    TCase *misuse = tcase_create("misuse");
    tcase_set_tags(misuse, "misuse");
    tcase_add_checked_fixture(misuse, setup, teardown);
    tcase_add_test(misuse, optimizer_misuse);
    suite_add_tcase(s, misuse);
    return s;
}

int main(void) { return tu_run_suite(train_suite()); }
