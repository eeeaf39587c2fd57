/* The optimizer: AdamW / SGD against torch's formulas (recomputed here in double) and against
 * hand-derived numbers, clipping, LoRA+ groups, Hugging Face's schedules, skips, state files,
 * configuration errors, misuse. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "lora.h"
#include "train/optim.h"
#include "util/st_build.h"
#include "util/suite.h"

/* ---- helpers ------------------------------------------------------------------------------ */

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static lora_optim_config cfg_of(const char *json)
{
    lora_optim_config c;
    memset(&c, 0xA5, sizeof c);
    lora_status st = lora__optim_config_parse(json, &c);
    ck_assert_msg(st == LORA_OK, "parse %s: %s", json ? json : "NULL", lora_last_error());
    return c;
}

static lora_optim *make(const char *json, const lora_param *params, size_t n)
{
    lora_optim_config c = cfg_of(json);
    lora_optim *o = NULL;
    lora_status st = lora__optim_create(&c, params, n, &o);
    ck_assert_msg(st == LORA_OK, "create %s: %s", json, lora_last_error());
    ck_assert_ptr_nonnull(o);
    return o;
}

static lora_optim_report step_ok(lora_optim *o)
{
    lora_optim_report r;
    memset(&r, 0xA5, sizeof r);
    lora_status st = lora__optim_step(o, &r);
    ck_assert_msg(st == LORA_OK, "step: %s", lora_last_error());
    return r;
}

#define ck_assert_fails(call, status, substr)                                                   \
    do {                                                                                        \
        lora_status st_ = (call);                                                               \
        ck_assert_msg(st_ == (status), "%s: got %s, want %s (%s)", #call,                       \
                      lora_status_string(st_), lora_status_string(status), lora_last_error()); \
        ck_assert_msg(strstr(lora_last_error(), (substr)) != NULL,                             \
                      "%s: message '%s' lacks '%s'", #call, lora_last_error(), (substr));       \
    } while (0)

/* |a - b| <= rel max|b| for every element: the error relative to the tensor's scale, as
 * tu_max_rel_err measures it (a value that cancels to near 0 keeps float32's absolute error). */
static void assert_close(const float *a, const double *b, size_t n, double rel, const char *what)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)a[i] - b[i]) <= rel * scale,
                      "%s[%zu] = %.9g, want %.9g (err %.3g of max %.3g)", what, i, (double)a[i],
                      b[i], fabs((double)a[i] - b[i]), scale);
}

static void assert_close1(double a, double b, double rel, const char *what)
{
    ck_assert_msg(fabs(a - b) <= rel * fabs(b), "%s = %.17g, want %.17g", what, a, b);
}

static void to_double(const float *x, double *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = x[i];
}

/* torch.optim.AdamW's single-tensor step (non-amsgrad) in double; t = steps done before. */
static void ref_adamw(double *p, double *m, double *v, const float *g, size_t n, double lr,
                      double b1, double b2, double eps, double wd, int t, double clip)
{
    double bc1 = 1 - pow(b1, t + 1), bc2 = 1 - pow(b2, t + 1);
    for (size_t i = 0; i < n; i++) {
        double gi = g[i] * clip;
        p[i] *= 1 - lr * wd;
        m[i] = m[i] + (1 - b1) * (gi - m[i]);           /* exp_avg.lerp_(grad, 1 - beta1) */
        v[i] = v[i] * b2 + (1 - b2) * gi * gi;
        double denom = sqrt(v[i]) / sqrt(bc2) + eps;
        p[i] += -(lr / bc1) * m[i] / denom;
    }
}

/* torch.optim.SGD's single-tensor step in double; first: the momentum buffer is None. */
static void ref_sgd(double *p, double *buf, const float *g, size_t n, double lr, double mu,
                    double damp, double wd, int nesterov, int first)
{
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        if (wd != 0)
            gi = gi + wd * p[i];
        if (mu != 0) {
            buf[i] = first ? gi : buf[i] * mu + (1 - damp) * gi;
            gi = nesterov ? gi + mu * buf[i] : buf[i];
        }
        p[i] += -lr * gi;
    }
}

/* transformers' lambdas, written out again from optimization.py. */
static double hf_factor(const char *type, long t, long w, long total)
{
    if (strcmp(type, "constant") == 0)
        return 1.0;
    if (t < w)
        return (double)t / (double)(w > 1 ? w : 1);
    if (strcmp(type, "constant_with_warmup") == 0)
        return 1.0;
    long den = total - w > 1 ? total - w : 1;
    if (strcmp(type, "linear") == 0)
        return fmax(0.0, (double)(total - t) / (double)den);
    double progress = (double)(t - w) / (double)den;
    return fmax(0.0, 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress)));
}

static char *tmp_path(char **dir, const char *name)
{
    *dir = tu_st_mkdtemp();
    char *p = NULL;
    ck_assert_int_ge(asprintf(&p, "%s/%s", *dir, name), 0);
    return p;
}

static void cleanup(char *dir, char *path)
{
    tu_st_rmtree(dir);
    free(dir);
    free(path);
}

/* ---- AdamW -------------------------------------------------------------------------------- */

/* From zero moments, m / bc1 = g and sqrt(v) / sqrt(bc2) = |g|: the first update is
 * p (1 - lr wd) - lr g / (|g| + eps), i.e. lr sign(g) away from the decayed value. */
START_TEST(adamw_first_step_by_hand)
{
    float p[] = {1.0f, -2.0f, 0.5f, 3.0f, 0.0f, 0.0f, 0.0f};
    float g[] = {0.3f, -0.01f, 2.0f, -1e-4f, 0.0f, 0.25f, -4.0f};
    lora_param prm = {"w", p, g, N_OF(p), 0};
    lora_optim *o = make("{\"lr\": 0.01, \"weight_decay\": 0.1}", &prm, 1);
    ck_assert_double_eq(lora__optim_lr(o), 0.01);
    lora_optim_report r = step_ok(o);
    /* Derived by hand: 0.999 - 0.01 * 0.3 / 0.30000001, and so on. */
    const double want[] = {0.9890000003333334, -1.98800000999999, 0.48950000005,
                           3.0069990000999898, 0.0, -0.0099999996, 0.009999999975};
    for (size_t i = 0; i < N_OF(p); i++)
        ck_assert_msg(fabs(p[i] - want[i]) <= 1e-6 * fabs(want[i]) + 1e-12,
                      "p[%zu] = %.10g, want %.10g", i, (double)p[i], want[i]);
    /* The relation itself: |decayed - p1| = lr |g| / (|g| + eps) <= lr. */
    const float p0[] = {1.0f, -2.0f, 0.5f, 3.0f, 0.0f, 0.0f, 0.0f};
    for (size_t i = 0; i < N_OF(p); i++) {
        double moved = p0[i] * (1 - 0.01 * 0.1) - p[i];
        double gi = g[i];
        double want_moved = 0.01 * gi / (fabs(gi) + 1e-8);
        ck_assert_msg(fabs(moved - want_moved) <= 2e-7 * fabs(p0[i]) + 1e-6 * fabs(want_moved),
                      "moved[%zu] = %.10g, want %.10g", i, moved, want_moved);
        ck_assert(fabs(moved) <= 0.01 + 2e-7 * fabs(p0[i]));
    }
    /* Moments: m = 0.1 g, v = 0.001 g^2. */
    for (size_t i = 0; i < N_OF(p); i++) {
        assert_close1(o->m[i], 0.1 * g[i], 1e-6, "exp_avg");
        assert_close1(o->v[i], (1 - 0.999) * (double)g[i] * g[i], 1e-6, "exp_avg_sq");
    }
    ck_assert(!r.skipped);
    ck_assert_uint_eq(r.step, 1);
    ck_assert_double_eq(r.lr, 0.01);
    ck_assert_double_eq(r.clip_coef, 1.0);
    double norm = 0;
    for (size_t i = 0; i < N_OF(g); i++)
        norm += (double)g[i] * g[i];
    assert_close1(r.grad_norm, sqrt(norm), 1e-15, "grad_norm");
    /* Gradients are never written. */
    ck_assert(g[5] == 0.25f && g[6] == -4.0f);
    lora__optim_free(o);
}
END_TEST

START_TEST(adamw_three_steps_match_torch_formulas)
{
    enum { N = 6 };
    float p[N] = {0.7f, -1.3f, 2.2f, -0.4f, 0.05f, 1.0f};
    float pb[N] = {-0.2f, 0.9f, 1.7f, -3.1f, 0.6f, -0.8f};
    float g[N], gb[N];
    lora_param prm[] = {{"a", p, g, N, 0}, {"b", pb, gb, N, 1}};
    lora_optim *o = make("{\"lr\": 0.05, \"betas\": [0.8, 0.95], \"eps\": 1e-6, "
                         "\"weight_decay\": 0.2, \"loraplus_lr_ratio\": 4}", prm, 2);
    double rp[N], rm[N] = {0}, rv[N] = {0}, rpb[N], rmb[N] = {0}, rvb[N] = {0};
    to_double(p, rp, N);
    to_double(pb, rpb, N);
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < N; i++) {
            g[i] = (float)(0.3 * sin(1.7 * i + t) + 0.05 * t);
            gb[i] = (float)(-0.2 * cos(0.9 * i - t) + 0.01);
        }
        step_ok(o);
        ref_adamw(rp, rm, rv, g, N, 0.05, 0.8, 0.95, 1e-6, 0.2, t, 1.0);
        ref_adamw(rpb, rmb, rvb, gb, N, 0.05 * 4, 0.8, 0.95, 1e-6, 0.2, t, 1.0);
        assert_close(p, rp, N, 1e-6, "p");
        assert_close(pb, rpb, N, 1e-6, "pb");
        assert_close(o->m, rm, N, 1e-6, "m");
        assert_close(o->v, rv, N, 1e-6, "v");
        assert_close(o->m + N, rmb, N, 1e-6, "mb");
        assert_close(o->v + N, rvb, N, 1e-6, "vb");
    }
    ck_assert_uint_eq(lora__optim_step_count(o), 3);
    lora__optim_free(o);
}
END_TEST

/* Decoupled: with a zero gradient AdamW only decays, and the decay never reaches the moments. */
START_TEST(adamw_weight_decay_is_decoupled)
{
    float p[] = {2.0f, -0.5f};
    float g[] = {0.0f, 0.0f};
    lora_param prm = {"w", p, g, 2, 0};
    lora_optim *o = make("{\"lr\": 0.1, \"weight_decay\": 0.5}", &prm, 1);
    step_ok(o);
    ck_assert_float_eq(p[0], (float)(2.0 * (1 - 0.05)));
    ck_assert_float_eq(p[1], (float)(-0.5 * (1 - 0.05)));
    ck_assert(o->m[0] == 0 && o->m[1] == 0 && o->v[0] == 0 && o->v[1] == 0);
    lora__optim_free(o);
}
END_TEST

/* ---- SGD ---------------------------------------------------------------------------------- */

START_TEST(sgd_plain_by_hand)
{
    float p[] = {1.0f, -2.0f};
    float g[] = {0.5f, -0.25f};
    lora_param prm = {"w", p, g, 2, 0};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"lr\": 0.1}", &prm, 1);
    ck_assert_ptr_null(o->m);
    step_ok(o);
    ck_assert_float_eq(p[0], 0.95f);
    ck_assert_float_eq(p[1], -1.975f);
    step_ok(o);
    ck_assert_float_eq_tol(p[0], 0.9f, 1e-7);
    ck_assert_float_eq_tol(p[1], -1.95f, 1e-7);
    lora__optim_free(o);
}
END_TEST

/* torch quirk: the first momentum buffer is the gradient itself, not (1 - dampening) g. */
START_TEST(sgd_momentum_dampening_by_hand)
{
    float p[] = {1.0f};
    float g[] = {1.0f};
    lora_param prm = {"w", p, g, 1, 0};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"lr\": 0.1, \"momentum\": 0.9, "
                         "\"dampening\": 0.5}", &prm, 1);
    step_ok(o);
    ck_assert_float_eq(o->m[0], 1.0f);          /* buf = g */
    ck_assert_float_eq(p[0], 0.9f);
    step_ok(o);
    ck_assert_float_eq(o->m[0], 1.4f);          /* 0.9 * 1 + 0.5 * 1 */
    ck_assert_float_eq_tol(p[0], 0.76f, 1e-7);  /* 0.9 - 0.1 * 1.4 */
    lora__optim_free(o);
}
END_TEST

START_TEST(sgd_nesterov_by_hand)
{
    float p[] = {1.0f};
    float g[] = {1.0f};
    lora_param prm = {"w", p, g, 1, 0};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"lr\": 0.1, \"momentum\": 0.9, "
                         "\"nesterov\": true}", &prm, 1);
    step_ok(o);                                 /* buf = 1; g' = 1 + 0.9 = 1.9 */
    ck_assert_float_eq_tol(p[0], 0.81f, 1e-7);
    step_ok(o);                                 /* buf = 1.9; g' = 1 + 1.71 = 2.71 */
    ck_assert_float_eq_tol(o->m[0], 1.9f, 1e-7);
    ck_assert_float_eq_tol(p[0], 0.539f, 1e-7);
    lora__optim_free(o);
}
END_TEST

START_TEST(sgd_three_steps_match_torch_formulas)
{
    static const char *const configs[] = {
        "{\"optimizer\": \"sgd\", \"lr\": 0.03, \"momentum\": 0.9, \"dampening\": 0.1, "
        "\"weight_decay\": 0.01}",
        "{\"optimizer\": \"sgd\", \"lr\": 0.03, \"momentum\": 0.7, \"nesterov\": true, "
        "\"weight_decay\": 0.05}",
        "{\"optimizer\": \"sgd\", \"lr\": 0.2, \"weight_decay\": 0.3}",
    };
    const double mus[] = {0.9, 0.7, 0}, damps[] = {0.1, 0, 0}, wds[] = {0.01, 0.05, 0.3};
    const double lrs[] = {0.03, 0.03, 0.2};
    for (size_t c = 0; c < N_OF(configs); c++) {
        enum { N = 5 };
        float p[N] = {0.3f, -1.1f, 2.5f, 0.8f, -0.6f}, g[N];
        lora_param prm = {"w", p, g, N, 0};
        lora_optim *o = make(configs[c], &prm, 1);
        double rp[N], buf[N] = {0};
        to_double(p, rp, N);
        for (int t = 0; t < 3; t++) {
            for (int i = 0; i < N; i++)
                g[i] = (float)(0.4 * cos(2.1 * i - 0.7 * t) + 0.1);
            step_ok(o);
            ref_sgd(rp, buf, g, N, lrs[c], mus[c], damps[c], wds[c], c == 1, t == 0);
            assert_close(p, rp, N, 1e-6, configs[c]);
            if (mus[c] != 0)
                assert_close(o->m, buf, N, 1e-6, "momentum_buffer");
        }
        lora__optim_free(o);
    }
}
END_TEST

/* Coupled: SGD's weight decay goes through the gradient, so it reaches the momentum buffer. */
START_TEST(sgd_weight_decay_is_coupled)
{
    float p[] = {2.0f};
    float g[] = {0.0f};
    lora_param prm = {"w", p, g, 1, 0};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"lr\": 0.1, \"momentum\": 0.5, "
                         "\"weight_decay\": 0.25}", &prm, 1);
    step_ok(o);
    ck_assert_float_eq(o->m[0], 0.5f);          /* wd * p */
    ck_assert_float_eq(p[0], 1.95f);
    step_ok(o);                                 /* buf = 0.5 * 0.5 + 0.25 * 1.95 = 0.7375 */
    ck_assert_float_eq_tol(o->m[0], 0.7375f, 1e-7);
    ck_assert_float_eq_tol(p[0], 1.87625f, 1e-6);
    lora__optim_free(o);
}
END_TEST

/* ---- LoRA+ and clipping ------------------------------------------------------------------- */

START_TEST(loraplus_ratio_applies_to_group_one_only)
{
    float pa[] = {1.0f, 1.0f}, pb[] = {1.0f, 1.0f}, g[] = {0.5f, -0.5f};
    lora_param prm[] = {{"A", pa, g, 2, 0}, {"B", pb, g, 2, 1}};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"lr\": 0.01, "
                         "\"loraplus_lr_ratio\": 16}", prm, 2);
    lora_optim_report r = step_ok(o);
    ck_assert_double_eq(r.lr, 0.01);
    ck_assert_float_eq(pa[0], 0.995f);
    ck_assert_float_eq(pb[0], 0.92f);
    ck_assert_float_eq(pb[1], 1.08f);
    lora__optim_free(o);

    /* AdamW: group 1 moves lr * ratio * sign(g) and decays with its own lr. */
    float qa[] = {1.0f}, qb[] = {1.0f}, h[] = {0.5f};
    lora_param prm2[] = {{"A", qa, h, 1, 0}, {"B", qb, h, 1, 1}};
    o = make("{\"lr\": 0.001, \"loraplus_lr_ratio\": 16, \"weight_decay\": 0.1}", prm2, 2);
    step_ok(o);
    assert_close1(qa[0], 1.0 * (1 - 0.001 * 0.1) - 0.001 * 0.5 / (0.5 + 1e-8), 1e-7, "A");
    assert_close1(qb[0], 1.0 * (1 - 0.016 * 0.1) - 0.016 * 0.5 / (0.5 + 1e-8), 1e-7, "B");
    lora__optim_free(o);
}
END_TEST

START_TEST(clipping_above_threshold)
{
    float p[] = {0.0f, 0.0f, 0.0f}, g[] = {3.0f, 4.0f, 0.0f};
    lora_param prm = {"w", p, g, 3, 0};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"lr\": 1, \"max_grad_norm\": 1}", &prm, 1);
    lora_optim_report r = step_ok(o);
    double coef = 1.0 / (5.0 + 1e-6);
    ck_assert_double_eq(r.grad_norm, 5.0);
    ck_assert_double_eq(r.clip_coef, coef);
    assert_close1(p[0], -3.0 * coef, 1e-7, "p0");
    assert_close1(p[1], -4.0 * coef, 1e-7, "p1");
    ck_assert(p[2] == 0);
    ck_assert(g[0] == 3.0f && g[1] == 4.0f);    /* scaled on the fly */
    lora__optim_free(o);
}
END_TEST

START_TEST(clipping_below_and_at_threshold)
{
    float p[] = {0.0f, 0.0f}, g[] = {3.0f, 4.0f};
    lora_param prm = {"w", p, g, 2, 0};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"lr\": 1, \"max_grad_norm\": 10}", &prm, 1);
    lora_optim_report r = step_ok(o);
    ck_assert_double_eq(r.clip_coef, 1.0);
    ck_assert(p[0] == -3.0f && p[1] == -4.0f);
    lora__optim_free(o);

    /* norm == max_norm: torch still scales by max / (norm + 1e-6) < 1. */
    p[0] = p[1] = 0;
    o = make("{\"optimizer\": \"sgd\", \"lr\": 1, \"max_grad_norm\": 5}", &prm, 1);
    r = step_ok(o);
    ck_assert_double_eq(r.clip_coef, 5.0 / (5.0 + 1e-6));
    ck_assert(p[0] != -3.0f);
    lora__optim_free(o);

    /* max_grad_norm 0: no clipping, the norm is still reported. */
    p[0] = p[1] = 0;
    o = make("{\"optimizer\": \"sgd\", \"lr\": 1, \"max_grad_norm\": 0}", &prm, 1);
    r = step_ok(o);
    ck_assert_double_eq(r.clip_coef, 1.0);
    ck_assert_double_eq(r.grad_norm, 5.0);
    ck_assert(p[0] == -3.0f);
    lora__optim_free(o);
}
END_TEST

START_TEST(clipping_adamw_matches_torch_formulas)
{
    enum { N = 4 };
    float p[N] = {0.5f, -0.5f, 1.5f, 2.0f}, g[N];
    lora_param prm = {"w", p, g, N, 0};
    lora_optim *o = make("{\"lr\": 0.01, \"max_grad_norm\": 0.3}", &prm, 1);
    double rp[N], rm[N] = {0}, rv[N] = {0};
    to_double(p, rp, N);
    for (int t = 0; t < 3; t++) {
        double norm = 0;
        for (int i = 0; i < N; i++) {
            g[i] = (float)(0.5 * sin(i + 0.3 * t) * (t + 1));
            norm += (double)g[i] * g[i];
        }
        norm = sqrt(norm);
        double coef = fmin(1.0, 0.3 / (norm + 1e-6));
        ck_assert(coef < 1);
        lora_optim_report r = step_ok(o);
        assert_close1(r.grad_norm, norm, 1e-14, "grad_norm");
        ref_adamw(rp, rm, rv, g, N, 0.01, 0.9, 0.999, 1e-8, 0.01, t, coef);
        assert_close(p, rp, N, 1e-6, "p");
        assert_close(o->m, rm, N, 1e-6, "m");
    }
    lora__optim_free(o);
}
END_TEST

/* ---- schedules ---------------------------------------------------------------------------- */

static void check_schedule(const char *type, long w, long total)
{
    char json[256];
    snprintf(json, sizeof json, "{\"lr_scheduler_type\": \"%s\", \"warmup_steps\": %ld, "
             "\"num_training_steps\": %ld}", type, w, total);
    lora_optim_config c = cfg_of(json);
    const long at[] = {0, 1, w - 1, w, w + 1, total / 2, total - 1, total, total + 1,
                       total + 7, 2 * total, 3 * total};
    for (size_t i = 0; i < N_OF(at); i++) {
        if (at[i] < 0)
            continue;
        double got = lora__optim_schedule_factor(&c, (uint64_t)at[i]);
        double want = hf_factor(type, at[i], w, total);
        ck_assert_msg(fabs(got - want) <= 1e-15, "%s w=%ld T=%ld at %ld: %.17g, want %.17g",
                      type, w, total, at[i], got, want);
        ck_assert(got >= 0 && got <= 1);
    }
}

START_TEST(schedules_match_hf_at_boundaries)
{
    const char *types[] = {"linear", "cosine", "constant_with_warmup"};
    const long ws[] = {0, 1, 3, 10, 120}, ts[] = {1, 7, 100};
    for (size_t a = 0; a < N_OF(types); a++)
        for (size_t b = 0; b < N_OF(ws); b++)
            for (size_t c = 0; c < N_OF(ts); c++)
                check_schedule(types[a], ws[b], ts[c]);
    lora_optim_config c = cfg_of("{\"num_training_steps\": 10}");
    for (uint64_t t = 0; t < 30; t++)
        ck_assert_double_eq(lora__optim_schedule_factor(&c, t), 1.0);
}
END_TEST

START_TEST(schedules_by_hand)
{
    lora_optim_config lin = cfg_of("{\"lr_scheduler_type\": \"linear\", \"warmup_steps\": 10, "
                                   "\"num_training_steps\": 110}");
    ck_assert_double_eq(lora__optim_schedule_factor(&lin, 0), 0.0);
    ck_assert_double_eq(lora__optim_schedule_factor(&lin, 5), 0.5);
    ck_assert_double_eq_tol(lora__optim_schedule_factor(&lin, 9), 0.9, 1e-15);
    ck_assert_double_eq(lora__optim_schedule_factor(&lin, 10), 1.0);
    ck_assert_double_eq(lora__optim_schedule_factor(&lin, 60), 0.5);
    ck_assert_double_eq_tol(lora__optim_schedule_factor(&lin, 109), 0.01, 1e-15);
    ck_assert_double_eq(lora__optim_schedule_factor(&lin, 110), 0.0);
    ck_assert_double_eq(lora__optim_schedule_factor(&lin, 500), 0.0);
    ck_assert_double_eq(lora__optim_schedule_factor(&lin, UINT64_MAX), 0.0);

    lora_optim_config cos_ = cfg_of("{\"lr_scheduler_type\": \"cosine\", \"warmup_steps\": 10, "
                                    "\"num_training_steps\": 110}");
    ck_assert_double_eq(lora__optim_schedule_factor(&cos_, 10), 1.0);
    ck_assert_double_eq_tol(lora__optim_schedule_factor(&cos_, 35), 0.85355339059327373, 1e-15);
    ck_assert_double_eq_tol(lora__optim_schedule_factor(&cos_, 60), 0.5, 1e-15);
    ck_assert_double_eq_tol(lora__optim_schedule_factor(&cos_, 110), 0.0, 1e-15);
    /* Past T the cosine rises again, as in transformers (num_cycles = 0.5, no clamp). */
    ck_assert_double_eq_tol(lora__optim_schedule_factor(&cos_, 160), 0.5, 1e-15);
    ck_assert_double_eq_tol(lora__optim_schedule_factor(&cos_, 210), 1.0, 1e-15);

    lora_optim_config cww = cfg_of("{\"lr_scheduler_type\": \"constant_with_warmup\", "
                                   "\"warmup_steps\": 4}");
    const double want[] = {0, 0.25, 0.5, 0.75, 1, 1, 1};
    for (uint64_t t = 0; t < N_OF(want); t++)
        ck_assert_double_eq(lora__optim_schedule_factor(&cww, t), want[t]);
    ck_assert_double_eq(lora__optim_schedule_factor(&cww, UINT64_MAX), 1.0);

    lora_optim_config nowarm = cfg_of("{\"lr_scheduler_type\": \"linear\", "
                                      "\"num_training_steps\": 4}");
    ck_assert_double_eq(lora__optim_schedule_factor(&nowarm, 0), 1.0);
    ck_assert_double_eq(lora__optim_schedule_factor(&nowarm, 1), 0.75);
}
END_TEST

/* The first update uses factor(0): 0 with warmup, so the first AdamW update moves nothing (the
 * moments still take the gradient), and lr follows the schedule step by step. */
START_TEST(schedule_drives_the_updates)
{
    float p[] = {1.0f}, g[] = {0.5f};
    lora_param prm = {"w", p, g, 1, 0};
    lora_optim *o = make("{\"lr\": 0.1, \"lr_scheduler_type\": \"linear\", "
                         "\"warmup_steps\": 2, \"num_training_steps\": 6}", &prm, 1);
    const double factors[] = {0, 0.5, 1, 0.75, 0.5, 0.25, 0, 0};
    for (size_t t = 0; t < N_OF(factors); t++) {
        ck_assert_double_eq(lora__optim_lr(o), 0.1 * factors[t]);
        float before = p[0];
        lora_optim_report r = step_ok(o);
        ck_assert_double_eq(r.lr, 0.1 * factors[t]);
        ck_assert_uint_eq(r.step, t + 1);
        if (factors[t] == 0)
            ck_assert(p[0] == before);
        else
            ck_assert(p[0] < before);
    }
    ck_assert_float_eq(o->m[0], (float)(0.5 * (1 - pow(0.9, 8))));
    lora__optim_free(o);
}
END_TEST

START_TEST(warmup_ratio_rounds_up_as_hf)
{
    static const struct {
        double ratio;
        long total, want;
    } cases[] = {
        {0.1, 30, 3}, {0.05, 110, 6}, {0.07, 100, 8},   /* 0.07 * 100 = 7.000000000000001 */
        {0.14, 50, 8}, {0.7, 90, 63}, {0.0, 7, 0}, {1.0, 7, 7}, {0.5, 1, 1}, {0.001, 10, 1},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        char json[200];
        snprintf(json, sizeof json, "{\"lr_scheduler_type\": \"cosine\", \"warmup_ratio\": "
                 "%.17g, \"num_training_steps\": %ld}", cases[i].ratio, cases[i].total);
        lora_optim_config c = cfg_of(json);
        ck_assert_msg(c.warmup_steps == cases[i].want, "%s: %lld, want %ld", json,
                      (long long)c.warmup_steps, cases[i].want);
    }
}
END_TEST

/* ---- skips -------------------------------------------------------------------------------- */

static void skip_leaves_state(float bad)
{
    float p[] = {0.5f, -0.25f, 1.0f}, q[] = {2.0f}, g[] = {0.1f, 0.2f, -0.3f}, gq[] = {0.4f};
    lora_param prm[] = {{"a", p, g, 3, 0}, {"b", q, gq, 1, 1}};
    lora_optim *o = make("{\"lr\": 0.01, \"max_consecutive_skips\": 3}", prm, 2);
    step_ok(o);
    step_ok(o);
    float p0[3], q0[1], m0[4], v0[4];
    memcpy(p0, p, sizeof p);
    memcpy(q0, q, sizeof q);
    memcpy(m0, o->m, sizeof m0);
    memcpy(v0, o->v, sizeof v0);
    gq[0] = bad;
    lora_optim_report r = step_ok(o);
    ck_assert(r.skipped);
    ck_assert(!isfinite(r.grad_norm));
    ck_assert_uint_eq(r.step, 2);
    ck_assert_uint_eq(r.skips, 1);
    ck_assert_uint_eq(r.consecutive_skips, 1);
    ck_assert_double_eq(r.lr, 0.01);
    ck_assert(memcmp(p0, p, sizeof p) == 0 && memcmp(q0, q, sizeof q) == 0);
    ck_assert(memcmp(m0, o->m, sizeof m0) == 0 && memcmp(v0, o->v, sizeof v0) == 0);
    r = step_ok(o);
    ck_assert(r.skipped);
    ck_assert_uint_eq(r.consecutive_skips, 2);
    gq[0] = 0.4f;
    r = step_ok(o);
    ck_assert(!r.skipped);
    ck_assert_uint_eq(r.step, 3);
    ck_assert_uint_eq(r.skips, 2);
    ck_assert_uint_eq(r.consecutive_skips, 0);
    ck_assert_uint_eq(lora__optim_skip_count(o), 2);
    ck_assert(memcmp(p0, p, sizeof p) != 0);
    lora__optim_free(o);
}

START_TEST(nan_gradient_skips_bit_for_bit)
{
    skip_leaves_state(NAN);
}
END_TEST

START_TEST(inf_gradient_skips_bit_for_bit)
{
    skip_leaves_state(INFINITY);
    skip_leaves_state(-INFINITY);
}
END_TEST

START_TEST(consecutive_skip_limit)
{
    float p[] = {1.0f}, g[] = {NAN};
    lora_param prm = {"w", p, g, 1, 0};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"max_consecutive_skips\": 3}", &prm, 1);
    step_ok(o);
    step_ok(o);
    lora_optim_report r;
    ck_assert_fails(lora__optim_step(o, &r), LORA_ERR_NUMERIC, "3 steps in a row");
    ck_assert(r.skipped);
    ck_assert_uint_eq(r.consecutive_skips, 3);
    ck_assert(p[0] == 1.0f);
    ck_assert_fails(lora__optim_step(o, NULL), LORA_ERR_NUMERIC, "not finite");
    g[0] = 1.0f;                                 /* a finite step recovers */
    r = step_ok(o);
    ck_assert_uint_eq(r.consecutive_skips, 0);
    ck_assert_uint_eq(r.skips, 4);
    ck_assert(p[0] != 1.0f);
    lora__optim_free(o);

    /* max 1: the first skip already fails. */
    g[0] = INFINITY;
    o = make("{\"max_consecutive_skips\": 1}", &prm, 1);
    ck_assert_fails(lora__optim_step(o, NULL), LORA_ERR_NUMERIC, "max_consecutive_skips 1");
    lora__optim_free(o);
}
END_TEST

/* ---- set_lr ------------------------------------------------------------------------------- */

START_TEST(set_lr_changes_base_of_both_groups)
{
    float pa[] = {1.0f}, pb[] = {1.0f}, g[] = {1.0f};
    lora_param prm[] = {{"A", pa, g, 1, 0}, {"B", pb, g, 1, 1}};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"lr\": 0.1, \"loraplus_lr_ratio\": 2, "
                         "\"lr_scheduler_type\": \"constant_with_warmup\", "
                         "\"warmup_steps\": 2}", prm, 2);
    ck_assert_double_eq(lora__optim_lr(o), 0.0);
    step_ok(o);
    ck_assert_double_eq(lora__optim_lr(o), 0.05);
    ck_assert_int_eq(lora__optim_set_lr(o, 0.4), LORA_OK);
    ck_assert_double_eq(lora__optim_lr(o), 0.2);     /* the schedule still applies */
    ck_assert_double_eq(lora__optim_config(o)->lr, 0.4);
    lora_optim_report r = step_ok(o);
    ck_assert_double_eq(r.lr, 0.2);
    ck_assert_float_eq(pa[0], 0.8f);
    ck_assert_float_eq(pb[0], 0.6f);
    ck_assert_double_eq(lora__optim_lr(o), 0.4);
    const double badv[] = {0.0, -1.0, NAN, INFINITY, -0.0};
    for (size_t i = 0; i < N_OF(badv); i++)
        ck_assert_fails(lora__optim_set_lr(o, badv[i]), LORA_ERR_CONFIG, "lr");
    ck_assert_double_eq(lora__optim_config(o)->lr, 0.4);
    lora__optim_free(o);
}
END_TEST

/* ---- state files -------------------------------------------------------------------------- */

enum { NA = 5, NB = 3 };

typedef struct rig {
    float a[NA], b[NB], ga[NA], gb[NB];
    lora_param prm[2];
    lora_optim *o;
} rig;

static void rig_init(rig *r, const char *json, const float *a, const float *b)
{
    memcpy(r->a, a, sizeof r->a);
    memcpy(r->b, b, sizeof r->b);
    r->prm[0] = (lora_param){"layers.0.q.lora_A", r->a, r->ga, NA, 0};
    r->prm[1] = (lora_param){"layers.0.q.lora_B", r->b, r->gb, NB, 1};
    r->o = make(json, r->prm, 2);
}

static void rig_grads(rig *r, int t)
{
    for (int i = 0; i < NA; i++)
        r->ga[i] = (float)(0.3 * sin(1.3 * i + 0.7 * t) - 0.05);
    for (int i = 0; i < NB; i++)
        r->gb[i] = (float)(0.2 * cos(0.4 * i - 1.1 * t) + 0.02 * t);
}

static void round_trip(const char *json)
{
    static const float a0[NA] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f};
    static const float b0[NB] = {0.0f, 0.01f, -0.02f};
    rig *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
    ck_assert(x && y);
    rig_init(x, json, a0, b0);
    for (int t = 0; t < 3; t++) {
        rig_grads(x, t);
        step_ok(x->o);
    }
    /* A skipped step and a new base lr are part of the state too. */
    x->ga[0] = NAN;
    ck_assert(step_ok(x->o).skipped);
    ck_assert_int_eq(lora__optim_set_lr(x->o, 0.0375), LORA_OK);
    char *dir, *path = tmp_path(&dir, "optimizer.safetensors");
    ck_assert_msg(lora__optim_save(x->o, path) == LORA_OK, "%s", lora_last_error());
    /* The fresh optimizer works over copies of the parameters, from the same config. */
    rig_init(y, json, x->a, x->b);
    ck_assert_msg(lora__optim_load(y->o, path) == LORA_OK, "%s", lora_last_error());
    ck_assert_uint_eq(lora__optim_step_count(y->o), 3);
    ck_assert_uint_eq(lora__optim_skip_count(y->o), 1);
    ck_assert_uint_eq(y->o->consecutive_skips, 1);
    ck_assert_double_eq(lora__optim_lr(y->o), lora__optim_lr(x->o));
    for (int t = 3; t < 5; t++) {
        rig_grads(x, t);
        rig_grads(y, t);
        lora_optim_report rx = step_ok(x->o), ry = step_ok(y->o);
        ck_assert(memcmp(&rx, &ry, sizeof rx) == 0);
    }
    ck_assert(memcmp(x->a, y->a, sizeof x->a) == 0);
    ck_assert(memcmp(x->b, y->b, sizeof x->b) == 0);
    size_t bufs = (size_t)lora__optim_buffers_per_param(&x->o->cfg);
    if (bufs >= 1)
        ck_assert(memcmp(x->o->m, y->o->m, (NA + NB) * sizeof(float)) == 0);
    if (bufs >= 2)
        ck_assert(memcmp(x->o->v, y->o->v, (NA + NB) * sizeof(float)) == 0);
    lora__optim_free(x->o);
    lora__optim_free(y->o);
    free(x);
    free(y);
    cleanup(dir, path);
}

START_TEST(save_load_continues_bit_identically)
{
    round_trip("{\"lr\": 0.05, \"lr_scheduler_type\": \"cosine\", \"warmup_steps\": 2, "
               "\"num_training_steps\": 8, \"loraplus_lr_ratio\": 16, \"max_grad_norm\": 0.25, "
               "\"weight_decay\": 0.1, \"betas\": [0.85, 0.99]}");
    round_trip("{\"optimizer\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9, \"dampening\": 0.2, "
               "\"weight_decay\": 0.01, \"lr_scheduler_type\": \"linear\", "
               "\"warmup_ratio\": 0.25, \"num_training_steps\": 10}");
    round_trip("{\"optimizer\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.8, \"nesterov\": true}");
    round_trip("{\"optimizer\": \"sgd\", \"lr\": 0.05}");   /* no state tensors at all */
}
END_TEST

START_TEST(saved_file_layout)
{
    rig *x = calloc(1, sizeof *x);
    static const float a0[NA] = {1, 2, 3, 4, 5}, b0[NB] = {1, 2, 3};
    rig_init(x, "{\"lr\": 0.01}", a0, b0);
    rig_grads(x, 0);
    step_ok(x->o);
    char *dir, *path = tmp_path(&dir, "opt.safetensors");
    ck_assert_int_eq(lora__optim_save(x->o, path), LORA_OK);
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(path, &f), LORA_OK);
    ck_assert_uint_eq(lora__st_count(f), 4);
    const lora_st_tensor *t = lora__st_find(f, "layers.0.q.lora_B.exp_avg_sq");
    ck_assert_ptr_nonnull(t);
    ck_assert(t->dtype == LORA_ST_F32 && t->ndim == 1 && t->shape[0] == NB);
    ck_assert(memcmp(t->data, x->o->v + NA, NB * sizeof(float)) == 0);
    ck_assert_ptr_nonnull(lora__st_find(f, "layers.0.q.lora_A.exp_avg"));
    ck_assert_str_eq(lora__st_metadata(f, "format"), "liblora-optimizer");
    ck_assert_str_eq(lora__st_metadata(f, "step"), "1");
    ck_assert_str_eq(lora__st_metadata(f, "skips"), "0");
    ck_assert_str_eq(lora__st_metadata(f, "lr"), "0.01");
    const char *cfg = lora__st_metadata(f, "config");
    ck_assert_ptr_nonnull(strstr(cfg, "\"optimizer\":\"adamw\""));
    ck_assert_ptr_nonnull(strstr(cfg, "\"weight_decay\":0.01"));
    lora__st_close(f);
    lora__optim_free(x->o);
    free(x);
    cleanup(dir, path);
}
END_TEST

/* Saves a 1-step AdamW state over params (names, sizes) to path. */
static void save_state(const char *json, const char *const *names, const size_t *sizes, size_t n,
                       const char *path)
{
    float *buf = calloc(64, sizeof *buf), *gbuf = calloc(64, sizeof *gbuf);
    lora_param prm[4];
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        prm[i] = (lora_param){names[i], buf + at, gbuf + at, sizes[i], 0};
        at += sizes[i];
    }
    for (size_t i = 0; i < at; i++)
        gbuf[i] = 0.1f * (float)(i + 1);
    lora_optim *o = make(json, prm, n);
    step_ok(o);
    ck_assert_int_eq(lora__optim_save(o, path), LORA_OK);
    lora__optim_free(o);
    free(buf);
    free(gbuf);
}

/* Loads path into a fresh optimizer over (names, sizes) and expects a failure; o untouched. */
static void expect_load_fails(const char *json, const char *const *names, const size_t *sizes,
                              size_t n, const char *path, lora_status want, const char *substr)
{
    float buf[64] = {0}, gbuf[64] = {0};
    lora_param prm[4];
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        prm[i] = (lora_param){names[i], buf + at, gbuf + at, sizes[i], 0};
        at += sizes[i];
    }
    lora_optim *o = make(json, prm, n);
    double lr = lora__optim_config(o)->lr;
    ck_assert_fails(lora__optim_load(o, path), want, substr);
    ck_assert_uint_eq(lora__optim_step_count(o), 0);
    ck_assert_double_eq(lora__optim_config(o)->lr, lr);
    int per = lora__optim_buffers_per_param(&o->cfg);
    for (size_t i = 0; per && i < at; i++)
        ck_assert(o->m[i] == 0 && (per < 2 || o->v[i] == 0));
    lora__optim_free(o);
}

START_TEST(load_refuses_mismatches)
{
    char *dir, *path = tmp_path(&dir, "state.safetensors");
    const char *names[] = {"x", "y"}, *renamed[] = {"x", "z"}, *three[] = {"x", "y", "w"};
    const size_t sizes[] = {3, 4}, other[] = {3, 5}, sizes3[] = {3, 4, 2};
    const char *cfg = "{\"lr\": 0.01, \"weight_decay\": 0.1}";
    save_state(cfg, names, sizes, 2, path);
    expect_load_fails(cfg, renamed, sizes, 2, path, LORA_ERR_SHAPE, "'z.exp_avg' is missing");
    expect_load_fails(cfg, names, other, 2, path, LORA_ERR_SHAPE, "'y.exp_avg'");
    expect_load_fails(cfg, three, sizes3, 3, path, LORA_ERR_SHAPE, "'w.exp_avg' is missing");
    expect_load_fails(cfg, names, sizes, 1, path, LORA_ERR_SHAPE,
                      "'y.exp_avg' is not a state tensor");
    expect_load_fails("{\"lr\": 0.01, \"weight_decay\": 0.2}", names, sizes, 2, path,
                      LORA_ERR_CONFIG, "key 'weight_decay'");
    expect_load_fails("{\"lr\": 0.01, \"weight_decay\": 0.1, \"betas\": [0.9, 0.99]}", names,
                      sizes, 2, path, LORA_ERR_CONFIG, "key 'betas'");
    expect_load_fails("{\"optimizer\": \"sgd\", \"momentum\": 0.9}", names, sizes, 2, path,
                      LORA_ERR_CONFIG, "key 'optimizer'");
    expect_load_fails("{\"lr\": 0.01, \"weight_decay\": 0.1, \"max_grad_norm\": 1}", names,
                      sizes, 2, path, LORA_ERR_CONFIG, "key 'max_grad_norm'");
    expect_load_fails("{\"lr\": 0.01, \"weight_decay\": 0.1, \"lr_scheduler_type\": \"linear\","
                      " \"num_training_steps\": 100}", names, sizes, 2, path, LORA_ERR_CONFIG,
                      "key 'lr_scheduler_type'");

    /* A different lr is not a mismatch: the file's base lr is restored, as torch does. */
    float buf[7] = {0}, gbuf[7] = {0};
    lora_param prm[] = {{"x", buf, gbuf, 3, 0}, {"y", buf + 3, gbuf + 3, 4, 0}};
    lora_optim *o = make("{\"lr\": 0.5, \"weight_decay\": 0.1}", prm, 2);
    ck_assert_int_eq(lora__optim_load(o, path), LORA_OK);
    ck_assert_double_eq(lora__optim_config(o)->lr, 0.01);
    ck_assert_uint_eq(lora__optim_step_count(o), 1);
    ck_assert_float_eq_tol(o->m[6], 0.07f, 1e-8);
    lora__optim_free(o);
    cleanup(dir, path);
}
END_TEST

START_TEST(load_refuses_bad_files)
{
    char *dir, *path = tmp_path(&dir, "state.safetensors");
    const char *names[] = {"x"};
    const size_t sizes[] = {2};
    const char *cfg = "{\"lr\": 0.01}";
    expect_load_fails(cfg, names, sizes, 1, path, LORA_ERR_IO, "state.safetensors");

    /* A safetensors file that is not an optimizer state. */
    static const char hdr[] = "{\"x.exp_avg\":{\"dtype\":\"F32\",\"shape\":[2],"
                              "\"data_offsets\":[0,8]}}";
    size_t size;
    uint8_t *img = tu_st_build(hdr, NULL, 8, &size);
    ck_assert_int_eq(tu_st_write_file(path, img, size), 0);
    free(img);
    expect_load_fails(cfg, names, sizes, 1, path, LORA_ERR_FORMAT, "not an optimizer state");

    /* Not safetensors at all. */
    ck_assert_int_eq(tu_st_write_file(path, "hello", 5), 0);
    expect_load_fails(cfg, names, sizes, 1, path, LORA_ERR_FORMAT, "state.safetensors");

    /* A negative exp_avg_sq (the last 4 bytes of the file) and a NaN exp_avg are refused. */
    save_state(cfg, names, sizes, 1, path);
    uint8_t *bytes = tu_st_read_file(path, &size);
    ck_assert_ptr_nonnull(bytes);
    float neg = -1.0f, nan_ = NAN;
    memcpy(bytes + size - 4, &neg, 4);
    ck_assert_int_eq(tu_st_write_file(path, bytes, size), 0);
    expect_load_fails(cfg, names, sizes, 1, path, LORA_ERR_FORMAT, "'x.exp_avg_sq' element 1");
    memcpy(bytes + size - 4, &nan_, 4);
    memcpy(bytes + size - 12, &nan_, 4);        /* exp_avg[1] */
    ck_assert_int_eq(tu_st_write_file(path, bytes, size), 0);
    expect_load_fails(cfg, names, sizes, 1, path, LORA_ERR_FORMAT, "'x.exp_avg' element 1");
    free(bytes);

    /* Bad metadata values. */
    static const struct {
        const char *meta, *substr;
    } metas[] = {
        {"\"format\":\"liblora-optimizer\",\"format_version\":\"2\"", "format_version 2"},
        {"\"format\":\"liblora-optimizer\",\"format_version\":\"1\"", "has no 'step'"},
        {"\"format\":\"liblora-optimizer\",\"format_version\":\"1\",\"step\":\"-1\","
         "\"skips\":\"0\",\"consecutive_skips\":\"0\"", "'step' = \"-1\""},
        {"\"format\":\"liblora-optimizer\",\"format_version\":\"1\",\"step\":\"1\","
         "\"skips\":\"0\",\"consecutive_skips\":\"2\"", "exceeds 'skips'"},
        {"\"format\":\"liblora-optimizer\",\"format_version\":\"1\",\"step\":\"1\","
         "\"skips\":\"0\",\"consecutive_skips\":\"0\",\"lr\":\"nan\"", "'lr' = \"nan\""},
        {"\"format\":\"liblora-optimizer\",\"format_version\":\"1\",\"step\":\"1\","
         "\"skips\":\"0\",\"consecutive_skips\":\"0\",\"lr\":\"0.1\",\"config\":\"{\\\"lr\\\":0}\"",
         "'config' is not a valid"},
    };
    for (size_t i = 0; i < N_OF(metas); i++) {
        char h[600];
        snprintf(h, sizeof h, "{\"__metadata__\":{%s},\"x.exp_avg\":{\"dtype\":\"F32\","
                 "\"shape\":[2],\"data_offsets\":[0,8]},\"x.exp_avg_sq\":{\"dtype\":\"F32\","
                 "\"shape\":[2],\"data_offsets\":[8,16]}}", metas[i].meta);
        img = tu_st_build(h, NULL, 16, &size);
        ck_assert_int_eq(tu_st_write_file(path, img, size), 0);
        free(img);
        expect_load_fails(cfg, names, sizes, 1, path, LORA_ERR_FORMAT, metas[i].substr);
    }
    /* A wrong dtype. */
    static const char f16[] = "{\"__metadata__\":{\"format\":\"liblora-optimizer\","
        "\"format_version\":\"1\",\"step\":\"1\",\"skips\":\"0\",\"consecutive_skips\":\"0\","
        "\"lr\":\"0.01\",\"config\":\"{}\"},\"x.exp_avg\":{\"dtype\":\"F16\",\"shape\":[2],"
        "\"data_offsets\":[0,4]},\"x.exp_avg_sq\":{\"dtype\":\"F32\",\"shape\":[2],"
        "\"data_offsets\":[4,12]}}";
    img = tu_st_build(f16, NULL, 12, &size);
    ck_assert_int_eq(tu_st_write_file(path, img, size), 0);
    free(img);
    expect_load_fails("{}", names, sizes, 1, path, LORA_ERR_SHAPE, "'x.exp_avg' is F16");
    cleanup(dir, path);
}
END_TEST

/* ---- configuration ------------------------------------------------------------------------ */

START_TEST(config_defaults)
{
    const char *inputs[] = {NULL, "{}", "{\"lr\": null, \"betas\": null, \"eps\": null, "
                            "\"weight_decay\": null, \"optimizer\": null, \"momentum\": null, "
                            "\"amsgrad\": false, \"lr_scheduler_type\": null, "
                            "\"warmup_steps\": null, \"warmup_ratio\": null}"};
    for (size_t i = 0; i < N_OF(inputs); i++) {
        lora_optim_config c = cfg_of(inputs[i]);
        ck_assert(c.kind == LORA_OPTIM_ADAMW);
        ck_assert_double_eq(c.lr, 1e-3);
        ck_assert_double_eq(c.beta1, 0.9);
        ck_assert_double_eq(c.beta2, 0.999);
        ck_assert_double_eq(c.eps, 1e-8);
        ck_assert_double_eq(c.weight_decay, 0.01);
        ck_assert_double_eq(c.loraplus_lr_ratio, 1.0);
        ck_assert_double_eq(c.max_grad_norm, 0.0);
        ck_assert(c.scheduler == LORA_SCHED_CONSTANT);
        ck_assert_int_eq(c.warmup_steps, 0);
        ck_assert_int_eq(c.num_training_steps, 0);
        ck_assert_int_eq(c.max_consecutive_skips, 10);
    }
    lora_optim_config s = cfg_of("{\"optimizer\": \"sgd\", \"betas\": null}");
    ck_assert(s.kind == LORA_OPTIM_SGD);
    ck_assert_double_eq(s.weight_decay, 0.0);
    ck_assert_double_eq(s.momentum, 0.0);
    ck_assert_double_eq(s.dampening, 0.0);
    ck_assert(!s.nesterov);
    ck_assert_double_eq(cfg_of("{\"lr\": 1}").lr, 1.0);   /* integers are numbers */
    ck_assert_int_eq(cfg_of("{\"lr_scheduler_type\": \"linear\", \"num_training_steps\": 9}")
                     .num_training_steps, 9);
    ck_assert_int_eq(cfg_of("{\"lr_scheduler_type\": \"constant\", \"warmup_ratio\": 0, "
                            "\"num_training_steps\": 9}").warmup_steps, 0);
}
END_TEST

START_TEST(config_canonical_round_trip)
{
    static const char *const configs[] = {
        NULL,
        "{\"lr\": 0.1, \"betas\": [0.1, 0.3], \"eps\": 3e-7, \"weight_decay\": 0.123456789,"
        " \"loraplus_lr_ratio\": 16, \"max_grad_norm\": 1.0, \"lr_scheduler_type\": \"cosine\","
        " \"warmup_ratio\": 0.07, \"num_training_steps\": 100, \"max_consecutive_skips\": 4}",
        "{\"optimizer\": \"sgd\", \"lr\": 0.3, \"momentum\": 0.9, \"nesterov\": true, "
        "\"lr_scheduler_type\": \"constant_with_warmup\", \"warmup_steps\": 5}",
    };
    for (size_t i = 0; i < N_OF(configs); i++) {
        lora_optim_config a = cfg_of(configs[i]);
        char *json = NULL;
        ck_assert_int_eq(lora__optim_config_to_json(&a, &json), LORA_OK);
        lora_optim_config b = cfg_of(json);
        ck_assert_msg(lora__optim_config_diff(&a, &b) == NULL, "%s", json);
        ck_assert(memcmp(&a.lr, &b.lr, sizeof a.lr) == 0);
        free(json);
    }
    lora_optim_config a = cfg_of("{\"weight_decay\": 0.1}"), b = cfg_of("{\"lr\": 5}");
    ck_assert_str_eq(lora__optim_config_diff(&a, &b), "weight_decay");
    ck_assert_ptr_null(lora__optim_config_diff(&b, &b));
}
END_TEST

START_TEST(config_errors_name_the_key)
{
    static const struct {
        const char *json;
        lora_status status;
        const char *substr;
    } cases[] = {
        {"{\"lr\": 0}", LORA_ERR_CONFIG, "key 'lr'"},
        {"{\"lr\": -1e-3}", LORA_ERR_CONFIG, "key 'lr'"},
        {"{\"lr\": \"1e-3\"}", LORA_ERR_CONFIG, "key 'lr' must be a number"},
        {"{\"lr\": true}", LORA_ERR_CONFIG, "key 'lr'"},
        {"{\"betas\": [0.9]}", LORA_ERR_CONFIG, "key 'betas'"},
        {"{\"betas\": [0.9, 0.99, 0.999]}", LORA_ERR_CONFIG, "key 'betas'"},
        {"{\"betas\": 0.9}", LORA_ERR_CONFIG, "key 'betas'"},
        {"{\"betas\": [1.0, 0.99]}", LORA_ERR_CONFIG, "key 'betas': item 0"},
        {"{\"betas\": [0.9, -0.1]}", LORA_ERR_CONFIG, "key 'betas': item 1"},
        {"{\"betas\": [0.9, \"x\"]}", LORA_ERR_CONFIG, "key 'betas': item 1"},
        {"{\"eps\": 0}", LORA_ERR_CONFIG, "key 'eps'"},
        {"{\"eps\": -1e-8}", LORA_ERR_CONFIG, "key 'eps'"},
        {"{\"weight_decay\": -0.01}", LORA_ERR_CONFIG, "key 'weight_decay'"},
        {"{\"weight_decay\": [0]}", LORA_ERR_CONFIG, "key 'weight_decay'"},
        {"{\"amsgrad\": true}", LORA_ERR_UNSUPPORTED, "key 'amsgrad'"},
        {"{\"amsgrad\": 0}", LORA_ERR_CONFIG, "key 'amsgrad'"},
        {"{\"optimizer\": \"adam\"}", LORA_ERR_CONFIG, "key 'optimizer'"},
        {"{\"optimizer\": 1}", LORA_ERR_CONFIG, "key 'optimizer'"},
        {"{\"optimizer\": \"sgd\", \"betas\": [0.9, 0.99]}", LORA_ERR_CONFIG, "key 'betas'"},
        {"{\"optimizer\": \"sgd\", \"eps\": 1e-8}", LORA_ERR_CONFIG, "key 'eps'"},
        {"{\"optimizer\": \"sgd\", \"amsgrad\": false}", LORA_ERR_CONFIG, "key 'amsgrad'"},
        {"{\"momentum\": 0.9}", LORA_ERR_CONFIG, "key 'momentum'"},
        {"{\"dampening\": 0}", LORA_ERR_CONFIG, "key 'dampening'"},
        {"{\"nesterov\": false}", LORA_ERR_CONFIG, "key 'nesterov'"},
        {"{\"optimizer\": \"sgd\", \"momentum\": 1}", LORA_ERR_CONFIG, "key 'momentum'"},
        {"{\"optimizer\": \"sgd\", \"momentum\": -0.1}", LORA_ERR_CONFIG, "key 'momentum'"},
        {"{\"optimizer\": \"sgd\", \"dampening\": 1.5}", LORA_ERR_CONFIG, "key 'dampening'"},
        {"{\"optimizer\": \"sgd\", \"nesterov\": 1}", LORA_ERR_CONFIG, "key 'nesterov'"},
        {"{\"optimizer\": \"sgd\", \"nesterov\": true}", LORA_ERR_CONFIG, "key 'nesterov'"},
        {"{\"optimizer\": \"sgd\", \"nesterov\": true, \"momentum\": 0.9, \"dampening\": 0.1}",
         LORA_ERR_CONFIG, "key 'nesterov'"},
        {"{\"loraplus_lr_ratio\": 0}", LORA_ERR_CONFIG, "key 'loraplus_lr_ratio'"},
        {"{\"loraplus_lr_ratio\": null, \"max_grad_norm\": -1}", LORA_ERR_CONFIG,
         "key 'max_grad_norm'"},
        {"{\"lr_scheduler_type\": \"foo\"}", LORA_ERR_CONFIG, "key 'lr_scheduler_type'"},
        {"{\"lr_scheduler_type\": 3}", LORA_ERR_CONFIG, "key 'lr_scheduler_type'"},
        {"{\"lr_scheduler_type\": \"polynomial\"}", LORA_ERR_UNSUPPORTED,
         "key 'lr_scheduler_type'"},
        {"{\"lr_scheduler_type\": \"linear\"}", LORA_ERR_CONFIG, "key 'num_training_steps'"},
        {"{\"lr_scheduler_type\": \"cosine\", \"warmup_steps\": 3}", LORA_ERR_CONFIG,
         "key 'num_training_steps'"},
        {"{\"lr_scheduler_type\": \"constant\", \"warmup_steps\": 5}", LORA_ERR_CONFIG,
         "key 'warmup_steps'"},
        {"{\"warmup_ratio\": 0.1, \"num_training_steps\": 10}", LORA_ERR_CONFIG,
         "key 'warmup_ratio'"},
        {"{\"warmup_steps\": -1}", LORA_ERR_CONFIG, "key 'warmup_steps'"},
        {"{\"warmup_steps\": 1.5}", LORA_ERR_CONFIG, "key 'warmup_steps' must be an integer"},
        {"{\"warmup_ratio\": 1.5}", LORA_ERR_CONFIG, "key 'warmup_ratio'"},
        {"{\"lr_scheduler_type\": \"constant_with_warmup\", \"warmup_ratio\": 0.1}",
         LORA_ERR_CONFIG, "key 'warmup_ratio' needs key 'num_training_steps'"},
        {"{\"warmup_steps\": 1, \"warmup_ratio\": 0.1, \"num_training_steps\": 10, "
         "\"lr_scheduler_type\": \"linear\"}", LORA_ERR_CONFIG,
         "keys 'warmup_steps' and 'warmup_ratio'"},
        {"{\"num_training_steps\": 0}", LORA_ERR_CONFIG, "key 'num_training_steps'"},
        {"{\"num_training_steps\": \"10\"}", LORA_ERR_CONFIG, "key 'num_training_steps'"},
        {"{\"max_consecutive_skips\": 0}", LORA_ERR_CONFIG, "key 'max_consecutive_skips'"},
        {"{\"learning_rate\": 1e-4}", LORA_ERR_CONFIG, "unknown key 'learning_rate'"},
        {"{\"lr\": 0.1, \"lr\": 0.2}", LORA_ERR_CONFIG, "not valid JSON"},
        {"[1, 2]", LORA_ERR_CONFIG, "must be a JSON object"},
        {"{", LORA_ERR_CONFIG, "not valid JSON"},
        {"", LORA_ERR_CONFIG, "not valid JSON"},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        lora_optim_config c;
        memset(&c, 0x5A, sizeof c);
        lora_optim_config before = c;
        lora_status st = lora__optim_config_parse(cases[i].json, &c);
        ck_assert_msg(st == cases[i].status, "%s: got %s, want %s (%s)", cases[i].json,
                      lora_status_string(st), lora_status_string(cases[i].status),
                      lora_last_error());
        ck_assert_msg(strstr(lora_last_error(), cases[i].substr) != NULL,
                      "%s: message '%s' lacks '%s'", cases[i].json, lora_last_error(),
                      cases[i].substr);
        ck_assert_msg(strncmp(lora_last_error(), "lora_optimizer_create: ", 23) == 0, "%s",
                      lora_last_error());
        ck_assert(memcmp(&c, &before, sizeof c) == 0);      /* out untouched on failure */
    }
}
END_TEST

/* ---- limits ------------------------------------------------------------------------------- */

START_TEST(huge_finite_gradients_are_not_skipped)
{
    float p[] = {0.0f, 0.0f}, g[] = {FLT_MAX, -FLT_MAX};
    lora_param prm = {"w", p, g, 2, 0};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"lr\": 1, \"max_grad_norm\": 1}", &prm, 1);
    lora_optim_report r = step_ok(o);       /* the norm is accumulated in double */
    ck_assert(!r.skipped);
    assert_close1(r.grad_norm, sqrt(2.0) * FLT_MAX, 1e-15, "norm");
    assert_close1(p[0], -1 / sqrt(2.0), 1e-6, "p0");
    assert_close1(p[1], 1 / sqrt(2.0), 1e-6, "p1");
    lora__optim_free(o);
}
END_TEST

START_TEST(large_parameter_matches_reference)
{
    enum { N = 1 << 20 };
    float *p = malloc(N * sizeof *p), *g = malloc(N * sizeof *g);
    double *rp = malloc(N * sizeof *rp), *rm = calloc(N, sizeof *rm), *rv = calloc(N, sizeof *rv);
    ck_assert(p && g && rp && rm && rv);
    for (size_t i = 0; i < N; i++) {
        p[i] = (float)(1.0 + 0.5 * sin(0.001 * (double)i));
        g[i] = (float)(0.01 * cos(0.003 * (double)i) + 0.02);
    }
    to_double(p, rp, N);
    lora_param prm = {"big", p, g, N, 0};
    lora_optim *o = make("{\"lr\": 0.002}", &prm, 1);
    for (int t = 0; t < 2; t++) {
        step_ok(o);
        ref_adamw(rp, rm, rv, g, N, 0.002, 0.9, 0.999, 1e-8, 0.01, t, 1.0);
    }
    assert_close(p, rp, N, 1e-6, "p");
    lora__optim_free(o);
    free(p);
    free(g);
    free(rp);
    free(rm);
    free(rv);
}
END_TEST

START_TEST(step_count_past_the_schedule)
{
    float p[] = {1.0f}, g[] = {1.0f};
    lora_param prm = {"w", p, g, 1, 0};
    lora_optim *o = make("{\"optimizer\": \"sgd\", \"lr\": 1, \"lr_scheduler_type\": "
                         "\"linear\", \"num_training_steps\": 2}", &prm, 1);
    ck_assert_double_eq(step_ok(o).lr, 1.0);
    ck_assert_double_eq(step_ok(o).lr, 0.5);
    ck_assert_float_eq(p[0], -0.5f);
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq(step_ok(o).lr, 0.0);    /* lr 0 from T on: nothing moves */
    ck_assert_float_eq(p[0], -0.5f);
    ck_assert_uint_eq(lora__optim_step_count(o), 7);
    lora__optim_free(o);
}
END_TEST

/* ---- misuse ------------------------------------------------------------------------------- */

START_TEST(create_misuse)
{
    lora_optim_config c = cfg_of(NULL);
    float p[2] = {0}, g[2] = {0};
    lora_optim *o = (lora_optim *)&c;
    lora_param ok = {"w", p, g, 2, 0};
    ck_assert_fails(lora__optim_create(&c, &ok, 1, NULL), LORA_ERR_INVALID_ARGUMENT, "out");
    ck_assert_fails(lora__optim_create(NULL, &ok, 1, &o), LORA_ERR_INVALID_ARGUMENT, "cfg");
    ck_assert_ptr_null(o);
    ck_assert_fails(lora__optim_create(&c, NULL, 1, &o), LORA_ERR_INVALID_ARGUMENT, "params");
    ck_assert_fails(lora__optim_create(&c, &ok, 0, &o), LORA_ERR_INVALID_ARGUMENT,
                    "no parameters");
    const struct {
        lora_param a, b;
        const char *substr;
    } cases[] = {
        {{"w", p, g, 2, 0}, {NULL, p, g, 2, 0}, "parameter 1 has no name"},
        {{"w", p, g, 2, 0}, {"", p, g, 2, 0}, "parameter 1 has no name"},
        {{"w", p, g, 2, 0}, {"v", NULL, g, 2, 0}, "'v' has a NULL value pointer"},
        {{"w", p, g, 2, 0}, {"v", p, NULL, 2, 0}, "'v' has a NULL gradient"},
        {{"w", p, g, 2, 0}, {"v", p, g, 0, 0}, "'v' has no elements"},
        {{"w", p, g, 2, 0}, {"v", p, g, 2, 2}, "lr_group 2"},
        {{"w", p, g, 2, 0}, {"v", p, g, 2, -1}, "lr_group -1"},
        {{"w", p, g, 2, 0}, {"w", p, g, 2, 1}, "both named 'w'"},
        {{"w", p, g, SIZE_MAX, 0}, {"v", p, g, 2, 1}, "overflow"},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        lora_param two[] = {cases[i].a, cases[i].b};
        o = (lora_optim *)&c;
        ck_assert_fails(lora__optim_create(&c, two, 2, &o), LORA_ERR_INVALID_ARGUMENT,
                        cases[i].substr);
        ck_assert_ptr_null(o);
    }
}
END_TEST

START_TEST(call_misuse)
{
    float p[] = {1.0f}, g[] = {1.0f};
    lora_param prm = {"w", p, g, 1, 0};
    lora_optim *o = make(NULL, &prm, 1);
    lora__optim_free(NULL);
    ck_assert_fails(lora__optim_step(NULL, NULL), LORA_ERR_INVALID_ARGUMENT, "NULL");
    ck_assert_fails(lora__optim_set_lr(NULL, 0.1), LORA_ERR_INVALID_ARGUMENT, "NULL");
    ck_assert_fails(lora__optim_save(NULL, "x"), LORA_ERR_INVALID_ARGUMENT, "optimizer");
    ck_assert_fails(lora__optim_save(o, NULL), LORA_ERR_INVALID_ARGUMENT, "path");
    ck_assert_fails(lora__optim_load(NULL, "x"), LORA_ERR_INVALID_ARGUMENT, "optimizer");
    ck_assert_fails(lora__optim_load(o, NULL), LORA_ERR_INVALID_ARGUMENT, "path");
    ck_assert_fails(lora__optim_save(o, "/nonexistent-dir-lora/opt.safetensors"), LORA_ERR_IO,
                    "/nonexistent-dir-lora/opt.safetensors");
    ck_assert_fails(lora__optim_load(o, "/nonexistent-dir-lora/opt.safetensors"), LORA_ERR_IO,
                    "/nonexistent-dir-lora/opt.safetensors");
    /* A failed save leaves an existing file as it was. */
    char *dir, *path = tmp_path(&dir, "keep.safetensors");
    ck_assert_int_eq(lora__optim_save(o, path), LORA_OK);
    size_t n0, n1;
    uint8_t *before = tu_st_read_file(path, &n0);
    char *sub = NULL;
    ck_assert_int_ge(asprintf(&sub, "%s/", dir), 0);
    ck_assert_int_ne(lora__optim_save(o, sub), LORA_OK);    /* names a folder */
    uint8_t *after = tu_st_read_file(path, &n1);
    ck_assert(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);
    free(sub);
    lora__optim_free(o);
    cleanup(dir, path);
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *adam = tcase_create("adamw");
    tcase_set_tags(adam, "core");
    tcase_add_test(adam, adamw_first_step_by_hand);
    tcase_add_test(adam, adamw_three_steps_match_torch_formulas);
    tcase_add_test(adam, adamw_weight_decay_is_decoupled);
    suite_add_tcase(s, adam);

    TCase *sgd = tcase_create("sgd");
    tcase_set_tags(sgd, "core");
    tcase_add_test(sgd, sgd_plain_by_hand);
    tcase_add_test(sgd, sgd_momentum_dampening_by_hand);
    tcase_add_test(sgd, sgd_nesterov_by_hand);
    tcase_add_test(sgd, sgd_three_steps_match_torch_formulas);
    tcase_add_test(sgd, sgd_weight_decay_is_coupled);
    suite_add_tcase(s, sgd);

    TCase *grad = tcase_create("gradients");
    tcase_set_tags(grad, "core");
    tcase_add_test(grad, loraplus_ratio_applies_to_group_one_only);
    tcase_add_test(grad, clipping_above_threshold);
    tcase_add_test(grad, clipping_below_and_at_threshold);
    tcase_add_test(grad, clipping_adamw_matches_torch_formulas);
    tcase_add_test(grad, nan_gradient_skips_bit_for_bit);
    tcase_add_test(grad, inf_gradient_skips_bit_for_bit);
    tcase_add_test(grad, consecutive_skip_limit);
    suite_add_tcase(s, grad);

    TCase *sched = tcase_create("schedule");
    tcase_set_tags(sched, "core");
    tcase_add_test(sched, schedules_match_hf_at_boundaries);
    tcase_add_test(sched, schedules_by_hand);
    tcase_add_test(sched, schedule_drives_the_updates);
    tcase_add_test(sched, warmup_ratio_rounds_up_as_hf);
    tcase_add_test(sched, set_lr_changes_base_of_both_groups);
    suite_add_tcase(s, sched);

    TCase *state = tcase_create("state");
    tcase_set_tags(state, "core");
    tcase_add_test(state, save_load_continues_bit_identically);
    tcase_add_test(state, saved_file_layout);
    tcase_add_test(state, load_refuses_mismatches);
    tcase_add_test(state, load_refuses_bad_files);
    suite_add_tcase(s, state);

    TCase *cfg = tcase_create("config");
    tcase_set_tags(cfg, "core");
    tcase_add_test(cfg, config_defaults);
    tcase_add_test(cfg, config_canonical_round_trip);
    tcase_add_test(cfg, config_errors_name_the_key);
    suite_add_tcase(s, cfg);

    TCase *lim = tcase_create("limits");
    tcase_set_tags(lim, "limits");
    tcase_add_test(lim, huge_finite_gradients_are_not_skipped);
    tcase_add_test(lim, large_parameter_matches_reference);
    tcase_add_test(lim, step_count_past_the_schedule);
    suite_add_tcase(s, lim);

    TCase *mis = tcase_create("misuse");
    tcase_set_tags(mis, "misuse");
    tcase_add_test(mis, create_misuse);
    tcase_add_test(mis, call_misuse);
    suite_add_tcase(s, mis);
    return s;
}

int main(void)
{
    return tu_run_suite(optim_suite());
}
