/* The decoder on the CUDA backend against the CPU, through the public API: the tiny models of
 * tests/fixtures loaded on "cuda" and on "cpu", logits, losses and LoRA gradients compared
 * within float32 bounds (the "cuda_math": "fp32" products) and bfloat16 ones (the default),
 * with an adapter whose A and B are all non-zero (PEFT's init leaves B zero), a
 * 50-step training run whose GPU loss curve must track the CPU's, greedy generation, an
 * adapter trained on the GPU and saved that loads on the CPU with the same weights, full
 * fine-tuning and SGD against the CPU's, and a device allocation that fails, after which the
 * model still runs.
 *
 * Every case is tagged "gpu" and needs a CUDA device: without one each prints
 * "skipped: no CUDA device: NAME" (counted by tests/run_checks.sh) and is not run. */
#include <check.h>
#include <stdio.h>

#include "util/cuda_probe.h"
#include "util/suite.h"

#ifdef LORA_CUDA /* the cases read the backend's counters */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/adapter.h"
#include "cuda/backend_cuda.h"
#include "cuda/internal.h"
#include "lora.h"
#include "model/session.h"
#include "model/weights.h"
#include "train/forward_backward.h"

#define QWEN2 "tests/fixtures/tiny-qwen2"
#define QWEN3 "tests/fixtures/tiny-qwen3"
#define LLAMA "tests/fixtures/tiny-llama"
#define LORA_CFG "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": \"all-linear\"}"
/* relative errors (max |gpu - cpu| / max |cpu|) the fixtures' README gives: float32 math
 * summed in other orders, and bfloat16 products */
#define FP32_LOGITS 1e-4
#define FP32_GRAD 1e-3
#define BF16_LOGITS 2e-2
#define BF16_GRAD 5e-2
#define NB 2
#define NT 24

typedef struct side {
    lora_model *m;
    lora_session *s;
    lora_adapter *a;
} side;

/* the model of dir loaded with opts, a session, and an adapter of config lora_cfg */
static side open_side_with(const char *dir, const char *opts, const char *lora_cfg)
{
    side x = {0};
    ck_assert_msg(lora_model_load(dir, opts, &x.m) == LORA_OK, "%s: %s", opts, lora_last_error());
    ck_assert_msg(lora_session_create(x.m, NULL, &x.s) == LORA_OK, "%s", lora_last_error());
    ck_assert_msg(lora_adapter_create(x.m, lora_cfg, 42, &x.a) == LORA_OK, "%s",
                  lora_last_error());
    /* PEFT's init leaves B zero: every A and B gets small values of its own, the same on
     * every side, so that the adapter changes the logits and every gradient is non-zero;
     * module by module, A then B (not in the arena's order, which is the library's affair) */
    unsigned r = 12345u;
    for (size_t m = 0; m < x.a->n_mods; m++) {
        const lora_adapter_module *mod = &x.a->mods[m];
        float *t[] = {mod->A, mod->B};
        size_t n[] = {(size_t)(mod->r * mod->in), (size_t)(mod->out * mod->r)};
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < n[k]; i++) {
                r = r * 1103515245u + 12345u;
                t[k][i] = ((float)((r >> 9) % 2001u) - 1000.0f) * 1e-4f;
            }
    }
    ck_assert_msg(lora__adapter_upload(x.a) == LORA_OK, "%s", lora_last_error());
    float one = 1.0f;
    ck_assert_msg(lora_session_set_adapters(x.s, &x.a, &one, 1) == LORA_OK, "%s",
                  lora_last_error());
    return x;
}

static side open_side(const char *dir, const char *opts)
{
    return open_side_with(dir, opts, LORA_CFG);
}

static void close_side(side *x)
{
    lora_adapter_free(x->a);
    lora_session_free(x->s);
    lora_model_free(x->m);
}

static void batch(const lora_model *m, int32_t *ids, int32_t *labels, unsigned seed)
{
    size_t V = lora_model_vocab_size(m);
    for (size_t i = 0; i < NB * NT; i++) {
        seed = seed * 1103515245u + 12345u;
        ids[i] = (int32_t)((seed >> 8) % V);
        labels[i] = i % 11 == 0 ? -100 : ids[i];
    }
}

/* The LoRA gradients of one micro-batch, in host memory (from the session's backend). */
static float *grads_of(side *x, const int32_t *ids, const int32_t *labels, double *loss)
{
    lora_backend *be = x->s->be;
    size_t n = x->a->arena_floats, bytes = n * sizeof(float);
    float *dev, *host = malloc(bytes);
    ck_assert_msg(be->ops->mem_alloc(be, bytes, "gradients", (void **)&dev) == LORA_OK, "%s",
                  lora_last_error());
    be->ops->zero(be, dev, bytes);
    lora_grads g = {{dev}, NULL};
    size_t counted;
    ck_assert_msg(lora__forward_backward(x->s, ids, labels, NULL, NB, NT, 1.0f, false, &g, loss,
                                         &counted) == LORA_OK, "%s", lora_last_error());
    ck_assert_msg(be->ops->download(be, host, dev, bytes) == LORA_OK, "%s", lora_last_error());
    be->ops->mem_free(be, dev, bytes);
    return host;
}

/* head_cols: the GPU head's vocabulary chunk (0: the default, one chunk for these vocabularies) */
static void compare_model(const char *dir, const char *gpu_opts, double tol_logits,
                          double tol_grad, int64_t head_cols)
{
    side c = open_side(dir, "{\"device\": \"cpu\"}"), g = open_side(dir, gpu_opts);
    ck_assert_str_eq(g.s->be->ops->name, "cuda");
    g.s->head_cols = head_cols;
    size_t V = lora_model_vocab_size(c.m);
    int32_t ids[NB * NT], labels[NB * NT];
    batch(c.m, ids, labels, 7);
    float *lc = malloc(NB * NT * V * sizeof *lc), *lg = malloc(NB * NT * V * sizeof *lg);
    const lora_cuda *cu = g.s->be->impl;
    /* the t's of a group in one product ride in the bf16 weights' grouped products; float32
     * math keeps float32 weights, and its products go one by one */
    uint64_t fwd_groups = cu->lora_fwd_groups,
             fwd_want = cu->math == LORA_CUDA_MATH_BF16 ? 2 * (uint64_t)g.m->cfg.n_layers : 0;
    ck_assert(lora_session_logits(c.s, ids, NULL, NB, NT, lc) == LORA_OK);
    ck_assert_msg(lora_session_logits(g.s, ids, NULL, NB, NT, lg) == LORA_OK, "%s",
                  lora_last_error());
    /* every layer's q/k/v and gate/up t's in one product each (one rank, back to back) */
    ck_assert_msg(cu->lora_fwd_groups - fwd_groups == fwd_want,
                  "%s: %llu grouped LoRA forwards for %lld layers", dir,
                  (unsigned long long)(cu->lora_fwd_groups - fwd_groups),
                  (long long)g.m->cfg.n_layers);
    double e = tu_max_rel_err(lg, lc, NB * NT * V);
    ck_assert_msg(e <= tol_logits, "%s %s: logits relative error %.3g > %.3g", dir, gpu_opts, e,
                  tol_logits);
    float loss_c, loss_g;
    ck_assert(lora_session_loss(c.s, ids, labels, NB, NT, &loss_c, NULL) == LORA_OK);
    ck_assert(lora_session_loss(g.s, ids, labels, NB, NT, &loss_g, NULL) == LORA_OK);
    ck_assert_msg(fabs(loss_g - loss_c) <= tol_logits * fabs(loss_c), "%s: loss %g on the GPU, "
                  "%g on the CPU", dir, loss_g, loss_c);
    double fl_c, fl_g;
    uint64_t groups = cu->lora_groups;
    fwd_groups = cu->lora_fwd_groups;
    float *gc = grads_of(&c, ids, labels, &fl_c), *gg = grads_of(&g, ids, labels, &fl_g);
    /* every layer's q/k/v and gate/up paths in the grouped forward and backward (all-linear,
     * one rank) */
    ck_assert_msg(cu->lora_groups - groups == 2 * (uint64_t)g.m->cfg.n_layers &&
                  cu->lora_fwd_groups - fwd_groups == fwd_want,
                  "%s: %llu grouped LoRA backwards and %llu forwards for %lld layers", dir,
                  (unsigned long long)(cu->lora_groups - groups),
                  (unsigned long long)(cu->lora_fwd_groups - fwd_groups),
                  (long long)g.m->cfg.n_layers);
    e = tu_max_rel_err(gg, gc, c.a->arena_floats);
    ck_assert_msg(e <= tol_grad, "%s %s: LoRA gradients relative error %.3g > %.3g", dir,
                  gpu_opts, e, tol_grad);
    free(lc), free(lg), free(gc), free(gg);
    close_side(&c);
    close_side(&g);
}

START_TEST(logits_loss_grads_fp32)
{
    const char *opts = "{\"device\": \"cuda\", \"cuda_math\": \"fp32\"}";
    compare_model(QWEN2, opts, FP32_LOGITS, FP32_GRAD, 0);
    compare_model(QWEN3, opts, FP32_LOGITS, FP32_GRAD, 0);
    compare_model(LLAMA, opts, FP32_LOGITS, FP32_GRAD, 0);
    /* the loss and its gradient over vocabulary chunks of 100 (384 = 3 x 100 + 84; 300 = 3 x 100) */
    compare_model(QWEN2, opts, FP32_LOGITS, FP32_GRAD, 100);
    compare_model(LLAMA, opts, FP32_LOGITS, FP32_GRAD, 100);
}
END_TEST

/* the default: bfloat16 base weights (and products) */
START_TEST(logits_loss_grads_bf16)
{
    compare_model(QWEN2, "{\"device\": \"cuda:0\"}", BF16_LOGITS, BF16_GRAD, 0);
    compare_model(QWEN3, "{\"device\": \"cuda\"}", BF16_LOGITS, BF16_GRAD, 0);
    compare_model(LLAMA, "{\"device\": \"cuda\"}", BF16_LOGITS, BF16_GRAD, 0);
    compare_model(QWEN3, "{\"device\": \"cuda\"}", BF16_LOGITS, BF16_GRAD, 128);
}
END_TEST

static long long info_int(const lora_model *m, const char *key)
{
    const char *j = lora_model_info_json(m), *p = strstr(j, key);
    ck_assert_msg(p, "%s: no %s", j, key);
    return strtoll(p + strlen(key) + 1, NULL, 10); /* past "key": */
}

/* the bytes the device copy should take, from the model's weight list: matrices 2 bytes a value
 * with bf16 (4 without), vectors 4, each tensor rounded up to 256 bytes */
static size_t expected_device_bytes(const lora_model *m, bool bf16)
{
    lora_weight_slot *slots;
    size_t n, total = 0;
    ck_assert(lora__weight_slots(&m->cfg, NULL, &slots, &n) == LORA_OK);
    for (size_t i = 0; i < n; i++) {
        size_t numel = (size_t)(slots[i].shape[0] * (slots[i].ndim == 2 ? slots[i].shape[1] : 1));
        size_t b = numel * (bf16 && slots[i].ndim == 2 ? 2 : 4);
        total += (b + 255) / 256 * 256;
    }
    free(slots);
    return total;
}

/* model info reports the device copy: bf16 matrices by default, all float32 with fp32 math; the
 * backend holds at least that much */
START_TEST(device_weight_memory_report)
{
    const char *dirs[] = {QWEN2, QWEN3, LLAMA};
    for (size_t i = 0; i < 3; i++)
        for (int fp32 = 0; fp32 < 2; fp32++) {
            lora_model *m;
            ck_assert_msg(lora_model_load(dirs[i], fp32 ? "{\"device\": \"cuda\", \"cuda_math\": "
                                          "\"fp32\"}" : "{\"device\": \"cuda\"}", &m) == LORA_OK,
                          "%s", lora_last_error());
            const char *j = lora_model_info_json(m);
            ck_assert_msg(strstr(j, fp32 ? "\"device_weight_dtype\":\"float32\""
                                         : "\"device_weight_dtype\":\"bf16\""), "%s", j);
            size_t want = expected_device_bytes(m, !fp32);
            ck_assert_uint_eq((size_t)info_int(m, "\"device_weight_bytes\""), want);
            size_t host = (size_t)info_int(m, "\"weight_bytes\"");
            if (!fp32)
                ck_assert_msg(want < host * 6 / 10, "%zu device bytes for %zu host bytes", want,
                              host);
            lora_cuda_memory mem;
            lora__cuda_memory(m->dev, &mem);
            ck_assert_uint_ge(mem.device_bytes, want);
            lora_model_free(m);
        }
}
END_TEST

/* decoding over the bfloat16 KV cache: a prompt, then single tokens, each step's logits within
 * bf16 bounds of the CPU's float32 cache */
START_TEST(decode_over_bf16_kv_cache)
{
    const char *dirs[] = {QWEN2, QWEN3, LLAMA};
    for (size_t d = 0; d < 3; d++) {
        side c = open_side(dirs[d], "{\"device\": \"cpu\"}");
        side g = open_side(dirs[d], "{\"device\": \"cuda\"}");
        ck_assert(g.s->kv_bf16 && !c.s->kv_bf16);
        size_t V = lora_model_vocab_size(c.m);
        float *lc = malloc(V * sizeof *lc), *lg = malloc(V * sizeof *lg);
        int32_t ids[NB * NT], labels[NB * NT];
        batch(c.m, ids, labels, 11);
        ck_assert(lora_session_append(c.s, ids, 10, lc) == LORA_OK);
        ck_assert_msg(lora_session_append(g.s, ids, 10, lg) == LORA_OK, "%s", lora_last_error());
        for (int step = 0; step < 12; step++) {
            double e = tu_max_rel_err(lg, lc, V);
            ck_assert_msg(e <= BF16_LOGITS, "%s: step %d: logits relative error %.3g", dirs[d],
                          step, e);
            ck_assert(lora_session_append(c.s, ids + 10 + step, 1, lc) == LORA_OK);
            ck_assert_msg(lora_session_append(g.s, ids + 10 + step, 1, lg) == LORA_OK, "%s",
                          lora_last_error());
        }
        /* the first one-token step runs eagerly, the second is recorded, the rest replayed */
        ck_assert_msg(g.s->graph_replays == 11, "%s: %llu of 12 steps replayed", dirs[d],
                      (unsigned long long)g.s->graph_replays);
        free(lc), free(lg);
        close_side(&c);
        close_side(&g);
    }
}
END_TEST

/* One-token steps replayed from a recording against the same steps run eagerly
 * (LORA_CUDA_GRAPHS=0 in a second session): the same kernels on the same data, so the same
 * logits bit for bit, through what must make the recording start over or not: a batch run
 * between steps (it grows the activation buffers), a change of adapters, a reset (positions
 * start again at 0, the recording stays). */
START_TEST(decode_graph_matches_eager)
{
    side g = open_side(QWEN2, "{\"device\": \"cuda\"}");
    setenv("LORA_CUDA_GRAPHS", "0", 1);
    lora_session *e;
    ck_assert(lora_session_create(g.m, NULL, &e) == LORA_OK);
    unsetenv("LORA_CUDA_GRAPHS");
    float one = 1.0f;
    ck_assert(lora_session_set_adapters(e, &g.a, &one, 1) == LORA_OK);
    size_t V = lora_model_vocab_size(g.m);
    float *lg = malloc(V * sizeof *lg), *le = malloc(V * sizeof *le);
    float *batch_logits = malloc(NB * NT * V * sizeof *batch_logits);
    int32_t ids[NB * NT], labels[NB * NT];
    batch(g.m, ids, labels, 5);
    for (int round = 0; round < 3; round++) {
        ck_assert(lora_session_append(g.s, ids, 4, lg) == LORA_OK);
        ck_assert(lora_session_append(e, ids, 4, le) == LORA_OK);
        for (int step = 0; step < 6; step++) {
            if (round == 0 && step == 3) /* 48 rows: larger buffers, a new key */
                ck_assert(lora_session_logits(g.s, ids, NULL, NB, NT, batch_logits) == LORA_OK);
            int32_t tok = ids[4 + step];
            ck_assert_msg(lora_session_append(g.s, &tok, 1, lg) == LORA_OK, "%s",
                          lora_last_error());
            ck_assert(lora_session_append(e, &tok, 1, le) == LORA_OK);
            ck_assert_msg(memcmp(lg, le, V * sizeof *lg) == 0, "round %d step %d: the replayed "
                          "step's logits differ from the eager one's", round, step);
        }
        if (round == 0) { /* no adapter: a new key, a new recording */
            ck_assert(lora_session_set_adapters(g.s, NULL, NULL, 0) == LORA_OK);
            ck_assert(lora_session_set_adapters(e, NULL, NULL, 0) == LORA_OK);
        } else {
            lora_session_reset(g.s);
            lora_session_reset(e);
        }
    }
    ck_assert_uint_eq(e->graph_replays, 0);
    ck_assert_msg(g.s->graph_replays >= 9, "%llu steps replayed",
                  (unsigned long long)g.s->graph_replays);
    free(lg), free(le), free(batch_logits);
    lora_session_free(e);
    close_side(&g);
}
END_TEST

/* 50 AdamW steps on the same batches: every GPU loss within 5% of the CPU's and both curves
 * going down by the same amount within 10%. */
START_TEST(training_tracks_cpu)
{
    side c = open_side(QWEN2, "{\"device\": \"cpu\"}"), g = open_side(QWEN2, "{\"device\": \"cuda\"}");
    const char *opt = "{\"lr\": 0.01, \"max_grad_norm\": 1.0}";
    lora_optimizer *oc, *og;
    ck_assert(lora_optimizer_create(c.s, opt, &oc) == LORA_OK);
    ck_assert_msg(lora_optimizer_create(g.s, opt, &og) == LORA_OK, "%s", lora_last_error());
    int32_t ids[NB * NT], labels[NB * NT];
    float first_c = 0, first_g = 0, lc = 0, lg = 0;
    for (int step = 0; step < 50; step++) {
        batch(c.m, ids, labels, (unsigned)(step % 5));
        ck_assert(lora_train_step(oc, ids, labels, NB, NT, &lc) == LORA_OK);
        ck_assert_msg(lora_train_step(og, ids, labels, NB, NT, &lg) == LORA_OK, "%s",
                      lora_last_error());
        ck_assert_msg(isfinite(lg) && fabsf(lg - lc) <= 0.05f * lc, "step %d: loss %g on the "
                      "GPU, %g on the CPU", step, lg, lc);
        if (step == 0)
            first_c = lc, first_g = lg;
    }
    ck_assert_msg(lc < first_c && lg < first_g, "no progress: %g -> %g (CPU), %g -> %g (GPU)",
                  first_c, lc, first_g, lg);
    ck_assert_msg(fabsf((first_g - lg) - (first_c - lc)) <= 0.1f * (first_c - lc),
                  "the GPU's loss fell by %g, the CPU's by %g", first_g - lg, first_c - lc);
    lora_optimizer_free(oc);
    lora_optimizer_free(og);
    close_side(&c);
    close_side(&g);
}
END_TEST

/* greedy tokens with float32 products: the same as the CPU's */
START_TEST(greedy_matches_cpu)
{
    side c = open_side(QWEN2, "{\"device\": \"cpu\"}");
    side g = open_side(QWEN2, "{\"device\": \"cuda\", \"cuda_math\": \"fp32\"}");
    int32_t prompt[6] = {5, 17, 42, 99, 3, 250}, oc[8], og[8];
    size_t nc = 0, ng = 0;
    lora_sampler *smp;
    ck_assert(lora_sampler_create("{\"max_new_tokens\": 8}", &smp) == LORA_OK);
    ck_assert(lora_generate(c.s, smp, prompt, 6, oc, 8, &nc, NULL, NULL) == LORA_OK);
    ck_assert_msg(lora_generate(g.s, smp, prompt, 6, og, 8, &ng, NULL, NULL) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_uint_eq(nc, ng);
    for (size_t i = 0; i < nc; i++)
        ck_assert_msg(oc[i] == og[i], "token %zu: %d on the GPU, %d on the CPU", i, og[i], oc[i]);
    lora_sampler_free(smp);
    close_side(&c);
    close_side(&g);
}
END_TEST

/* Training rows of 21 tokens run on the GPU as rows of 24 (train/bucket.h): the ids staged for
 * the device are the padded batch's, and the losses of three steps still track the CPU's,
 * which trains on the rows as they are. */
START_TEST(training_rows_bucketed)
{
    enum { T21 = 21 };
    side c = open_side(QWEN2, "{\"device\": \"cpu\"}"), g = open_side(QWEN2, "{\"device\": \"cuda\"}");
    lora_optimizer *oc, *og;
    ck_assert(lora_optimizer_create(c.s, "{\"lr\": 0.01}", &oc) == LORA_OK);
    ck_assert(lora_optimizer_create(g.s, "{\"lr\": 0.01}", &og) == LORA_OK);
    int32_t ids[NB * NT], labels[NB * NT];
    for (int step = 0; step < 3; step++) {
        batch(c.m, ids, labels, (unsigned)step);
        float lc, lg;
        ck_assert(lora_train_step(oc, ids, labels, NB, T21, &lc) == LORA_OK);
        ck_assert_msg(lora_train_step(og, ids, labels, NB, T21, &lg) == LORA_OK, "%s",
                      lora_last_error());
        ck_assert_msg(fabsf(lg - lc) <= BF16_LOGITS * lc, "step %d: loss %g on the GPU, %g on "
                      "the CPU", step, lg, lc);
    }
    ck_assert_uint_eq(g.s->stage_bytes[LORA_STAGE_IDS], NB * 24 * sizeof(int32_t));
    lora_optimizer_free(oc);
    lora_optimizer_free(og);
    close_side(&c);
    close_side(&g);
}
END_TEST

/* Five steps with LoRA dropout on the GPU and on the CPU from the same adapter; the GPU's loss
 * within tol of the CPU's at each step, and, with weight_tol > 0, the adapters after them. */
static void dropout_steps(const char *gpu_opts, const char *opt, double tol, double weight_tol)
{
    const char *cfg = "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": \"all-linear\", "
                      "\"lora_dropout\": 0.2}";
    side c = open_side_with(QWEN3, "{\"device\": \"cpu\"}", cfg);
    side g = open_side_with(QWEN3, gpu_opts, cfg);
    lora_optimizer *oc, *og;
    ck_assert(lora_optimizer_create(c.s, opt, &oc) == LORA_OK);
    ck_assert(lora_optimizer_create(g.s, opt, &og) == LORA_OK);
    int32_t ids[NB * NT], labels[NB * NT];
    for (int step = 0; step < 5; step++) {
        batch(c.m, ids, labels, (unsigned)step + 11);
        float lc, lg;
        ck_assert(lora_train_step(oc, ids, labels, NB, NT, &lc) == LORA_OK);
        ck_assert_msg(lora_train_step(og, ids, labels, NB, NT, &lg) == LORA_OK, "%s",
                      lora_last_error());
        ck_assert_msg(fabsf(lg - lc) <= tol * lc, "%s step %d: loss %g on the GPU, %g on the "
                      "CPU", gpu_opts, step, lg, lc);
    }
    if (weight_tol > 0) {
        ck_assert(lora__adapter_host_sync(g.a) == LORA_OK);
        double e = tu_max_rel_err(g.a->arena, c.a->arena, c.a->arena_floats);
        ck_assert_msg(e <= weight_tol, "%s: the adapter after 5 steps with dropout: relative "
                      "error %.3g", gpu_opts, e);
    }
    lora_optimizer_free(oc);
    lora_optimizer_free(og);
    close_side(&c);
    close_side(&g);
}

/* LoRA dropout on the GPU draws the CPU's masks (rows already at a bucket's length): with
 * float32 products and SGD the adapters after five steps are the CPU's to float32 bounds,
 * which other masks would be far from; a bf16 model, which keeps bfloat16 activations and runs
 * its projections in groups with the LoRA paths after them (dropout keeps them out), tracks
 * the CPU's losses. */
START_TEST(dropout_training_tracks_cpu)
{
    dropout_steps("{\"device\": \"cuda\", \"cuda_math\": \"fp32\"}",
                  "{\"optimizer\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9}", FP32_LOGITS,
                  FP32_GRAD);
    dropout_steps("{\"device\": \"cuda\"}", "{\"lr\": 0.01}", BF16_LOGITS, 0);
}
END_TEST

/* Greedy generation takes its tokens from the device's argmax: the same tokens as the host
 * sampler picks from the downloaded logits of the same session, step by step, with the
 * adapter unmerged on the bf16 model; a row with a NaN goes to the host sampler, which refuses
 * it with its message. */
START_TEST(greedy_on_device_matches_host_sampler)
{
    side g = open_side(QWEN2, "{\"device\": \"cuda\"}");
    int32_t prompt[6] = {5, 17, 42, 99, 3, 250}, dev_tok[10], host_tok[10];
    size_t n = 0, V = lora_model_vocab_size(g.m);
    lora_sampler *smp;
    ck_assert(lora_sampler_create("{\"max_new_tokens\": 10}", &smp) == LORA_OK);
    ck_assert_msg(lora_generate(g.s, smp, prompt, 6, dev_tok, 10, &n, NULL, NULL) == LORA_OK,
                  "%s", lora_last_error());
    ck_assert_uint_eq(n, 10);
    lora_session_reset(g.s);
    float *logits = malloc(V * sizeof *logits);
    ck_assert(lora_session_append(g.s, prompt, 6, logits) == LORA_OK);
    for (size_t i = 0; i < 10; i++) {
        ck_assert(lora_sampler_sample(smp, logits, V, g.s->tokens, (size_t)g.s->pos, 6,
                                      &host_tok[i]) == LORA_OK);
        ck_assert_msg(host_tok[i] == dev_tok[i], "token %zu: %d from the device, %d from the "
                      "host sampler", i, dev_tok[i], host_tok[i]);
        ck_assert(lora_session_append(g.s, &host_tok[i], 1, logits) == LORA_OK);
    }
    /* a NaN in the final norm's weight: every logit NaN */
    lora_session_reset(g.s);
    float nan = NAN, *norm = (float *)lora__weight(g.s, g.m->final_norm);
    ck_assert(g.s->be->ops->upload(g.s->be, norm, &nan, sizeof nan) == LORA_OK);
    ck_assert_int_eq(lora_generate(g.s, smp, prompt, 6, dev_tok, 10, &n, NULL, NULL),
                     LORA_ERR_NUMERIC);
    ck_assert_msg(strstr(lora_last_error(), "is NaN"), "%s", lora_last_error());
    ck_assert_uint_eq(n, 0);
    free(logits);
    lora_sampler_free(smp);
    close_side(&g);
}
END_TEST

/* trained on the GPU, saved, loaded on the CPU: the same weights bit for bit, and the CPU's
 * logits with it within bf16 bounds of the GPU's */
START_TEST(adapter_trained_on_gpu_loads_on_cpu)
{
    side g = open_side(QWEN2, "{\"device\": \"cuda\"}");
    lora_optimizer *o;
    ck_assert(lora_optimizer_create(g.s, "{\"lr\": 0.01}", &o) == LORA_OK);
    int32_t ids[NB * NT], labels[NB * NT];
    batch(g.m, ids, labels, 3);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(lora_train_step(o, ids, labels, NB, NT, NULL) == LORA_OK, "%s",
                      lora_last_error());
    char dir[] = "/tmp/check_cuda_model_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* training leaves the host copy behind; the save brings it up to date first */
    ck_assert(g.a->host_stale);
    ck_assert_msg(lora_adapter_save(g.a, dir) == LORA_OK, "%s", lora_last_error());
    ck_assert(!g.a->host_stale);
    /* what the device holds, against what was saved */
    size_t bytes = g.a->arena_floats * sizeof(float);
    float *on_dev = malloc(bytes);
    ck_assert(g.s->be->ops->download(g.s->be, on_dev, g.a->dev_arena, bytes) == LORA_OK);
    lora_model *cm;
    lora_adapter *ca;
    lora_session *cs;
    ck_assert(lora_model_load(QWEN2, NULL, &cm) == LORA_OK);
    ck_assert_msg(lora_adapter_load(cm, dir, &ca) == LORA_OK, "%s", lora_last_error());
    ck_assert_uint_eq(ca->arena_floats, g.a->arena_floats);
    for (size_t k = 0; k < g.a->n_mods; k++) {
        const lora_adapter_module *x = &g.a->mods[k], *y = &ca->mods[k];
        ck_assert(memcmp(on_dev + (x->A - g.a->arena), y->A,
                         (size_t)(x->r * x->in) * sizeof(float)) == 0);
        ck_assert(memcmp(on_dev + (x->B - g.a->arena), y->B,
                         (size_t)(x->out * x->r) * sizeof(float)) == 0);
    }
    float one = 1.0f;
    size_t V = lora_model_vocab_size(cm);
    float *lc = malloc(NT * V * sizeof *lc), *lg = malloc(NT * V * sizeof *lg);
    ck_assert(lora_session_create(cm, NULL, &cs) == LORA_OK);
    ck_assert(lora_session_set_adapters(cs, &ca, &one, 1) == LORA_OK);
    ck_assert(lora_session_logits(cs, ids, NULL, 1, NT, lc) == LORA_OK);
    ck_assert(lora_session_logits(g.s, ids, NULL, 1, NT, lg) == LORA_OK);
    double e = tu_max_rel_err(lg, lc, NT * V);
    ck_assert_msg(e <= BF16_LOGITS, "logits relative error %.3g", e);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(on_dev), free(lc), free(lg);
    lora_session_free(cs);
    lora_adapter_free(ca);
    lora_model_free(cm);
    lora_optimizer_free(o);
    close_side(&g);
}
END_TEST

/* merge and unmerge on a GPU model: the device copy follows the host weights */
START_TEST(merge_on_gpu)
{
    side g = open_side(QWEN2, "{\"device\": \"cuda\", \"cuda_math\": \"fp32\"}");
    size_t V = lora_model_vocab_size(g.m);
    int32_t ids[NB * NT], labels[NB * NT];
    batch(g.m, ids, labels, 5);
    float *with = malloc(NT * V * sizeof *with), *merged = malloc(NT * V * sizeof *merged);
    ck_assert(lora_session_logits(g.s, ids, NULL, 1, NT, with) == LORA_OK);
    ck_assert_msg(lora_model_merge(g.m, g.a, 1.0f, NULL, 0, NULL) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert(lora_session_set_adapters(g.s, NULL, NULL, 0) == LORA_OK);
    ck_assert(lora_session_logits(g.s, ids, NULL, 1, NT, merged) == LORA_OK);
    double e = tu_max_rel_err(merged, with, NT * V);
    ck_assert_msg(e <= FP32_LOGITS, "merged logits relative error %.3g", e);
    ck_assert(lora_model_unmerge(g.m) == LORA_OK);
    ck_assert(lora_session_logits(g.s, ids, NULL, 1, NT, merged) == LORA_OK);
    ck_assert_msg(tu_max_rel_err(merged, with, NT * V) > 10 * FP32_LOGITS,
                  "unmerged logits still carry the adapter");
    free(with), free(merged);
    close_side(&g);
}
END_TEST

/* merge and unmerge on a model with bfloat16 device weights: the re-upload rounds the merged
 * weights again (bf16 bounds of the unmerged logits with the adapter), and unmerging restores
 * the first copy bit for bit (the same host floats round to the same bits) */
START_TEST(merge_on_bf16_gpu)
{
    side g = open_side(QWEN2, "{\"device\": \"cuda\"}");
    ck_assert(g.m->dev_bf16);
    size_t V = lora_model_vocab_size(g.m);
    int32_t ids[NB * NT], labels[NB * NT];
    batch(g.m, ids, labels, 5);
    float *with = malloc(NT * V * sizeof *with), *merged = malloc(NT * V * sizeof *merged);
    char *before = malloc(g.m->dev_bytes), *after = malloc(g.m->dev_bytes);
    ck_assert(g.m->dev->ops->download(g.m->dev, before, g.m->dev_mem, g.m->dev_bytes) == LORA_OK);
    ck_assert(lora_session_logits(g.s, ids, NULL, 1, NT, with) == LORA_OK);
    ck_assert_msg(lora_model_merge(g.m, g.a, 1.0f, NULL, 0, NULL) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert(lora_session_set_adapters(g.s, NULL, NULL, 0) == LORA_OK);
    ck_assert(lora_session_logits(g.s, ids, NULL, 1, NT, merged) == LORA_OK);
    double e = tu_max_rel_err(merged, with, NT * V);
    ck_assert_msg(e <= BF16_LOGITS, "merged logits relative error %.3g", e);
    ck_assert(lora_model_unmerge(g.m) == LORA_OK);
    ck_assert(g.m->dev->ops->download(g.m->dev, after, g.m->dev_mem, g.m->dev_bytes) == LORA_OK);
    /* the tensors themselves (the alignment gaps between them are never written) */
    for (size_t k = 0; k < g.m->n_dev_tensors; k++) {
        const lora_dev_tensor *t = &g.m->dev_tensors[k];
        size_t b = t->numel * (t->bf16 ? 2 : 4);
        ck_assert_msg(memcmp(before + t->dev_off, after + t->dev_off, b) == 0,
                      "tensor %zu changed after unmerge", k);
    }
    free(with), free(merged), free(before), free(after);
    close_side(&g);
}
END_TEST

/* a device allocation that cannot be had: LORA_ERR_DEVICE_OUT_OF_MEMORY, and the session runs on */
START_TEST(device_oom_leaves_model_usable)
{
    side g = open_side(QWEN2, "{\"device\": \"cuda\"}");
    void *p = NULL;
    lora_backend *be = g.s->be;
    ck_assert_int_eq(be->ops->mem_alloc(be, (size_t)1 << 46, "a huge block", &p),
                     LORA_ERR_DEVICE_OUT_OF_MEMORY);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(lora_last_error(), "a huge block"), "%s", lora_last_error());
    size_t bytes = g.s->ws_floats * sizeof(float);
    ck_assert_int_eq(lora__session_grow(g.s, (void **)&g.s->ws, &bytes, (size_t)1 << 46, "huge"),
                     LORA_ERR_DEVICE_OUT_OF_MEMORY);
    g.s->ws_floats = 0;
    size_t V = lora_model_vocab_size(g.m);
    float *logits = malloc(NT * V * sizeof *logits);
    int32_t ids[NB * NT], labels[NB * NT];
    batch(g.m, ids, labels, 1);
    ck_assert_msg(lora_session_logits(g.s, ids, NULL, 1, NT, logits) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert(isfinite(logits[0]));
    free(logits);
    close_side(&g);
}
END_TEST

/* full fine-tuning's weights, in host memory: the model saved and loaded back on the CPU */
static lora_model *saved_copy(const lora_model *m)
{
    char dir[] = "/tmp/check_cuda_model_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_msg(lora_model_save(m, dir, "f32") == LORA_OK, "%s", lora_last_error());
    lora_model *copy;
    ck_assert_msg(lora_model_load(dir, NULL, &copy) == LORA_OK, "%s", lora_last_error());
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    return copy;
}

/* steps full fine-tuning AdamW steps on the same batches on the CPU and on gpu_opts; every
 * GPU loss within loss_tol (relative) of the CPU's. Returns the two optimizers. */
static void full_train(side *c, side *g, const char *opt, int steps, double loss_tol,
                       lora_optimizer **oc, lora_optimizer **og)
{
    ck_assert(lora_session_set_adapters(c->s, NULL, NULL, 0) == LORA_OK);
    ck_assert(lora_session_set_adapters(g->s, NULL, NULL, 0) == LORA_OK);
    ck_assert_msg(lora_optimizer_create(c->s, opt, oc) == LORA_OK, "%s", lora_last_error());
    ck_assert_msg(lora_optimizer_create(g->s, opt, og) == LORA_OK, "%s", lora_last_error());
    int32_t ids[NB * NT], labels[NB * NT];
    for (int step = 0; step < steps; step++) {
        batch(c->m, ids, labels, (unsigned)(step % 3));
        float lc, lg;
        ck_assert(lora_train_step(*oc, ids, labels, NB, NT, &lc) == LORA_OK);
        ck_assert_msg(lora_train_step(*og, ids, labels, NB, NT, &lg) == LORA_OK, "%s",
                      lora_last_error());
        ck_assert_msg(isfinite(lg) && fabs(lg - lc) <= loss_tol * lc, "step %d: loss %.9g on "
                      "the GPU, %.9g on the CPU", step, lg, lc);
    }
}

/* |gpu - cpu| over all weights relative to |cpu - initial| (what training moved), in the
 * 2-norm: AdamW divides each gradient by its own size, so a weight whose gradient is near zero
 * moves by an amount that follows its gradient's last bits (measured: one element 10% off),
 * where the norm over all of them does not (1.1e-4 measured on the emulator). */
static double weight_drift(const lora_model *gpu, const lora_model *cpu, const char *dir)
{
    lora_model *init;
    ck_assert(lora_model_load(dir, NULL, &init) == LORA_OK);
    double diff = 0, moved = 0;
    for (size_t i = 0; i < cpu->arena_floats; i++) {
        double d = (double)gpu->arena[i] - cpu->arena[i], m = (double)cpu->arena[i] - init->arena[i];
        diff += d * d;
        moved += m * m;
    }
    lora_model_free(init);
    ck_assert_msg(moved > 0, "training changed no weight");
    return sqrt(diff / moved);
}

/* Full fine-tuning with float32 products: the loss curve and the trained weights (saved from
 * the GPU, whose host arena follows only then) match the CPU's. */
START_TEST(full_training_fp32_matches_cpu)
{
    side c = open_side(QWEN2, "{\"device\": \"cpu\"}");
    side g = open_side(QWEN2, "{\"device\": \"cuda\", \"cuda_math\": \"fp32\"}");
    lora_optimizer *oc, *og;
    full_train(&c, &g, "{\"train\": \"full\", \"lr\": 1e-3, \"weight_decay\": 0.01}", 5,
               FP32_LOGITS, &oc, &og);
    lora_model *gm = saved_copy(g.m);
    double drift = weight_drift(gm, c.m, QWEN2);
    ck_assert_msg(drift <= FP32_GRAD, "trained weights: GPU - CPU is %.3g of what training "
                  "moved", drift);
    lora_model_free(gm);
    lora_optimizer_free(oc);
    lora_optimizer_free(og);
    close_side(&c);
    close_side(&g);
}
END_TEST

/* Full fine-tuning in the bf16 math mode (float32 masters, bfloat16 copies): 10 steps track the
 * CPU; the saved model runs on the CPU like the GPU's copy; a merge and an unmerge on the
 * trained model (which read and write the host arena) leave the GPU's logits bit for bit; and
 * after the optimizer is gone its training is still in the host arena. */
START_TEST(full_training_bf16_tracks_cpu)
{
    side c = open_side(QWEN2, "{\"device\": \"cpu\"}"), g = open_side(QWEN2, "{\"device\": \"cuda\"}");
    lora_optimizer *oc, *og;
    full_train(&c, &g, "{\"train\": \"full\", \"lr\": 1e-3}", 10, 0.05, &oc, &og);
    size_t V = lora_model_vocab_size(g.m);
    int32_t ids[NB * NT], labels[NB * NT];
    batch(g.m, ids, labels, 9);
    float *lg = malloc(NT * V * sizeof *lg), *lc = malloc(NT * V * sizeof *lc),
          *again = malloc(NT * V * sizeof *again);
    ck_assert(lora_session_logits(g.s, ids, NULL, 1, NT, lg) == LORA_OK);
    lora_model *gm = saved_copy(g.m);
    lora_session *cs;
    ck_assert(lora_session_create(gm, NULL, &cs) == LORA_OK);
    ck_assert(lora_session_logits(cs, ids, NULL, 1, NT, lc) == LORA_OK);
    double e = tu_max_rel_err(lg, lc, NT * V);
    ck_assert_msg(e <= BF16_LOGITS, "the saved model's logits: relative error %.3g", e);
    ck_assert_msg(lora_model_merge(g.m, g.a, 1.0f, NULL, 0, NULL) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_msg(lora_model_unmerge(g.m) == LORA_OK, "%s", lora_last_error());
    ck_assert(lora_session_logits(g.s, ids, NULL, 1, NT, again) == LORA_OK);
    ck_assert_msg(memcmp(again, lg, NT * V * sizeof *lg) == 0, "merge and unmerge changed the "
                  "trained model's logits");
    lora_optimizer_free(og);
    ck_assert(memcmp(g.m->arena, gm->arena, g.m->arena_floats * sizeof(float)) == 0);
    ck_assert(lora_session_logits(g.s, ids, NULL, 1, NT, again) == LORA_OK);
    ck_assert(memcmp(again, lg, NT * V * sizeof *lg) == 0);
    free(lg), free(lc), free(again);
    lora_session_free(cs);
    lora_model_free(gm);
    lora_optimizer_free(oc);
    close_side(&c);
    close_side(&g);
}
END_TEST

/* A checkpoint of full fine-tuning on the GPU: two steps, a save, two more; the load puts the
 * weights (host arena, masters, bfloat16 copies) and the moments back, and the same two steps
 * give the same losses. */
START_TEST(full_training_checkpoint_resumes_on_gpu)
{
    side g = open_side(QWEN2, "{\"device\": \"cuda\"}");
    ck_assert(lora_session_set_adapters(g.s, NULL, NULL, 0) == LORA_OK);
    lora_optimizer *o;
    ck_assert(lora_optimizer_create(g.s, "{\"train\": \"full\", \"lr\": 1e-3}", &o) == LORA_OK);
    int32_t ids[NB * NT], labels[NB * NT];
    float first[2], second[2];
    char dir[] = "/tmp/check_cuda_model_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char ckpt[64];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", dir);
    for (int k = 0; k < 2; k++) {
        batch(g.m, ids, labels, (unsigned)k);
        ck_assert(lora_train_step(o, ids, labels, NB, NT, NULL) == LORA_OK);
    }
    ck_assert_msg(lora_optimizer_save_checkpoint(o, ckpt, 2) == LORA_OK, "%s", lora_last_error());
    for (int k = 0; k < 2; k++) {
        batch(g.m, ids, labels, (unsigned)(k + 2));
        ck_assert(lora_train_step(o, ids, labels, NB, NT, &first[k]) == LORA_OK);
    }
    uint64_t pos;
    ck_assert_msg(lora_optimizer_load_checkpoint(o, ckpt, &pos) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_uint_eq(pos, 2);
    for (int k = 0; k < 2; k++) {
        batch(g.m, ids, labels, (unsigned)(k + 2));
        ck_assert(lora_train_step(o, ids, labels, NB, NT, &second[k]) == LORA_OK);
        ck_assert_msg(second[k] == first[k], "step %d after the load: loss %.9g, %.9g before",
                      k, second[k], first[k]);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    lora_optimizer_free(o);
    close_side(&g);
}
END_TEST

/* SGD with momentum, nesterov and weight decay on the adapters: the GPU's weights after five
 * steps (float32 products) are the CPU's. */
START_TEST(sgd_on_gpu_matches_cpu)
{
    side c = open_side(QWEN2, "{\"device\": \"cpu\"}");
    side g = open_side(QWEN2, "{\"device\": \"cuda\", \"cuda_math\": \"fp32\"}");
    const char *opt = "{\"optimizer\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9, "
                      "\"nesterov\": true, \"weight_decay\": 0.01}";
    lora_optimizer *oc, *og;
    ck_assert(lora_optimizer_create(c.s, opt, &oc) == LORA_OK);
    ck_assert_msg(lora_optimizer_create(g.s, opt, &og) == LORA_OK, "%s", lora_last_error());
    int32_t ids[NB * NT], labels[NB * NT];
    for (int step = 0; step < 5; step++) {
        batch(c.m, ids, labels, (unsigned)(step % 4));
        ck_assert(lora_train_step(oc, ids, labels, NB, NT, NULL) == LORA_OK);
        ck_assert_msg(lora_train_step(og, ids, labels, NB, NT, NULL) == LORA_OK, "%s",
                      lora_last_error());
    }
    ck_assert(lora__adapter_host_sync(g.a) == LORA_OK);
    double e = tu_max_rel_err(g.a->arena, c.a->arena, c.a->arena_floats);
    ck_assert_msg(e <= FP32_GRAD, "adapter weights after 5 SGD steps: relative error %.3g", e);
    lora_optimizer_free(oc);
    lora_optimizer_free(og);
    close_side(&c);
    close_side(&g);
}
END_TEST

/* lora_device_memory counts what the process holds on the device: a model's copy, then a
 * training step's workspaces and optimizer state; the peak resets to the current use; and
 * when everything is freed the count is back where it was. */
START_TEST(device_memory_counts)
{
    uint64_t base, peak, used, after, top;
    ck_assert(lora_device_memory("cuda", &base, &peak, 1) == LORA_OK);
    ck_assert_uint_eq(peak, base);
    side g = open_side(QWEN2, "{\"device\": \"cuda\"}");
    ck_assert(lora_device_memory("cuda:0", &used, &peak, 0) == LORA_OK);
    ck_assert_uint_ge(used, base + (uint64_t)info_int(g.m, "\"device_weight_bytes\""));
    ck_assert_uint_ge(peak, used);
    lora_optimizer *o;
    ck_assert(lora_optimizer_create(g.s, "{\"lr\": 0.01}", &o) == LORA_OK);
    int32_t ids[NB * NT], labels[NB * NT];
    batch(g.m, ids, labels, 3);
    ck_assert_msg(lora_train_step(o, ids, labels, NB, NT, NULL) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert(lora_device_memory("cuda", &after, &top, 1) == LORA_OK);
    ck_assert_uint_gt(after, used);
    ck_assert_uint_ge(top, after);
    ck_assert(lora_device_memory("cuda", NULL, &peak, 0) == LORA_OK);
    ck_assert_uint_eq(peak, after);
    lora_optimizer_free(o);
    close_side(&g);
    ck_assert(lora_device_memory("cuda", &after, &peak, 0) == LORA_OK);
    ck_assert_uint_eq(after, base);
    ck_assert_uint_ge(peak, used);
}
END_TEST

/* The floats of one layer's kept activations (session.h, lora_layer_bf16): the bfloat16
 * tensors at two values a float, and in float32 the attention's statistics (one per token and
 * head), the q/k norms' rstd and an (N, max_rank) LoRA intermediate per adapted module. */
static size_t kept_layer_floats(const lora_config *c, size_t N, size_t modules, size_t r)
{
    size_t C = (size_t)c->hidden, q = (size_t)(c->n_heads * c->head_dim),
           kv = (size_t)(c->n_kv_heads * c->head_dim), I = (size_t)c->inter;
    size_t half = N * (2 * C + 2 * q + 2 * kv + 2 * I), f = N * modules * r;
    f += N * (size_t)c->n_heads;
    if (c->qk_norm) {
        half += N * (q + kv);
        f += N * (size_t)(c->n_heads + c->n_kv_heads);
    }
    return half / 2 + f;
}

/* The session's shared workspace after a training step (docs/training.md, "Memory"), the
 * largest of: the backward's gradient buffers, the attention's and the MLP's over the same
 * floats, and, keeping bfloat16 activations, the float32 layer set it widens into; the
 * forward's layer set (with the bfloat16 in16); the output head's chunk (for these
 * vocabularies all N rows at once: the chunked loss's 3 doubles a row, logits and their
 * gradient, the log-sum-exp, and the device's nll and dnll). */
static size_t shared_ws_floats(const lora_config *c, size_t N, size_t r, bool kept)
{
    size_t head = N * (6 + 2 * (size_t)c->vocab + 1 + 2);
    size_t C = (size_t)c->hidden, q = (size_t)(c->n_heads * c->head_dim),
           kv = (size_t)(c->n_kv_heads * c->head_dim), I = (size_t)c->inter;
    /* keeping bfloat16 activations, SwiGLU's backward also rounds dgate and dup (2I bfloat16)
     * for the gate and up products */
    size_t att = 2 * q + 2 * kv + (c->qk_norm ? q + kv : 0), mlp = (kept ? 4 : 3) * I;
    size_t bwd = N * (2 * C + (att > mlp ? att : mlp) + LORA_GROUP_MAX * r); /* grouped u */
    if (kept) /* dx rounded by the norms' backward for the o and down products */
        bwd += (N * C + 7) / 8 * 4;
    size_t fwd = 0;
    if (kept) {
        bwd += N * (2 * C + q + I + 2);
        fwd = N * (3 * C + 2 * q + 2 * kv + 3 * I + 2 + (c->qk_norm ? q + kv : 0)) +
              (N * (C > I ? C : I) + 7) / 8 * 4; /* in16, bfloat16 from a 16-byte boundary */
    }
    size_t most = bwd > fwd ? bwd : fwd;
    return most > head ? most : head;
}

/* A bfloat16 model on the GPU keeps its training activations in bfloat16 (asked for or by
 * default): on cuDNN the loss is that of a session keeping float32 ones bit for bit (cuDNN
 * reads q, k, v rounded either way); on the reference kernels (the CUDA emulator) only the
 * kept session's attention reads them rounded, which moves the loss a little. The LoRA
 * gradients differ by the rounding of the kept values alone. The training workspace holds the
 * kept layers alone: the float32 layer set the forward computes in and the backward widens
 * into is in the session's shared workspace, with the gradient buffers and the head. */
START_TEST(kept_bf16_activations)
{
    const char *dirs[] = {QWEN2, QWEN3};
    for (int d = 0; d < 2; d++) {
        side g = open_side(dirs[d], "{\"device\": \"cuda\"}");
        ck_assert_msg(g.s->acts_bf16, "%s: a bfloat16 model keeps float32 activations", dirs[d]);
        lora_session *asked = NULL;
        ck_assert_int_eq(lora_session_create(g.m, "{\"train_activations\": \"bf16\"}",
                                             &asked), LORA_OK);
        lora_session_free(asked);
        int32_t ids[NB * NT], labels[NB * NT];
        batch(g.m, ids, labels, 5);
        side f = g; /* the same model and adapter, in a session that keeps float32 */
        ck_assert_msg(lora_session_create(g.m, "{\"train_activations\": \"float32\"}", &f.s) ==
                      LORA_OK, "%s", lora_last_error());
        float one = 1.0f;
        ck_assert(lora_session_set_adapters(f.s, &g.a, &one, 1) == LORA_OK);
        ck_assert(!f.s->acts_bf16);
        double loss16, loss32;
        float *g16 = grads_of(&g, ids, labels, &loss16), *g32 = grads_of(&f, ids, labels, &loss32);
        size_t kept = g.s->train_ws_floats, full = f.s->train_ws_floats;
        lora_cuda_sdpa_info in;
        lora__cuda_sdpa_info(g.s->be, &in);
        if (in.cudnn_calls > 0)
            ck_assert_msg(loss16 == loss32, "%s: loss %.9g kept, %.9g not", dirs[d], loss16,
                          loss32);
        else
            ck_assert_msg(loss16 != loss32 && fabs(loss16 - loss32) <= 1e-3 * fabs(loss32),
                          "%s: on the reference attention, loss %.9g kept, %.9g not", dirs[d],
                          loss16, loss32);
        double e = tu_max_rel_err(g16, g32, g.a->arena_floats);
        ck_assert_msg(e > 0 && e <= 2e-2, "%s: LoRA gradients from bfloat16 activations: "
                      "relative error %.3g", dirs[d], e);
        const lora_config *c = &g.m->cfg;
        size_t N = NB * NT, L = (size_t)c->n_layers, tail = N * (2 * (size_t)c->hidden + 1);
        size_t layer = (full - tail) / L;
        ck_assert_uint_eq(full, L * layer + tail);
        ck_assert_uint_eq(kept, L * kept_layer_floats(c, N, LORA_PROJ_COUNT,
                                                       (size_t)g.s->max_rank) + tail);
        size_t r = (size_t)g.s->max_rank;
        ck_assert_uint_eq(g.s->ws_floats, shared_ws_floats(c, N, r, true));
        ck_assert_uint_eq(f.s->ws_floats, shared_ws_floats(c, N, r, false));
        free(g16), free(g32);
        lora_session_free(f.s);
        close_side(&g);
    }
    /* float32 weights on the GPU ("cuda_math": "fp32") keep float32 activations */
    side w = open_side(QWEN2, "{\"device\": \"cuda\", \"cuda_math\": \"fp32\"}");
    ck_assert(!w.s->acts_bf16);
    lora_session *asked = (lora_session *)1;
    ck_assert_int_eq(lora_session_create(w.m, "{\"train_activations\": \"bf16\"}", &asked),
                     LORA_ERR_UNSUPPORTED);
    ck_assert_ptr_null(asked);
    ck_assert_msg(strstr(lora_last_error(), "float32 on the cuda"), "%s", lora_last_error());
    close_side(&w);
}
END_TEST

/* Work queued on the stream (kernels, products, cuDNN graphs, copies, fills: lora_cuda's
 * launches), counted on random Qwen2-shaped models of 1 and of 3 layers, so that the
 * difference is two layers' worth: a training micro-batch's forward and backward, a 10-token
 * prefill, and one decoded token, eager with the adapter attached (unmerged) and with none (a
 * merged model's), and replayed from the decode graph. Printed ("info: launches ...", the
 * figures docs/perf-notes.md quotes) and held to the notes' per-layer counts, so that a change
 * in what an op fuses changes this test and the notes with it. */
typedef struct launch_counts {
    uint64_t train, prefill, unmerged, merged, replayed, greedy;
} launch_counts;

static uint64_t launches_of(const lora_session *s) { return ((const lora_cuda *)s->be->impl)->launches; }

static launch_counts count_launches(int layers)
{
    char dir[] = "/tmp/check_cuda_model_XXXXXX", cfg[512], cmd[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cfg, sizeof cfg,
             "{\"model_type\": \"qwen2\", \"architectures\": [\"Qwen2ForCausalLM\"], "
             "\"vocab_size\": 384, \"hidden_size\": 64, \"intermediate_size\": 160, "
             "\"num_hidden_layers\": %d, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
             "\"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"tie_word_embeddings\": true, "
             "\"max_position_embeddings\": 256}", layers);
    ck_assert_msg(lora_model_init_checkpoint(cfg, dir, 7, "f32") == LORA_OK, "%s",
                  lora_last_error());
    side g = open_side(dir, "{\"device\": \"cuda\"}");
    launch_counts n;
    int32_t ids[NB * NT], labels[NB * NT];
    batch(g.m, ids, labels, 5);
    double loss;
    free(grads_of(&g, ids, labels, &loss)); /* the first step sets up (plans, tables) */
    lora_backend *be = g.s->be;
    size_t bytes = g.a->arena_floats * sizeof(float);
    float *dev;
    ck_assert(be->ops->mem_alloc(be, bytes, "gradients", (void **)&dev) == LORA_OK);
    lora_grads gr = {{dev}, NULL};
    size_t counted;
    uint64_t t0 = launches_of(g.s);
    ck_assert_msg(lora__forward_backward(g.s, ids, labels, NULL, NB, NT, 1.0f, false, &gr, &loss,
                                         &counted) == LORA_OK, "%s", lora_last_error());
    n.train = launches_of(g.s) - t0;
    be->ops->mem_free(be, dev, bytes);

    size_t V = lora_model_vocab_size(g.m);
    float *logits = malloc(10 * V * sizeof *logits);
    ck_assert(lora_session_append(g.s, ids, 10, logits) == LORA_OK); /* sets up the cache */
    lora_session_reset(g.s);
    t0 = launches_of(g.s);
    ck_assert(lora_session_append(g.s, ids, 10, logits) == LORA_OK);
    n.prefill = launches_of(g.s) - t0;
    g.s->graph_off = true;
    ck_assert(lora_session_append(g.s, ids + 10, 1, logits) == LORA_OK);
    t0 = launches_of(g.s);
    ck_assert(lora_session_append(g.s, ids + 11, 1, logits) == LORA_OK);
    n.unmerged = launches_of(g.s) - t0;
    ck_assert(lora_session_set_adapters(g.s, NULL, NULL, 0) == LORA_OK);
    ck_assert(lora_session_append(g.s, ids + 12, 1, logits) == LORA_OK);
    t0 = launches_of(g.s);
    ck_assert(lora_session_append(g.s, ids + 13, 1, logits) == LORA_OK);
    n.merged = launches_of(g.s) - t0;
    g.s->graph_off = false;
    for (int k = 0; k < 2; k++) /* records the step's graph, then replays it */
        ck_assert(lora_session_append(g.s, ids + 14 + k, 1, logits) == LORA_OK);
    t0 = launches_of(g.s);
    ck_assert(lora_session_append(g.s, ids + 16, 1, logits) == LORA_OK);
    n.replayed = launches_of(g.s) - t0;
    /* greedy: each step decodes the token the last one chose (recorded at the second, replayed
     * at the third, which its predecessor's argmax fed: nothing to upload) */
    int32_t in = ids[17], out = -1;
    for (int k = 0; k < 3; k++) {
        t0 = launches_of(g.s);
        ck_assert_msg(lora__session_append_greedy(g.s, &in, 1, logits, &out) == LORA_OK, "%s",
                      lora_last_error());
        ck_assert_int_ge(out, 0);
        in = out;
    }
    n.greedy = launches_of(g.s) - t0;
    free(logits);
    close_side(&g);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    return n;
}

START_TEST(launches_counted)
{
    launch_counts one = count_launches(1), three = count_launches(3);
    const uint64_t *a = &one.train, *b = &three.train;
    const char *what[] = {"training forward and backward (48 rows)", "prefill (10 tokens)",
                          "decoded token, adapter unmerged", "decoded token, merged",
                          "decoded token, graph replayed",
                          "greedy token, graph replayed, fed by the last step"};
    uint64_t per_layer[6];
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(b[i] >= a[i] && (b[i] - a[i]) % 2 == 0, "%s: %llu launches at 1 layer, "
                      "%llu at 3", what[i], (unsigned long long)a[i], (unsigned long long)b[i]);
        per_layer[i] = (b[i] - a[i]) / 2;
        printf("info: launches, %s: %llu per layer + %llu\n", what[i],
               (unsigned long long)per_layer[i], (unsigned long long)(a[i] - per_layer[i]));
    }
    fflush(stdout);
    /* docs/perf-notes.md, "Decode: fewer, fused small kernels": 10 a merged layer, and as
     * many with one adapter unmerged ("The LoRA up-products in the passes that read them, at
     * inference"); a replay is one launch whatever the depth */
    ck_assert_uint_eq(per_layer[3], 10);
    ck_assert_uint_eq(per_layer[2], 10);
    ck_assert_uint_eq(per_layer[4], 0);
    /* prefill past a few rows: q, k, v's up-products in the RoPE + cache pass's tiles too
     * ("The prefill's q/k/v LoRA up-products in the RoPE + cache pass") */
    ck_assert_uint_eq(per_layer[1], 18);
    /* a replayed token: the graph (its head too: lora_step_head), one upload of its id and
     * position together (forward.c's [ids | positions]) and the logits' download */
    ck_assert_uint_eq(one.replayed, 3);
    /* greedy, the token its last step fed: the graph (the argmax too) and the token's download */
    ck_assert_uint_eq(per_layer[5], 0);
    ck_assert_uint_eq(one.greedy, 2);
}
END_TEST

int main(void)
{
    char why[512];
    int n = tu_cuda_devices(why, sizeof why);
    Suite *s = suite_create("cuda_model");
    TCase *gpu = tcase_create("gpu");
    tcase_set_tags(gpu, "gpu");
    tcase_set_timeout(gpu, 300);
    const TTest *cases[] = {logits_loss_grads_fp32, logits_loss_grads_bf16, training_tracks_cpu,
                            greedy_matches_cpu, adapter_trained_on_gpu_loads_on_cpu,
                            merge_on_gpu, device_oom_leaves_model_usable,
                            full_training_fp32_matches_cpu, full_training_bf16_tracks_cpu,
                            full_training_checkpoint_resumes_on_gpu, sgd_on_gpu_matches_cpu,
                            device_weight_memory_report,
                            decode_over_bf16_kv_cache, decode_graph_matches_eager,
                            merge_on_bf16_gpu, kept_bf16_activations,
                            device_memory_counts, greedy_on_device_matches_host_sampler,
                            training_rows_bucketed, dropout_training_tracks_cpu,
                            launches_counted};
    if (n == 0)
        printf("check_cuda_model: %s\n", why[0] ? why : "no CUDA device");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (n > 0)
            tcase_add_test(gpu, cases[i]);
        else
            printf("skipped: no CUDA device: %s\n", cases[i]->name);
    }
    suite_add_tcase(s, gpu);
    fflush(stdout);
    return tu_run_suite(s);
}

#else /* built without the CUDA backend */

int main(void)
{
    printf("skipped: built without the CUDA backend (CUDA=0, or no nvcc): check_cuda_model\n");
    fflush(stdout);
    return tu_run_suite(suite_create("cuda_model"));
}

#endif
