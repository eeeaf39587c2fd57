/* Merging an adapter into the weights, unmerging bit for bit, exporting a merged model. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "model/model.h"
#include "util/st_build.h"
#include "util/suite.h"

#define QWEN3 "tests/fixtures/tiny-qwen3"
#define T 8

static const int32_t probe[T] = {3, 14, 15, 92, 65, 35, 89, 79};
static lora_model *model;
static lora_adapter *adapter;
static lora_session *sess;
static size_t V;
static char *tmp;

static void setup(void)
{
    ck_assert_int_eq(lora_model_load(QWEN3, NULL, &model), LORA_OK);
    ck_assert_msg(lora_adapter_load(model, QWEN3 "/adapter", &adapter) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_int_eq(lora_session_create(model, NULL, &sess), LORA_OK);
    V = lora_model_vocab_size(model);
    tmp = tu_st_mkdtemp();
}

static void teardown(void)
{
    lora_session_free(sess);
    lora_adapter_free(adapter);
    lora_model_free(model);
    tu_st_rmtree(tmp);
    free(tmp);
}

static float *logits_with(lora_adapter *a, float scale)
{
    float *l = malloc(T * V * sizeof *l);
    ck_assert_int_eq(lora_session_set_adapters(sess, &a, &scale, a ? 1 : 0), LORA_OK);
    ck_assert_int_eq(lora_session_logits(sess, probe, NULL, 1, T, l), LORA_OK);
    return l;
}

START_TEST(merge_matches_attached_adapter)
{
    const float scale = 0.5f;
    float *attached = logits_with(adapter, scale);
    float change = -1;
    ck_assert_int_eq(lora_model_merge(model, adapter, scale, probe, T, &change), LORA_OK);
    float *merged = logits_with(NULL, 0);
    double max_abs = 0;
    for (size_t i = 0; i < T * V; i++)
        max_abs = fmax(max_abs, fabs(merged[i] - attached[i]));
    ck_assert_msg(change >= 0 && fabs(change - max_abs) < 1e-6, "reported %g, measured %g", change,
                  max_abs);
    ck_assert_double_lt(tu_max_rel_err(merged, attached, T * V), 1e-5);
    free(attached);
    free(merged);
}
END_TEST

START_TEST(unmerge_restores_bit_for_bit)
{
    float *before = malloc(model->arena_floats * sizeof *before);
    memcpy(before, model->arena, model->arena_floats * sizeof *before);
    float *base = logits_with(NULL, 0);
    ck_assert_int_eq(lora_model_merge(model, adapter, 1.0f, NULL, 0, NULL), LORA_OK);
    ck_assert(memcmp(before, model->arena, model->arena_floats * sizeof *before) != 0);
    ck_assert_int_eq(lora_model_unmerge(model), LORA_OK);
    ck_assert(memcmp(before, model->arena, model->arena_floats * sizeof *before) == 0);
    float *again = logits_with(NULL, 0);
    ck_assert(memcmp(base, again, T * V * sizeof *base) == 0);
    free(before);
    free(base);
    free(again);
}
END_TEST

START_TEST(merged_model_exports_and_reloads)
{
    ck_assert_int_eq(lora_model_merge(model, adapter, 1.0f, NULL, 0, NULL), LORA_OK);
    float *merged = logits_with(NULL, 0);
    char dir[1100], bdir[1100];
    snprintf(dir, sizeof dir, "%s/merged", tmp);
    snprintf(bdir, sizeof bdir, "%s/merged-bf16", tmp);
    ck_assert_msg(lora_model_save(model, dir, NULL) == LORA_OK, "%s", lora_last_error());
    ck_assert_int_eq(lora_model_save(model, bdir, "bf16"), LORA_OK);
    size_t n;
    float *reloaded = tu_logits(dir, probe, T, &n);
    ck_assert(memcmp(reloaded, merged, T * V * sizeof *merged) == 0);
    float *half = tu_logits(bdir, probe, T, &n);
    double err = tu_max_rel_err(half, merged, T * V);
    ck_assert_msg(err > 0 && err < 3e-2, "bf16 export: rel err %g", err);
    /* the exported config is the loaded one (qwen3, head_dim 24, untied) with its new dtype */
    char *desc;
    ck_assert_int_eq(lora_model_describe(bdir, &desc), LORA_OK);
    ck_assert(strstr(desc, "\"head_dim\":24") && strstr(desc, "\"stored_dtype\":\"BF16\"") &&
              strstr(desc, "\"tie_word_embeddings\":false"));
    lora_string_free(desc);
    free(merged);
    free(reloaded);
    free(half);
}
END_TEST

START_TEST(merge_misuse)
{
    ck_assert_int_eq(lora_model_unmerge(model), LORA_ERR_STATE);
    ck_assert_int_eq(lora_model_merge(model, NULL, 1.0f, NULL, 0, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_model_merge(model, adapter, NAN, NULL, 0, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    lora_model *other;
    ck_assert_int_eq(lora_model_load(QWEN3, NULL, &other), LORA_OK);
    ck_assert_int_eq(lora_model_merge(other, adapter, 1.0f, NULL, 0, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert(strstr(lora_last_error(), "another model"));
    lora_model_free(other);
    int32_t bad[2] = {1, 100000};
    float *before = malloc(model->arena_floats * sizeof *before);
    memcpy(before, model->arena, model->arena_floats * sizeof *before);
    ck_assert_int_eq(lora_model_merge(model, adapter, 1.0f, bad, 2, NULL), LORA_ERR_RANGE);
    ck_assert(memcmp(before, model->arena, model->arena_floats * sizeof *before) == 0);
    free(before);
    ck_assert_int_eq(lora_model_merge(model, adapter, 1.0f, NULL, 0, NULL), LORA_OK);
    ck_assert_int_eq(lora_model_merge(model, adapter, 1.0f, NULL, 0, NULL), LORA_ERR_STATE);
    ck_assert(strstr(lora_last_error(), "already merged"));
    ck_assert_int_eq(lora_model_save(model, "/nonexistent/dir/x", NULL), LORA_ERR_IO);
    ck_assert_int_eq(lora_model_save(model, tmp, "f16"), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_model_save(NULL, tmp, NULL), LORA_ERR_INVALID_ARGUMENT);
}
END_TEST

/* The model may be freed while merged; the kept copies go with it. */
START_TEST(free_while_merged)
{
    ck_assert_int_eq(lora_model_merge(model, adapter, 2.0f, NULL, 0, NULL), LORA_OK);
}
END_TEST

static Suite *merge_suite(void)
{
    Suite *s = suite_create("merge");
    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, merge_matches_attached_adapter);
    tcase_add_test(core, unmerge_restores_bit_for_bit);
    tcase_add_test(core, merged_model_exports_and_reloads);
    tcase_add_test(core, free_while_merged);
    suite_add_tcase(s, core);
    TCase *misuse = tcase_create("misuse");
    tcase_set_tags(misuse, "misuse");
    tcase_add_checked_fixture(misuse, setup, teardown);
    tcase_add_test(misuse, merge_misuse);
    suite_add_tcase(s, misuse);
    return s;
}

int main(void) { return tu_run_suite(merge_suite()); }
