/* tests/golden_check DIR -- checks liblora against a fixture folder (config.json,
 * model.safetensors, adapter/, golden.safetensors; see the README.md of each fixture).
 *
 * One line per quantity with its max relative error (max|x - ref| / max|ref|), quantities this
 * version cannot compute yet reported as skipped, then "N passed, M failed, K skipped".
 * Exit status 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "lora.h"

#define TOL_LOGITS 1e-5

typedef struct tally {
    int passed, failed, skipped;
} tally;

typedef struct golden {
    lora_st_file *f;
    int32_t *ids, *labels;
    size_t B, T;
} golden;

static double f64_at(const lora_st_tensor *t, size_t i)
{
    double d;
    memcpy(&d, t->data + i * 8, sizeof d);
    return d;
}

static int32_t *i64_to_i32(const lora_st_tensor *t)
{
    int32_t *v = malloc(t->numel * sizeof *v);
    for (size_t i = 0; v && i < t->numel; i++) {
        int64_t x;
        memcpy(&x, t->data + i * 8, sizeof x);
        v[i] = (int32_t)x;
    }
    return v;
}

static void report(tally *t, const char *name, double err, double tol)
{
    int ok = err <= tol;
    printf("%-26s max_rel_err=%.3e tol=%.0e %s\n", name, err, tol, ok ? "passed" : "FAILED");
    if (ok)
        t->passed++;
    else
        t->failed++;
}

static void fail(tally *t, const char *name, const char *why)
{
    printf("%-26s FAILED: %s\n", name, why);
    t->failed++;
}

static double rel_err(const float *x, const lora_st_tensor *ref)
{
    double max_ref = 0.0, max_diff = 0.0;
    for (size_t i = 0; i < ref->numel; i++) {
        double r = f64_at(ref, i);
        double d = fabs((double)x[i] - r);
        max_ref = fmax(max_ref, fabs(r));
        max_diff = isnan(d) ? INFINITY : fmax(max_diff, d);
    }
    return max_ref > 0 ? max_diff / max_ref : max_diff;
}

static void check_logits_base(tally *t, const golden *g, lora_session *s, size_t V)
{
    const lora_st_tensor *ref = lora__st_find(g->f, "logits_base");
    if (!ref)
        return;
    if (ref->dtype != LORA_ST_F64 || ref->numel != g->B * g->T * V) {
        fail(t, "logits_base", "unexpected dtype or shape in golden file");
        return;
    }
    float *logits = malloc(ref->numel * sizeof *logits);
    if (lora_session_logits(s, g->ids, NULL, g->B, g->T, logits) != LORA_OK)
        fail(t, "logits_base", lora_last_error());
    else
        report(t, "logits_base", rel_err(logits, ref), TOL_LOGITS);
    free(logits);
}

static void check_loss_base(tally *t, const golden *g, lora_session *s)
{
    const lora_st_tensor *ref = lora__st_find(g->f, "loss_base");
    if (!ref)
        return;
    float loss;
    if (lora_session_loss(s, g->ids, g->labels, g->B, g->T, &loss, NULL) != LORA_OK)
        fail(t, "loss_base", lora_last_error());
    else
        report(t, "loss_base", rel_err(&loss, ref), TOL_LOGITS);
}

/* Quantities that need adapters or training, grouped by name prefix. */
static const struct {
    const char *prefix, *why;
} pending[] = {
    {"logits_lora", "needs LoRA adapters (not in this version)"},
    {"loss_lora", "needs LoRA adapters (not in this version)"},
    {"grad.", "needs the LoRA backward pass (not in this version)"},
    {"adamw1.", "needs the AdamW optimizer (not in this version)"},
    {"fullgrad.", "needs the full backward pass (not in this version)"},
    {"merged.", "needs adapter merging (not in this version)"},
    {"logits_merged", "needs adapter merging (not in this version)"},
    {"greedy_lora_", "needs LoRA adapters (not in this version)"},
};

static void report_pending(tally *t, const golden *g)
{
    for (size_t p = 0; p < sizeof pending / sizeof *pending; p++) {
        size_t n = 0;
        for (size_t i = 0; i < lora__st_count(g->f); i++)
            n += strncmp(lora__st_at(g->f, i)->name, pending[p].prefix,
                         strlen(pending[p].prefix)) == 0;
        if (n) {
            printf("%-26s skipped: %s (%zu tensor%s)\n", pending[p].prefix, pending[p].why, n,
                   n > 1 ? "s" : "");
            t->skipped++;
        }
    }
}

static int load_golden(const char *dir, golden *g)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    if (lora__st_open(path, &g->f) != LORA_OK) {
        printf("golden: %s\n", lora_last_error());
        return 0;
    }
    const lora_st_tensor *ids = lora__st_find(g->f, "input_ids");
    const lora_st_tensor *labels = lora__st_find(g->f, "labels");
    if (!ids || !labels || ids->dtype != LORA_ST_I64 || labels->dtype != LORA_ST_I64 ||
        ids->ndim != 2 || labels->numel != ids->numel) {
        printf("golden: %s: input_ids/labels missing or not I64 [B, T]\n", path);
        return 0;
    }
    g->B = (size_t)ids->shape[0];
    g->T = (size_t)ids->shape[1];
    g->ids = i64_to_i32(ids);
    g->labels = i64_to_i32(labels);
    return g->ids && g->labels;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    tally t = {0, 0, 0};
    golden g = {0};
    lora_model *m = NULL;
    lora_session *s = NULL;
    if (!load_golden(argv[1], &g))
        t.failed++;
    else if (lora_model_load(argv[1], "{\"threads\": 2}", &m) != LORA_OK ||
             lora_session_create(m, NULL, &s) != LORA_OK)
        fail(&t, "model", lora_last_error());
    else {
        check_logits_base(&t, &g, s, lora_model_vocab_size(m));
        check_loss_base(&t, &g, s);
        report_pending(&t, &g);
    }
    printf("%d passed, %d failed, %d skipped\n", t.passed, t.failed, t.skipped);
    lora_session_free(s);
    lora_model_free(m);
    free(g.ids);
    free(g.labels);
    lora__st_close(g.f);
    return t.failed ? 1 : 0;
}
