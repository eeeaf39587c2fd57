/* CPU backend ops (src/backend.h, src/cpu/): every forward against a plain double-precision
 * reference, every backward against the analytic gradient in double, which is itself checked by
 * central finite differences of sum(dy * y). Each case runs with 1 and 2 threads (which must
 * agree), accumulates into non-zero gradients, and runs twice from zero (which must double). */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "util/rng.h"
#include "util/suite.h"

#define FWD_TOL 1e-5    /* float op vs double reference, relative to the largest value */
#define BWD_TOL 1e-4
#define THREAD_TOL 1e-6 /* 1 thread vs 2 threads */
#define FD_TOL 1e-6     /* double analytic gradient vs double central differences */
#define FD_H 1e-5
#define MAX_OUTS 8

/* ---- helpers ------------------------------------------------------------------------------ */

static float *fzeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static double *dzeros(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static float *frand(lora_rng *rng, size_t n, double lo, double hi)
{
    float *p = fzeros(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(lo + (hi - lo) * lora__rng_uniform_f64(rng));
    return p;
}

static float *fcopy(const float *a, size_t n)
{
    float *p = fzeros(n);
    memcpy(p, a, n * sizeof *p);
    return p;
}

static double *to_d(const float *a, size_t n)
{
    double *p = dzeros(n);
    for (size_t i = 0; i < n; i++)
        p[i] = a ? a[i] : 0.0;
    return p;
}

/* max |got - want| / max |want| (absolute when want is all zero) */
static double rel_err(const float *got, const double *want, size_t n)
{
    double mref = 0, mdiff = 0;
    for (size_t i = 0; i < n; i++) {
        mref = fmax(mref, fabs(want[i]));
        mdiff = fmax(mdiff, fabs((double)got[i] - want[i]));
    }
    return mdiff / (mref > 0 ? mref : 1);
}

static void check_close(const char *op, const char *what, const float *got, const double *want,
                        size_t n, double tol)
{
    double e = rel_err(got, want, n);
    ck_assert_msg(e <= tol, "%s %s: relative error %.3g > %.1g", op, what, e, tol);
}

static lora_backend *backend(int threads)
{
    lora_backend *be = NULL;
    ck_assert_int_eq(lora__cpu_backend_create(threads, &be), LORA_OK);
    ck_assert_ptr_nonnull(be);
    return be;
}

/* One output of an op case: its contents before the run (owned), the expected contents after
 * (owned), and whether it is a gradient (+=) that two runs from zero must double. */
typedef struct out_spec {
    const char *name;
    size_t n;
    float *init;
    double *want;
    double tol;
    bool accum;
} out_spec;

/* init drawn at random (gradients accumulate into it), want starting as init */
static out_spec out_new(lora_rng *rng, const char *name, size_t n, double tol, bool accum)
{
    out_spec o = {name, n, frand(rng, n, -1, 1), NULL, tol, accum};
    o.want = to_d(o.init, n);
    return o;
}

static void outs_free(out_spec *o, int n)
{
    for (int i = 0; i < n; i++) {
        free(o[i].init);
        free(o[i].want);
    }
}

/* Runs the forward and backward of one op on out[] (initialised from the specs). */
typedef void (*run_fn)(lora_backend *be, const void *ctx, float **out);

static void check_op(const char *op, run_fn run, const void *ctx, const out_spec *o, int n_out)
{
    ck_assert_int_le(n_out, MAX_OUTS);
    float *got[2][MAX_OUTS];
    for (int ti = 0; ti < 2; ti++) {
        lora_backend *be = backend(ti + 1);
        for (int i = 0; i < n_out; i++)
            got[ti][i] = fcopy(o[i].init, o[i].n);
        run(be, ctx, got[ti]);
        lora__cpu_backend_free(be);
    }
    for (int i = 0; i < n_out; i++) {
        check_close(op, o[i].name, got[0][i], o[i].want, o[i].n, o[i].tol);
        double e = tu_max_rel_err(got[1][i], got[0][i], o[i].n);
        ck_assert_msg(e <= THREAD_TOL, "%s %s: 2 threads vs 1: relative difference %.3g", op,
                      o[i].name, e);
    }

    /* accumulation: once from zero, twice from zero; gradients must double exactly enough */
    lora_backend *be = backend(2);
    float *once[MAX_OUTS], *twice[MAX_OUTS];
    for (int i = 0; i < n_out; i++) {
        once[i] = o[i].accum ? fzeros(o[i].n) : fcopy(o[i].init, o[i].n);
        twice[i] = o[i].accum ? fzeros(o[i].n) : fcopy(o[i].init, o[i].n);
    }
    run(be, ctx, once);
    run(be, ctx, twice);
    run(be, ctx, twice);
    lora__cpu_backend_free(be);
    for (int i = 0; i < n_out; i++) {
        if (o[i].accum) {
            double *two = dzeros(o[i].n), *two_f = dzeros(o[i].n);
            for (size_t k = 0; k < o[i].n; k++) {
                two[k] = 2.0 * (o[i].want[k] - (double)o[i].init[k]);
                two_f[k] = 2.0 * (double)once[i][k];
            }
            check_close(op, o[i].name, twice[i], two, o[i].n, o[i].tol);
            double e = rel_err(twice[i], two_f, o[i].n);
            ck_assert_msg(e <= THREAD_TOL, "%s %s: twice is not 2 x once (%.3g)", op, o[i].name,
                          e);
            free(two);
            free(two_f);
        }
        free(once[i]);
        free(twice[i]);
        free(got[0][i]);
        free(got[1][i]);
    }
}

/* Central differences of loss() with respect to every p[i], against the analytic grad. */
typedef double (*loss_fn)(const void *ctx);

static void check_fd(const char *op, const char *what, loss_fn loss, const void *ctx, double *p,
                     size_t n, const double *grad)
{
    double mg = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        double save = p[i], h = FD_H * fmax(1.0, fabs(save));
        p[i] = save + h;
        double lp = loss(ctx);
        p[i] = save - h;
        double lm = loss(ctx);
        p[i] = save;
        double fd = (lp - lm) / (2 * h);
        mg = fmax(mg, fabs(grad[i]));
        md = fmax(md, fabs(fd - grad[i]));
    }
    ck_assert_msg(md <= FD_TOL * (mg > 0 ? mg : 1), "%s %s: finite differences differ by %.3g "
                  "(largest gradient %.3g)", op, what, md, mg);
}

static double dot_d(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- the op table ------------------------------------------------------------------------- */

START_TEST(op_table_complete)
{
    const lora_backend_ops *t = &lora__cpu_ops;
    ck_assert_str_eq(t->name, "cpu");
    ck_assert(t->matmul_fwd && t->matmul_bwd);
    ck_assert(t->embedding_fwd && t->embedding_bwd);
    ck_assert(t->rmsnorm_fwd && t->rmsnorm_bwd);
    ck_assert(t->rope_fwd && t->rope_bwd);
    ck_assert(t->attention_fwd && t->attention_bwd);
    ck_assert(t->swiglu_fwd && t->swiglu_bwd);
    ck_assert(t->lora_fwd && t->lora_bwd);
    ck_assert(t->residual_fwd);
    ck_assert(t->cross_entropy_fwd && t->cross_entropy_bwd);
}
END_TEST

/* ---- matmul ------------------------------------------------------------------------------- */

static void ref_matmul_fwd(double *y, const double *x, const double *w, const double *b,
                           int64_t N, int64_t Nout, int64_t K)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < Nout; o++)
            y[n * Nout + o] = dot_d(x + n * K, w + o * K, (size_t)K) + (b ? b[o] : 0.0);
}

static void ref_matmul_bwd(double *dx, double *dw, double *db, const double *dy, const double *x,
                           const double *w, int64_t N, int64_t Nout, int64_t K)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < Nout; o++) {
            double g = dy[n * Nout + o];
            for (int64_t k = 0; k < K; k++) {
                if (dx)
                    dx[n * K + k] += g * w[o * K + k];
                if (dw)
                    dw[o * K + k] += g * x[n * K + k];
            }
            if (db)
                db[o] += g;
        }
}

typedef struct mm_ctx {
    int64_t N, Nout, K;
    const float *x, *w, *b, *dy;
    int mask; /* 1 dx, 2 dw, 4 dbias */
} mm_ctx;

static void mm_run(lora_backend *be, const void *c, float **o)
{
    const mm_ctx *m = c;
    be->ops->matmul_fwd(be, o[0], m->x, m->w, m->b, m->N, m->Nout, m->K);
    be->ops->matmul_bwd(be, m->mask & 1 ? o[1] : NULL, m->mask & 2 ? o[2] : NULL,
                        m->b && (m->mask & 4) ? o[3] : NULL, m->dy, m->x, m->w, m->N, m->Nout,
                        m->K);
}

typedef struct mm_fd {
    int64_t N, Nout, K;
    double *x, *w, *b, *dy, *y;
} mm_fd;

static double mm_loss(const void *c)
{
    const mm_fd *f = c;
    ref_matmul_fwd(f->y, f->x, f->w, f->b, f->N, f->Nout, f->K);
    return dot_d(f->dy, f->y, (size_t)(f->N * f->Nout));
}

static void matmul_case(int64_t N, int64_t Nout, int64_t K, bool bias, int mask, bool fd)
{
    lora_rng rng;
    lora__rng_seed(&rng, (uint64_t)(N * 1000003 + Nout * 1009 + K * 7 + bias + mask * 31));
    size_t nx = (size_t)(N * K), nw = (size_t)(Nout * K), ny = (size_t)(N * Nout);
    float *x = frand(&rng, nx, -1, 1), *w = frand(&rng, nw, -1, 1), *dy = frand(&rng, ny, -1, 1);
    float *b = bias ? frand(&rng, (size_t)Nout, -1, 1) : NULL;
    double *xd = to_d(x, nx), *wd = to_d(w, nw), *dyd = to_d(dy, ny);
    double *bd = bias ? to_d(b, (size_t)Nout) : NULL;

    out_spec o[4] = {out_new(&rng, "y", ny, FWD_TOL, false),
                     out_new(&rng, "dx", nx, BWD_TOL, true),
                     out_new(&rng, "dw", nw, BWD_TOL, true),
                     out_new(&rng, "dbias", (size_t)Nout, BWD_TOL, true)};
    ref_matmul_fwd(o[0].want, xd, wd, bd, N, Nout, K);
    ref_matmul_bwd(mask & 1 ? o[1].want : NULL, mask & 2 ? o[2].want : NULL,
                   bias && (mask & 4) ? o[3].want : NULL, dyd, xd, wd, N, Nout, K);
    mm_ctx ctx = {N, Nout, K, x, w, b, dy, mask};
    check_op("matmul", mm_run, &ctx, o, bias ? 4 : 3);

    if (fd) {
        double *gx = dzeros(nx), *gw = dzeros(nw), *gb = dzeros((size_t)Nout);
        ref_matmul_bwd(gx, gw, bias ? gb : NULL, dyd, xd, wd, N, Nout, K);
        mm_fd f = {N, Nout, K, xd, wd, bd, dyd, dzeros(ny)};
        check_fd("matmul", "dx", mm_loss, &f, xd, nx, gx);
        check_fd("matmul", "dw", mm_loss, &f, wd, nw, gw);
        if (bias)
            check_fd("matmul", "dbias", mm_loss, &f, bd, (size_t)Nout, gb);
        free(f.y);
        free(gx);
        free(gw);
        free(gb);
    }
    outs_free(o, 4);
    free(x), free(w), free(dy), free(b);
    free(xd), free(wd), free(dyd), free(bd);
}

START_TEST(matmul_small)
{
    for (int bias = 0; bias < 2; bias++) {
        matmul_case(1, 7, 5, bias, 7, true);
        matmul_case(37, 13, 11, bias, 7, true);
    }
}
END_TEST

START_TEST(matmul_null_gradients)
{
    for (int mask = 0; mask < 7; mask++) {
        matmul_case(37, 13, 11, true, mask, false);
        matmul_case(1, 13, 11, true, mask, false);
    }
}
END_TEST

START_TEST(matmul_split_across_threads)
{
    /* above the single-thread cutoff: dx splits over K (or over N when N > K), dw over Nout,
     * all with odd remainders */
    matmul_case(37, 203, 131, true, 7, false);
    matmul_case(150, 97, 61, true, 7, false);
    matmul_case(1, 300, 257, true, 7, false);
    matmul_case(2, 150, 257, false, 7, false);
}
END_TEST

/* ---- embedding ---------------------------------------------------------------------------- */

typedef struct emb_ctx {
    int64_t N, C;
    const int32_t *ids;
    const float *table, *dy;
} emb_ctx;

static void emb_run(lora_backend *be, const void *c, float **o)
{
    const emb_ctx *e = c;
    be->ops->embedding_fwd(be, o[0], e->ids, e->table, e->N, e->C);
    be->ops->embedding_bwd(be, o[1], e->dy, e->ids, e->N, e->C);
}

typedef struct emb_fd {
    int64_t N, C;
    const int32_t *ids;
    double *table;
    const double *dy;
} emb_fd;

static double emb_loss(const void *c)
{
    const emb_fd *f = c;
    double s = 0;
    for (int64_t n = 0; n < f->N; n++)
        s += dot_d(f->dy + n * f->C, f->table + (int64_t)f->ids[n] * f->C, (size_t)f->C);
    return s;
}

static void embedding_case(int64_t N, int64_t C, int64_t V, bool fd)
{
    lora_rng rng;
    lora__rng_seed(&rng, (uint64_t)(N * 31 + C));
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    /* a handful of rows hit many times (id 1 every third token), row V-1 never */
    for (int64_t n = 0; n < N; n++)
        ids[n] = n % 3 == 0 ? 1 : (int32_t)(lora__rng_u64(&rng) % (uint64_t)(V - 1));
    size_t nt = (size_t)(V * C), nx = (size_t)(N * C);
    float *table = frand(&rng, nt, -1, 1), *dy = frand(&rng, nx, -1, 1);
    double *td = to_d(table, nt), *dyd = to_d(dy, nx);
    out_spec o[2] = {out_new(&rng, "x", nx, FWD_TOL, false),
                     out_new(&rng, "dtable", nt, BWD_TOL, true)};
    double *g = dzeros(nt);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            o[0].want[n * C + c] = td[ids[n] * C + c];
            g[ids[n] * C + c] += dyd[n * C + c];
        }
    for (size_t i = 0; i < nt; i++)
        o[1].want[i] += g[i];
    emb_ctx ctx = {N, C, ids, table, dy};
    check_op("embedding", emb_run, &ctx, o, 2);
    if (fd) {
        emb_fd f = {N, C, ids, td, dyd};
        check_fd("embedding", "dtable", emb_loss, &f, td, nt, g);
    }
    outs_free(o, 2);
    free(ids), free(table), free(dy), free(td), free(dyd), free(g);
}

START_TEST(embedding_repeated_ids)
{
    embedding_case(9, 37, 7, true);
}
END_TEST

START_TEST(embedding_split_across_threads)
{
    embedding_case(700, 37, 5, false);  /* columns split in 16s with a remainder */
    embedding_case(3, 6007, 11, false); /* few tokens, wide rows */
}
END_TEST

/* ---- rmsnorm ------------------------------------------------------------------------------ */

static void ref_rmsnorm_fwd(double *y, double *rstd, const double *x, const double *w, int64_t N,
                            int64_t C, double eps)
{
    for (int64_t n = 0; n < N; n++) {
        const double *xr = x + n * C;
        double s = 1.0 / sqrt(dot_d(xr, xr, (size_t)C) / (double)C + eps);
        if (rstd)
            rstd[n] = s;
        for (int64_t c = 0; c < C; c++)
            y[n * C + c] = xr[c] * s * w[c];
    }
}

static void ref_rmsnorm_bwd(double *dx, double *dw, const double *dy, const double *x,
                            const double *w, int64_t N, int64_t C, double eps)
{
    for (int64_t n = 0; n < N; n++) {
        const double *xr = x + n * C, *g = dy + n * C;
        double s = 1.0 / sqrt(dot_d(xr, xr, (size_t)C) / (double)C + eps), gwx = 0;
        for (int64_t c = 0; c < C; c++)
            gwx += g[c] * w[c] * xr[c];
        for (int64_t c = 0; c < C; c++) {
            if (dx)
                dx[n * C + c] += s * w[c] * g[c] - xr[c] * s * s * s * gwx / (double)C;
            if (dw)
                dw[c] += g[c] * xr[c] * s;
        }
    }
}

typedef struct rms_ctx {
    int64_t N, C;
    float eps;
    const float *x, *w, *dy;
    bool with_dw;
} rms_ctx;

static void rms_run(lora_backend *be, const void *c, float **o)
{
    const rms_ctx *r = c;
    be->ops->rmsnorm_fwd(be, o[0], o[1], r->x, r->w, r->N, r->C, r->eps);
    be->ops->rmsnorm_bwd(be, o[2], r->with_dw ? o[3] : NULL, r->dy, r->x, r->w, o[1], r->N, r->C);
}

typedef struct rms_fd {
    int64_t N, C;
    double eps;
    double *x, *w, *dy, *y;
} rms_fd;

static double rms_loss(const void *c)
{
    const rms_fd *f = c;
    ref_rmsnorm_fwd(f->y, NULL, f->x, f->w, f->N, f->C, f->eps);
    return dot_d(f->dy, f->y, (size_t)(f->N * f->C));
}

static void rmsnorm_case(int64_t N, int64_t C, bool with_dw, bool fd)
{
    lora_rng rng;
    lora__rng_seed(&rng, (uint64_t)(N * 131 + C + with_dw));
    float eps = 1e-5f;
    size_t nx = (size_t)(N * C);
    float *x = frand(&rng, nx, -2, 2), *w = frand(&rng, (size_t)C, 0.5, 1.5),
          *dy = frand(&rng, nx, -1, 1);
    double *xd = to_d(x, nx), *wd = to_d(w, (size_t)C), *dyd = to_d(dy, nx);
    out_spec o[4] = {out_new(&rng, "y", nx, FWD_TOL, false),
                     out_new(&rng, "rstd", (size_t)N, FWD_TOL, false),
                     out_new(&rng, "dx", nx, BWD_TOL, true),
                     out_new(&rng, "dw", (size_t)C, BWD_TOL, true)};
    ref_rmsnorm_fwd(o[0].want, o[1].want, xd, wd, N, C, eps);
    ref_rmsnorm_bwd(o[2].want, with_dw ? o[3].want : NULL, dyd, xd, wd, N, C, eps);
    rms_ctx ctx = {N, C, eps, x, w, dy, with_dw};
    check_op("rmsnorm", rms_run, &ctx, o, 4);
    if (fd) {
        double *gx = dzeros(nx), *gw = dzeros((size_t)C);
        ref_rmsnorm_bwd(gx, gw, dyd, xd, wd, N, C, eps);
        rms_fd f = {N, C, eps, xd, wd, dyd, dzeros(nx)};
        check_fd("rmsnorm", "dx", rms_loss, &f, xd, nx, gx);
        check_fd("rmsnorm", "dw", rms_loss, &f, wd, (size_t)C, gw);
        free(f.y), free(gx), free(gw);
    }
    outs_free(o, 4);
    free(x), free(w), free(dy), free(xd), free(wd), free(dyd);
}

START_TEST(rmsnorm_with_and_without_dw)
{
    rmsnorm_case(5, 19, true, true);
    rmsnorm_case(5, 19, false, false);
    rmsnorm_case(1, 6, true, true); /* a q/k-norm shape: one row of head_dim */
}
END_TEST

START_TEST(rmsnorm_split_across_threads)
{
    rmsnorm_case(300, 70, true, false); /* rows split for dx, columns (70 = 64 + 6) for dw */
    rmsnorm_case(2000, 6, true, false); /* q/k norm: many short rows */
}
END_TEST

/* ---- rope --------------------------------------------------------------------------------- */

/* sign +1: the forward rotation; -1: its transpose */
static void ref_rope(double *x, const int32_t *pos, const float *cos, const float *sin,
                     int64_t N, int64_t heads, int64_t D, double sign)
{
    int64_t half = D / 2;
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < heads; h++) {
            double *v = x + (n * heads + h) * D;
            for (int64_t i = 0; i < half; i++) {
                double c = cos[pos[n] * half + i], s = sign * sin[pos[n] * half + i];
                double x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c - x2 * s;
                v[i + half] = x2 * c + x1 * s;
            }
        }
}

typedef struct rope_ctx {
    int64_t N, heads, D;
    const int32_t *pos;
    const float *cos, *sin;
} rope_ctx;

static void rope_run(lora_backend *be, const void *c, float **o)
{
    const rope_ctx *r = c;
    be->ops->rope_fwd(be, o[0], r->pos, r->cos, r->sin, r->N, r->heads, r->D);
    be->ops->rope_bwd(be, o[1], r->pos, r->cos, r->sin, r->N, r->heads, r->D);
}

typedef struct rope_fd {
    const rope_ctx *r;
    double *x, *dy, *y;
    size_t n;
} rope_fd;

static double rope_loss(const void *c)
{
    const rope_fd *f = c;
    memcpy(f->y, f->x, f->n * sizeof *f->y);
    ref_rope(f->y, f->r->pos, f->r->cos, f->r->sin, f->r->N, f->r->heads, f->r->D, 1.0);
    return dot_d(f->dy, f->y, f->n);
}

static void rope_case(int64_t N, int64_t heads, int64_t D, int32_t P, bool fd)
{
    lora_rng rng;
    lora__rng_seed(&rng, (uint64_t)(N * 17 + heads * 5 + D));
    int64_t half = D / 2;
    float *cs = fzeros((size_t)(P * half)), *sn = fzeros((size_t)(P * half));
    for (int32_t p = 0; p < P; p++)
        for (int64_t i = 0; i < half; i++) {
            double a = p * pow(10000.0, -2.0 * (double)i / (double)D);
            cs[p * half + i] = (float)cos(a);
            sn[p * half + i] = (float)sin(a);
        }
    /* mixed positions: out of order, repeated, 0 and the last */
    int32_t *pos = malloc((size_t)N * sizeof *pos);
    ck_assert_ptr_nonnull(pos);
    for (int64_t n = 0; n < N; n++)
        pos[n] = n == 0 ? P - 1 : n == 1 ? 0 : (int32_t)(lora__rng_u64(&rng) % (uint64_t)P);
    size_t nx = (size_t)(N * heads * D);
    out_spec o[2] = {out_new(&rng, "x rotated", nx, FWD_TOL, false),
                     out_new(&rng, "dx rotated back", nx, BWD_TOL, false)};
    ref_rope(o[0].want, pos, cs, sn, N, heads, D, 1.0);
    ref_rope(o[1].want, pos, cs, sn, N, heads, D, -1.0);
    rope_ctx ctx = {N, heads, D, pos, cs, sn};
    check_op("rope", rope_run, &ctx, o, 2);
    if (fd) {
        rope_fd f = {&ctx, to_d(o[0].init, nx), to_d(o[1].init, nx), dzeros(nx), nx};
        double *g = to_d(o[1].init, nx);
        ref_rope(g, pos, cs, sn, N, heads, D, -1.0);
        check_fd("rope", "dx", rope_loss, &f, f.x, nx, g);
        free(f.x), free(f.dy), free(f.y), free(g);
    }
    outs_free(o, 2);
    free(cs), free(sn), free(pos);
}

START_TEST(rope_mixed_positions)
{
    rope_case(6, 3, 8, 11, true);
    rope_case(5, 1, 2, 4, true);
}
END_TEST

START_TEST(rope_split_across_threads)
{
    rope_case(500, 3, 8, 64, false);
}
END_TEST

/* ---- attention ---------------------------------------------------------------------------- */

/* probabilities of query row (b, t, h) over keys 0..n_keys-1 (0 before its first visible key) */
static int64_t ref_probs(double *p, const double *q, const double *k,
                         const lora_attention_shape *s, int64_t b, int64_t t, int64_t h)
{
    int64_t kvh = h / (s->H / s->KVH), n_keys = s->pos0 + t + 1;
    int64_t k0 = s->key0 ? s->key0[b * s->T + t] : 0;
    const double *qr = q + ((b * s->T + t) * s->H + h) * s->D;
    double m = -INFINITY, z = 0;
    for (int64_t j = 0; j < n_keys; j++) {
        p[j] = dot_d(qr, k + ((b * s->S + j) * s->KVH + kvh) * s->D, (size_t)s->D) * s->scale;
        if (j >= k0)
            m = fmax(m, p[j]);
    }
    for (int64_t j = 0; j < n_keys; j++)
        z += p[j] = j >= k0 ? exp(p[j] - m) : 0.0;
    for (int64_t j = 0; j < n_keys; j++)
        p[j] /= z;
    return n_keys;
}

static void ref_attention_fwd(double *out, const double *q, const double *k, const double *v,
                              const lora_attention_shape *s)
{
    double *p = dzeros((size_t)(s->pos0 + s->T));
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t t = 0; t < s->T; t++)
            for (int64_t h = 0; h < s->H; h++) {
                int64_t n_keys = ref_probs(p, q, k, s, b, t, h), kvh = h / (s->H / s->KVH);
                double *o = out + ((b * s->T + t) * s->H + h) * s->D;
                for (int64_t d = 0; d < s->D; d++) {
                    o[d] = 0;
                    for (int64_t j = 0; j < n_keys; j++)
                        o[d] += p[j] * v[((b * s->S + j) * s->KVH + kvh) * s->D + d];
                }
            }
    free(p);
}

static void ref_attention_bwd(double *dq, double *dk, double *dv, const double *dout,
                              const double *q, const double *k, const double *v,
                              const lora_attention_shape *s)
{
    int64_t D = s->D;
    double *p = dzeros((size_t)(s->pos0 + s->T)), *dp = dzeros((size_t)(s->pos0 + s->T));
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t t = 0; t < s->T; t++)
            for (int64_t h = 0; h < s->H; h++) {
                int64_t n_keys = ref_probs(p, q, k, s, b, t, h), kvh = h / (s->H / s->KVH);
                int64_t row = ((b * s->T + t) * s->H + h) * D;
                const double *g = dout + row, *qr = q + row;
                double delta = 0;
                for (int64_t j = 0; j < n_keys; j++) {
                    dp[j] = dot_d(g, v + ((b * s->S + j) * s->KVH + kvh) * D, (size_t)D);
                    delta += p[j] * dp[j];
                }
                for (int64_t j = 0; j < n_keys; j++) {
                    int64_t kv = ((b * s->S + j) * s->KVH + kvh) * D;
                    double ds = p[j] * (dp[j] - delta) * s->scale;
                    for (int64_t d = 0; d < D; d++) {
                        if (dq)
                            dq[row + d] += ds * k[kv + d];
                        if (dk)
                            dk[kv + d] += ds * qr[d];
                        if (dv)
                            dv[kv + d] += p[j] * g[d];
                    }
                }
            }
    free(p);
    free(dp);
}

typedef struct att_ctx {
    lora_attention_shape s;
    const float *q, *k, *v, *dout;
    int mask; /* 1 dq, 2 dk, 4 dv */
} att_ctx;

static void att_run(lora_backend *be, const void *c, float **o)
{
    const att_ctx *a = c;
    be->ops->attention_fwd(be, o[0], a->q, a->k, a->v, &a->s);
    be->ops->attention_bwd(be, a->mask & 1 ? o[1] : NULL, a->mask & 2 ? o[2] : NULL,
                           a->mask & 4 ? o[3] : NULL, a->dout, a->q, a->k, a->v, &a->s);
}

typedef struct att_fd {
    const lora_attention_shape *s;
    double *q, *k, *v, *dout, *out;
    size_t n;
} att_fd;

static double att_loss(const void *c)
{
    const att_fd *f = c;
    ref_attention_fwd(f->out, f->q, f->k, f->v, f->s);
    return dot_d(f->dout, f->out, f->n);
}

static void attention_case_key0(int64_t B, int64_t T, int64_t S, int64_t H, int64_t KVH,
                                int64_t D, int64_t pos0, int mask, bool fd, const int32_t *key0)
{
    lora_rng rng;
    lora__rng_seed(&rng, (uint64_t)(B * 7 + T * 11 + S * 13 + pos0 * 17 + mask));
    lora_attention_shape s = {B, T, S, H, KVH, D, pos0, (float)(1.0 / sqrt((double)D)), key0,
                             NULL};
    size_t nq = (size_t)(B * T * H * D), nkv = (size_t)(B * S * KVH * D);
    /* spread wide enough that the softmax is far from uniform */
    float *q = frand(&rng, nq, -2, 2), *k = frand(&rng, nkv, -2, 2), *v = frand(&rng, nkv, -1, 1),
          *dout = frand(&rng, nq, -1, 1);
    double *qd = to_d(q, nq), *kd = to_d(k, nkv), *vd = to_d(v, nkv), *dod = to_d(dout, nq);
    /* dk, dv rows past pos0 + T - 1 (the unfilled KV cache) must keep their initial values */
    out_spec o[4] = {out_new(&rng, "out", nq, FWD_TOL, false),
                     out_new(&rng, "dq", nq, BWD_TOL, true),
                     out_new(&rng, "dk", nkv, BWD_TOL, true),
                     out_new(&rng, "dv", nkv, BWD_TOL, true)};
    ref_attention_fwd(o[0].want, qd, kd, vd, &s);
    ref_attention_bwd(mask & 1 ? o[1].want : NULL, mask & 2 ? o[2].want : NULL,
                      mask & 4 ? o[3].want : NULL, dod, qd, kd, vd, &s);
    att_ctx ctx = {s, q, k, v, dout, mask};
    check_op("attention", att_run, &ctx, o, 4);
    if (fd) {
        double *gq = dzeros(nq), *gk = dzeros(nkv), *gv = dzeros(nkv);
        ref_attention_bwd(gq, gk, gv, dod, qd, kd, vd, &s);
        att_fd f = {&s, qd, kd, vd, dod, dzeros(nq), nq};
        check_fd("attention", "dq", att_loss, &f, qd, nq, gq);
        check_fd("attention", "dk", att_loss, &f, kd, nkv, gk);
        check_fd("attention", "dv", att_loss, &f, vd, nkv, gv);
        free(f.out), free(gq), free(gk), free(gv);
    }
    outs_free(o, 4);
    free(q), free(k), free(v), free(dout), free(qd), free(kd), free(vd), free(dod);
}

static void attention_case(int64_t B, int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D,
                           int64_t pos0, int mask, bool fd)
{
    attention_case_key0(B, T, S, H, KVH, D, pos0, mask, fd, NULL);
}

/* Packed rows: samples of the given lengths laid end to end in each of B rows; every query
 * sees only the keys of its own sample. */
static void attention_packed(int64_t B, int64_t T, int64_t H, int64_t KVH, int64_t D,
                             const int *lens, int n_lens, int mask, bool fd)
{
    int32_t *key0 = malloc((size_t)(B * T) * sizeof *key0);
    for (int64_t b = 0; b < B; b++) {
        int64_t t = 0;
        for (int i = 0; t < T; i = (i + 1) % n_lens) {
            int64_t start = t;
            for (int j = 0; j < lens[(i + b) % n_lens] && t < T; j++, t++)
                key0[b * T + t] = (int32_t)start;
        }
    }
    attention_case_key0(B, T, T, H, KVH, D, 0, mask, fd, key0);
    free(key0);
}

START_TEST(attention_packed_rows)
{
    const int lens[] = {3, 1, 5, 2};
    attention_packed(2, 11, 4, 2, 6, lens, 4, 7, true);          /* the row form */
    const int long_lens[] = {40, 9, 70, 1, 23};
    attention_packed(2, 150, 4, 2, 8, long_lens, 5, 7, false);   /* blocked products */
    const int tiny[] = {17, 2};
    for (int mask = 0; mask < 8; mask++)
        attention_packed(1, 19, 2, 1, 4, tiny, 2, mask, false);
    const int fd_lens[] = {7, 11};
    attention_packed(1, 18, 2, 2, 4, fd_lens, 2, 7, true);
}
END_TEST

START_TEST(attention_gqa_batch)
{
    attention_case(2, 5, 5, 4, 2, 6, 0, 7, true);
}
END_TEST

START_TEST(attention_kv_cache_layout)
{
    attention_case(1, 2, 16, 4, 2, 6, 3, 7, true);
    attention_case(2, 1, 9, 4, 1, 6, 8, 7, true); /* decode step, one kv head for all */
}
END_TEST

START_TEST(attention_null_gradients)
{
    for (int mask = 0; mask < 7; mask++)
        attention_case(2, 5, 7, 4, 2, 6, 1, mask, false);
}
END_TEST

/* Inverted dropout: about p of the entries are zeroed, the rest scaled by 1/(1-p); the
 * backward applies the very same mask; rows and modules draw different masks. */
START_TEST(dropout_masks)
{
    enum { N = 64, W = 1000 };
    lora_backend *be;
    ck_assert_int_eq(lora__cpu_backend_create(2, &be), LORA_OK);
    float *ones = malloc(N * W * sizeof *ones), *y = malloc(N * W * sizeof *y);
    float *dx = calloc(N * W, sizeof *dx), *other = malloc(N * W * sizeof *other);
    for (int i = 0; i < N * W; i++)
        ones[i] = 1.0f;
    const float p = 0.3f;
    be->ops->dropout_fwd(be, y, ones, N, W, p, 11, 3);
    be->ops->dropout_bwd(be, dx, ones, N, W, p, 11, 3);
    be->ops->dropout_fwd(be, other, ones, N, W, p, 11, 4);
    int zeros = 0, same_as_other = 0;
    for (int i = 0; i < N * W; i++) {
        ck_assert(y[i] == 0.0f || fabsf(y[i] - 1.0f / 0.7f) < 1e-6f);
        ck_assert(dx[i] == y[i]); /* the backward's mask is the forward's */
        zeros += y[i] == 0.0f;
        same_as_other += (y[i] == 0.0f) == (other[i] == 0.0f);
    }
    ck_assert_msg(fabs(zeros / (double)(N * W) - p) < 0.01, "dropped %g", zeros / (double)(N * W));
    ck_assert(same_as_other < N * W * 0.7); /* another module: another mask (~58% agree) */
    ck_assert(memcmp(y, y + W, W * sizeof *y) != 0); /* rows differ */
    free(ones);
    free(y);
    free(dx);
    free(other);
    lora__cpu_backend_free(be);
}
END_TEST

/* T >= 16 takes the blocked matrix-product path: more than one 64-query block, the KV-cache
 * layout with a position offset, every NULL-gradient combination, finite differences. */
START_TEST(attention_blocked_products)
{
    attention_case(2, 70, 70, 4, 2, 8, 0, 7, false);
    attention_case(1, 20, 40, 4, 2, 8, 13, 7, false);
    for (int mask = 0; mask < 8; mask++)
        attention_case(1, 17, 17, 2, 1, 4, 0, mask, false);
    attention_case(1, 18, 18, 2, 2, 4, 0, 7, true);
}
END_TEST

START_TEST(attention_split_across_threads)
{
    attention_case(2, 24, 24, 4, 2, 16, 0, 7, false);
    attention_case(3, 7, 40, 6, 3, 8, 20, 7, false);
}
END_TEST

/* ---- swiglu ------------------------------------------------------------------------------- */

typedef struct swi_ctx {
    int64_t N, I;
    const float *gate, *up, *dh;
    int mask; /* 1 dgate, 2 dup */
} swi_ctx;

static void swi_run(lora_backend *be, const void *c, float **o)
{
    const swi_ctx *s = c;
    be->ops->swiglu_fwd(be, o[0], s->gate, s->up, s->N, s->I);
    be->ops->swiglu_bwd(be, s->mask & 1 ? o[1] : NULL, s->mask & 2 ? o[2] : NULL, s->dh, s->gate,
                        s->up, s->N, s->I);
}

static double silu_d(double g) { return g / (1.0 + exp(-g)); }

typedef struct swi_fd {
    size_t n;
    double *g, *u, *dh;
} swi_fd;

static double swi_loss(const void *c)
{
    const swi_fd *f = c;
    double s = 0;
    for (size_t i = 0; i < f->n; i++)
        s += f->dh[i] * silu_d(f->g[i]) * f->u[i];
    return s;
}

static void swiglu_case(int64_t N, int64_t I, int mask, bool fd)
{
    lora_rng rng;
    lora__rng_seed(&rng, (uint64_t)(N * 3 + I + mask));
    size_t n = (size_t)(N * I);
    /* gates into both saturated tails of the sigmoid */
    float *g = frand(&rng, n, -12, 12), *u = frand(&rng, n, -1, 1), *dh = frand(&rng, n, -1, 1);
    double *gd = to_d(g, n), *ud = to_d(u, n), *dhd = to_d(dh, n);
    out_spec o[3] = {out_new(&rng, "h", n, FWD_TOL, false),
                     out_new(&rng, "dgate", n, BWD_TOL, true),
                     out_new(&rng, "dup", n, BWD_TOL, true)};
    double *gg = dzeros(n), *gu = dzeros(n);
    for (size_t i = 0; i < n; i++) {
        double sg = 1.0 / (1.0 + exp(-gd[i]));
        o[0].want[i] = silu_d(gd[i]) * ud[i];
        gg[i] = dhd[i] * ud[i] * sg * (1.0 + gd[i] * (1.0 - sg));
        gu[i] = dhd[i] * silu_d(gd[i]);
        if (mask & 1)
            o[1].want[i] += gg[i];
        if (mask & 2)
            o[2].want[i] += gu[i];
    }
    swi_ctx ctx = {N, I, g, u, dh, mask};
    check_op("swiglu", swi_run, &ctx, o, 3);
    if (fd) {
        swi_fd f = {n, gd, ud, dhd};
        check_fd("swiglu", "dgate", swi_loss, &f, gd, n, gg);
        check_fd("swiglu", "dup", swi_loss, &f, ud, n, gu);
    }
    outs_free(o, 3);
    free(g), free(u), free(dh), free(gd), free(ud), free(dhd), free(gg), free(gu);
}

START_TEST(swiglu_small)
{
    swiglu_case(7, 13, 3, true);
    swiglu_case(7, 13, 1, false);
    swiglu_case(7, 13, 2, false);
}
END_TEST

START_TEST(swiglu_split_across_threads)
{
    swiglu_case(37, 300, 3, false);
}
END_TEST

/* ---- cross-entropy ------------------------------------------------------------------------ */

typedef struct ce_ctx {
    int64_t N, V;
    const float *logits, *dnll;
    const int32_t *targets;
} ce_ctx;

static void ce_run(lora_backend *be, const void *c, float **o)
{
    const ce_ctx *e = c;
    be->ops->cross_entropy_fwd(be, o[0], o[1], e->logits, e->targets, e->N, e->V);
    be->ops->cross_entropy_bwd(be, o[2], e->logits, o[1], e->targets, e->dnll, e->N, e->V);
}

static double ref_lse(const double *l, int64_t V)
{
    double m = l[0], z = 0;
    for (int64_t v = 1; v < V; v++)
        m = fmax(m, l[v]);
    for (int64_t v = 0; v < V; v++)
        z += exp(l[v] - m);
    return m + log(z);
}

typedef struct ce_fd {
    int64_t N, V;
    double *logits;
    const double *dnll;
    const int32_t *targets;
} ce_fd;

static double ce_loss(const void *c)
{
    const ce_fd *f = c;
    double s = 0;
    for (int64_t n = 0; n < f->N; n++)
        if (f->targets[n] != -100)
            s += f->dnll[n] * (ref_lse(f->logits + n * f->V, f->V) -
                               f->logits[n * f->V + f->targets[n]]);
    return s;
}

static void cross_entropy_case(int64_t N, int64_t V, bool fd)
{
    lora_rng rng;
    lora__rng_seed(&rng, (uint64_t)(N * 5 + V));
    size_t nl = (size_t)(N * V);
    float *logits = frand(&rng, nl, -4, 4), *dnll = frand(&rng, (size_t)N, 0.5, 1.5);
    for (int64_t v = 0; v < V; v++)
        logits[2 * V + v] += 60.0f; /* row 2 would overflow a naive exp in float */
    int32_t *targets = malloc((size_t)N * sizeof *targets);
    ck_assert_ptr_nonnull(targets);
    /* -100 every third row from row 1; the first and last class as targets */
    for (int64_t n = 0; n < N; n++)
        targets[n] = n % 3 == 1 ? -100
                     : n == 0   ? 0
                     : n == 3   ? (int32_t)V - 1
                                : (int32_t)(lora__rng_u64(&rng) % (uint64_t)V);
    double *ld = to_d(logits, nl), *dnd = to_d(dnll, (size_t)N);
    out_spec o[3] = {out_new(&rng, "nll", (size_t)N, FWD_TOL, false),
                     out_new(&rng, "lse", (size_t)N, FWD_TOL, false),
                     out_new(&rng, "dlogits", nl, BWD_TOL, true)};
    double *g = dzeros(nl);
    for (int64_t n = 0; n < N; n++) {
        const double *l = ld + n * V;
        double lse = ref_lse(l, V);
        o[1].want[n] = lse;
        o[0].want[n] = targets[n] == -100 ? 0.0 : lse - l[targets[n]];
        if (targets[n] == -100)
            continue; /* the -100 rows' gradients must stay as they were */
        for (int64_t v = 0; v < V; v++)
            g[n * V + v] = dnd[n] * (exp(l[v] - lse) - (v == targets[n]));
    }
    for (size_t i = 0; i < nl; i++)
        o[2].want[i] += g[i];
    ce_ctx ctx = {N, V, logits, dnll, targets};
    check_op("cross_entropy", ce_run, &ctx, o, 3);
    if (fd) {
        ce_fd f = {N, V, ld, dnd, targets};
        check_fd("cross_entropy", "dlogits", ce_loss, &f, ld, nl, g);
    }
    outs_free(o, 3);
    free(logits), free(dnll), free(targets), free(ld), free(dnd), free(g);
}

START_TEST(cross_entropy_ignored_rows)
{
    cross_entropy_case(6, 11, true);
}
END_TEST

START_TEST(cross_entropy_split_across_threads)
{
    cross_entropy_case(40, 1000, false);
}
END_TEST

/* ---- fused LoRA --------------------------------------------------------------------------- */

/* y += scale * (x A^T) B^T, t = x A^T */
static void ref_lora_fwd(double *y, double *t, const double *x, const double *A, const double *B,
                         int64_t N, int64_t in, int64_t r, int64_t out, double scale)
{
    for (int64_t n = 0; n < N; n++) {
        for (int64_t i = 0; i < r; i++)
            t[n * r + i] = dot_d(x + n * in, A + i * in, (size_t)in);
        for (int64_t o = 0; o < out; o++)
            y[n * out + o] += scale * dot_d(t + n * r, B + o * r, (size_t)r);
    }
}

static void ref_lora_bwd(double *dx, double *dA, double *dB, double *u, const double *dy,
                         const double *x, const double *A, const double *B, int64_t N, int64_t in,
                         int64_t r, int64_t out, double scale)
{
    double *t = dzeros((size_t)r);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t i = 0; i < r; i++) {
            double s = 0;
            for (int64_t o = 0; o < out; o++)
                s += dy[n * out + o] * B[o * r + i];
            u[n * r + i] = scale * s;
            t[i] = dot_d(x + n * in, A + i * in, (size_t)in);
        }
        for (int64_t i = 0; i < r; i++)
            for (int64_t k = 0; k < in; k++) {
                if (dx)
                    dx[n * in + k] += u[n * r + i] * A[i * in + k];
                if (dA)
                    dA[i * in + k] += u[n * r + i] * x[n * in + k];
            }
        if (dB)
            for (int64_t o = 0; o < out; o++)
                for (int64_t i = 0; i < r; i++)
                    dB[o * r + i] += scale * dy[n * out + o] * t[i];
    }
    free(t);
}

typedef struct lora_ctx {
    int64_t N, in, r, out;
    float scale;
    const float *x, *A, *B, *dy;
    int mask; /* 1 dx, 2 dA, 4 dB */
} lora_ctx;

/* outputs: y, t, dx, dA, dB, u; u is NULL when neither dx nor dA is wanted (it is their
 * intermediate only) */
static void lora_run(lora_backend *be, const void *c, float **o)
{
    const lora_ctx *l = c;
    be->ops->lora_fwd(be, o[0], o[1], l->x, l->A, l->B, l->N, l->in, l->r, l->out, l->scale);
    be->ops->lora_bwd(be, l->mask & 1 ? o[2] : NULL, l->mask & 2 ? o[3] : NULL,
                      l->mask & 4 ? o[4] : NULL, l->mask & 3 ? o[5] : NULL, l->dy, l->x, o[1],
                      l->A, l->B, l->N, l->in, l->r, l->out, l->scale);
}

typedef struct lora_fd {
    int64_t N, in, r, out;
    double scale;
    double *x, *A, *B, *dy, *y, *t;
} lora_fd;

static double lora_loss(const void *c)
{
    const lora_fd *f = c;
    memset(f->y, 0, (size_t)(f->N * f->out) * sizeof *f->y);
    ref_lora_fwd(f->y, f->t, f->x, f->A, f->B, f->N, f->in, f->r, f->out, f->scale);
    return dot_d(f->dy, f->y, (size_t)(f->N * f->out));
}

static void lora_case(int64_t N, int64_t in, int64_t r, int64_t out, int mask, bool fd)
{
    lora_rng rng;
    lora__rng_seed(&rng, (uint64_t)(N * 7 + in * 3 + r + out * 5 + mask));
    float scale = 0.75f;
    size_t nx = (size_t)(N * in), nA = (size_t)(r * in), nB = (size_t)(out * r),
           ny = (size_t)(N * out), nt = (size_t)(N * r);
    float *x = frand(&rng, nx, -1, 1), *A = frand(&rng, nA, -1, 1), *B = frand(&rng, nB, -1, 1),
          *dy = frand(&rng, ny, -1, 1);
    double *xd = to_d(x, nx), *Ad = to_d(A, nA), *Bd = to_d(B, nB), *dyd = to_d(dy, ny);
    out_spec o[6] = {out_new(&rng, "y", ny, FWD_TOL, true),
                     out_new(&rng, "t", nt, FWD_TOL, false),
                     out_new(&rng, "dx", nx, BWD_TOL, true),
                     out_new(&rng, "dA", nA, BWD_TOL, true),
                     out_new(&rng, "dB", nB, BWD_TOL, true),
                     out_new(&rng, "u", nt, BWD_TOL, false)};
    ref_lora_fwd(o[0].want, o[1].want, xd, Ad, Bd, N, in, r, out, scale);
    double *u = dzeros(nt);
    ref_lora_bwd(mask & 1 ? o[2].want : NULL, mask & 2 ? o[3].want : NULL,
                 mask & 4 ? o[4].want : NULL, u, dyd, xd, Ad, Bd, N, in, r, out, scale);
    if (mask & 3)
        memcpy(o[5].want, u, nt * sizeof *u);
    lora_ctx ctx = {N, in, r, out, scale, x, A, B, dy, mask};
    check_op("lora", lora_run, &ctx, o, 6);
    if (fd) {
        double *gx = dzeros(nx), *gA = dzeros(nA), *gB = dzeros(nB);
        ref_lora_bwd(gx, gA, gB, u, dyd, xd, Ad, Bd, N, in, r, out, scale);
        lora_fd f = {N, in, r, out, scale, xd, Ad, Bd, dyd, dzeros(ny), dzeros(nt)};
        check_fd("lora", "dx", lora_loss, &f, xd, nx, gx);
        check_fd("lora", "dA", lora_loss, &f, Ad, nA, gA);
        check_fd("lora", "dB", lora_loss, &f, Bd, nB, gB);
        free(f.y), free(f.t), free(gx), free(gA), free(gB);
    }
    outs_free(o, 6);
    free(u), free(x), free(A), free(B), free(dy), free(xd), free(Ad), free(Bd), free(dyd);
}

/* The fused pair against the same path built from matmul_fwd / matmul_bwd. */
static void lora_vs_unfused(int64_t N, int64_t in, int64_t r, int64_t out, int threads)
{
    lora_rng rng;
    lora__rng_seed(&rng, (uint64_t)(N + in + r + out));
    float scale = 2.0f;
    size_t nx = (size_t)(N * in), nA = (size_t)(r * in), nB = (size_t)(out * r),
           ny = (size_t)(N * out), nt = (size_t)(N * r);
    float *x = frand(&rng, nx, -1, 1), *A = frand(&rng, nA, -1, 1), *B = frand(&rng, nB, -1, 1),
          *dy = frand(&rng, ny, -1, 1), *y0 = frand(&rng, ny, -1, 1);
    lora_backend *be = backend(threads);
    const lora_backend_ops *op = be->ops;

    float *y = fcopy(y0, ny), *t = fzeros(nt), *u = fzeros(nt);
    float *dx = fzeros(nx), *dA = fzeros(nA), *dB = fzeros(nB);
    op->lora_fwd(be, y, t, x, A, B, N, in, r, out, scale);
    op->lora_bwd(be, dx, dA, dB, u, dy, x, t, A, B, N, in, r, out, scale);

    float *t2 = fzeros(nt), *z = fzeros(ny), *u2 = fzeros(nt);
    float *dx2 = fzeros(nx), *dA2 = fzeros(nA), *dB2 = fzeros(nB);
    op->matmul_fwd(be, t2, x, A, NULL, N, r, in);  // t (N, r) = x @ A^T
    op->matmul_fwd(be, z, t2, B, NULL, N, out, r); // z (N, out) = t @ B^T
    double *yw = dzeros(ny);
    for (size_t i = 0; i < ny; i++)
        yw[i] = (double)y0[i] + (double)scale * z[i];
    op->matmul_bwd(be, u2, NULL, NULL, dy, NULL, B, N, out, r); // u = dy @ B
    for (size_t i = 0; i < nt; i++)
        u2[i] *= scale;
    op->matmul_bwd(be, dx2, dA2, NULL, u2, x, A, N, r, in); // dx = u @ A, dA = u^T @ x
    op->matmul_bwd(be, NULL, dB2, NULL, dy, t2, B, N, out, r); // dB = dy^T @ t
    double *tw = to_d(t2, nt), *uw = to_d(u2, nt), *dxw = to_d(dx2, nx), *dAw = to_d(dA2, nA),
           *dBw = dzeros(nB);
    for (size_t i = 0; i < nB; i++)
        dBw[i] = (double)scale * dB2[i];
    check_close("lora vs unfused", "y", y, yw, ny, FWD_TOL);
    check_close("lora vs unfused", "t", t, tw, nt, FWD_TOL);
    check_close("lora vs unfused", "u", u, uw, nt, FWD_TOL);
    check_close("lora vs unfused", "dx", dx, dxw, nx, FWD_TOL);
    check_close("lora vs unfused", "dA", dA, dAw, nA, FWD_TOL);
    check_close("lora vs unfused", "dB", dB, dBw, nB, FWD_TOL);

    lora__cpu_backend_free(be);
    free(x), free(A), free(B), free(dy), free(y0), free(y), free(t), free(u), free(dx), free(dA);
    free(dB), free(t2), free(z), free(u2), free(dx2), free(dA2), free(dB2), free(yw), free(tw);
    free(uw), free(dxw), free(dAw), free(dBw);
}

START_TEST(lora_against_reference)
{
    lora_case(37, 19, 4, 23, 7, true);
    lora_case(1, 19, 4, 23, 7, true); /* one token: decode */
    lora_case(5, 8, 1, 3, 7, true);   /* rank 1 */
}
END_TEST

START_TEST(lora_null_gradients)
{
    for (int mask = 0; mask < 7; mask++)
        lora_case(37, 19, 4, 23, mask, false);
}
END_TEST

START_TEST(lora_against_unfused)
{
    for (int threads = 1; threads <= 2; threads++) {
        lora_vs_unfused(37, 19, 4, 23, threads);
        lora_vs_unfused(1, 64, 8, 48, threads);
        lora_vs_unfused(200, 96, 8, 80, threads);
    }
}
END_TEST

START_TEST(lora_split_across_threads)
{
    /* rows split for t, y, u, dx; dA columns and dB rows split in one pass, across the seam */
    lora_case(200, 96, 8, 80, 7, false);
    lora_case(203, 77, 16, 131, 7, false);
    lora_case(3, 2000, 16, 1500, 7, false);
}
END_TEST

/* ---- suite -------------------------------------------------------------------------------- */

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_set_timeout(core, 60);
    tcase_add_test(core, op_table_complete);
    tcase_add_test(core, matmul_small);
    tcase_add_test(core, matmul_null_gradients);
    tcase_add_test(core, embedding_repeated_ids);
    tcase_add_test(core, rmsnorm_with_and_without_dw);
    tcase_add_test(core, rope_mixed_positions);
    tcase_add_test(core, attention_gqa_batch);
    tcase_add_test(core, attention_kv_cache_layout);
    tcase_add_test(core, attention_null_gradients);
    tcase_add_test(core, attention_packed_rows);
    tcase_add_test(core, swiglu_small);
    tcase_add_test(core, cross_entropy_ignored_rows);
    tcase_add_test(core, lora_against_reference);
    tcase_add_test(core, lora_null_gradients);
    tcase_add_test(core, lora_against_unfused);
    suite_add_tcase(s, core);

    /* sizes past each op's single-thread cutoff, so 2 threads really split the work */
    TCase *lim = tcase_create("limits");
    tcase_set_tags(lim, "limits");
    tcase_set_timeout(lim, 120);
    tcase_add_test(lim, matmul_split_across_threads);
    tcase_add_test(lim, embedding_split_across_threads);
    tcase_add_test(lim, rmsnorm_split_across_threads);
    tcase_add_test(lim, rope_split_across_threads);
    tcase_add_test(lim, attention_split_across_threads);
    tcase_add_test(lim, attention_blocked_products);
    tcase_add_test(lim, dropout_masks);
    tcase_add_test(lim, swiglu_split_across_threads);
    tcase_add_test(lim, cross_entropy_split_across_threads);
    tcase_add_test(lim, lora_split_across_threads);
    suite_add_tcase(s, lim);
    return s;
}

int main(void) { return tu_run_suite(ops_suite()); }
