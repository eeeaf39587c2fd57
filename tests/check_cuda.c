/* The CUDA backend (cuda/) against the CPU backend, op by op: fresh random inputs of several
 * shapes, the GPU's result within float32 (FP32 math) or bfloat16 (BF16 math, the products'
 * inputs rounded) bounds of the CPU's, every value finite, and every output element written
 * (outputs start as NaN on the device). Gradients accumulate into random values on both sides;
 * what the CPU leaves untouched (ignored rows, keys no query sees) must stay bit for bit.
 *
 * The "gpu" cases need a CUDA device: without one each prints "skipped: no CUDA device: NAME"
 * (tests/run_checks.sh counts those lines) and is not run. The "core" cases run on any build
 * with the backend: device names, the cuBLASLt entry points, and what a machine without a GPU
 * answers. The device is probed in a child process: CUDA initialised before Check forks cannot
 * be used in the forked test processes. */
#include <check.h>
#include <stdio.h>

#include "util/cuda_probe.h"
#include "util/suite.h"

#ifdef LORA_CUDA
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cuda/backend_cuda.h"
#include "cuda/internal.h"
#include "lora.h"
#include "model/dtype.h"
#include "sample/sampler.h"
#include "train/optim.h"
#include "util/rng.h"

#define QWEN2 "tests/fixtures/tiny-qwen2"
#define FP32_TOL 2e-5   /* float32 on both sides, summed in other orders */
#define BF16_TOL 1.2e-2 /* products of bfloat16-rounded inputs (8 bits of mantissa) */
#define ARENA ((size_t)64 << 20) /* room for every case; the CUDA emulator fills it, so no more */

/* ---- helpers ------------------------------------------------------------------------------ */

static int n_devices; /* from the probe in main */

typedef struct rig {
    lora_backend *cpu, *gpu;
    lora_rng rng;
} rig;

static rig rig_open(lora_cuda_math math, uint64_t seed)
{
    rig r;
    ck_assert_msg(lora__cpu_backend_create(2, &r.cpu) == LORA_OK, "%s", lora_last_error());
    ck_assert_msg(lora__cuda_backend_create(0, math, &r.gpu) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_msg(lora__cuda_arena_plan(r.gpu, ARENA) == LORA_OK, "%s", lora_last_error());
    lora__rng_seed(&r.rng, seed);
    return r;
}

static void rig_close(rig *r)
{
    ck_assert_msg(lora__cuda_sync(r->gpu) == LORA_OK, "%s", lora_last_error());
    lora__cuda_backend_free(r->gpu);
    lora__cpu_backend_free(r->cpu);
}

static float *frand(rig *r, size_t n, double lo, double hi)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(lo + (hi - lo) * lora__rng_uniform_f64(&r->rng));
    return p;
}

static float *fdup(const float *a, size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    memcpy(p, a, n * sizeof *p);
    return p;
}

static void *dev_take(rig *r, size_t bytes)
{
    void *d;
    ck_assert_msg(lora__cuda_arena_take(r->gpu, bytes ? bytes : 1, &d) == LORA_OK, "%s",
                  lora_last_error());
    return d;
}

/* a device copy of host values */
static void *dev(rig *r, const void *h, size_t bytes)
{
    void *d = dev_take(r, bytes);
    ck_assert_msg(lora__cuda_upload(r->gpu, d, h, bytes) == LORA_OK, "%s", lora_last_error());
    return d;
}

/* n device floats that are all NaN (0xFF bytes): an element an op does not write stays NaN */
static float *dev_nan(rig *r, size_t n)
{
    float *d = dev_take(r, n * sizeof *d);
    ck_assert_msg(lora__cuda_fill(r->gpu, d, 0xFF, n * sizeof *d) == LORA_OK, "%s",
                  lora_last_error());
    return d;
}

/* bytes of device memory, synchronised and checked, in a malloc'd host buffer */
static void *host_bytes(rig *r, const void *d, size_t bytes)
{
    void *h = malloc(bytes ? bytes : 1);
    ck_assert_ptr_nonnull(h);
    ck_assert_msg(lora__cuda_download(r->gpu, h, d, bytes) == LORA_OK, "%s", lora_last_error());
    return h;
}

/* n device floats, or bfloat16 values, on the host */
static float *host(rig *r, const float *d, size_t n) { return host_bytes(r, d, n * 4); }
static uint16_t *host16(rig *r, const void *d, size_t n) { return host_bytes(r, d, n * 2); }

/* GPU values against the CPU's: all finite (so all written), then max |g - c| / max |c| */
static void expect_close(const char *op, const char *what, const float *g, const float *c,
                         size_t n, double tol)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(isfinite(g[i]), "%s %s: element %zu of %zu is %g (not written, or not "
                      "finite)", op, what, i, n, g[i]);
    double e = tu_max_rel_err(g, c, n);
    ck_assert_msg(e <= tol, "%s %s: relative error %.3g > %.3g (%zu values)", op, what, e, tol,
                  n);
}

/* the bfloat16 values d16 (n, device) are to_bf16's rounding of the float32 values src (n,
 * device), bit for bit */
static void expect_rounding(rig *r, const char *op, const char *what, const lora_bf16 *d16,
                            const float *src, size_t n)
{
    lora_bf16 *want = dev_take(r, n * 2);
    lora__cuda_ops.to_bf16(r->gpu, want, src, n);
    uint16_t *a = host16(r, want, n), *b = host16(r, d16, n);
    ck_assert_msg(memcmp(a, b, n * 2) == 0, "%s: %s is not its float32 values rounded", op, what);
    free(a), free(b);
}

/* downloads d, compares with c, frees the host copy */
static void expect_dev(rig *r, const char *op, const char *what, const float *d, const float *c,
                       size_t n, double tol)
{
    float *g = host(r, d, n);
    expect_close(op, what, g, c, n, tol);
    free(g);
}

static void expect_same_bits(const char *op, const char *what, const float *g, const float *c,
                             size_t n)
{
    ck_assert_msg(memcmp(g, c, n * sizeof *g) == 0, "%s %s: values that must not change did",
                  op, what);
}

/* n values rounded to bfloat16 (the host's rounding): the bits in *half (malloc'd), the values
 * they stand for returned (malloc'd) */
static float *round_bf16(const float *a, size_t n, uint16_t **half)
{
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    float *w = malloc((n ? n : 1) * sizeof *w);
    ck_assert(h && w);
    lora__bf16_from_f32_n(h, a, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)h[i] << 16;
        memcpy(&w[i], &u, sizeof u);
    }
    *half = h;
    return w;
}

static const char *math_name(lora_cuda_math m)
{
    return m == LORA_CUDA_MATH_BF16 ? "bf16" : "fp32";
}

/* ---- matmul ------------------------------------------------------------------------------- */

static void matmul_case(lora_cuda_math math, int64_t N, int64_t Nout, int64_t K, bool bias)
{
    rig r = rig_open(math, (uint64_t)(N * 1000003 + Nout * 1009 + K));
    double tol = math == LORA_CUDA_MATH_BF16 ? BF16_TOL : FP32_TOL;
    size_t nx = (size_t)(N * K), nw = (size_t)(Nout * K), ny = (size_t)(N * Nout);
    float *x = frand(&r, nx, -1, 1), *w = frand(&r, nw, -1, 1), *b = frand(&r, (size_t)Nout, -1, 1);
    float *dy = frand(&r, ny, -1, 1), *dx = frand(&r, nx, -1, 1), *dw = frand(&r, nw, -1, 1);
    float *db = frand(&r, (size_t)Nout, -1, 1), *y = malloc(ny * sizeof *y);
    float *d_x = dev(&r, x, nx * 4), *d_w = dev(&r, w, nw * 4), *d_b = dev(&r, b, (size_t)Nout * 4);
    float *d_dy = dev(&r, dy, ny * 4), *d_dx = dev(&r, dx, nx * 4), *d_dw = dev(&r, dw, nw * 4);
    float *d_db = dev(&r, db, (size_t)Nout * 4), *d_y = dev_nan(&r, ny);
    char what[96];
    snprintf(what, sizeof what, "(%s N=%lld Nout=%lld K=%lld bias=%d)", math_name(math),
             (long long)N, (long long)Nout, (long long)K, bias);

    lora__cpu_matmul_fwd(r.cpu, y, x, w, bias ? b : NULL, N, Nout, K);
    lora__cuda_ops.matmul_fwd(r.gpu, d_y, d_x, d_w, bias ? d_b : NULL, N, Nout, K);
    expect_dev(&r, "matmul_fwd", what, d_y, y, ny, tol);

    lora__cpu_matmul_bwd(r.cpu, dx, dw, bias ? db : NULL, dy, x, w, N, Nout, K);
    lora__cuda_ops.matmul_bwd(r.gpu, d_dx, d_dw, bias ? d_db : NULL, d_dy, d_x, d_w, N, Nout, K);
    expect_dev(&r, "matmul_bwd dx", what, d_dx, dx, nx, tol);
    expect_dev(&r, "matmul_bwd dw", what, d_dw, dw, nw, tol);
    expect_dev(&r, "matmul_bwd dbias", what, d_db, db, (size_t)Nout, FP32_TOL);

    /* NULL gradients are skipped: dw alone */
    float *dw2 = fdup(dw, nw);
    lora__cpu_matmul_bwd(r.cpu, NULL, dw2, NULL, dy, x, w, N, Nout, K);
    lora__cuda_ops.matmul_bwd(r.gpu, NULL, d_dw, NULL, d_dy, d_x, d_w, N, Nout, K);
    expect_dev(&r, "matmul_bwd dw only", what, d_dw, dw2, nw, tol);

    free(x), free(w), free(b), free(dy), free(dx), free(dw), free(db), free(y), free(dw2);
    rig_close(&r);
}

START_TEST(matmul_fp32)
{
    matmul_case(LORA_CUDA_MATH_FP32, 1, 7, 5, true);
    matmul_case(LORA_CUDA_MATH_FP32, 3, 33, 17, false);
    matmul_case(LORA_CUDA_MATH_FP32, 64, 96, 128, true);
    matmul_case(LORA_CUDA_MATH_FP32, 130, 257, 70, true);
}
END_TEST

START_TEST(matmul_bf16)
{
    matmul_case(LORA_CUDA_MATH_BF16, 1, 7, 5, true);
    matmul_case(LORA_CUDA_MATH_BF16, 37, 200, 96, true);
    matmul_case(LORA_CUDA_MATH_BF16, 256, 512, 896, false);
}
END_TEST

/* ---- matmul with a bfloat16 weight ------------------------------------------------------- */

/* Against two CPU products: on the rounded operands (the same products, float32 sums in another
 * order: float32 bounds) and on the float32 originals (bfloat16 bounds). */
static void matmul_bf16w_case(int64_t N, int64_t Nout, int64_t K, bool bias)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, (uint64_t)(N * 31 + Nout * 7 + K));
    size_t nx = (size_t)(N * K), nw = (size_t)(Nout * K), ny = (size_t)(N * Nout);
    float *x = frand(&r, nx, -1, 1), *w = frand(&r, nw, -1, 1), *b = frand(&r, (size_t)Nout, -1, 1);
    float *dy = frand(&r, ny, -1, 1), *dx = frand(&r, nx, -1, 1), *y = malloc(ny * 4);
    uint16_t *wh, *xh, *dyh;
    float *wr = round_bf16(w, nw, &wh), *xr = round_bf16(x, nx, &xh), *dyr = round_bf16(dy, ny, &dyh);
    float *d_x = dev(&r, x, nx * 4), *d_b = dev(&r, b, (size_t)Nout * 4), *d_y = dev_nan(&r, ny);
    float *d_dy = dev(&r, dy, ny * 4), *d_dx = dev(&r, dx, nx * 4);
    lora_bf16 *d_w = dev(&r, wh, nw * 2);
    char what[96];
    snprintf(what, sizeof what, "(N=%lld Nout=%lld K=%lld bias=%d)", (long long)N,
             (long long)Nout, (long long)K, bias);

    lora__cuda_ops.matmul_bf16_fwd(r.gpu, d_y, d_x, d_w, bias ? d_b : NULL, N, Nout, K);
    float *g = host(&r, d_y, ny);
    lora__cpu_matmul_fwd(r.cpu, y, xr, wr, bias ? b : NULL, N, Nout, K);
    expect_close("matmul_bf16_fwd (rounded operands)", what, g, y, ny, 5 * FP32_TOL);
    lora__cpu_matmul_fwd(r.cpu, y, x, w, bias ? b : NULL, N, Nout, K);
    expect_close("matmul_bf16_fwd", what, g, y, ny, BF16_TOL);
    free(g);

    float *dx2 = fdup(dx, nx);
    lora__cuda_ops.matmul_bf16_bwd(r.gpu, d_dx, d_dy, NULL, d_w, N, Nout, K, true);
    g = host(&r, d_dx, nx);
    lora__cpu_matmul_bwd(r.cpu, dx, NULL, NULL, dyr, xr, wr, N, Nout, K);
    expect_close("matmul_bf16_bwd dx (rounded operands)", what, g, dx, nx, 5 * FP32_TOL);
    lora__cpu_matmul_bwd(r.cpu, dx2, NULL, NULL, dy, x, w, N, Nout, K);
    expect_close("matmul_bf16_bwd dx", what, g, dx2, nx, BF16_TOL);
    free(g);
    /* not accumulating: dx written (it starts as NaN), the product alone */
    float *d_dx0 = dev_nan(&r, nx), *dx0 = calloc(nx, 4);
    lora__cuda_ops.matmul_bf16_bwd(r.gpu, d_dx0, d_dy, NULL, d_w, N, Nout, K, false);
    lora__cpu_matmul_bwd(r.cpu, dx0, NULL, NULL, dyr, xr, wr, N, Nout, K);
    g = host(&r, d_dx0, nx);
    expect_close("matmul_bf16_bwd dx written", what, g, dx0, nx, 5 * FP32_TOL);
    free(dx0);
    /* dy given rounded (dy16), no float32 dy: the same product bit for bit */
    float *d_dx16 = dev_nan(&r, nx);
    lora_bf16 *d_dy16 = dev(&r, dyh, ny * 2);
    lora__cuda_ops.matmul_bf16_bwd(r.gpu, d_dx16, NULL, d_dy16, d_w, N, Nout, K, false);
    float *g16 = host(&r, d_dx16, nx);
    expect_same_bits("matmul_bf16_bwd with dy16", what, g16, g, nx);
    free(g16);

    free(x), free(w), free(b), free(dy), free(dx), free(dx2), free(y), free(g);
    free(wh), free(xh), free(dyh), free(wr), free(xr), free(dyr);
    rig_close(&r);
}

START_TEST(matmul_bf16_weight)
{
    matmul_bf16w_case(1, 7, 5, true);
    matmul_bf16w_case(3, 33, 17, false);
    matmul_bf16w_case(37, 200, 96, true);
    matmul_bf16w_case(256, 512, 896, false);
    matmul_bf16w_case(5, 1000, 64, false); /* an output-head chunk shape */
    /* decoding's rows (matvec.cu): 16-byte weight loads where K is a multiple of 8 */
    matmul_bf16w_case(1, 300, 896, true);
    matmul_bf16w_case(8, 65, 2048, false);
    matmul_bf16w_case(9, 40, 64, true);    /* one row past them: cuBLASLt */
}
END_TEST

/* the cached plan of the product (m = Nout, n = N) with the bias epilogue, or NULL */
static const lora_gemm_plan *bias_plan(const lora_cuda *cu, int64_t N, int64_t Nout)
{
    for (int i = 0; cu->gemm.e && i < LORA_GEMM_PLANS; i++) {
        const lora_gemm_entry *e = &cu->gemm.e[i];
        if (e->live && e->key.epilogue == CUBLASLT_EPILOGUE_BIAS && e->key.m == Nout &&
            e->key.n == N)
            return &e->plan;
    }
    return NULL;
}

/* y = x w^T + bias with the bias from the product's epilogue (a 16-byte aligned bias), from
 * the rows set first (one float further on: 4-byte alignment) and, on the emulator, where the
 * heuristic offers no algorithm with the epilogue (a plan of none, cached): the same values,
 * every element written, float32 (w float32) and bfloat16 (w bfloat16) products alike. */
static void bias_epilogue_case(int64_t N, int64_t Nout, int64_t K, bool half)
{
    rig r = rig_open(half ? LORA_CUDA_MATH_BF16 : LORA_CUDA_MATH_FP32,
                     (uint64_t)(N * 17 + Nout + K));
    lora_cuda *cu = r.gpu->impl;
    size_t nx = (size_t)(N * K), nw = (size_t)(Nout * K), ny = (size_t)(N * Nout);
    float *x = frand(&r, nx, -1, 1), *w = frand(&r, nw, -1, 1);
    float *b = frand(&r, (size_t)Nout + 1, -1, 1), *y = malloc(ny * 4);
    uint16_t *wh, *xh;
    float *wr = round_bf16(w, nw, &wh), *xr = round_bf16(x, nx, &xh);
    float *d_x = dev(&r, x, nx * 4), *d_w = dev(&r, w, nw * 4), *d_b = dev(&r, b, (Nout + 1) * 4);
    lora_bf16 *d_wh = dev(&r, wh, nw * 2);
    ck_assert_uint_eq((uintptr_t)d_b % 16, 0);
    char what[96];
    snprintf(what, sizeof what, "(N=%lld Nout=%lld K=%lld %s)", (long long)N, (long long)Nout,
             (long long)K, half ? "bf16 weight" : "float32");
    const char *how[] = {"epilogue", "bias rows first", "no epilogue algorithm"};
    int ways = tu_cuda_emulated() ? 3 : 2;
    for (int way = 0; way < ways; way++) {
        const float *bias = d_b + (way == 1);
        lora__cpu_matmul_fwd(r.cpu, y, half ? xr : x, half ? wr : w, b + (way == 1), N, Nout, K);
        if (way == 2) {
            lora__cuda_gemm_free(cu); /* the epilogue's plan built again, with the heuristic */
            setenv("LORA_CUDA_EMU_NO_EPILOGUE", "1", 1);
        }
        float *d_y = dev_nan(&r, ny);
        if (half)
            lora__cuda_ops.matmul_bf16_fwd(r.gpu, d_y, d_x, d_wh, bias, N, Nout, K);
        else
            lora__cuda_ops.matmul_fwd(r.gpu, d_y, d_x, d_w, bias, N, Nout, K);
        unsetenv("LORA_CUDA_EMU_NO_EPILOGUE");
        char label[64];
        snprintf(label, sizeof label, "matmul with a bias (%s)", how[way]);
        expect_dev(&r, label, what, d_y, y, ny, half ? 5 * FP32_TOL : FP32_TOL);
        const lora_gemm_plan *p = bias_plan(cu, N, Nout);
        if (way == 0)
            ck_assert_msg(p && !p->none, "%s: no plan with the bias epilogue", what);
        if (way == 2)
            ck_assert_msg(p && p->none, "%s: the epilogue's missing algorithm is not cached",
                          what);
    }
    free(x), free(w), free(b), free(y), free(wh), free(xh), free(wr), free(xr);
    rig_close(&r);
}

START_TEST(matmul_bias_epilogue)
{
    bias_epilogue_case(37, 200, 96, false);
    bias_epilogue_case(37, 200, 96, true);
    bias_epilogue_case(130, 24, 70, true);
}
END_TEST

/* the device rounding: the host's bits, for ties, both signs, overflow, subnormals, NaN */
/* Recording and replaying: a recorded op runs at each launch on the memory as it is then; a
 * recording whose op would grow the op scratch fails and leaves the backend usable; a graph
 * recorded before the scratch moved is refused at launch. */
START_TEST(graph_record_replay)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, 97);
    const lora_backend_ops *op = &lora__cuda_ops;
    size_t n = 1000;
    float *a = frand(&r, n, -1, 1);
    uint16_t *want, *got = malloc(n * 2);
    float *d_a = dev(&r, a, n * 4);
    lora_bf16 *d_h = dev_take(&r, n * 2);
    lora_graph *g = NULL;
    ck_assert_msg(op->graph_begin(r.gpu) == LORA_OK, "%s", lora_last_error());
    op->to_bf16(r.gpu, d_h, d_a, n);
    ck_assert_msg(op->graph_end(r.gpu, &g) == LORA_OK, "%s", lora_last_error());
    ck_assert_ptr_nonnull(g);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < n; i++)
            a[i] = (float)k + a[i] * 0.5f;
        float *wv = round_bf16(a, n, &want);
        ck_assert(lora__cuda_upload(r.gpu, d_a, a, n * 4) == LORA_OK);
        ck_assert_msg(op->graph_launch(r.gpu, g) == LORA_OK, "%s", lora_last_error());
        ck_assert(lora__cuda_download(r.gpu, got, d_h, n * 2) == LORA_OK);
        ck_assert_msg(memcmp(got, want, n * 2) == 0, "launch %d: not the current input's", k);
        free(wv), free(want);
    }
    /* an op that needs more scratch than there is: the recording fails, nothing breaks */
    int64_t N = 64, K = 4096, M = 8;
    float *d_x = dev_take(&r, (size_t)(N * K) * 4), *d_y = dev_take(&r, (size_t)(N * M) * 4);
    lora_bf16 *d_w = dev_take(&r, (size_t)(M * K) * 2);
    ck_assert(lora__cuda_fill(r.gpu, d_x, 0, (size_t)(N * K) * 4) == LORA_OK);
    ck_assert(lora__cuda_fill(r.gpu, d_w, 0, (size_t)(M * K) * 2) == LORA_OK);
    lora_graph *bad = NULL;
    ck_assert(op->graph_begin(r.gpu) == LORA_OK);
    op->matmul_bf16_fwd(r.gpu, d_y, d_x, d_w, NULL, N, M, K);
    ck_assert_int_eq(op->graph_end(r.gpu, &bad), LORA_ERR_STATE);
    ck_assert_ptr_null(bad);
    ck_assert_msg(strstr(lora_last_error(), "scratch"), "%s", lora_last_error());
    ck_assert_int_eq(op->sync(r.gpu), LORA_OK);
    /* the same op, run: the scratch moves, and the first graph is stale */
    op->matmul_bf16_fwd(r.gpu, d_y, d_x, d_w, NULL, N, M, K);
    ck_assert_int_eq(op->sync(r.gpu), LORA_OK);
    ck_assert_int_eq(op->graph_launch(r.gpu, g), LORA_ERR_STATE);
    op->graph_free(r.gpu, g);
    free(a), free(got);
    rig_close(&r);
}
END_TEST

/* the KV cache's writes: each token's row at its own position of its sequence, rounded as on
 * the host, every other row of the cache untouched */
START_TEST(kv_store_at_positions)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, 98);
    const int64_t B = 2, T = 3, S = 10, row = 5;
    int32_t pos[6] = {4, 5, 6, 0, 1, 2};
    size_t nc = (size_t)(B * S * row), ns = (size_t)(B * T * row);
    float *src = frand(&r, ns, -1, 1);
    uint16_t *want = malloc(nc * 2), *got = malloc(nc * 2);
    for (size_t i = 0; i < nc; i++)
        want[i] = 0x7fc1; /* a NaN the writes never make */
    float *d_src = dev(&r, src, ns * 4);
    int32_t *d_pos = dev(&r, pos, sizeof pos);
    lora_bf16 *d_cache = dev(&r, want, nc * 2);
    for (int64_t t = 0; t < B * T; t++)
        for (int64_t j = 0; j < row; j++)
            want[((t / T) * S + pos[t]) * row + j] = lora__bf16_from_f32(src[t * row + j]);
    lora__cuda_ops.kv_store_bf16(r.gpu, d_cache, d_src, d_pos, B, T, S, row);
    ck_assert_msg(lora__cuda_download(r.gpu, got, d_cache, nc * 2) == LORA_OK, "%s",
                  lora_last_error());
    for (size_t i = 0; i < nc; i++)
        ck_assert_msg(got[i] == want[i], "cache value %zu: 0x%04x, want 0x%04x", i, got[i],
                      want[i]);
    free(src), free(want), free(got);
    rig_close(&r);
}
END_TEST

/* SwiGLU over bfloat16 gate and up: bit for bit widening them first and taking the float32
 * ops, the backward writing what swiglu_bwd adds into zeros; and the forward that keeps them
 * (swiglu_keep_fwd): swiglu_fwd's h, with the host's rounding of both, and h rounded as
 * to_bf16 rounds it (the down projection's input) */
START_TEST(swiglu_bf16_matches_widened)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, 94);
    const lora_backend_ops *op = &lora__cuda_ops;
    const int64_t N = 7, I = 333;
    size_t n = (size_t)(N * I);
    float *g = frand(&r, n, -6, 6), *u = frand(&r, n, -2, 2), *dh = frand(&r, n, -1, 1);
    float *acc = calloc(n, 4);
    uint16_t *gh, *uh;
    free(round_bf16(g, n, &gh));
    free(round_bf16(u, n, &uh));
    lora_bf16 *d_g16 = dev(&r, gh, n * 2), *d_u16 = dev(&r, uh, n * 2);
    float *d_g = dev_nan(&r, n), *d_u = dev_nan(&r, n), *d_dh = dev(&r, dh, n * 4);
    op->from_bf16(r.gpu, d_g, d_g16, n);
    op->from_bf16(r.gpu, d_u, d_u16, n);
    float *h1 = dev_nan(&r, n), *h2 = dev_nan(&r, n);
    op->swiglu_fwd(r.gpu, h1, d_g, d_u, N, I);
    op->swiglu_bf16_fwd(r.gpu, h2, d_g16, d_u16, N, I);
    /* the training forward's pass over float32 gate and up: swiglu_fwd's h, and both rounded */
    float *d_gf = dev(&r, g, n * 4), *d_uf = dev(&r, u, n * 4), *hk = dev_nan(&r, n);
    float *hf = dev_nan(&r, n);
    lora_bf16 *g16 = dev_take(&r, n * 2), *u16 = dev_take(&r, n * 2);
    lora_bf16 *h16 = dev_take(&r, n * 2);
    op->swiglu_keep_fwd(r.gpu, hk, h16, g16, u16, d_gf, d_uf, N, I);
    op->swiglu_fwd(r.gpu, hf, d_gf, d_uf, N, I);
    float *a_k = host(&r, hk, n), *a_f = host(&r, hf, n);
    expect_same_bits("swiglu_keep_fwd", "h", a_k, a_f, n);
    expect_rounding(&r, "swiglu_keep_fwd", "h16", h16, hf, n);
    uint16_t *k16[2] = {host16(&r, g16, n), host16(&r, u16, n)}, *src16[2] = {gh, uh};
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(memcmp(k16[i], src16[i], n * 2) == 0, "swiglu_keep_fwd: %s not rounded "
                      "as the host rounds", i ? "up" : "gate");
        free(k16[i]);
    }
    free(a_k), free(a_f);
    float *dg1 = dev(&r, acc, n * 4), *dg2 = dev_nan(&r, n);
    float *du1 = dev(&r, acc, n * 4), *du2 = dev_nan(&r, n);
    op->swiglu_bwd(r.gpu, dg1, du1, d_dh, d_g, d_u, N, I);
    lora_bf16 *dg16 = dev_take(&r, n * 2), *du16 = dev_take(&r, n * 2);
    op->swiglu_bf16_bwd(r.gpu, dg2, du2, dg16, du16, d_dh, d_g16, d_u16, N, I);
    const float *want[3] = {h1, dg1, du1}, *got[3] = {h2, dg2, du2};
    const char *what[3] = {"h", "dgate", "dup"};
    for (int i = 0; i < 3; i++) {
        float *a = host(&r, want[i], n), *b = host(&r, got[i], n);
        for (size_t e = 0; e < n; e++)
            ck_assert_msg(isfinite(b[e]), "%s[%zu] not written", what[i], e);
        expect_same_bits("swiglu_bf16", what[i], b, a, n);
        free(a), free(b);
    }
    /* the gate and up products' dy16: dgate and dup rounded as to_bf16 rounds them */
    expect_rounding(&r, "swiglu_bf16_bwd", "dgate16", dg16, dg2, n);
    expect_rounding(&r, "swiglu_bf16_bwd", "dup16", du16, du2, n);
    free(g), free(u), free(dh), free(acc), free(gh), free(uh);
    rig_close(&r);
}
END_TEST

/* SwiGLU with the gate and up projections' LoRA up-products in its pass
 * (swiglu_lora_keep_fwd), against the host: each sum gate + scale (sum_j t B) with lora_fwd's
 * small kernels' fused multiply-adds, so gate16 and up16 bit for bit the host's rounding of
 * it, and h bit for bit swiglu_fwd's over those sums; ranks across the kernel's tiles of 16,
 * rows across its tiles of 32, with a side without LoRA */
static void swiglu_lora_case(int64_t N, int64_t I, int64_t rk, bool up_adapted)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, (uint64_t)(N * 17 + I + rk * 3 + up_adapted));
    const lora_backend_ops *op = &lora__cuda_ops;
    size_t n = (size_t)(N * I), nt = (size_t)(rk * N), nb = (size_t)(I * rk);
    float *g = frand(&r, n, -4, 4), *u = frand(&r, n, -2, 2), *t[2], *B[2];
    const float scale[2] = {0.75f, 1.5f};
    lora_lora_up lu = {.r = rk};
    for (int sd = 0; sd < 2; sd++) {
        t[sd] = frand(&r, nt, -1, 1), B[sd] = frand(&r, nb, -0.5, 0.5);
        if (sd == 1 && !up_adapted)
            continue;
        lu.t[sd] = dev(&r, t[sd], nt * 4), lu.B[sd] = dev(&r, B[sd], nb * 4);
        lu.scale[sd] = scale[sd];
    }
    float *sums[2] = {malloc(n * 4), malloc(n * 4)}, *in[2] = {g, u};
    for (int sd = 0; sd < 2; sd++)
        for (int64_t k = 0; k < N; k++)
            for (int64_t i = 0; i < I; i++) {
                float acc = 0.0f, v = in[sd][k * I + i];
                for (int64_t j = 0; j < rk && lu.t[sd]; j++)
                    acc = fmaf(t[sd][j * N + k], B[sd][i * rk + j], acc);
                sums[sd][k * I + i] = lu.t[sd] ? v + scale[sd] * acc : v;
            }
    float *d_g = dev(&r, g, n * 4), *d_u = dev(&r, u, n * 4), *h = dev_nan(&r, n);
    lora_bf16 *h16 = dev_take(&r, n * 2), *g16 = dev_take(&r, n * 2), *u16 = dev_take(&r, n * 2);
    op->swiglu_lora_keep_fwd(r.gpu, h, h16, g16, u16, d_g, d_u, &lu, N, I);
    float *d_sg = dev(&r, sums[0], n * 4), *d_su = dev(&r, sums[1], n * 4), *hw = dev_nan(&r, n);
    op->swiglu_fwd(r.gpu, hw, d_sg, d_su, N, I);
    char what[80];
    snprintf(what, sizeof what, "(N=%lld I=%lld r=%lld up=%d)", (long long)N, (long long)I,
             (long long)rk, up_adapted);
    float *got = host(&r, h, n), *want = host(&r, hw, n);
    expect_same_bits("swiglu_lora_keep_fwd h", what, got, want, n);
    expect_rounding(&r, "swiglu_lora_keep_fwd gate16 (the host's sums)", what, g16, d_sg, n);
    expect_rounding(&r, "swiglu_lora_keep_fwd up16 (the host's sums)", what, u16, d_su, n);
    expect_rounding(&r, "swiglu_lora_keep_fwd h16", what, h16, hw, n);
    free(got), free(want), free(g), free(u), free(sums[0]), free(sums[1]);
    for (int sd = 0; sd < 2; sd++)
        free(t[sd]), free(B[sd]);
    rig_close(&r);
}

START_TEST(swiglu_lora_fused)
{
    swiglu_lora_case(5, 200, 4, true);
    swiglu_lora_case(37, 333, 16, true);
    swiglu_lora_case(70, 160, 20, false);
    swiglu_lora_case(33, 129, 8, true);
}
END_TEST

/* greedy decoding's argmax on the device: the host sampler's first largest value over rows of
 * several lengths, ties, signed zeros and infinities; a NaN or a row of -inf flagged; the token
 * and the position after the staged one fed to the staged pair where asked */
START_TEST(argmax_matches_host)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, 95);
    const int64_t lens[] = {1, 1023, 1025, 151936};
    int32_t *d_out = dev_take(&r, 8), got[2];
    for (int c = 0; c < 10; c++) {
        int64_t n = c < 4 ? lens[c] : 3000;
        float *x = frand(&r, (size_t)n, -5, 5);
        int64_t want = -1;
        int flag = 0;
        switch (c) {
        case 4: x[7] = x[2000] = 9.0f; break;               /* a tie: the first */
        case 5: for (int64_t i = 0; i < n; i++) x[i] = -1.0f; x[9] = -0.0f; x[3] = 0.0f; break;
        case 6: x[2999] = INFINITY; x[1500] = INFINITY; break;
        case 7: x[100] = NAN; flag = 1; break;
        case 8: for (int64_t i = 0; i < n; i++) x[i] = -INFINITY; flag = 1; break;
        case 9: for (int64_t i = 0; i < n; i++) x[i] = -INFINITY; x[2500] = -1e30f; break;
        default: break;
        }
        double *w = malloc((size_t)n * sizeof *w);
        for (int64_t i = 0; i < n; i++)
            w[i] = x[i];
        want = (int64_t)lora__argmax(w, (size_t)n);
        float *d_x = dev(&r, x, (size_t)n * 4);
        /* odd cases feed the token to a staged [id, position] whose position is read there */
        int32_t staged[2] = {-7, 40 + c}, fed[2];
        int32_t *d_feed = c % 2 ? dev(&r, staged, sizeof staged) : NULL;
        lora__cuda_ops.argmax(r.gpu, d_out, d_x, n, d_feed, d_feed ? d_feed + 1 : NULL);
        ck_assert(lora__cuda_download(r.gpu, got, d_out, sizeof got) == LORA_OK);
        ck_assert_msg(got[1] == flag, "case %d: flag %d, want %d", c, got[1], flag);
        if (!flag)
            ck_assert_msg(got[0] == want, "case %d (n %lld): argmax %d on the GPU, %lld on the "
                          "host", c, (long long)n, got[0], (long long)want);
        if (d_feed) {
            ck_assert(lora__cuda_download(r.gpu, fed, d_feed, sizeof fed) == LORA_OK);
            ck_assert_msg(fed[0] == got[0] && fed[1] == 41 + c, "case %d: fed [%d, %d], want "
                          "[%d, %d]", c, fed[0], fed[1], got[0], 41 + c);
        }
        free(x), free(w);
    }
    rig_close(&r);
}
END_TEST

/* a decoding step's RoPE and cache writes in one op: q, k and both caches bit for bit what
 * rope_fwd twice and kv_store_bf16 twice give, the cache rows not written untouched; with the
 * q and v LoRA up-products left to it (k without LoRA), bit for bit those ops over the host's
 * sums (lora_fwd's small kernels' fused multiply-adds) at any number of rows: a thread per
 * element at a few, qkv_keep.cu's tiles past them */
static void rope_kv_store_case(int64_t B, int64_t T, int64_t rk)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, (uint64_t)(97 + B * T + rk));
    const lora_backend_ops *op = &lora__cuda_ops;
    const int64_t H = 4, KVH = 2, D = 6, S = T + 4, P = S;
    size_t N = (size_t)(B * T), nq = N * H * D, nk = N * KVH * D, nc = (size_t)(B * S) * KVH * D;
    int32_t *pos = malloc(N * 4);
    for (size_t n = 0; n < N; n++)
        pos[n] = (int32_t)(n % (size_t)T) + (n / (size_t)T == 0 ? 4 : 0);
    float *y[3] = {frand(&r, nq, -1, 1), frand(&r, nk, -1, 1), frand(&r, nk, -1, 1)};
    float *cs = frand(&r, (size_t)(P * D / 2), -1, 1), *sn = frand(&r, (size_t)(P * D / 2), -1, 1);
    uint16_t *fill = malloc(nc * 2);
    for (size_t i = 0; i < nc; i++)
        fill[i] = 0x7fc1;
    int32_t *d_pos = dev(&r, pos, N * 4);
    float *d_cs = dev(&r, cs, (size_t)(P * D / 2) * 4), *d_sn = dev(&r, sn, (size_t)(P * D / 2) * 4);
    const size_t len[3] = {nq, nk, nk};
    const int64_t width[3] = {H * D, KVH * D, KVH * D};
    const float scale[3] = {0.75f, 0.0f, 1.5f};
    lora_lora_up lu = {.r = rk};
    float *one[3], *two[3];
    for (int sd = 0; sd < 3; sd++) {
        float *want = malloc(len[sd] * 4);
        memcpy(want, y[sd], len[sd] * 4);
        if (rk && sd != 1) {
            size_t nt = (size_t)rk * N, nb = (size_t)(width[sd] * rk);
            float *t = frand(&r, nt, -1, 1), *Bm = frand(&r, nb, -0.5, 0.5);
            lu.t[sd] = dev(&r, t, nt * 4), lu.B[sd] = dev(&r, Bm, nb * 4);
            lu.scale[sd] = scale[sd];
            for (size_t n = 0; n < N; n++)
                for (int64_t c = 0; c < width[sd]; c++) {
                    float acc = 0.0f;
                    for (int64_t j = 0; j < rk; j++)
                        acc = fmaf(t[(size_t)j * N + n], Bm[c * rk + j], acc);
                    want[n * (size_t)width[sd] + (size_t)c] += scale[sd] * acc;
                }
            free(t), free(Bm);
        }
        one[sd] = dev(&r, want, len[sd] * 4), two[sd] = dev(&r, y[sd], len[sd] * 4);
        free(want);
    }
    lora_bf16 *kc1 = dev(&r, fill, nc * 2), *vc1 = dev(&r, fill, nc * 2);
    lora_bf16 *kc2 = dev(&r, fill, nc * 2), *vc2 = dev(&r, fill, nc * 2);
    op->rope_fwd(r.gpu, one[0], d_pos, d_cs, d_sn, (int64_t)N, H, D);
    op->rope_fwd(r.gpu, one[1], d_pos, d_cs, d_sn, (int64_t)N, KVH, D);
    op->kv_store_bf16(r.gpu, kc1, one[1], d_pos, B, T, S, KVH * D);
    op->kv_store_bf16(r.gpu, vc1, one[2], d_pos, B, T, S, KVH * D);
    op->rope_kv_store_bf16(r.gpu, two[0], two[1], two[2], kc2, vc2, rk ? &lu : NULL, d_pos,
                           d_cs, d_sn, B, T, S, H, KVH, D);
    char what[64];
    snprintf(what, sizeof what, "(B=%lld T=%lld r=%lld)", (long long)B, (long long)T,
             (long long)rk);
    for (int sd = 0; sd < 2; sd++) {
        float *a = host(&r, one[sd], len[sd]), *b = host(&r, two[sd], len[sd]);
        expect_same_bits("rope_kv_store_bf16", sd ? "k" : "q", b, a, len[sd]);
        free(a), free(b);
    }
    uint16_t *c1 = malloc(nc * 2), *c2 = malloc(nc * 2);
    lora_bf16 *caches[2][2] = {{kc1, kc2}, {vc1, vc2}};
    size_t stored = 0;
    for (int c = 0; c < 2; c++) {
        ck_assert(lora__cuda_download(r.gpu, c1, caches[c][0], nc * 2) == LORA_OK);
        ck_assert(lora__cuda_download(r.gpu, c2, caches[c][1], nc * 2) == LORA_OK);
        ck_assert_msg(memcmp(c1, c2, nc * 2) == 0, "%s %s cache differs", what, c ? "v" : "k");
        for (size_t i = 0; i < nc; i++)
            stored += c2[i] != 0x7fc1;
    }
    ck_assert_uint_eq(stored, 2 * nk); /* every row of k and v, nothing else */
    for (int sd = 0; sd < 3; sd++)
        free(y[sd]);
    free(pos), free(cs), free(sn), free(fill), free(c1), free(c2);
    rig_close(&r);
}

START_TEST(rope_kv_store_fused)
{
    rope_kv_store_case(2, 3, 0);
    rope_kv_store_case(1, 1, 16);
    rope_kv_store_case(2, 3, 5);
    rope_kv_store_case(2, 9, 8);   /* 18 rows: qkv_keep.cu's tiles */
    rope_kv_store_case(3, 14, 20); /* 42 rows: two tiles, the rank past one round of B */
}
END_TEST

/* a group of bf16 products of one input: each output (and LoRA intermediate) bit for bit its
 * own matmul_bf16_fwd then lora_fwd, for a few rows (two launches) and for many (cuBLASLt,
 * the input rounded once for the group's products, or given rounded: x16), K a multiple of 8
 * (16-byte loads) or not, with and without a bias, with and without a LoRA path */
START_TEST(matmul_bf16_group)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, 96);
    const lora_backend_ops *op = &lora__cuda_ops;
    const int64_t rows[3] = {1, 5, 20}, Ks[2] = {96, 100}, outs[3] = {37, 8, 64};
    for (int ri = 0; ri < 3; ri++)
        for (int ki = 0; ki < 2; ki++) {
            int64_t N = rows[ri], K = Ks[ki];
            float *x = frand(&r, (size_t)(N * K), -1, 1), *d_x = dev(&r, x, (size_t)(N * K) * 4);
            lora_bf16_group g = {.n = 3};
            float *solo[3], *solo_t[3] = {NULL};
            const int64_t ranks[3] = {4, 0, 16};
            for (int i = 0; i < 3; i++) {
                size_t nw = (size_t)(outs[i] * K);
                float *w = frand(&r, nw, -1, 1), *b = frand(&r, (size_t)outs[i], -1, 1);
                uint16_t *wh;
                free(round_bf16(w, nw, &wh));
                g.out[i] = outs[i];
                g.w[i] = dev(&r, wh, nw * 2);
                g.bias[i] = i == 1 ? NULL : dev(&r, b, (size_t)outs[i] * 4);
                g.y[i] = dev_nan(&r, (size_t)(N * outs[i]));
                solo[i] = dev_nan(&r, (size_t)(N * outs[i]));
                op->matmul_bf16_fwd(r.gpu, solo[i], d_x, g.w[i], g.bias[i], N, outs[i], K);
                if (ranks[i]) {
                    size_t na = (size_t)(ranks[i] * K), nb = (size_t)(outs[i] * ranks[i]);
                    float *A = frand(&r, na, -0.5, 0.5), *B = frand(&r, nb, -0.5, 0.5);
                    g.A[i] = dev(&r, A, na * 4);
                    g.B[i] = dev(&r, B, nb * 4);
                    g.r[i] = ranks[i];
                    g.scale[i] = 0.75f;
                    g.t[i] = dev_nan(&r, (size_t)(N * ranks[i]));
                    solo_t[i] = dev_nan(&r, (size_t)(N * ranks[i]));
                    op->lora_fwd(r.gpu, solo[i], solo_t[i], d_x, g.A[i], g.B[i], N, K, ranks[i],
                                 outs[i], 0.75f);
                    free(A), free(B);
                }
                free(w), free(b), free(wh);
            }
            op->matmul_bf16_fwd_group(r.gpu, &g, d_x, N, K);
            for (int i = 0; i < 3; i++) {
                size_t n = (size_t)(N * outs[i]);
                float *want = host(&r, solo[i], n), *got = host(&r, g.y[i], n);
                for (size_t e = 0; e < n; e++)
                    ck_assert_msg(isfinite(got[e]), "N %lld K %lld product %d: element %zu not "
                                  "written", (long long)N, (long long)K, i, e);
                expect_same_bits("matmul_bf16_fwd_group", "y", got, want, n);
                free(want), free(got);
                if (!ranks[i])
                    continue;
                n = (size_t)(N * ranks[i]);
                want = host(&r, solo_t[i], n), got = host(&r, g.t[i], n);
                expect_same_bits("matmul_bf16_fwd_group", "t", got, want, n);
                free(want), free(got);
            }
            /* x already rounded by the op that made it: the same products */
            lora_bf16 *x16 = dev_take(&r, (size_t)(N * K) * 2);
            op->to_bf16(r.gpu, x16, d_x, (size_t)(N * K));
            lora_bf16_group g16 = g;
            g16.x16 = x16;
            for (int i = 0; i < 3; i++)
                g16.y[i] = dev_nan(&r, (size_t)(N * outs[i]));
            op->matmul_bf16_fwd_group(r.gpu, &g16, d_x, N, K);
            for (int i = 0; i < 3; i++) {
                size_t n = (size_t)(N * outs[i]);
                float *want = host(&r, solo[i], n), *got = host(&r, g16.y[i], n);
                expect_same_bits("matmul_bf16_fwd_group with x16", "y", got, want, n);
                free(want), free(got);
            }
            free(x);
            lora__cuda_arena_reset(r.gpu);
        }
    rig_close(&r);
}
END_TEST

/* to_bf16 rounds as the host does, from_bf16 widens back exactly, every element written */
START_TEST(bf16_conversions_match_host)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, 99);
    size_t n = 100003;
    float *a = malloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)lora__rng_u64(&r.rng);
        if (i % 3 == 0)
            u = (u & 0xffff0000u) | 0x8000u;
        memcpy(&a[i], &u, 4);
    }
    a[0] = 3.4028235e38f;
    a[1] = NAN;
    a[2] = -0.0f;
    a[3] = ldexpf(1.0f, -130);
    uint16_t *want;
    float *wv = round_bf16(a, n, &want);
    float *d_a = dev(&r, a, n * 4);
    lora_bf16 *d_h = dev_take(&r, n * 2);
    lora__cuda_ops.to_bf16(r.gpu, d_h, d_a, n);
    uint16_t *got = malloc(n * 2);
    ck_assert_msg(lora__cuda_download(r.gpu, got, d_h, n * 2) == LORA_OK, "%s", lora_last_error());
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "value %zu (bits 0x%08x): 0x%04x on the GPU, 0x%04x on "
                      "the host", i, (unsigned)(((union { float f; uint32_t u; }){a[i]}).u),
                      got[i], want[i]);
    float *d_w = dev_nan(&r, n), *back = malloc(n * 4);
    lora__cuda_ops.from_bf16(r.gpu, d_w, d_h, n);
    ck_assert_msg(lora__cuda_download(r.gpu, back, d_w, n * 4) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_msg(memcmp(back, wv, n * 4) == 0, "from_bf16 is not the host's widening");
    free(a), free(want), free(wv), free(got), free(back);
    rig_close(&r);
}
END_TEST

START_TEST(embedding_bf16_table)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, 5);
    int64_t V = 300, C = 896, N = 129;
    int32_t *ids = malloc((size_t)N * 4);
    for (int64_t n = 0; n < N; n++)
        ids[n] = (int32_t)(lora__rng_u64(&r.rng) % (uint64_t)V);
    size_t nt = (size_t)(V * C), nx = (size_t)(N * C);
    uint16_t *th;
    float *table = frand(&r, nt, -1, 1), *tr = round_bf16(table, nt, &th), *x = malloc(nx * 4);
    int32_t *d_ids = dev(&r, ids, (size_t)N * 4);
    lora_bf16 *d_t = dev(&r, th, nt * 2);
    float *d_x = dev_nan(&r, nx);
    lora__cpu_embedding_fwd(r.cpu, x, ids, tr, N, C);
    lora__cuda_ops.embedding_bf16_fwd(r.gpu, d_x, d_ids, d_t, N, C);
    float *g = host(&r, d_x, nx);
    expect_same_bits("embedding_bf16_fwd", "rows", g, x, nx); /* widening is exact */
    free(ids), free(th), free(table), free(tr), free(x), free(g);
    rig_close(&r);
}
END_TEST

/* ---- LoRA path ---------------------------------------------------------------------------- */

/* a (rows, cols) transposed, malloc'd: the CUDA backend keeps t (r, N) where the CPU's is
 * (N, r) */
static float *transposed(const float *a, int64_t rows, int64_t cols)
{
    float *t = malloc((size_t)(rows * cols) * sizeof *t);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            t[j * rows + i] = a[i * cols + j];
    return t;
}

static void lora_case(lora_cuda_math math, int64_t N, int64_t in, int64_t rk, int64_t out)
{
    rig r = rig_open(math, (uint64_t)(N * 7919 + in * 31 + rk));
    double tol = math == LORA_CUDA_MATH_BF16 ? BF16_TOL : FP32_TOL;
    float scale = 2.0f;
    size_t nx = (size_t)(N * in), na = (size_t)(rk * in), nb = (size_t)(out * rk);
    size_t ny = (size_t)(N * out), nt = (size_t)(N * rk);
    float *x = frand(&r, nx, -1, 1), *A = frand(&r, na, -1, 1), *B = frand(&r, nb, -1, 1);
    float *y = frand(&r, ny, -1, 1), *t = malloc(nt * 4), *u = malloc(nt * 4);
    float *dy = frand(&r, ny, -1, 1), *dx = frand(&r, nx, -1, 1), *dA = frand(&r, na, -1, 1);
    float *dB = frand(&r, nb, -1, 1);
    float *d_x = dev(&r, x, nx * 4), *d_A = dev(&r, A, na * 4), *d_B = dev(&r, B, nb * 4);
    float *d_y = dev(&r, y, ny * 4), *d_t = dev_nan(&r, nt), *d_u = dev_nan(&r, nt);
    float *d_dy = dev(&r, dy, ny * 4), *d_dx = dev(&r, dx, nx * 4), *d_dA = dev(&r, dA, na * 4);
    float *d_dB = dev(&r, dB, nb * 4);
    char what[96];
    snprintf(what, sizeof what, "(%s N=%lld in=%lld r=%lld out=%lld)", math_name(math),
             (long long)N, (long long)in, (long long)rk, (long long)out);

    lora__cpu_lora_fwd(r.cpu, y, t, x, A, B, N, in, rk, out, scale);
    lora__cuda_ops.lora_fwd(r.gpu, d_y, d_t, d_x, d_A, d_B, N, in, rk, out, scale);
    float *tt = transposed(t, N, rk);
    expect_dev(&r, "lora_fwd t", what, d_t, tt, nt, tol);
    free(tt);
    expect_dev(&r, "lora_fwd y", what, d_y, y, ny, tol);

    lora__cpu_lora_bwd(r.cpu, dx, dA, dB, u, dy, x, t, A, B, N, in, rk, out, scale);
    lora__cuda_ops.lora_bwd(r.gpu, d_dx, d_dA, d_dB, d_u, d_dy, d_x, d_t, d_A, d_B, N, in, rk,
                            out, scale);
    expect_dev(&r, "lora_bwd u", what, d_u, u, nt, tol);
    expect_dev(&r, "lora_bwd dx", what, d_dx, dx, nx, tol);
    expect_dev(&r, "lora_bwd dA", what, d_dA, dA, na, tol);
    expect_dev(&r, "lora_bwd dB", what, d_dB, dB, nb, tol);

    /* dB alone needs no u: the GPU must not touch it either (it stays as the last call left) */
    float *u_before = host(&r, d_u, nt);
    lora__cpu_lora_bwd(r.cpu, NULL, NULL, dB, u, dy, x, t, A, B, N, in, rk, out, scale);
    lora__cuda_ops.lora_bwd(r.gpu, NULL, NULL, d_dB, d_u, d_dy, d_x, d_t, d_A, d_B, N, in, rk,
                            out, scale);
    expect_dev(&r, "lora_bwd dB only", what, d_dB, dB, nb, tol);
    float *u_after = host(&r, d_u, nt);
    expect_same_bits("lora_bwd dB only", "u", u_after, u_before, nt);

    free(x), free(A), free(B), free(y), free(t), free(u), free(dy), free(dx), free(dA);
    free(dB), free(u_before), free(u_after);
    rig_close(&r);
}

START_TEST(lora_path)
{
    lora_case(LORA_CUDA_MATH_FP32, 5, 16, 4, 24);
    lora_case(LORA_CUDA_MATH_FP32, 37, 96, 8, 64);
    lora_case(LORA_CUDA_MATH_FP32, 1, 64, 16, 48);
    lora_case(LORA_CUDA_MATH_BF16, 64, 896, 16, 128);
    /* decoding's rows: matvec.cu's float32 kernels */
    lora_case(LORA_CUDA_MATH_BF16, 1, 896, 16, 896);
    lora_case(LORA_CUDA_MATH_FP32, 8, 2048, 8, 256);
}
END_TEST

/* lora_bwd_group against the CPU's lora_bwd path by path: n paths over one x with their A
 * matrices back to back (q/k/v: three outputs of their own sizes; gate/up: two), dx, dA and dB
 * accumulated into; then with dx and dA not wanted (a frozen adapter's dB alone, no u). */
static void lora_group_case(lora_cuda_math math, int n, int64_t N, int64_t in, int64_t rk)
{
    rig r = rig_open(math, (uint64_t)(n * 101 + N * 7 + in + rk));
    double tol = math == LORA_CUDA_MATH_BF16 ? BF16_TOL : FP32_TOL;
    const int64_t outs[] = {in, in / 4 + 8, in / 4 + 8};
    const float scales[] = {2.0f, 0.5f, 1.25f};
    size_t nx = (size_t)(N * in), na = (size_t)(n * rk * in), nt = (size_t)(N * rk);
    float *x = frand(&r, nx, -1, 1), *A = frand(&r, na, -1, 1), *dx = frand(&r, nx, -1, 1);
    float *dA = frand(&r, na, -1, 1), *u = malloc(nt * 4);
    float *d_x = dev(&r, x, nx * 4), *d_A = dev(&r, A, na * 4), *d_dx = dev(&r, dx, nx * 4);
    float *d_dA = dev(&r, dA, na * 4), *d_u = dev_nan(&r, (size_t)n * nt);
    float *B[3], *dB[3], *dy[3], *t[3], *d_dB[3];
    lora_lora_group g = {.n = n};
    for (int i = 0; i < n; i++) {
        size_t nb = (size_t)(outs[i] * rk), ny = (size_t)(N * outs[i]);
        B[i] = frand(&r, nb, -1, 1), dB[i] = frand(&r, nb, -1, 1);
        dy[i] = frand(&r, ny, -1, 1), t[i] = frand(&r, nt, -1, 1);
        float *tt = transposed(t[i], N, rk);
        g.dy[i] = dev(&r, dy[i], ny * 4), g.B[i] = dev(&r, B[i], nb * 4);
        g.t[i] = dev(&r, tt, nt * 4), g.dB[i] = d_dB[i] = dev(&r, dB[i], nb * 4);
        free(tt);
        g.out[i] = outs[i], g.scale[i] = scales[i];
    }
    char what[96];
    snprintf(what, sizeof what, "(%s n=%d N=%lld in=%lld r=%lld)", math_name(math), n,
             (long long)N, (long long)in, (long long)rk);
    for (int i = 0; i < n; i++)
        lora__cpu_lora_bwd(r.cpu, dx, dA + i * rk * in, dB[i], u, dy[i], x, t[i],
                           A + i * rk * in, B[i], N, in, rk, outs[i], scales[i]);
    lora__cuda_ops.lora_bwd_group(r.gpu, &g, d_dx, d_dA, d_u, d_x, d_A, N, in, rk);
    expect_dev(&r, "lora_bwd_group dx", what, d_dx, dx, nx, tol);
    expect_dev(&r, "lora_bwd_group dA", what, d_dA, dA, na, tol);
    for (int i = 0; i < n; i++)
        expect_dev(&r, "lora_bwd_group dB", what, d_dB[i], dB[i], (size_t)(outs[i] * rk), tol);

    float *u_before = host(&r, d_u, (size_t)n * nt);
    for (int i = 0; i < n; i++)
        lora__cpu_lora_bwd(r.cpu, NULL, NULL, dB[i], u, dy[i], x, t[i], A + i * rk * in, B[i],
                           N, in, rk, outs[i], scales[i]);
    lora__cuda_ops.lora_bwd_group(r.gpu, &g, NULL, NULL, d_u, d_x, d_A, N, in, rk);
    for (int i = 0; i < n; i++)
        expect_dev(&r, "lora_bwd_group dB only", what, d_dB[i], dB[i], (size_t)(outs[i] * rk),
                   tol);
    float *u_after = host(&r, d_u, (size_t)n * nt);
    expect_same_bits("lora_bwd_group dB only", "u", u_after, u_before, (size_t)n * nt);

    for (int i = 0; i < n; i++)
        free(B[i]), free(dB[i]), free(dy[i]), free(t[i]);
    free(x), free(A), free(dx), free(dA), free(u), free(u_before), free(u_after);
    rig_close(&r);
}

START_TEST(lora_path_group)
{
    lora_group_case(LORA_CUDA_MATH_FP32, 3, 37, 96, 8);
    lora_group_case(LORA_CUDA_MATH_FP32, 2, 5, 64, 4);
    lora_group_case(LORA_CUDA_MATH_BF16, 3, 64, 896, 16);
    lora_group_case(LORA_CUDA_MATH_BF16, 2, 130, 128, 16);
}
END_TEST

/* matmul_bf16_fwd_group's LoRA paths over many rows against the CPU's lora_fwd path by path:
 * the adapted paths' A matrices and t's back to back with one rank, as a layer's are (q, k, v;
 * q and v alone), so one product makes every t (t (r, N) each, as lora_fwd keeps it) and the
 * group is counted; at a few rows (matvec.cu's kernels) the same values and no such product.
 * With the last adapted path's up-product left to the next op (t_only), its y is the base
 * product's and its t and the other paths' y the same bits as before. */
static void lora_fwd_group_case(lora_cuda_math math, const bool adapted[3], int64_t N,
                                int64_t K, int64_t rk)
{
    rig r = rig_open(math, (uint64_t)(N * 13 + K * 3 + rk + adapted[1]));
    double tol = math == LORA_CUDA_MATH_BF16 ? BF16_TOL : FP32_TOL;
    const int64_t outs[3] = {K, K / 4 + 8, K / 4 + 8};
    const float scales[3] = {2.0f, 0.5f, 1.25f};
    int n = adapted[0] + adapted[1] + adapted[2];
    size_t nx = (size_t)(N * K), nt = (size_t)(N * rk), na = (size_t)(rk * K);
    float *x = frand(&r, nx, -1, 1), *A = frand(&r, (size_t)n * na, -1, 1);
    float *d_x = dev(&r, x, nx * 4), *d_A = dev(&r, A, (size_t)n * na * 4);
    float *d_t = dev_nan(&r, (size_t)n * nt), *B[3] = {NULL}, *want[3], *base[3];
    lora_bf16_group g = {.n = 3};
    int last = -1;
    for (int i = 0, j = 0; i < 3; i++) {
        size_t nw = (size_t)(outs[i] * K), ny = (size_t)(N * outs[i]);
        float *w = frand(&r, nw, -1, 1), *bias = frand(&r, (size_t)outs[i], -1, 1);
        uint16_t *wh;
        free(round_bf16(w, nw, &wh));
        g.out[i] = outs[i];
        g.w[i] = dev(&r, wh, nw * 2);
        g.bias[i] = dev(&r, bias, (size_t)outs[i] * 4);
        g.y[i] = dev_nan(&r, ny);
        /* the base product alone, on the GPU; its LoRA path then added on the CPU */
        float *d_base = dev_nan(&r, ny);
        lora__cuda_ops.matmul_bf16_fwd(r.gpu, d_base, d_x, g.w[i], g.bias[i], N, outs[i], K);
        want[i] = host(&r, d_base, ny);
        base[i] = host(&r, d_base, ny);
        if (adapted[i]) {
            last = i;
            size_t nb = (size_t)(outs[i] * rk);
            B[i] = frand(&r, nb, -1, 1);
            g.A[i] = d_A + j * na, g.B[i] = dev(&r, B[i], nb * 4);
            g.t[i] = d_t + j * nt, g.r[i] = rk, g.scale[i] = scales[i];
            j++;
        }
        free(w), free(bias), free(wh);
    }
    char what[96];
    snprintf(what, sizeof what, "(%s n=%d N=%lld K=%lld r=%lld)", math_name(math), n,
             (long long)N, (long long)K, (long long)rk);
    const lora_cuda *cu = r.gpu->impl;
    uint64_t groups = cu->lora_fwd_groups;
    lora__cuda_ops.matmul_bf16_fwd_group(r.gpu, &g, d_x, N, K);
    ck_assert_msg(cu->lora_fwd_groups - groups == (N > LORA_CUDA_MATVEC_ROWS ? 1u : 0u),
                  "%s: %llu grouped t products", what,
                  (unsigned long long)(cu->lora_fwd_groups - groups));
    float *t = malloc(nt * 4);
    for (int i = 0, j = 0; i < 3; i++) {
        if (adapted[i]) {
            lora__cpu_lora_fwd(r.cpu, want[i], t, x, A + j * na, B[i], N, K, rk, outs[i],
                               scales[i]);
            float *tt = transposed(t, N, rk);
            expect_dev(&r, "matmul_bf16_fwd_group t", what, g.t[i], tt, nt, tol);
            free(tt);
            j++;
        }
        expect_dev(&r, "matmul_bf16_fwd_group y", what, g.y[i], want[i],
                   (size_t)(N * outs[i]), tol);
        free(want[i]), free(B[i]);
    }
    lora_bf16_group left = g;
    left.t_only[last] = true;
    float *t_before = host(&r, g.t[last], nt);
    for (int i = 0; i < 3; i++)
        left.y[i] = dev_nan(&r, (size_t)(N * outs[i]));
    lora__cuda_ops.matmul_bf16_fwd_group(r.gpu, &left, d_x, N, K);
    for (int i = 0; i < 3; i++) {
        size_t ny = (size_t)(N * outs[i]);
        float *got = host(&r, left.y[i], ny), *full = host(&r, g.y[i], ny);
        expect_same_bits("matmul_bf16_fwd_group, an up-product left", what, got,
                         i == last ? base[i] : full, ny);
        free(got), free(full), free(base[i]);
    }
    float *t_after = host(&r, left.t[last], nt);
    expect_same_bits("matmul_bf16_fwd_group, an up-product left: its t", what, t_after, t_before,
                     nt);
    free(t_before), free(t_after), free(x), free(A), free(t);
    rig_close(&r);
}

START_TEST(lora_fwd_group)
{
    const bool qkv[3] = {true, true, true}, qv[3] = {true, false, true};
    lora_fwd_group_case(LORA_CUDA_MATH_FP32, qkv, 37, 96, 8);
    lora_fwd_group_case(LORA_CUDA_MATH_FP32, qv, 20, 100, 4);
    lora_fwd_group_case(LORA_CUDA_MATH_BF16, qkv, 64, 896, 16);
    lora_fwd_group_case(LORA_CUDA_MATH_BF16, qv, 130, 128, 16);
    lora_fwd_group_case(LORA_CUDA_MATH_BF16, qkv, 5, 128, 16);
    lora_fwd_group_case(LORA_CUDA_MATH_FP32, qv, 1, 96, 8);
}
END_TEST

/* ---- embedding ---------------------------------------------------------------------------- */

static void embedding_case(int64_t V, int64_t C, int64_t N)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, (uint64_t)(V * 131 + C));
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    /* ids from the lower half only, with repeats: the upper rows must stay untouched */
    for (int64_t n = 0; n < N; n++)
        ids[n] = (int32_t)(lora__rng_u64(&r.rng) % (uint64_t)(V / 2));
    size_t nt = (size_t)(V * C), nx = (size_t)(N * C);
    float *table = frand(&r, nt, -1, 1), *x = malloc(nx * 4), *dx = frand(&r, nx, -1, 1);
    float *dtable = frand(&r, nt, -1, 1);
    int32_t *d_ids = dev(&r, ids, (size_t)N * 4);
    float *d_table = dev(&r, table, nt * 4), *d_x = dev_nan(&r, nx), *d_dx = dev(&r, dx, nx * 4);
    float *d_dtable = dev(&r, dtable, nt * 4), *d_dtable2 = dev(&r, dtable, nt * 4);
    char what[64];
    snprintf(what, sizeof what, "(V=%lld C=%lld N=%lld)", (long long)V, (long long)C,
             (long long)N);
    /* the grouped entry's order and runs: each id's tokens in token order, ids ascending */
    int32_t *order = malloc((size_t)N * 4), *runs = malloc((size_t)(N + 1) * 4);
    int64_t k = 0, n_runs = 0;
    for (int32_t v = 0; v < V; v++) {
        int64_t k0 = k;
        for (int64_t n = 0; n < N; n++)
            if (ids[n] == v)
                order[k++] = (int32_t)n;
        if (k > k0)
            runs[n_runs++] = (int32_t)k0;
    }
    runs[n_runs] = (int32_t)N;
    int32_t *d_order = dev(&r, order, (size_t)N * 4), *d_runs = dev(&r, runs, (size_t)(n_runs + 1) * 4);

    lora__cpu_embedding_fwd(r.cpu, x, ids, table, N, C);
    lora__cuda_ops.embedding_fwd(r.gpu, d_x, d_ids, d_table, N, C);
    expect_dev(&r, "embedding_fwd", what, d_x, x, nx, 0.0);

    lora__cpu_embedding_bwd(r.cpu, dtable, dx, ids, N, C);
    lora__cuda_ops.embedding_bwd(r.gpu, d_dtable, d_dx, d_ids, N, C);
    float *g = host(&r, d_dtable, nt);
    /* the same additions in the same order: equal, not merely close */
    expect_same_bits("embedding_bwd", what, g, dtable, nt);
    free(g);
    lora__cuda_ops.embedding_bwd_grouped(r.gpu, d_dtable2, d_dx, d_ids, d_order, d_runs, n_runs, C);
    g = host(&r, d_dtable2, nt);
    expect_same_bits("embedding_bwd_grouped", what, g, dtable, nt);

    free(ids), free(table), free(x), free(dx), free(dtable), free(g), free(order), free(runs);
    rig_close(&r);
}

START_TEST(embedding)
{
    embedding_case(50, 8, 40);
    embedding_case(64, 33, 7);
    embedding_case(300, 896, 129);
}
END_TEST

/* ---- RMSNorm ------------------------------------------------------------------------------ */

static void rmsnorm_case(int64_t N, int64_t C)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, (uint64_t)(N * 17 + C));
    float eps = 1e-6f;
    size_t n = (size_t)(N * C);
    float *x = frand(&r, n, -2, 2), *w = frand(&r, (size_t)C, 0.5, 1.5), *y = malloc(n * 4);
    float *rstd = malloc((size_t)N * 4), *dy = frand(&r, n, -1, 1), *dx = frand(&r, n, -1, 1);
    float *dw = frand(&r, (size_t)C, -1, 1);
    float *d_x = dev(&r, x, n * 4), *d_w = dev(&r, w, (size_t)C * 4), *d_y = dev_nan(&r, n);
    float *d_rstd = dev_nan(&r, (size_t)N), *d_dy = dev(&r, dy, n * 4);
    float *d_dx = dev(&r, dx, n * 4), *d_dw = dev(&r, dw, (size_t)C * 4);
    char what[64];
    snprintf(what, sizeof what, "(N=%lld C=%lld)", (long long)N, (long long)C);

    lora__cpu_rmsnorm_fwd(r.cpu, y, rstd, x, w, N, C, eps);
    lora__cuda_ops.rmsnorm_fwd(r.gpu, d_y, d_rstd, d_x, d_w, N, C, eps);
    expect_dev(&r, "rmsnorm_fwd y", what, d_y, y, n, FP32_TOL);
    expect_dev(&r, "rmsnorm_fwd rstd", what, d_rstd, rstd, (size_t)N, FP32_TOL);

    lora__cpu_rmsnorm_bwd(r.cpu, dx, dw, dy, x, w, rstd, N, C);
    lora__cuda_ops.rmsnorm_bwd(r.gpu, d_dx, d_dw, d_dy, d_x, d_w, d_rstd, N, C);
    expect_dev(&r, "rmsnorm_bwd dx", what, d_dx, dx, n, FP32_TOL);
    expect_dev(&r, "rmsnorm_bwd dw", what, d_dw, dw, (size_t)C, FP32_TOL);

    /* in place, no rstd: the forward of the final norm at inference */
    float *xi = fdup(x, n);
    lora__cpu_rmsnorm_fwd(r.cpu, xi, NULL, xi, w, N, C, eps);
    lora__cuda_ops.rmsnorm_fwd(r.gpu, d_x, NULL, d_x, d_w, N, C, eps);
    expect_dev(&r, "rmsnorm_fwd in place", what, d_x, xi, n, FP32_TOL);

    free(x), free(w), free(y), free(rstd), free(dy), free(dx), free(dw), free(xi);
    rig_close(&r);
}

/* RMSNorm over a kept bfloat16 x: rmsnorm_fwd's y and rstd and rmsnorm_bwd's dx and dw over
 * the widened values, bit for bit, dx also written rather than added to; and the float32
 * forward that keeps a rounded copy of its input */
static void rmsnorm_bf16_case(int64_t N, int64_t C)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, (uint64_t)(N * 13 + C));
    const lora_backend_ops *op = &lora__cuda_ops;
    float eps = 1e-6f;
    size_t n = (size_t)(N * C);
    float *x = frand(&r, n, -3, 3), *w = frand(&r, (size_t)C, 0.5, 1.5);
    float *dy = frand(&r, n, -1, 1), *acc = frand(&r, n, -1, 1), *dw0 = frand(&r, (size_t)C, -1, 1);
    uint16_t *xh;
    float *xw = round_bf16(x, n, &xh);
    lora_bf16 *d_x16 = dev(&r, xh, n * 2);
    float *d_x = dev(&r, xw, n * 4), *d_w = dev(&r, w, (size_t)C * 4), *d_dy = dev(&r, dy, n * 4);
    float *y1 = dev_nan(&r, n), *y2 = dev_nan(&r, n);
    float *s1 = dev_nan(&r, (size_t)N), *s2 = dev_nan(&r, (size_t)N);
    float *dx1 = dev(&r, acc, n * 4), *dx2 = dev(&r, acc, n * 4);
    float *dw1 = dev(&r, dw0, (size_t)C * 4), *dw2 = dev(&r, dw0, (size_t)C * 4);
    op->rmsnorm_fwd(r.gpu, y1, s1, d_x, d_w, N, C, eps);
    op->rmsnorm_bf16_fwd(r.gpu, y2, s2, d_x16, d_w, N, C, eps);
    op->rmsnorm_bwd(r.gpu, dx1, dw1, d_dy, d_x, d_w, s1, N, C);
    lora_bf16 *dx16 = dev_take(&r, n * 2);
    op->rmsnorm_bf16_bwd(r.gpu, dx2, dx16, dw2, d_dy, d_x16, d_w, s1, N, C, true);
    expect_rounding(&r, "rmsnorm_bf16_bwd", "dx16 (the accumulated dx)", dx16, dx2, n);
    /* written, not added to: the same as adding into zeros, over a dx that starts as NaN */
    float *zeros = calloc(n, 4), *dx3 = dev(&r, zeros, n * 4), *dx4 = dev_nan(&r, n);
    op->rmsnorm_bwd(r.gpu, dx3, NULL, d_dy, d_x, d_w, s1, N, C);
    op->rmsnorm_bf16_bwd(r.gpu, dx4, NULL, NULL, d_dy, d_x16, d_w, s1, N, C, false);
    /* the forward that rounds its float32 input as it reads it: rmsnorm_fwd's y and rstd, and
     * to_bf16's copy */
    float *y5 = dev_nan(&r, n), *s5 = dev_nan(&r, (size_t)N), *d_xf = dev(&r, x, n * 4);
    float *y6 = dev_nan(&r, n), *s6 = dev_nan(&r, (size_t)N);
    lora_bf16 *k16 = dev_take(&r, n * 2);
    op->rmsnorm_fwd(r.gpu, y5, s5, d_xf, d_w, N, C, eps);
    op->rmsnorm_keep_fwd(r.gpu, y6, s6, k16, d_xf, d_w, N, C, eps);
    expect_rounding(&r, "rmsnorm_keep_fwd", "x16", k16, d_xf, n);
    free(zeros);
    const float *want[7] = {y1, s1, dx1, dw1, dx3, y5, s5};
    const float *got[7] = {y2, s2, dx2, dw2, dx4, y6, s6};
    const size_t len[7] = {n, (size_t)N, n, (size_t)C, n, n, (size_t)N};
    const char *name[7] = {"y", "rstd", "dx", "dw", "dx written", "keep y", "keep rstd"};
    for (int i = 0; i < 7; i++) {
        float *a = host(&r, want[i], len[i]), *b = host(&r, got[i], len[i]);
        for (size_t e = 0; e < len[i]; e++)
            ck_assert_msg(isfinite(b[e]), "rmsnorm_bf16 %s[%zu] not written", name[i], e);
        expect_same_bits("rmsnorm_bf16", name[i], b, a, len[i]);
        free(a), free(b);
    }
    free(x), free(w), free(dy), free(acc), free(dw0), free(xh), free(xw);
    rig_close(&r);
}

START_TEST(rmsnorm_bf16_matches_widened)
{
    rmsnorm_bf16_case(3, 896);
    rmsnorm_bf16_case(300, 24); /* a q/k norm's rows: several dw chunks */
}
END_TEST

START_TEST(rmsnorm)
{
    rmsnorm_case(1, 8);
    rmsnorm_case(7, 33);
    rmsnorm_case(16, 896);
    rmsnorm_case(3, 4097);
    rmsnorm_case(96, 128); /* qk-norm shape: rows of one head */
    rmsnorm_case(200, 33);    /* dw over 4 chunks of 64 rows, the last short */
    rmsnorm_case(2000, 16);   /* 32 chunks of 64 rows */
}
END_TEST

/* ---- RoPE --------------------------------------------------------------------------------- */

/* cos/sin tables (P, D/2) for theta 10000 (malloc'd), and N random positions below P */
static int32_t *rope_tables(rig *r, int64_t P, int64_t D, int64_t N, float **cs, float **sn)
{
    int64_t half = D / 2;
    *cs = malloc((size_t)(P * half) * 4), *sn = malloc((size_t)(P * half) * 4);
    for (int64_t i = 0; i < half; i++)
        for (int64_t p = 0; p < P; p++) {
            double a = (double)p / pow(10000.0, (double)(2 * i) / (double)D);
            (*cs)[p * half + i] = (float)cos(a);
            (*sn)[p * half + i] = (float)sin(a);
        }
    int32_t *pos = malloc((size_t)N * 4);
    for (int64_t n = 0; n < N; n++)
        pos[n] = (int32_t)(lora__rng_u64(&r->rng) % (uint64_t)P);
    return pos;
}

static void rope_case(int64_t N, int64_t heads, int64_t D)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, (uint64_t)(N * 5 + D));
    int64_t P = 64, half = D / 2;
    float *cs, *sn;
    int32_t *pos = rope_tables(&r, P, D, N, &cs, &sn);
    size_t n = (size_t)(N * heads * D);
    float *x = frand(&r, n, -1, 1), *g = frand(&r, n, -1, 1);
    float *d_x = dev(&r, x, n * 4), *d_g = dev(&r, g, n * 4);
    float *d_cs = dev(&r, cs, (size_t)(P * half) * 4), *d_sn = dev(&r, sn, (size_t)(P * half) * 4);
    int32_t *d_pos = dev(&r, pos, (size_t)N * 4);
    char what[64];
    snprintf(what, sizeof what, "(N=%lld heads=%lld D=%lld)", (long long)N, (long long)heads,
             (long long)D);

    /* the bfloat16 copy first, from the unrotated input, which it leaves alone */
    lora_bf16 *d16 = dev_take(&r, n * 2);
    lora__cuda_ops.rope_bf16_fwd(r.gpu, d16, d_x, d_pos, d_cs, d_sn, N, heads, D);
    float *same = host(&r, d_x, n);
    expect_same_bits("rope_bf16_fwd", "its input", same, x, n);
    lora__cpu_rope_fwd(r.cpu, x, pos, cs, sn, N, heads, D);
    lora__cuda_ops.rope_fwd(r.gpu, d_x, d_pos, d_cs, d_sn, N, heads, D);
    expect_dev(&r, "rope_fwd", what, d_x, x, n, FP32_TOL);
    /* rope_fwd then to_bf16, bit for bit */
    expect_rounding(&r, "rope_bf16_fwd (rope_fwd's values)", what, d16, d_x, n);
    free(same);
    lora__cpu_rope_bwd(r.cpu, g, pos, cs, sn, N, heads, D);
    lora__cuda_ops.rope_bwd(r.gpu, d_g, d_pos, d_cs, d_sn, N, heads, D);
    expect_dev(&r, "rope_bwd", what, d_g, g, n, FP32_TOL);

    free(cs), free(sn), free(pos), free(x), free(g);
    rig_close(&r);
}

START_TEST(rope)
{
    rope_case(9, 3, 8);
    rope_case(17, 14, 64);
    rope_case(5, 2, 128);
}
END_TEST

/* The kept q, k, v in one pass with their LoRA up-products (qkv_keep_fwd), against the host:
 * each sum y + scale (sum_j t B) with lora_fwd's small kernels' fused multiply-adds, then q16
 * and k16 bit for bit rope_bf16_fwd over those sums, v16 bit for bit their rounding; the inputs
 * untouched. Ranks across the tiles of 16, rows across the tiles of 32, pairs across the
 * blocks of 128, a side without LoRA (k), and no LoRA at all (lu NULL). */
static void qkv_keep_case(int64_t N, int64_t H, int64_t KVH, int64_t D, int64_t rk, bool k_adapted)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, (uint64_t)(N * 13 + H * 7 + D + rk + k_adapted));
    const lora_backend_ops *op = &lora__cuda_ops;
    int64_t P = 50, width[3] = {H * D, KVH * D, KVH * D};
    const float scale[3] = {0.5f, 1.25f, 2.0f};
    float *cs, *sn;
    int32_t *pos = rope_tables(&r, P, D, N, &cs, &sn);
    float *d_cs = dev(&r, cs, (size_t)(P * D / 2) * 4), *d_sn = dev(&r, sn, (size_t)(P * D / 2) * 4);
    int32_t *d_pos = dev(&r, pos, (size_t)N * 4);
    lora_lora_up lu = {.r = rk};
    float *y[3], *d_y[3], *d_sum[3];
    lora_bf16 *d16[3];
    for (int sd = 0; sd < 3; sd++) {
        size_t n = (size_t)(N * width[sd]), nt = (size_t)(rk * N), nb = (size_t)(width[sd] * rk);
        y[sd] = frand(&r, n, -3, 3);
        float *t = frand(&r, nt, -1, 1), *B = frand(&r, nb, -0.5, 0.5), *sum = malloc(n * 4);
        bool adapted = rk > 0 && (sd != 1 || k_adapted);
        if (adapted) {
            lu.t[sd] = dev(&r, t, nt * 4), lu.B[sd] = dev(&r, B, nb * 4);
            lu.scale[sd] = scale[sd];
        }
        for (int64_t k = 0; k < N; k++)
            for (int64_t i = 0; i < width[sd]; i++) {
                float acc = 0.0f, v = y[sd][k * width[sd] + i];
                for (int64_t j = 0; j < rk && adapted; j++)
                    acc = fmaf(t[j * N + k], B[i * rk + j], acc);
                sum[k * width[sd] + i] = adapted ? v + scale[sd] * acc : v;
            }
        d_y[sd] = dev(&r, y[sd], n * 4), d_sum[sd] = dev(&r, sum, n * 4);
        d16[sd] = dev_take(&r, n * 2);
        free(t), free(B), free(sum);
    }
    op->qkv_keep_fwd(r.gpu, d16[0], d16[1], d16[2], d_y[0], d_y[1], d_y[2], rk ? &lu : NULL,
                     d_pos, d_cs, d_sn, N, H, KVH, D);
    char what[96];
    snprintf(what, sizeof what, "(N=%lld H=%lld KVH=%lld D=%lld r=%lld k=%d)", (long long)N,
             (long long)H, (long long)KVH, (long long)D, (long long)rk, k_adapted);
    const char *name[3] = {"q16", "k16", "v16"};
    for (int sd = 0; sd < 3; sd++) {
        size_t n = (size_t)(N * width[sd]);
        float *same = host(&r, d_y[sd], n);
        expect_same_bits("qkv_keep_fwd's input", what, same, y[sd], n);
        if (sd == 2) {
            expect_rounding(&r, "qkv_keep_fwd v16 (the host's sums)", what, d16[2], d_sum[2], n);
        } else {
            lora_bf16 *want = dev_take(&r, n * 2);
            op->rope_bf16_fwd(r.gpu, want, d_sum[sd], d_pos, d_cs, d_sn, N, width[sd] / D, D);
            uint16_t *a = host16(&r, want, n), *b = host16(&r, d16[sd], n);
            ck_assert_msg(memcmp(a, b, n * 2) == 0, "qkv_keep_fwd %s %s: not rope_bf16_fwd of "
                          "the host's sums", name[sd], what);
            free(a), free(b);
        }
        free(same), free(y[sd]);
    }
    free(cs), free(sn), free(pos);
    rig_close(&r);
}

START_TEST(qkv_keep_fused)
{
    qkv_keep_case(5, 3, 1, 8, 4, true);
    qkv_keep_case(37, 14, 2, 64, 16, true);
    qkv_keep_case(70, 4, 2, 128, 20, false);
    qkv_keep_case(33, 2, 2, 64, 0, false);
}
END_TEST

/* ---- SwiGLU, residual, dropout ------------------------------------------------------------ */

static void swiglu_case(int64_t N, int64_t I)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, (uint64_t)(N * 3 + I));
    size_t n = (size_t)(N * I);
    float *gate = frand(&r, n, -12, 12), *up = frand(&r, n, -2, 2), *h = malloc(n * 4);
    float *dh = frand(&r, n, -1, 1), *dg = frand(&r, n, -1, 1), *du = frand(&r, n, -1, 1);
    float *d_gate = dev(&r, gate, n * 4), *d_up = dev(&r, up, n * 4), *d_h = dev_nan(&r, n);
    float *d_dh = dev(&r, dh, n * 4), *d_dg = dev(&r, dg, n * 4), *d_du = dev(&r, du, n * 4);
    char what[64];
    snprintf(what, sizeof what, "(N=%lld I=%lld)", (long long)N, (long long)I);

    lora__cpu_swiglu_fwd(r.cpu, h, gate, up, N, I);
    lora__cuda_ops.swiglu_fwd(r.gpu, d_h, d_gate, d_up, N, I);
    expect_dev(&r, "swiglu_fwd", what, d_h, h, n, FP32_TOL);
    lora__cpu_swiglu_bwd(r.cpu, dg, du, dh, gate, up, N, I);
    lora__cuda_ops.swiglu_bwd(r.gpu, d_dg, d_du, d_dh, d_gate, d_up, N, I);
    expect_dev(&r, "swiglu_bwd dgate", what, d_dg, dg, n, FP32_TOL);
    expect_dev(&r, "swiglu_bwd dup", what, d_du, du, n, FP32_TOL);
    lora__cpu_swiglu_bwd(r.cpu, NULL, du, dh, gate, up, N, I);
    lora__cuda_ops.swiglu_bwd(r.gpu, NULL, d_du, d_dh, d_gate, d_up, N, I);
    expect_dev(&r, "swiglu_bwd dup only", what, d_du, du, n, FP32_TOL);

    free(gate), free(up), free(h), free(dh), free(dg), free(du);
    rig_close(&r);
}

START_TEST(swiglu)
{
    swiglu_case(3, 5);
    swiglu_case(17, 300);
    swiglu_case(64, 4864);
}
END_TEST

START_TEST(residual)
{
    const int64_t sizes[] = {1, 1000, 70001};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        rig r = rig_open(LORA_CUDA_MATH_FP32, (uint64_t)sizes[k]);
        size_t n = (size_t)sizes[k];
        float *y = frand(&r, n, -1, 1), *x = frand(&r, n, -1, 1);
        float *d_y = dev(&r, y, n * 4), *d_x = dev(&r, x, n * 4);
        lora__cpu_residual_fwd(r.cpu, y, x, sizes[k]);
        lora__cuda_ops.residual_fwd(r.gpu, d_y, d_x, sizes[k]);
        float *g = host(&r, d_y, n);
        expect_same_bits("residual_fwd", "y", g, y, n); /* one float add each: exact */
        free(y), free(x), free(g);
        rig_close(&r);
    }
}
END_TEST

/* the fused op against the GPU's two ops and the CPU's: the sum bit for bit (one float add),
 * the norm and rstd within float32 bounds */
static void residual_rmsnorm_case(int64_t N, int64_t C, bool keep_rstd)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, (uint64_t)(N * 7919 + C));
    size_t n = (size_t)(N * C);
    float eps = 1e-6f;
    float *x = frand(&r, n, -2, 2), *res = frand(&r, n, -2, 2), *w = frand(&r, (size_t)C, 0.5, 1.5);
    float *y = malloc(n * 4), *rstd = malloc((size_t)N * 4);
    float *d_x = dev(&r, x, n * 4), *d_x2 = dev(&r, x, n * 4), *d_r = dev(&r, res, n * 4);
    float *d_w = dev(&r, w, (size_t)C * 4), *d_y = dev_nan(&r, n), *d_y2 = dev_nan(&r, n);
    float *d_s = dev_nan(&r, (size_t)N), *d_s2 = dev_nan(&r, (size_t)N);
    /* the rounded copy of the sum comes with the rstd (a training forward's kept x_mid); y's
     * (the next products' input) with or without */
    lora_bf16 *d_x16 = keep_rstd ? dev_take(&r, n * 2) : NULL, *d_y16 = dev_take(&r, n * 2);
    char what[64];
    snprintf(what, sizeof what, "(N=%lld C=%lld rstd=%d)", (long long)N, (long long)C, keep_rstd);

    lora__cpu_residual_fwd(r.cpu, x, res, N * C);
    lora__cpu_rmsnorm_fwd(r.cpu, y, rstd, x, w, N, C, eps);
    lora__cuda_ops.residual_rmsnorm_fwd(r.gpu, d_x, d_y, keep_rstd ? d_s : NULL, d_x16, d_y16,
                                        d_r, d_w, N, C, eps);
    lora__cuda_ops.residual_fwd(r.gpu, d_x2, d_r, N * C);
    lora__cuda_ops.rmsnorm_fwd(r.gpu, d_y2, d_s2, d_x2, d_w, N, C, eps);
    float *gx = host(&r, d_x, n), *gx2 = host(&r, d_x2, n);
    expect_same_bits("residual_rmsnorm_fwd", what, gx, x, n);
    expect_same_bits("residual_rmsnorm_fwd against residual_fwd", what, gx, gx2, n);
    float *gy = host(&r, d_y, n), *gy2 = host(&r, d_y2, n);
    expect_close("residual_rmsnorm_fwd y", what, gy, y, n, FP32_TOL);
    expect_close("residual_rmsnorm_fwd y against rmsnorm_fwd", what, gy, gy2, n, FP32_TOL);
    expect_rounding(&r, "residual_rmsnorm_fwd y16", what, d_y16, d_y, n);
    float *gs = host(&r, d_s, (size_t)N);
    if (keep_rstd) {
        expect_close("residual_rmsnorm_fwd rstd", what, gs, rstd, (size_t)N, FP32_TOL);
        expect_rounding(&r, "residual_rmsnorm_fwd x16 (the sum)", what, d_x16, d_x, n);
    }
    else /* not written */
        for (int64_t i = 0; i < N; i++)
            ck_assert_msg(isnan(gs[i]), "residual_rmsnorm_fwd %s: rstd written", what);
    free(x), free(res), free(w), free(y), free(rstd);
    free(gx), free(gx2), free(gy), free(gy2), free(gs);
    rig_close(&r);
}

START_TEST(residual_rmsnorm)
{
    residual_rmsnorm_case(1, 7, true);
    residual_rmsnorm_case(5, 896, true);
    residual_rmsnorm_case(33, 1000, false);
    residual_rmsnorm_case(130, 1536, true);
}
END_TEST

/* The residual norm with the LoRA up-product of the residual term in its pass
 * (residual_lora_rmsnorm_fwd), against the host: each term r + scale (sum_j t B) with lora_fwd's
 * small kernels' fused multiply-adds, then x, y, rstd, x16 and y16 bit for bit
 * residual_rmsnorm_fwd's over those terms, r untouched. Ranks across the tiles of 16, rows
 * across the tiles of 32, widths below, at and past the block's 256 columns, no LoRA term, and
 * without the rounded copies and the rstd. */
static void residual_lora_rmsnorm_case(int64_t N, int64_t C, int64_t rk, bool keep)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, (uint64_t)(N * 31 + C * 3 + rk + keep));
    const lora_backend_ops *op = &lora__cuda_ops;
    size_t n = (size_t)(N * C), nt = (size_t)(rk * N), nb = (size_t)(C * rk);
    float eps = 1e-6f, scale = 0.625f;
    float *x = frand(&r, n, -2, 2), *res = frand(&r, n, -2, 2), *w = frand(&r, (size_t)C, 0.5, 1.5);
    float *t = frand(&r, nt, -1, 1), *B = frand(&r, nb, -0.5, 0.5), *sum = malloc(n * 4);
    lora_lora_up lu = {.r = rk};
    if (rk) {
        lu.t[0] = dev(&r, t, nt * 4), lu.B[0] = dev(&r, B, nb * 4);
        lu.scale[0] = scale;
    }
    for (int64_t k = 0; k < N; k++)
        for (int64_t c = 0; c < C; c++) {
            float acc = 0.0f, v = res[k * C + c];
            for (int64_t j = 0; j < rk; j++)
                acc = fmaf(t[j * N + k], B[c * rk + j], acc);
            sum[k * C + c] = rk ? v + scale * acc : v;
        }
    float *d_x[2] = {dev(&r, x, n * 4), dev(&r, x, n * 4)}, *d_y[2], *d_s[2];
    lora_bf16 *d_x16[2] = {NULL, NULL}, *d_y16[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        d_y[i] = dev_nan(&r, n), d_s[i] = dev_nan(&r, (size_t)N);
        if (keep)
            d_x16[i] = dev_take(&r, n * 2), d_y16[i] = dev_take(&r, n * 2);
    }
    float *d_r = dev(&r, res, n * 4), *d_sum = dev(&r, sum, n * 4);
    float *d_w = dev(&r, w, (size_t)C * 4);
    op->residual_lora_rmsnorm_fwd(r.gpu, d_x[0], d_y[0], keep ? d_s[0] : NULL, d_x16[0],
                                  d_y16[0], d_r, &lu, d_w, N, C, eps);
    op->residual_rmsnorm_fwd(r.gpu, d_x[1], d_y[1], keep ? d_s[1] : NULL, d_x16[1], d_y16[1],
                             d_sum, d_w, N, C, eps);
    char what[80];
    snprintf(what, sizeof what, "(N=%lld C=%lld r=%lld keep=%d)", (long long)N, (long long)C,
             (long long)rk, keep);
    const float *const *pairs[3] = {(const float *const *)d_x, (const float *const *)d_y,
                                    (const float *const *)d_s};
    const char *name[3] = {"x", "y", "rstd"};
    for (int i = 0; i < 3; i++) {
        size_t m = i == 2 ? (size_t)N : n;
        float *a = host(&r, pairs[i][0], m), *b = host(&r, pairs[i][1], m);
        for (size_t e = 0; e < m && (i < 2 || keep); e++)
            ck_assert_msg(isfinite(a[e]), "residual_lora_rmsnorm_fwd %s %s: value %zu not "
                          "written", name[i], what, e);
        for (size_t e = 0; e < m && i == 2 && !keep; e++)
            ck_assert_msg(isnan(a[e]), "residual_lora_rmsnorm_fwd %s: rstd written", what);
        expect_same_bits("residual_lora_rmsnorm_fwd against residual_rmsnorm_fwd of the host's "
                         "sums", name[i], a, b, m);
        free(a), free(b);
    }
    for (int i = 0; i < 2 && keep; i++) {
        uint16_t *a = host16(&r, i ? d_y16[0] : d_x16[0], n);
        uint16_t *b = host16(&r, i ? d_y16[1] : d_x16[1], n);
        ck_assert_msg(memcmp(a, b, n * 2) == 0, "residual_lora_rmsnorm_fwd %s %s: not "
                      "residual_rmsnorm_fwd's", i ? "y16" : "x16", what);
        free(a), free(b);
    }
    float *same = host(&r, d_r, n);
    expect_same_bits("residual_lora_rmsnorm_fwd's residual term", what, same, res, n);
    free(same), free(x), free(res), free(w), free(t), free(B), free(sum);
    rig_close(&r);
}

START_TEST(residual_lora_rmsnorm_fused)
{
    residual_lora_rmsnorm_case(5, 200, 4, true);
    residual_lora_rmsnorm_case(37, 896, 16, true);
    residual_lora_rmsnorm_case(70, 256, 20, false);
    residual_lora_rmsnorm_case(33, 1100, 8, true);
    residual_lora_rmsnorm_case(40, 333, 0, true);
}
END_TEST

static void dropout_case(int64_t N, int64_t n, float p)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, (uint64_t)(N + n));
    uint64_t seed = 1234, module = 77;
    size_t m = (size_t)(N * n);
    float *x = frand(&r, m, -1, 1), *out = malloc(m * 4), *dx = frand(&r, m, -1, 1);
    float *d_x = dev(&r, x, m * 4), *d_out = dev_nan(&r, m), *d_dx = dev(&r, dx, m * 4);
    lora__cpu_dropout_fwd(r.cpu, out, x, N, n, p, seed, module);
    lora__cuda_ops.dropout_fwd(r.gpu, d_out, d_x, N, n, p, seed, module);
    float *g = host(&r, d_out, m);
    expect_close("dropout_fwd", "out", g, out, m, 0.0);
    expect_same_bits("dropout_fwd", "mask", g, out, m); /* the same mask, bit for bit */
    lora__cpu_dropout_bwd(r.cpu, dx, x, N, n, p, seed, module);
    lora__cuda_ops.dropout_bwd(r.gpu, d_dx, d_x, N, n, p, seed, module);
    float *gd = host(&r, d_dx, m);
    expect_same_bits("dropout_bwd", "dx", gd, dx, m);
    free(x), free(out), free(dx), free(g), free(gd);
    rig_close(&r);
}

START_TEST(dropout)
{
    dropout_case(7, 33, 0.1f);
    dropout_case(64, 5000, 0.5f); /* rows wider than the CPU's 4096-value pieces */
}
END_TEST

/* ---- cross-entropy ------------------------------------------------------------------------ */

static void ce_case(int64_t N, int64_t V)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, (uint64_t)(N * 11 + V));
    int32_t *tg = malloc((size_t)N * 4);
    for (int64_t n = 0; n < N; n++)
        tg[n] = n % 3 == 1 ? -100 : (int32_t)(lora__rng_u64(&r.rng) % (uint64_t)V);
    size_t nl = (size_t)(N * V);
    float *logits = frand(&r, nl, -10, 10), *nll = malloc((size_t)N * 4);
    float *lse = malloc((size_t)N * 4), *dnll = frand(&r, (size_t)N, 0.1, 1);
    float *dl = frand(&r, nl, -1, 1);
    float *d_logits = dev(&r, logits, nl * 4), *d_nll = dev_nan(&r, (size_t)N);
    float *d_lse = dev_nan(&r, (size_t)N), *d_dnll = dev(&r, dnll, (size_t)N * 4);
    float *d_dl = dev(&r, dl, nl * 4);
    int32_t *d_tg = dev(&r, tg, (size_t)N * 4);
    char what[64];
    snprintf(what, sizeof what, "(N=%lld V=%lld)", (long long)N, (long long)V);

    lora__cpu_cross_entropy_fwd(r.cpu, nll, lse, logits, tg, N, V);
    lora__cuda_ops.cross_entropy_fwd(r.gpu, d_nll, d_lse, d_logits, d_tg, N, V);
    expect_dev(&r, "cross_entropy_fwd nll", what, d_nll, nll, (size_t)N, FP32_TOL);
    expect_dev(&r, "cross_entropy_fwd lse", what, d_lse, lse, (size_t)N, FP32_TOL);

    float *dl0 = fdup(dl, nl);
    lora__cpu_cross_entropy_bwd(r.cpu, dl, logits, lse, tg, dnll, N, V);
    lora__cuda_ops.cross_entropy_bwd(r.gpu, d_dl, d_logits, d_lse, d_tg, d_dnll, N, V);
    float *g = host(&r, d_dl, nl);
    expect_close("cross_entropy_bwd", what, g, dl, nl, FP32_TOL);
    for (int64_t n = 1; n < N; n += 3) /* target -100: the row is not touched */
        expect_same_bits("cross_entropy_bwd", "ignored row", g + n * V, dl0 + n * V, (size_t)V);

    free(tg), free(logits), free(nll), free(lse), free(dnll), free(dl), free(dl0), free(g);
    rig_close(&r);
}

START_TEST(cross_entropy)
{
    ce_case(6, 5);
    ce_case(5, 1000);
    ce_case(4, 151936); /* Qwen2.5's vocabulary */
}
END_TEST

/* The chunked cross-entropy against the CPU's row op on the whole (N, V) logits: each chunk's
 * columns uploaded as their own (N, Vc) block, the chunk at 0 first and the others from the
 * last back, the gradient put back together column by column. */
static void ce_chunk_case(int64_t N, int64_t V, int64_t Vc)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, (uint64_t)(N * 13 + V + Vc));
    int32_t *tg = malloc((size_t)N * 4);
    for (int64_t n = 0; n < N; n++)
        tg[n] = n % 3 == 1 ? -100 : (int32_t)(lora__rng_u64(&r.rng) % (uint64_t)V);
    if (N > 2)
        tg[2] = (int32_t)(V - 1); /* in the last, short chunk */
    size_t nl = (size_t)(N * V);
    float *logits = frand(&r, nl, -10, 10), *nll = malloc((size_t)N * 4);
    float *lse = malloc((size_t)N * 4), *dnll = frand(&r, (size_t)N, 0.1, 1);
    /* the chunks' gradients are written (they start as NaN), the CPU's added into zeros */
    float *dl = calloc(nl, 4), *chunk = malloc(nl * 4);
    int64_t n_chunks = (V + Vc - 1) / Vc;
    float **d_chunk = malloc((size_t)n_chunks * sizeof *d_chunk);
    float **d_dchunk = malloc((size_t)n_chunks * sizeof *d_dchunk);
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t v0 = c * Vc, k = V - v0 < Vc ? V - v0 : Vc;
        for (int64_t n = 0; n < N; n++)
            memcpy(chunk + n * k, logits + n * V + v0, (size_t)k * 4);
        d_chunk[c] = dev(&r, chunk, (size_t)(N * k) * 4);
        d_dchunk[c] = dev_nan(&r, (size_t)(N * k));
    }
    double *d_state = dev_take(&r, (size_t)N * 3 * sizeof(double));
    float *d_nll = dev_nan(&r, (size_t)N), *d_lse = dev_nan(&r, (size_t)N);
    float *d_dnll = dev(&r, dnll, (size_t)N * 4);
    int32_t *d_tg = dev(&r, tg, (size_t)N * 4);
    char what[80];
    snprintf(what, sizeof what, "(N=%lld V=%lld chunk=%lld)", (long long)N, (long long)V,
             (long long)Vc);

    lora__cpu_cross_entropy_fwd(r.cpu, nll, lse, logits, tg, N, V);
    for (int64_t i = 0; i < n_chunks; i++) {
        int64_t c = i == 0 ? 0 : n_chunks - i, v0 = c * Vc, k = V - v0 < Vc ? V - v0 : Vc;
        lora__cuda_ops.ce_chunk_fwd(r.gpu, d_state, d_chunk[c], d_tg, N, k, v0);
    }
    lora__cuda_ops.ce_chunk_finish(r.gpu, d_nll, d_lse, d_state, d_tg, N);
    expect_dev(&r, "ce_chunk nll", what, d_nll, nll, (size_t)N, FP32_TOL);
    expect_dev(&r, "ce_chunk lse", what, d_lse, lse, (size_t)N, FP32_TOL);
    float *gn = host(&r, d_nll, (size_t)N);
    for (int64_t n = 1; n < N; n += 3)
        ck_assert_msg(gn[n] == 0.0f, "ce_chunk nll %s: ignored row %lld is %g", what,
                      (long long)n, gn[n]);

    lora__cpu_cross_entropy_bwd(r.cpu, dl, logits, lse, tg, dnll, N, V);
    float *g = malloc(nl * 4);
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t v0 = c * Vc, k = V - v0 < Vc ? V - v0 : Vc;
        size_t nk = (size_t)(N * k);
        lora__cuda_ops.ce_chunk_bwd(r.gpu, d_dchunk[c], NULL, d_chunk[c], d_lse, d_tg, d_dnll, N,
                                    k, v0);
        float *h = host(&r, d_dchunk[c], nk);
        for (int64_t n = 0; n < N; n++)
            memcpy(g + n * V + v0, h + n * k, (size_t)k * 4);
        /* the rounded gradient alone (the head's bf16 product's dy16): to_bf16's of the float32 */
        lora_bf16 *d16 = dev_take(&r, nk * 2);
        lora__cuda_ops.ce_chunk_bwd(r.gpu, NULL, d16, d_chunk[c], d_lse, d_tg, d_dnll, N, k, v0);
        expect_rounding(&r, "ce_chunk_bwd dlogits16", what, d16, d_dchunk[c], nk);
        free(h);
    }
    expect_close("ce_chunk_bwd", what, g, dl, nl, FP32_TOL);
    for (int64_t n = 1; n < N; n += 3)
        for (int64_t v = 0; v < V; v++)
            ck_assert_msg(g[n * V + v] == 0.0f, "ce_chunk_bwd %s: ignored row %lld is %g", what,
                          (long long)n, g[n * V + v]);

    free(tg), free(logits), free(nll), free(lse), free(dnll), free(dl), free(chunk);
    free(d_chunk), free(d_dchunk), free(gn), free(g);
    rig_close(&r);
}

START_TEST(cross_entropy_chunked)
{
    ce_chunk_case(6, 5, 2);
    ce_chunk_case(5, 1000, 128);   /* 1000 = 7 x 128 + 104 */
    ce_chunk_case(7, 1000, 1000);  /* one chunk */
    ce_chunk_case(9, 777, 100);
    ce_chunk_case(4, 151936, 8192); /* Qwen2.5's vocabulary in the head's chunks */
    ce_chunk_case(3, 300, 1);       /* one column a chunk */
}
END_TEST

/* ---- attention ---------------------------------------------------------------------------- */

typedef struct attn_case {
    int64_t B, T, S, H, KVH, D, pos0;
    bool packed; /* key0: each sequence packs samples of 5 tokens */
} attn_case;

static void attention_case(attn_case c)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, (uint64_t)(c.T * 101 + c.D + c.S));
    size_t nq = (size_t)(c.B * c.T * c.H * c.D), nk = (size_t)(c.B * c.S * c.KVH * c.D);
    int32_t *key0 = NULL, *d_key0 = NULL;
    if (c.packed) {
        key0 = malloc((size_t)(c.B * c.T) * 4);
        for (int64_t i = 0; i < c.B * c.T; i++)
            key0[i] = (int32_t)((i % c.T) / 5 * 5);
        d_key0 = dev(&r, key0, (size_t)(c.B * c.T) * 4);
    }
    lora_attention_shape sh = {c.B, c.T, c.S, c.H, c.KVH, c.D, c.pos0,
                               (float)(1.0 / sqrt((double)c.D)), key0, NULL};
    lora_attention_shape dsh = sh;
    dsh.key0 = d_key0;
    float *q = frand(&r, nq, -1, 1), *k = frand(&r, nk, -1, 1), *v = frand(&r, nk, -1, 1);
    float *out = malloc(nq * 4), *dout = frand(&r, nq, -1, 1), *dq = frand(&r, nq, -1, 1);
    float *dk = frand(&r, nk, -1, 1), *dv = frand(&r, nk, -1, 1), *dk0 = fdup(dk, nk);
    float *d_q = dev(&r, q, nq * 4), *d_k = dev(&r, k, nk * 4), *d_v = dev(&r, v, nk * 4);
    float *d_out = dev_nan(&r, nq), *d_dout = dev(&r, dout, nq * 4);
    float *d_dq = dev(&r, dq, nq * 4), *d_dk = dev(&r, dk, nk * 4), *d_dv = dev(&r, dv, nk * 4);
    char what[128];
    snprintf(what, sizeof what, "(B=%lld T=%lld S=%lld H=%lld KVH=%lld D=%lld pos0=%lld%s)",
             (long long)c.B, (long long)c.T, (long long)c.S, (long long)c.H, (long long)c.KVH,
             (long long)c.D, (long long)c.pos0, c.packed ? " packed" : "");

    lora__cpu_attention_fwd(r.cpu, out, q, k, v, &sh);
    lora__cuda_ops.attention_fwd(r.gpu, d_out, d_q, d_k, d_v, &dsh);
    expect_dev(&r, "attention_fwd", what, d_out, out, nq, FP32_TOL);

    lora__cpu_attention_bwd(r.cpu, dq, dk, dv, dout, q, k, v, &sh);
    lora__cuda_ops.attention_bwd(r.gpu, d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, &dsh);
    expect_dev(&r, "attention_bwd dq", what, d_dq, dq, nq, 5 * FP32_TOL);
    expect_dev(&r, "attention_bwd dv", what, d_dv, dv, nk, 5 * FP32_TOL);
    float *g = host(&r, d_dk, nk);
    expect_close("attention_bwd dk", what, g, dk, nk, 5 * FP32_TOL);
    /* key rows past pos0 + T - 1 are seen by no query */
    size_t row = (size_t)(c.KVH * c.D);
    for (int64_t b = 0; b < c.B; b++)
        for (int64_t s = c.pos0 + c.T; s < c.S; s++) {
            size_t off = (size_t)(b * c.S + s) * row;
            expect_same_bits("attention_bwd dk", "unseen key row", g + off, dk0 + off, row);
        }

    free(key0), free(q), free(k), free(v), free(out), free(dout), free(dq), free(dk), free(dv);
    free(dk0), free(g);
    rig_close(&r);
}

START_TEST(attention)
{
    attention_case((attn_case){2, 5, 5, 4, 2, 16, 0, false});
    attention_case((attn_case){1, 3, 40, 2, 1, 64, 20, false});   /* KV cache: pos0, S > T */
    attention_case((attn_case){1, 1, 33, 14, 2, 64, 17, false});  /* one decode step */
    attention_case((attn_case){2, 17, 17, 4, 4, 80, 0, true});    /* packed, D not 2^k * 32 */
    attention_case((attn_case){1, 33, 33, 8, 2, 128, 0, false});  /* the CPU's blocked path */
    attention_case((attn_case){1, 7, 7, 2, 1, 256, 0, false});
    attention_case((attn_case){1, 4, 4, 2, 2, 8, 0, false});      /* D < 32 */
}
END_TEST

/* The attention over kept bfloat16 q, k, v against attention_fwd / _bwd of the same values
 * widened, in BF16 math (the latter adding into zeros, the former writing its gradients): the
 * output rounded and dq, dk, dv bit for bit where both run the
 * reference kernels; on cuDNN the forward bit for bit (the same rounded inputs) and the
 * gradients within a bfloat16 step (its backward may add dq in any order); every value
 * written. */
static void attention_bf16_case(attn_case c)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, (uint64_t)(c.T * 31 + c.D + c.H));
    const lora_backend_ops *op = &lora__cuda_ops;
    size_t nq = (size_t)(c.B * c.T * c.H * c.D), nk = (size_t)(c.B * c.T * c.KVH * c.D);
    size_t rows = (size_t)(c.B * c.T * c.H);
    int32_t *key0 = NULL;
    if (c.packed) {
        key0 = malloc((size_t)(c.B * c.T) * 4);
        for (int64_t i = 0; i < c.B * c.T; i++)
            key0[i] = (int32_t)((i % c.T) / 5 * 5);
    }
    lora_attention_shape sh = {c.B, c.T, c.T, c.H, c.KVH, c.D, 0,
                               (float)(1.0 / sqrt((double)c.D)),
                               key0 ? dev(&r, key0, (size_t)(c.B * c.T) * 4) : NULL, NULL};
    float *q = frand(&r, nq, -2, 2), *k = frand(&r, nk, -2, 2), *v = frand(&r, nk, -1, 1);
    float *dout = frand(&r, nq, -1, 1), *accq = calloc(nq, 4), *acck = calloc(nk, 4);
    uint16_t *qh, *kh, *vh;
    float *qw = round_bf16(q, nq, &qh), *kw = round_bf16(k, nk, &kh), *vw = round_bf16(v, nk, &vh);
    lora_bf16 *d_q16 = dev(&r, qh, nq * 2), *d_k16 = dev(&r, kh, nk * 2);
    lora_bf16 *d_v16 = dev(&r, vh, nk * 2), *d_out16 = dev_take(&r, nq * 2);
    float *d_q = dev(&r, qw, nq * 4), *d_k = dev(&r, kw, nk * 4), *d_v = dev(&r, vw, nk * 4);
    float *d_out = dev_nan(&r, nq), *d_dout = dev(&r, dout, nq * 4), *stats = dev_nan(&r, rows);
    lora_bf16 *want16 = dev_take(&r, nq * 2);
    char what[128];
    snprintf(what, sizeof what, "(B=%lld T=%lld H=%lld KVH=%lld D=%lld%s)", (long long)c.B,
             (long long)c.T, (long long)c.H, (long long)c.KVH, (long long)c.D,
             c.packed ? " packed" : "");

    op->attention_fwd(r.gpu, d_out, d_q, d_k, d_v, &sh);
    op->to_bf16(r.gpu, want16, d_out, nq);
    ck_assert_msg(lora__cuda_fill(r.gpu, d_out16, 0xFF, nq * 2) == LORA_OK, "%s",
                  lora_last_error());
    op->attention_bf16_fwd(r.gpu, d_out16, stats, d_q16, d_k16, d_v16, &sh);
    uint16_t *got = host16(&r, d_out16, nq), *want = host16(&r, want16, nq);
    ck_assert_msg(memcmp(got, want, nq * 2) == 0, "attention_bf16_fwd %s: not attention_fwd's "
                  "output rounded", what);

    /* attention_bwd adds into zeros, attention_bf16_bwd writes (its outputs start as NaN) */
    float *dq1 = dev(&r, accq, nq * 4), *dq2 = dev_nan(&r, nq);
    float *dk1 = dev(&r, acck, nk * 4), *dk2 = dev_nan(&r, nk);
    float *dv1 = dev(&r, acck, nk * 4), *dv2 = dev_nan(&r, nk);
    op->attention_bwd(r.gpu, dq1, dk1, dv1, d_dout, d_q, d_k, d_v, &sh);
    op->attention_bf16_bwd(r.gpu, dq2, dk2, dv2, d_dout, d_q16, d_k16, d_v16, d_out16, stats,
                           &sh);
    ck_assert_msg(lora__cuda_sync(r.gpu) == LORA_OK, "%s: %s", what, lora_last_error());
    lora_cuda_sdpa_info in;
    lora__cuda_sdpa_info(r.gpu, &in);
    bool cudnn = in.cudnn_calls > 0;
    /* both sides of each pair on the same path: cuDNN for all four calls, or for none */
    ck_assert_msg(in.cudnn_calls == 0 || in.cudnn_calls == 4, "%s: %llu of 4 calls on cuDNN",
                  what, (unsigned long long)in.cudnn_calls);
    const float *want_g[3] = {dq1, dk1, dv1}, *got_g[3] = {dq2, dk2, dv2};
    const char *name[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++) {
        size_t n = i ? nk : nq;
        float *a = host(&r, want_g[i], n), *b = host(&r, got_g[i], n);
        if (cudnn)
            expect_close("attention_bf16_bwd", name[i], b, a, n, 1e-2); /* a bf16 step */
        else {
            for (size_t e = 0; e < n; e++)
                ck_assert_msg(isfinite(b[e]), "attention_bf16_bwd %s %s[%zu] not written",
                              what, name[i], e);
            expect_same_bits("attention_bf16_bwd", name[i], b, a, n);
        }
        free(a), free(b);
    }
    free(key0), free(q), free(k), free(v), free(dout), free(accq), free(acck), free(qh);
    free(kh), free(vh), free(qw), free(kw), free(vw), free(got), free(want);
    rig_close(&r);
}

START_TEST(attention_bf16_matches_widened)
{
    attention_bf16_case((attn_case){2, 37, 37, 8, 2, 64, 0, false}); /* cuDNN's on a GPU */
    attention_bf16_case((attn_case){1, 130, 130, 14, 2, 64, 0, false});
    attention_bf16_case((attn_case){2, 17, 17, 4, 4, 80, 0, true});  /* packed: the reference */
    attention_bf16_case((attn_case){1, 9, 9, 2, 1, 36, 0, false});   /* D not a multiple of 8 */
    /* a KV cache's shape is not a kept one: refused, naming it */
    rig r = rig_open(LORA_CUDA_MATH_BF16, 3);
    lora_attention_shape sh = {1, 4, 20, 2, 1, 64, 16, 0.125f, NULL, NULL};
    lora_bf16 *buf = dev_take(&r, 20 * 64 * 2 * 2);
    float *stats = dev_nan(&r, 8);
    lora__cuda_ops.attention_bf16_fwd(r.gpu, buf, stats, buf, buf, buf, &sh);
    ck_assert_int_eq(lora__cuda_sync(r.gpu), LORA_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lora_last_error(), "attention_bf16_fwd: S 20 != T 4"), "%s",
                  lora_last_error());
    rig_close(&r);
}
END_TEST

/* ---- attention on cuDNN ------------------------------------------------------------------- */

#define SDPA_OUT_TOL 1.5e-2  /* bfloat16 q, k, v and P; float32 softmax */
#define SDPA_GRAD_TOL 3e-2   /* and bfloat16 dO, dS and gradients */

typedef struct sdpa_case {
    int64_t B, T, S, H, KVH, D;
    const int32_t *len; /* (B) valid rows per sequence, or NULL */
} sdpa_case;

static void expect_info(rig *r, uint64_t calls, uint64_t reference, const char *what)
{
    lora_cuda_sdpa_info in;
    lora__cuda_sdpa_info(r->gpu, &in);
    ck_assert_msg(in.cudnn_calls == calls && in.reference_calls == reference,
                  "%s: %llu calls on cuDNN (%llu expected), %llu on the reference kernels "
                  "(%llu expected): %s", what, (unsigned long long)in.cudnn_calls,
                  (unsigned long long)calls, (unsigned long long)in.reference_calls,
                  (unsigned long long)reference, in.why);
}

/* values g - base against c - base: what the backward added */
static void expect_added(rig *r, const char *what, const char *shape, const float *d,
                         const float *c, const float *base, size_t n, double tol)
{
    float *g = host(r, d, n), *dg = malloc(n * sizeof *dg), *dc = malloc(n * sizeof *dc);
    for (size_t i = 0; i < n; i++) {
        dg[i] = g[i] - base[i];
        dc[i] = c[i] - base[i];
    }
    expect_close(what, shape, dg, dc, n, tol);
    free(g), free(dg), free(dc);
}

/* cuDNN's forward and backward against the reference kernels on the same device: rows within
 * the lengths within bfloat16 bounds, padded query rows 0 in the output and untouched in the
 * gradients, key rows past T untouched */
static void sdpa_run(sdpa_case c)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, (uint64_t)(c.T * 7 + c.D + c.H));
    lora_cuda *cu = r.gpu->impl;
    size_t nq = (size_t)(c.B * c.T * c.H * c.D), nk = (size_t)(c.B * c.S * c.KVH * c.D);
    size_t qrow = (size_t)(c.H * c.D), krow = (size_t)(c.KVH * c.D);
    float scale = (float)(1.0 / sqrt((double)c.D));
    float *q = frand(&r, nq, -2, 2), *k = frand(&r, nk, -2, 2), *v = frand(&r, nk, -1, 1);
    float *dout = frand(&r, nq, -1, 1), *dq = frand(&r, nq, -1, 1), *dk = frand(&r, nk, -1, 1);
    float *dv = frand(&r, nk, -1, 1);
    float *d_q = dev(&r, q, nq * 4), *d_k = dev(&r, k, nk * 4), *d_v = dev(&r, v, nk * 4);
    float *d_dout = dev(&r, dout, nq * 4);
    float *ref_out = dev_nan(&r, nq), *d_out = dev_nan(&r, nq);
    float *ref_dq = dev(&r, dq, nq * 4), *ref_dk = dev(&r, dk, nk * 4);
    float *ref_dv = dev(&r, dv, nk * 4);
    float *d_dq = dev(&r, dq, nq * 4), *d_dk = dev(&r, dk, nk * 4), *d_dv = dev(&r, dv, nk * 4);
    int32_t *d_len = c.len ? dev(&r, c.len, (size_t)c.B * 4) : NULL;
    char what[128];
    snprintf(what, sizeof what, "(B=%lld T=%lld S=%lld H=%lld KVH=%lld D=%lld%s)",
             (long long)c.B, (long long)c.T, (long long)c.S, (long long)c.H, (long long)c.KVH,
             (long long)c.D, c.len ? " padded" : "");

    /* the reference, sequence by sequence over its valid rows */
    for (int64_t b = 0; b < c.B; b++) {
        int64_t n = c.len ? c.len[b] : c.T;
        lora_attention_shape one = {1, n, c.S, c.H, c.KVH, c.D, 0, scale, NULL, NULL};
        size_t oq = (size_t)(b * c.T) * qrow, ok = (size_t)(b * c.S) * krow;
        if (n == 0)
            continue;
        lora__cuda_attention_ref_fwd(r.gpu, ref_out + oq, d_q + oq, d_k + ok, d_v + ok, &one);
        lora__cuda_attention_ref_bwd(r.gpu, ref_dq + oq, ref_dk + ok, ref_dv + ok,
                                     d_dout + oq, d_q + oq, d_k + ok, d_v + ok, &one);
    }
    lora_attention_shape sh = {c.B, c.T, c.S, c.H, c.KVH, c.D, 0, scale, NULL, NULL};
    if (c.len) {
        ck_assert_msg(lora__cuda_sdpa_fwd(cu, d_out, d_q, d_k, d_v, &sh, d_len), "%s", what);
        ck_assert_msg(lora__cuda_sdpa_bwd(cu, d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, &sh,
                                          d_len), "%s", what);
    } else {
        lora__cuda_ops.attention_fwd(r.gpu, d_out, d_q, d_k, d_v, &sh);
        lora__cuda_ops.attention_bwd(r.gpu, d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, &sh);
    }
    ck_assert_msg(lora__cuda_sync(r.gpu) == LORA_OK, "%s: %s", what, lora_last_error());
    expect_info(&r, 2, 0, what);

    float *g = host(&r, d_out, nq), *ro = host(&r, ref_out, nq);
    float *rdq = host(&r, ref_dq, nq), *rdk = host(&r, ref_dk, nk), *rdv = host(&r, ref_dv, nk);
    float *gdq = host(&r, d_dq, nq), *gdk = host(&r, d_dk, nk), *gdv = host(&r, d_dv, nk);
    for (int64_t b = 0; b < c.B; b++) {
        int64_t n = c.len ? c.len[b] : c.T;
        size_t oq = (size_t)(b * c.T) * qrow, ok = (size_t)(b * c.S) * krow;
        size_t vq = (size_t)n * qrow, vk = (size_t)n * krow;
        char seq[160];
        snprintf(seq, sizeof seq, "%s sequence %lld", what, (long long)b);
        expect_close("sdpa fwd", seq, g + oq, ro + oq, vq, SDPA_OUT_TOL);
        for (size_t i = vq; i < (size_t)c.T * qrow; i++)
            ck_assert_msg(g[oq + i] == 0.0f, "sdpa fwd %s: padded output %g", seq, g[oq + i]);
        expect_added(&r, "sdpa bwd dq", seq, d_dq + oq, rdq + oq, dq + oq, vq, SDPA_GRAD_TOL);
        expect_added(&r, "sdpa bwd dk", seq, d_dk + ok, rdk + ok, dk + ok, vk, SDPA_GRAD_TOL);
        expect_added(&r, "sdpa bwd dv", seq, d_dv + ok, rdv + ok, dv + ok, vk, SDPA_GRAD_TOL);
        /* padded queries and the keys past them (up to S) keep their values */
        expect_same_bits("sdpa bwd dq", "padded rows", gdq + oq + vq, dq + oq + vq,
                         (size_t)c.T * qrow - vq);
        expect_same_bits("sdpa bwd dk", "rows past the length", gdk + ok + vk, dk + ok + vk,
                         (size_t)c.S * krow - vk);
        expect_same_bits("sdpa bwd dv", "rows past the length", gdv + ok + vk, dv + ok + vk,
                         (size_t)c.S * krow - vk);
    }
    free(q), free(k), free(v), free(dout), free(dq), free(dk), free(dv), free(g), free(ro);
    free(rdq), free(rdk), free(rdv), free(gdq), free(gdk), free(gdv);
    rig_close(&r);
}

START_TEST(sdpa_cudnn)
{
    sdpa_run((sdpa_case){2, 37, 37, 8, 2, 64, NULL});   /* GQA, T not a multiple of 64 */
    sdpa_run((sdpa_case){1, 64, 64, 4, 4, 128, NULL});  /* MHA, D 128 */
    sdpa_run((sdpa_case){3, 100, 120, 6, 1, 64, NULL}); /* MQA, key rows past T */
    sdpa_run((sdpa_case){1, 130, 130, 14, 2, 64, NULL}); /* Qwen2.5-0.5B's heads */
    sdpa_run((sdpa_case){2, 200, 256, 16, 8, 128, NULL});
}
END_TEST

START_TEST(sdpa_cudnn_padding)
{
    static const int32_t two[2] = {50, 23}, three[3] = {1, 77, 129};
    sdpa_run((sdpa_case){2, 50, 50, 4, 2, 128, two});
    sdpa_run((sdpa_case){3, 129, 140, 2, 2, 64, three});
}
END_TEST

/* a second call of a shape builds no plan; the backward reuses the forward's */
START_TEST(sdpa_plan_cache)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, 5);
    int64_t B = 2, T = 40, H = 4, KVH = 2, D = 64, S = 48;
    size_t nq = (size_t)(B * T * H * D), nk = (size_t)(B * S * KVH * D);
    float *h = frand(&r, nk > nq ? nk : nq, -1, 1);
    float *q = dev(&r, h, nq * 4), *k = dev(&r, h, nk * 4), *v = dev(&r, h, nk * 4);
    float *out = dev_nan(&r, nq), *dq = dev(&r, h, nq * 4), *dk = dev(&r, h, nk * 4);
    float *dv = dev(&r, h, nk * 4);
    lora_attention_shape sh = {B, T, S, H, KVH, D, 0, 0.125f, NULL, NULL};
    lora_cuda_sdpa_info in;
    lora__cuda_ops.attention_fwd(r.gpu, out, q, k, v, &sh);
    lora__cuda_sdpa_info(r.gpu, &in);
    ck_assert_msg(in.plans_built == 1 && in.plan_hits == 0 && in.plans == 1, "%s", in.why);
    sh.scale = 0.1f; /* by value: the same plan */
    lora__cuda_ops.attention_fwd(r.gpu, out, q, k, v, &sh);
    lora__cuda_sdpa_info(r.gpu, &in);
    ck_assert_uint_eq(in.plans_built, 1);
    ck_assert_uint_eq(in.plan_hits, 1);
    lora__cuda_ops.attention_bwd(r.gpu, dq, dk, dv, out, q, k, v, &sh);
    lora__cuda_sdpa_info(r.gpu, &in);
    ck_assert_uint_eq(in.plans_built, 2); /* the backward graph */
    ck_assert_uint_eq(in.plan_hits, 2);   /* its forward */
    lora__cuda_ops.attention_bwd(r.gpu, dq, dk, dv, out, q, k, v, &sh);
    lora__cuda_sdpa_info(r.gpu, &in);
    ck_assert_uint_eq(in.plans_built, 2);
    ck_assert_uint_eq(in.plan_hits, 4);
    sh.T = 33; /* another shape: another plan */
    lora__cuda_ops.attention_fwd(r.gpu, out, q, k, v, &sh);
    lora__cuda_sdpa_info(r.gpu, &in);
    ck_assert_uint_eq(in.plans_built, 3);
    ck_assert_int_eq(in.plans, 3);
    ck_assert(in.loaded && in.handle);
    ck_assert_uint_eq(in.cudnn_calls, 5);
    ck_assert_uint_eq(in.reference_calls, 0);
    free(h);
    rig_close(&r);
}
END_TEST

/* what cuDNN does not take goes to the reference kernels, saying why */
START_TEST(sdpa_falls_back)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, 6);
    int64_t B = 1, T = 4, S = 20, H = 2, KVH = 1, D = 64;
    size_t nq = (size_t)(B * T * H * D), nk = (size_t)(B * S * KVH * D);
    float *h = frand(&r, nk, -1, 1);
    float *q = dev(&r, h, nq * 4), *k = dev(&r, h, nk * 4), *v = dev(&r, h, nk * 4);
    float *out = dev_nan(&r, nq);
    lora_attention_shape sh = {B, T, S, H, KVH, D, 16, 0.125f, NULL, NULL};
    lora__cuda_ops.attention_fwd(r.gpu, out, q, k, v, &sh);
    lora_cuda_sdpa_info in;
    lora__cuda_sdpa_info(r.gpu, &in);
    ck_assert_uint_eq(in.reference_calls, 1);
    ck_assert_msg(strstr(in.why, "position 0"), "%s", in.why);
    sh.pos0 = 0;
    sh.D = 36; /* not a multiple of 8: fewer columns of the same rows */
    lora__cuda_ops.attention_fwd(r.gpu, out, q, k, v, &sh);
    lora__cuda_sdpa_info(r.gpu, &in);
    ck_assert_uint_eq(in.reference_calls, 2);
    ck_assert_msg(strstr(in.why, "head_dim"), "%s", in.why);
    ck_assert_uint_eq(in.cudnn_calls, 0);
    float *g = host(&r, out, nq);
    for (size_t i = 0; i < (size_t)(B * T * H * 36); i++)
        ck_assert(isfinite(g[i]));
    free(g);
    rig_close(&r);
    rig f = rig_open(LORA_CUDA_MATH_FP32, 7);
    out = dev_nan(&f, nq);
    q = dev(&f, h, nq * 4), k = dev(&f, h, nk * 4), v = dev(&f, h, nk * 4);
    sh.D = 64;
    lora__cuda_ops.attention_fwd(f.gpu, out, q, k, v, &sh);
    lora__cuda_sdpa_info(f.gpu, &in);
    ck_assert_msg(in.reference_calls == 1 && strstr(in.why, "FP32"), "%s", in.why);
    free(h);
    rig_close(&f);
}
END_TEST

/* Over a bfloat16 KV cache: against the CPU's attention on the same keys and values widened
 * (float32 bounds), and on the float32 originals (bfloat16 bounds). */
static void attention_bf16kv_case(attn_case c)
{
    rig r = rig_open(LORA_CUDA_MATH_BF16, (uint64_t)(c.T * 103 + c.D + c.S));
    size_t nq = (size_t)(c.B * c.T * c.H * c.D), nk = (size_t)(c.B * c.S * c.KVH * c.D);
    int32_t *key0 = NULL, *d_key0 = NULL;
    if (c.packed) {
        key0 = malloc((size_t)(c.B * c.T) * 4);
        for (int64_t i = 0; i < c.B * c.T; i++)
            key0[i] = (int32_t)((c.pos0 + i % c.T) / 5 * 5);
        d_key0 = dev(&r, key0, (size_t)(c.B * c.T) * 4);
    }
    lora_attention_shape sh = {c.B, c.T, c.S, c.H, c.KVH, c.D, c.pos0,
                               (float)(1.0 / sqrt((double)c.D)), key0, NULL};
    lora_attention_shape dsh = sh;
    dsh.key0 = d_key0;
    uint16_t *kh, *vh;
    float *q = frand(&r, nq, -1, 1), *k = frand(&r, nk, -1, 1), *v = frand(&r, nk, -1, 1);
    float *kr = round_bf16(k, nk, &kh), *vr = round_bf16(v, nk, &vh), *out = malloc(nq * 4);
    float *d_q = dev(&r, q, nq * 4), *d_out = dev_nan(&r, nq);
    lora_bf16 *d_k = dev(&r, kh, nk * 2), *d_v = dev(&r, vh, nk * 2);
    char what[128];
    snprintf(what, sizeof what, "(B=%lld T=%lld S=%lld H=%lld KVH=%lld D=%lld pos0=%lld%s)",
             (long long)c.B, (long long)c.T, (long long)c.S, (long long)c.H, (long long)c.KVH,
             (long long)c.D, (long long)c.pos0, c.packed ? " packed" : "");

    lora__cuda_ops.attention_bf16kv_fwd(r.gpu, d_out, d_q, d_k, d_v, &dsh);
    float *g = host(&r, d_out, nq);
    lora__cpu_attention_fwd(r.cpu, out, q, kr, vr, &sh);
    expect_close("attention_bf16kv_fwd (widened cache)", what, g, out, nq, 5 * FP32_TOL);
    /* the positions read on the device instead of pos0 (decoding's), the launch sized for S */
    int32_t *pos = malloc((size_t)(c.B * c.T) * 4);
    for (int64_t i = 0; i < c.B * c.T; i++)
        pos[i] = (int32_t)(c.pos0 + i % c.T);
    dsh.pos = dev(&r, pos, (size_t)(c.B * c.T) * 4);
    lora__cuda_ops.attention_bf16kv_fwd(r.gpu, d_out, d_q, d_k, d_v, &dsh);
    float *gp = host(&r, d_out, nq);
    expect_close("attention_bf16kv_fwd (device positions)", what, gp, out, nq, 5 * FP32_TOL);
    lora__cpu_attention_fwd(r.cpu, out, q, k, v, &sh);
    expect_close("attention_bf16kv_fwd", what, g, out, nq, BF16_TOL);

    free(pos), free(gp), free(key0), free(kh), free(vh), free(q), free(k), free(v), free(kr), free(vr), free(out);
    free(g);
    rig_close(&r);
}

START_TEST(attention_bf16_kv_cache)
{
    attention_bf16kv_case((attn_case){1, 1, 33, 14, 2, 64, 17, false});  /* one decode step */
    attention_bf16kv_case((attn_case){1, 1, 4096, 8, 2, 128, 4000, false}); /* a long context */
    attention_bf16kv_case((attn_case){1, 1, 3, 4, 4, 16, 0, false});     /* fewer keys than warps */
    attention_bf16kv_case((attn_case){1, 3, 40, 2, 1, 64, 20, false});   /* prefill into a cache */
    attention_bf16kv_case((attn_case){2, 5, 5, 4, 2, 16, 0, false});
    attention_bf16kv_case((attn_case){2, 17, 17, 4, 4, 80, 0, true});    /* packed, D = 80 */
    attention_bf16kv_case((attn_case){1, 7, 7, 2, 1, 256, 0, false});
    attention_bf16kv_case((attn_case){1, 4, 4, 2, 2, 8, 0, false});      /* D < 32 */
    /* split-KV: rows of different lengths over 3 splits; packed rows over 2, some empty */
    attention_bf16kv_case((attn_case){2, 2, 200, 4, 2, 64, 150, false});
    attention_bf16kv_case((attn_case){1, 100, 100, 1, 1, 32, 0, true});
}
END_TEST

/* ---- AdamW and the gradient norm ---------------------------------------------------------- */

static void adamw_case(size_t n, const char *json)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, n);
    lora_optim_config cfg;
    ck_assert_msg(lora__optim_config_parse(json, &cfg) == LORA_OK, "%s", lora_last_error());
    float *p = frand(&r, n, -1, 1), *g = malloc(n * 4);
    lora_param prm = {"w", p, g, n, 0};
    lora_optim *o;
    ck_assert_msg(lora__optim_create(&cfg, &prm, 1, &o) == LORA_OK, "%s", lora_last_error());
    float *d_p = dev(&r, p, n * 4), *d_g = dev_take(&r, n * 4);
    float *d_m = dev_take(&r, n * 4), *d_v = dev_take(&r, n * 4);
    ck_assert(lora__cuda_fill(r.gpu, d_m, 0, n * 4) == LORA_OK);
    ck_assert(lora__cuda_fill(r.gpu, d_v, 0, n * 4) == LORA_OK);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++)
            g[i] = (float)(lora__rng_uniform_f64(&r.rng) * 2 - 1) * (float)(step + 1);
        ck_assert(lora__cuda_upload(r.gpu, d_g, g, n * 4) == LORA_OK);
        double lr = lora__optim_lr(o), ss;
        uint64_t t = lora__optim_step_count(o);
        lora_optim_report rep;
        ck_assert_msg(lora__optim_step(o, &rep) == LORA_OK, "%s", lora_last_error());
        ck_assert_msg(lora__cuda_sum_squares(r.gpu, d_g, n, &ss) == LORA_OK, "%s",
                      lora_last_error());
        double norm = sqrt(ss), scale = 1.0;
        ck_assert_msg(fabs(norm - rep.grad_norm) <= 1e-10 * rep.grad_norm,
                      "gradient norm %.17g on the GPU, %.17g on the CPU", norm, rep.grad_norm);
        if (cfg.max_grad_norm > 0 && cfg.max_grad_norm / (norm + 1e-6) < 1.0)
            scale = cfg.max_grad_norm / (norm + 1e-6);
        lora_adamw_args a = {lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, scale, t};
        lora__cuda_adamw(r.gpu, d_p, d_g, d_m, d_v, n, &a);
        char what[64];
        snprintf(what, sizeof what, "(n=%zu step %d)", n, step);
        expect_dev(&r, "adamw p", what, d_p, p, n, 1e-6);
        expect_dev(&r, "adamw exp_avg", what, d_m, o->m, n, 1e-6);
        expect_dev(&r, "adamw exp_avg_sq", what, d_v, o->v, n, 1e-6);
    }
    lora__optim_free(o);
    free(p), free(g);
    rig_close(&r);
}

START_TEST(adamw)
{
    adamw_case(1000, "{\"lr\": 0.01, \"weight_decay\": 0.1}");
    adamw_case(100003, "{\"lr\": 0.001, \"max_grad_norm\": 0.5, \"betas\": [0.8, 0.99]}");
}
END_TEST

/* SGD on the device against the host optimizer's: three steps, so that the momentum buffer's
 * first update (buf = g) and the later ones (momentum, dampening, nesterov) all run. */
static void sgd_case(size_t n, const char *json)
{
    rig r = rig_open(LORA_CUDA_MATH_FP32, n);
    lora_optim_config cfg;
    ck_assert_msg(lora__optim_config_parse(json, &cfg) == LORA_OK, "%s", lora_last_error());
    float *p = frand(&r, n, -1, 1), *g = malloc(n * 4);
    lora_param prm = {"w", p, g, n, 0};
    lora_optim *o;
    ck_assert_msg(lora__optim_create(&cfg, &prm, 1, &o) == LORA_OK, "%s", lora_last_error());
    bool momentum = cfg.momentum != 0;
    float *d_p = dev(&r, p, n * 4), *d_g = dev_take(&r, n * 4);
    float *d_buf = momentum ? dev_take(&r, n * 4) : NULL;
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++)
            g[i] = (float)(lora__rng_uniform_f64(&r.rng) * 2 - 1) * (float)(step + 1);
        ck_assert(lora__cuda_upload(r.gpu, d_g, g, n * 4) == LORA_OK);
        double lr = lora__optim_lr(o);
        uint64_t t = lora__optim_step_count(o);
        lora_optim_report rep;
        ck_assert_msg(lora__optim_step(o, &rep) == LORA_OK, "%s", lora_last_error());
        lora_sgd_args a = {lr, cfg.momentum, cfg.dampening, cfg.weight_decay, rep.clip_coef,
                           cfg.nesterov, t};
        lora__cuda_sgd(r.gpu, d_p, d_g, d_buf, n, &a);
        char what[64];
        snprintf(what, sizeof what, "(n=%zu step %d)", n, step);
        expect_dev(&r, "sgd p", what, d_p, p, n, 1e-6);
        if (momentum)
            expect_dev(&r, "sgd momentum_buffer", what, d_buf, o->m, n, 1e-6);
    }
    lora__optim_free(o);
    free(p), free(g);
    rig_close(&r);
}

START_TEST(sgd)
{
    sgd_case(1000, "{\"optimizer\": \"sgd\", \"lr\": 0.1}");
    sgd_case(4099, "{\"optimizer\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9, "
                   "\"dampening\": 0.1, \"weight_decay\": 0.01, \"max_grad_norm\": 2.0}");
    sgd_case(20011, "{\"optimizer\": \"sgd\", \"lr\": 0.01, \"momentum\": 0.8, "
                     "\"nesterov\": true}");
}
END_TEST

/* The multi-tensor entries against the per-tensor ones, bit for bit: tensors of odd sizes (one
 * past the 1024-block cap of the sum of squares), both learning-rate groups, three steps, the
 * second set of p, m, v updated per tensor. */
START_TEST(adamw_tensor_set)
{
    static const size_t sizes[] = {1, 7, 255, 257, 1000, 33, 300001, 100003, 3};
    enum { NT = sizeof sizes / sizeof *sizes };
    rig r = rig_open(LORA_CUDA_MATH_FP32, 77);
    lora_tensor_ref set_t[NT], one_t[NT];
    float *g_host[NT];
    for (size_t i = 0; i < NT; i++) {
        size_t n = sizes[i], b = n * 4;
        float *p = frand(&r, n, -1, 1);
        g_host[i] = malloc(b);
        ck_assert_ptr_nonnull(g_host[i]);
        float *d_g = dev_take(&r, b);
        set_t[i] = (lora_tensor_ref){dev(&r, p, b), d_g, dev_take(&r, b), dev_take(&r, b), n,
                                     (int)(i % 2)};
        one_t[i] = (lora_tensor_ref){dev(&r, p, b), d_g, dev_take(&r, b), dev_take(&r, b), n,
                                     (int)(i % 2)};
        ck_assert(lora__cuda_fill(r.gpu, set_t[i].m, 0, b) == LORA_OK);
        ck_assert(lora__cuda_fill(r.gpu, set_t[i].v, 0, b) == LORA_OK);
        ck_assert(lora__cuda_fill(r.gpu, one_t[i].m, 0, b) == LORA_OK);
        ck_assert(lora__cuda_fill(r.gpu, one_t[i].v, 0, b) == LORA_OK);
        free(p);
    }
    lora_tensor_set *set;
    ck_assert_msg(lora__cuda_ops.tensor_set_create(r.gpu, set_t, NT, &set) == LORA_OK, "%s",
                  lora_last_error());
    for (uint64_t step = 0; step < 3; step++) {
        for (size_t i = 0; i < NT; i++) {
            for (size_t k = 0; k < sizes[i]; k++)
                g_host[i][k] = (float)((lora__rng_uniform_f64(&r.rng) * 2 - 1) * (double)(i + 1));
            ck_assert(lora__cuda_upload(r.gpu, (void *)set_t[i].g, g_host[i], sizes[i] * 4) ==
                      LORA_OK);
        }
        double per = 0, all = 0, again = 0;
        for (size_t i = 0; i < NT; i++)
            ck_assert(lora__cuda_ops.sum_squares(r.gpu, one_t[i].g, sizes[i], &per) == LORA_OK);
        ck_assert_msg(lora__cuda_ops.sum_squares_set(r.gpu, set, &all) == LORA_OK, "%s",
                      lora_last_error());
        ck_assert(lora__cuda_ops.sum_squares_set(r.gpu, set, &again) == LORA_OK);
        ck_assert_msg(memcmp(&per, &all, sizeof per) == 0 && memcmp(&all, &again, sizeof all) == 0,
                      "sum of squares: %.17g per tensor, %.17g and %.17g as a set", per, all,
                      again);
        lora_adamw_args a[2] = {{1e-2, 0.9, 0.999, 1e-8, 0.1, 0.7, step},
                                {4e-2, 0.9, 0.999, 1e-8, 0.1, 0.7, step}};
        lora__cuda_ops.adamw_set(r.gpu, set, a);
        for (size_t i = 0; i < NT; i++)
            lora__cuda_ops.adamw(r.gpu, one_t[i].p, one_t[i].g, one_t[i].m, one_t[i].v, sizes[i],
                                 &a[one_t[i].group]);
        for (size_t i = 0; i < NT; i++) {
            char what[64];
            snprintf(what, sizeof what, "(tensor %zu of %zu values, step %llu)", i, sizes[i],
                     (unsigned long long)step);
            float *x[2][3] = {{set_t[i].p, set_t[i].m, set_t[i].v},
                              {one_t[i].p, one_t[i].m, one_t[i].v}};
            static const char *names[3] = {"p", "exp_avg", "exp_avg_sq"};
            for (int k = 0; k < 3; k++) {
                float *hs = host(&r, x[0][k], sizes[i]), *ho = host(&r, x[1][k], sizes[i]);
                char op[32];
                snprintf(op, sizeof op, "adamw_set %s", names[k]);
                expect_same_bits(op, what, hs, ho, sizes[i]);
                free(hs), free(ho);
            }
        }
    }
    lora__cuda_ops.tensor_set_free(r.gpu, set);
    for (size_t i = 0; i < NT; i++)
        free(g_host[i]);
    rig_close(&r);
}
END_TEST

/* ---- cuBLASLt plans ----------------------------------------------------------------------- */

/* The second product of a shape is a hit and gives the first's bits; after the table is
 * dropped the shape is built again (a miss) and still gives them; another alignment of the
 * same shape is another plan. */
static void gemm_cache_case(lora_cuda_math math, int64_t N, int64_t Nout, int64_t K)
{
    rig r = rig_open(math, (uint64_t)(N + Nout + K));
    lora_cuda *cu = r.gpu->impl;
    size_t nx = (size_t)(N * K) + 1, nw = (size_t)(Nout * K), ny = (size_t)(N * Nout);
    float *x = frand(&r, nx, -1, 1), *w = frand(&r, nw, -1, 1);
    float *d_x = dev(&r, x, nx * 4), *d_w = dev(&r, w, nw * 4), *d_y = dev_nan(&r, ny);
    char what[96];
    snprintf(what, sizeof what, "(%s N=%lld Nout=%lld K=%lld)", math_name(math), (long long)N,
             (long long)Nout, (long long)K);
    uint64_t hits = cu->gemm.hits, misses = cu->gemm.misses;
    lora__cuda_ops.matmul_fwd(r.gpu, d_y, d_x, d_w, NULL, N, Nout, K);
    float *first = host(&r, d_y, ny);
    ck_assert_msg(cu->gemm.misses == misses + 1 && cu->gemm.hits == hits, "%s: first call: "
                  "%llu misses, %llu hits", what, (unsigned long long)(cu->gemm.misses - misses),
                  (unsigned long long)(cu->gemm.hits - hits));
    ck_assert(lora__cuda_fill(r.gpu, d_y, 0xFF, ny * 4) == LORA_OK);
    lora__cuda_ops.matmul_fwd(r.gpu, d_y, d_x, d_w, NULL, N, Nout, K);
    float *second = host(&r, d_y, ny);
    ck_assert_msg(cu->gemm.misses == misses + 1 && cu->gemm.hits == hits + 1,
                  "%s: the second call is not a hit", what);
    expect_same_bits("matmul_fwd cached", what, second, first, ny);

    lora__cuda_gemm_free(cu);
    ck_assert_ptr_null(cu->gemm.e);
    ck_assert(lora__cuda_fill(r.gpu, d_y, 0xFF, ny * 4) == LORA_OK);
    lora__cuda_ops.matmul_fwd(r.gpu, d_y, d_x, d_w, NULL, N, Nout, K);
    float *rebuilt = host(&r, d_y, ny);
    ck_assert_msg(cu->gemm.misses == misses + 2, "%s: no miss after the table was dropped", what);
    expect_same_bits("matmul_fwd rebuilt", what, rebuilt, first, ny);

    /* x one float further on: 4-byte alignment, a plan of its own */
    lora__cuda_ops.matmul_fwd(r.gpu, d_y, d_x + 1, d_w, NULL, N, Nout, K);
    ck_assert(lora__cuda_sync(r.gpu) == LORA_OK);
    ck_assert_msg(cu->gemm.misses == misses + 3 && cu->gemm.live == 2,
                  "%s: another alignment shares a plan", what);
    free(x), free(w), free(first), free(second), free(rebuilt);
    rig_close(&r);
}

START_TEST(gemm_plan_cache)
{
    gemm_cache_case(LORA_CUDA_MATH_FP32, 3, 33, 17);
    gemm_cache_case(LORA_CUDA_MATH_FP32, 130, 257, 70);
    gemm_cache_case(LORA_CUDA_MATH_BF16, 256, 512, 896);
}
END_TEST

/* the table alone, with stand-in descriptors (nothing reaches cuBLASLt): hits, misses, a key
 * differing in one field, least recently used out when full */
START_TEST(gemm_plan_table)
{
    lora_gemm_cache c = {0};
    lora_gemm_key k0 = {.m = 64, .n = 32, .k = 16, .lda = 16, .ldb = 16, .ldc = 64, .ta = 1,
                        .ab = CUDA_R_32F, .c = CUDA_R_32F, .compute = CUBLAS_COMPUTE_32F,
                        .align_a = 256, .align_b = 256, .align_c = 256, .workspace = 1 << 25};
    ck_assert_ptr_null(lora__gemm_cache_find(&c, &k0));
    ck_assert_uint_eq(c.misses, 1);
    lora_gemm_plan plan = {.desc = (cublasLtMatmulDesc_t)(uintptr_t)1, .workspace = 7}, old;
    bool evicted = true;
    ck_assert(lora__gemm_cache_insert(&c, &k0, &plan, &old, &evicted));
    ck_assert(!evicted);
    lora_gemm_plan *got = lora__gemm_cache_find(&c, &k0);
    ck_assert_ptr_nonnull(got);
    ck_assert(got->desc == plan.desc && got->workspace == 7);
    ck_assert_uint_eq(c.hits, 1);
    lora_gemm_key k1 = k0;
    k1.align_a = 4;
    ck_assert_ptr_null(lora__gemm_cache_find(&c, &k1));
    /* fill the table: keys 1..LORA_GEMM_PLANS-1 differ in n */
    for (int i = 1; i < LORA_GEMM_PLANS; i++) {
        lora_gemm_key k = k0;
        k.n = 1000 + i;
        plan.desc = (cublasLtMatmulDesc_t)(uintptr_t)(i + 1);
        ck_assert(lora__gemm_cache_insert(&c, &k, &plan, &old, &evicted));
        ck_assert(!evicted);
    }
    ck_assert_int_eq(c.live, LORA_GEMM_PLANS);
    /* k0 used again: the least recently used is now the key of n 1001 */
    ck_assert_ptr_nonnull(lora__gemm_cache_find(&c, &k0));
    plan.desc = (cublasLtMatmulDesc_t)(uintptr_t)9999;
    ck_assert(lora__gemm_cache_insert(&c, &k1, &plan, &old, &evicted));
    ck_assert(evicted);
    ck_assert(old.desc == (cublasLtMatmulDesc_t)(uintptr_t)2);
    ck_assert_uint_eq(c.evictions, 1);
    ck_assert_int_eq(c.live, LORA_GEMM_PLANS);
    lora_gemm_key gone = k0;
    gone.n = 1001;
    ck_assert_ptr_null(lora__gemm_cache_find(&c, &gone));
    ck_assert_ptr_nonnull(lora__gemm_cache_find(&c, &k0));
    got = lora__gemm_cache_find(&c, &k1);
    ck_assert(got && got->desc == (cublasLtMatmulDesc_t)(uintptr_t)9999);
    lora__gemm_cache_drop(&c);
    ck_assert_ptr_null(c.e);
    ck_assert_int_eq(c.live, 0);
    lora__gemm_cache_drop(&c); /* twice is harmless */
}
END_TEST

/* ---- memory, failures --------------------------------------------------------------------- */

START_TEST(arena_plan_take_reset)
{
    lora_backend *g;
    ck_assert_msg(lora__cuda_backend_create(0, LORA_CUDA_MATH_BF16, &g) == LORA_OK, "%s",
                  lora_last_error());
    lora_cuda_memory m0, m;
    lora__cuda_memory(g, &m0);
    ck_assert_uint_eq(m0.arena_bytes, 0);
    ck_assert_uint_gt(m0.device_bytes, 0); /* the cuBLASLt workspace */
    ck_assert_int_eq(lora__cuda_arena_plan(g, 1000), LORA_OK);
    lora__cuda_memory(g, &m);
    ck_assert_uint_eq(m.arena_bytes, lora__cuda_arena_size(1000));
    ck_assert_uint_eq(m.device_bytes, m0.device_bytes + m.arena_bytes);
    void *a, *b, *c;
    ck_assert_int_eq(lora__cuda_arena_take(g, 100, &a), LORA_OK);
    ck_assert_int_eq(lora__cuda_arena_take(g, 100, &b), LORA_OK);
    ck_assert_uint_eq((uintptr_t)b - (uintptr_t)a, 256);
    ck_assert_int_eq(lora__cuda_arena_take(g, 1000, &c), LORA_ERR_INTERNAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(lora__cuda_arena_plan(g, 4096), LORA_ERR_STATE); /* slices are out */
    lora__cuda_arena_reset(g);
    ck_assert_int_eq(lora__cuda_arena_plan(g, 4096), LORA_OK);
    lora__cuda_memory(g, &m);
    ck_assert_uint_eq(m.arena_bytes, 4096);
    ck_assert_uint_eq(m.arena_peak, 512);
    ck_assert_uint_eq(m.device_peak, m0.device_bytes + 4096);
    lora__cuda_backend_free(g);
}
END_TEST

START_TEST(device_oom_leaves_backend_usable)
{
    lora_backend *g;
    ck_assert_msg(lora__cuda_backend_create(0, LORA_CUDA_MATH_FP32, &g) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_int_eq(lora__cuda_arena_plan(g, 1 << 20), LORA_OK);
    /* a petabyte: no device has it */
    ck_assert_int_eq(lora__cuda_arena_plan(g, (size_t)1 << 50), LORA_ERR_DEVICE_OUT_OF_MEMORY);
    ck_assert_msg(strstr(lora_last_error(), "cudaErrorMemoryAllocation"), "%s",
                  lora_last_error());
    lora_cuda_memory m;
    lora__cuda_memory(g, &m);
    ck_assert_uint_eq(m.arena_bytes, 1 << 20); /* the old plan is back */
    float x[4] = {1, 2, 3, 4}, y[4] = {10, 20, 30, 40}, out[4];
    void *dx, *dy;
    ck_assert_int_eq(lora__cuda_arena_take(g, sizeof x, &dx), LORA_OK);
    ck_assert_int_eq(lora__cuda_arena_take(g, sizeof y, &dy), LORA_OK);
    ck_assert_int_eq(lora__cuda_upload(g, dx, x, sizeof x), LORA_OK);
    ck_assert_int_eq(lora__cuda_upload(g, dy, y, sizeof y), LORA_OK);
    lora__cuda_ops.residual_fwd(g, dy, dx, 4);
    ck_assert_int_eq(lora__cuda_download(g, out, dy, sizeof out), LORA_OK);
    ck_assert(out[0] == 11 && out[3] == 44);
    lora__cuda_backend_free(g);
}
END_TEST

START_TEST(sticky_error_leaves_only_free)
{
    lora_backend *g;
    ck_assert_msg(lora__cuda_backend_create(0, LORA_CUDA_MATH_FP32, &g) == LORA_OK, "%s",
                  lora_last_error());
    /* an address no allocation has: the kernel faults, which poisons the context */
    float *bad = (float *)(uintptr_t)0x10000;
    lora__cuda_ops.residual_fwd(g, bad, bad, 1 << 20);
    ck_assert_int_eq(lora__cuda_sync(g), LORA_ERR_DEVICE);
    ck_assert_msg(strstr(lora_last_error(), "failed state"), "%s", lora_last_error());
    ck_assert_int_eq(lora__cuda_sync(g), LORA_ERR_DEVICE);
    ck_assert_int_eq(lora__cuda_arena_plan(g, 1024), LORA_ERR_DEVICE);
    float x = 1;
    ck_assert_int_eq(lora__cuda_upload(g, bad, &x, sizeof x), LORA_ERR_DEVICE);
    lora__cuda_backend_free(g);
}
END_TEST

START_TEST(model_device_with_gpu)
{
    lora_model *m = NULL;
    ck_assert_msg(lora_model_load(QWEN2, "{\"device\": \"cuda\"}", &m) == LORA_OK, "%s",
                  lora_last_error());
    lora_model_free(m);
    m = NULL;
    ck_assert_int_eq(lora_model_load(QWEN2, "{\"device\": \"cuda:999\"}", &m), LORA_ERR_DEVICE);
    ck_assert_msg(strstr(lora_last_error(), "no such device"), "%s", lora_last_error());
    ck_assert_ptr_null(m);
}
END_TEST

/* ---- without a device (and everywhere) ---------------------------------------------------- */

START_TEST(device_names)
{
    int o = -1;
    ck_assert_int_eq(lora__cuda_parse_device("cuda", &o), LORA_OK);
    ck_assert_int_eq(o, 0);
    ck_assert_int_eq(lora__cuda_parse_device("cuda:3", &o), LORA_OK);
    ck_assert_int_eq(o, 3);
    const char *bad[] = {"cuda:", "cuda:-1", "cuda:1x", "cuda: 1", "cuda:123456", "cud", "cuda0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(lora__cuda_parse_device(bad[i], &o) == LORA_ERR_CONFIG, "%s", bad[i]);
    lora_model *m;
    ck_assert_int_eq(lora_model_load(QWEN2, "{\"device\": \"cuda:x\"}", &m), LORA_ERR_CONFIG);
    ck_assert_ptr_null(m);
}
END_TEST

/* dlopen and every dlsym of cublaslt.c: needs the library, not a device */
START_TEST(cublaslt_loads)
{
    const lora_cublaslt *lt;
    ck_assert_msg(lora__cublaslt(&lt) == LORA_OK, "%s", lora_last_error());
    ck_assert_str_eq(lt->status_name(CUBLAS_STATUS_ALLOC_FAILED), "CUBLAS_STATUS_ALLOC_FAILED");
    ck_assert_ptr_nonnull(strstr(lt->status_string(CUBLAS_STATUS_ALLOC_FAILED), "alloc"));
}
END_TEST

/* dlopen and every dlsym of cudnn.c, and the version: need the library, not a device */
START_TEST(cudnn_loads)
{
    const lora_cudnn *dn;
    ck_assert_msg(lora__cudnn(&dn) == LORA_OK, "%s", lora_last_error());
    ck_assert_uint_eq(dn->version, dn->get_version());
    ck_assert_uint_ge(dn->version, 90000);
    ck_assert_uint_lt(dn->version / 10000, 100); /* major * 10000 + minor * 100 + patch */
    ck_assert_str_eq(dn->error_string(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM");
    /* a descriptor of a type that does not exist is refused with a status, not a crash */
    cudnnBackendDescriptor_t d = NULL;
    cudnnStatus_t s = dn->desc_create((cudnnBackendDescriptorType_t)99999, &d);
    ck_assert_int_ne(s, CUDNN_STATUS_SUCCESS);
    char msg[300];
    lora__cudnn_describe(dn, s, "probe", msg, sizeof msg);
    ck_assert_msg(strncmp(msg, "probe: CUDNN_STATUS_", 20) == 0, "%s", msg);
}
END_TEST

/* every tensor and operation descriptor of both graphs finalizes (no device needed): the
 * attributes, their types and the shapes are what cuDNN accepts */
START_TEST(cudnn_graph_descriptors)
{
    static const int64_t shapes[][5] = {{2, 37, 8, 2, 64}, {1, 64, 4, 4, 128}, {3, 1, 6, 1, 8},
                                        {2, 200, 16, 8, 256}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const int64_t *s = shapes[i];
        int fwd = 0, bwd = 0;
        ck_assert_msg(lora__cuda_sdpa_check_graph(s[0], s[1], s[2], s[3], s[4], false, &fwd) ==
                      LORA_OK, "%s", lora_last_error());
        ck_assert_msg(lora__cuda_sdpa_check_graph(s[0], s[1], s[2], s[3], s[4], true, &bwd) ==
                      LORA_OK, "%s", lora_last_error());
        /* Q KT, scale, 6 padding and 4 causal operations, 8 of softmax, P V */
        ck_assert_int_eq(fwd, 20);
        /* GQA adds the two reductions over the group */
        ck_assert_int_eq(bwd, s[2] == s[3] ? 28 : 30);
    }
}
END_TEST

/* what a machine without a device answers (run only there) */
START_TEST(no_gpu_answers)
{
    int n = -1;
    ck_assert_int_eq(lora__cuda_device_count(&n), LORA_ERR_DEVICE);
    ck_assert_int_eq(n, 0);
    ck_assert_msg(strstr(lora_last_error(), "CUDA device"), "%s", lora_last_error());
    lora_backend *g = (lora_backend *)&n;
    ck_assert_int_eq(lora__cuda_backend_create(0, LORA_CUDA_MATH_BF16, &g), LORA_ERR_DEVICE);
    ck_assert_ptr_null(g);
    lora__cuda_backend_free(NULL);
    lora_model *m = NULL;
    ck_assert_int_eq(lora_model_load(QWEN2, "{\"device\": \"cuda\"}", &m), LORA_ERR_DEVICE);
    ck_assert_msg(strstr(lora_last_error(), "device 'cuda'") &&
                  strstr(lora_last_error(), "CUDA device"), "%s", lora_last_error());
    ck_assert_int_eq(lora_model_load(QWEN2, "{\"device\": \"cuda:1\"}", &m), LORA_ERR_DEVICE);
    ck_assert_ptr_null(m);
    /* "auto" falls back to the CPU */
    ck_assert_msg(lora_model_load(QWEN2, "{\"device\": \"auto\"}", &m) == LORA_OK, "%s",
                  lora_last_error());
    lora_session *s;
    ck_assert_int_eq(lora_session_create(m, NULL, &s), LORA_OK);
    int32_t ids[3] = {1, 2, 3};
    float *logits = malloc(3 * lora_model_vocab_size(m) * sizeof *logits);
    ck_assert_int_eq(lora_session_logits(s, ids, NULL, 1, 3, logits), LORA_OK);
    ck_assert(isfinite(logits[0]));
    free(logits);
    lora_session_free(s);
    lora_model_free(m);
}
END_TEST

/* ---- suite -------------------------------------------------------------------------------- */

int main(void)
{
    char why[512];
    n_devices = tu_cuda_devices(why, sizeof why);
    Suite *s = suite_create("cuda");
    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_add_test(core, device_names);
    tcase_add_test(core, cublaslt_loads);
    tcase_add_test(core, cudnn_loads);
    tcase_add_test(core, cudnn_graph_descriptors);
    tcase_add_test(core, gemm_plan_table);
    if (n_devices == 0)
        tcase_add_test(core, no_gpu_answers);
    else
        printf("skipped: a CUDA device is present: no_gpu_answers\n");
    suite_add_tcase(s, core);

    const TTest *gpu_cases[] = {matmul_fp32, matmul_bf16, matmul_bf16_weight,
                                bf16_conversions_match_host, rope_kv_store_fused,
                                argmax_matches_host, swiglu_bf16_matches_widened,
                                swiglu_lora_fused,
                                matmul_bf16_group, matmul_bias_epilogue,
                                kv_store_at_positions, graph_record_replay,
                                embedding_bf16_table, lora_path, lora_path_group, lora_fwd_group,
                                embedding,
                                rmsnorm, rmsnorm_bf16_matches_widened, rope, qkv_keep_fused,
                                swiglu, residual, residual_rmsnorm, residual_lora_rmsnorm_fused,
                                dropout, cross_entropy,
                                cross_entropy_chunked, attention, attention_bf16_matches_widened,
                                attention_bf16_kv_cache,
                                sdpa_falls_back, adamw, sgd,
                                adamw_tensor_set, gemm_plan_cache,
                                arena_plan_take_reset, device_oom_leaves_backend_usable,
                                sticky_error_leaves_only_free, model_device_with_gpu};
    /* cuDNN's kernels: the CUDA emulator runs none (its cudnnCreate finds no device) */
    const TTest *cudnn_cases[] = {sdpa_cudnn, sdpa_cudnn_padding, sdpa_plan_cache};
    TCase *gpu = tcase_create("gpu");
    tcase_set_tags(gpu, "gpu");
    tcase_set_timeout(gpu, 120);
    if (n_devices == 0)
        printf("check_cuda: %s\n", why[0] ? why : "no CUDA device");
    for (size_t i = 0; i < sizeof gpu_cases / sizeof *gpu_cases; i++) {
        if (n_devices > 0)
            tcase_add_test(gpu, gpu_cases[i]);
        else
            printf("skipped: no CUDA device: %s\n", gpu_cases[i]->name);
    }
    int emulated = n_devices > 0 && tu_cuda_emulated();
    for (size_t i = 0; i < sizeof cudnn_cases / sizeof *cudnn_cases; i++) {
        if (n_devices == 0)
            printf("skipped: no CUDA device: %s\n", cudnn_cases[i]->name);
        else if (emulated)
            printf("skipped: cuDNN does not run under the CUDA emulator: %s\n",
                   cudnn_cases[i]->name);
        else
            tcase_add_test(gpu, cudnn_cases[i]);
    }
    suite_add_tcase(s, gpu);
    fflush(stdout);
    return tu_run_suite(s);
}

#else /* built without the CUDA backend */

int main(void)
{
    printf("skipped: built without the CUDA backend (CUDA=0, or no nvcc): check_cuda\n");
    fflush(stdout);
    return tu_run_suite(suite_create("cuda"));
}

#endif
