/* Threads and misuse: many threads, each with its own session over one shared model, generating
 * and training while others attach, detach, load and free adapters, give exactly the results of
 * the same work done on one thread; NULL, freed and foreign handles are refused by name. */
#include <check.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lora.h"
#include "util/suite.h"

#define FIXTURE "tests/fixtures/tiny-qwen2"
#define FIXTURE_ADAPTER FIXTURE "/adapter"
#define TINY "models/tiny"

#define N_JOBS 6   /* two of each role */
#define ROUNDS 3   /* each thread repeats its job, for more interleavings */
#define N_GEN 4    /* generations a job records */
#define GEN 10     /* tokens per generation */
#define STEPS 3    /* training steps of a trainer job */
#define TB 2       /* training batch */
#define TT 12      /* training sequence length */
#define ERR_CAP 512

/* Everything a job computes; compared bit for bit between the threaded and the serial run. */
typedef struct result {
    int32_t ids[N_GEN][GEN];
    size_t n[N_GEN];
    float losses[STEPS];
    unsigned char *adapter_bytes; /* a trainer's saved adapter_model.safetensors */
    size_t adapter_len;
    char err[ERR_CAP];            /* the first failure, empty when none */
} result;

typedef struct job {
    int index;
    lora_model *model;
    lora_adapter *shared;         /* attached by several sessions at once, read only */
    char dir[256];                /* where a trainer saves its adapter */
    result r;
} job;

static int record(result *r, const char *what, lora_status st)
{
    snprintf(r->err, sizeof r->err, "%s: %s: %s", what, lora_status_string(st),
             lora_last_error());
    return 0;
}

/* 1 when st is LORA_OK; else records the failure and gives 0, so steps chain with && */
static int ok_(result *r, const char *what, lora_status st)
{
    return st == LORA_OK ? 1 : record(r, what, st);
}

static void prompt_of(int index, int32_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (int32_t)((index * 31 + (int)i * 17 + 5) % 384);
}

static int generate(result *r, lora_session *s, lora_sampler *smp, int index, int slot)
{
    int32_t prompt[6];
    prompt_of(index + slot, prompt, 6);
    lora_session_reset(s);
    return ok_(r, "lora_generate", lora_generate(s, smp, prompt, 6, r->ids[slot], GEN,
                                                 &r->n[slot], NULL, NULL));
}

static int read_file(result *r, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return snprintf(r->err, sizeof r->err, "cannot open %s", path), 0;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    r->adapter_bytes = malloc(len > 0 ? (size_t)len : 1);
    r->adapter_len = r->adapter_bytes ? fread(r->adapter_bytes, 1, (size_t)len, f) : 0;
    fclose(f);
    return r->adapter_len == (size_t)len ? 1 : (snprintf(r->err, sizeof r->err, "short read"), 0);
}

/* Greedy and seeded generation, with and without the shared adapter. */
static int generator(job *j, lora_session *s)
{
    result *r = &j->r;
    lora_sampler *greedy = NULL, *seeded = NULL;
    char cfg[128];
    snprintf(cfg, sizeof cfg, "{\"do_sample\": true, \"temperature\": 0.9, \"top_k\": 40, "
             "\"seed\": %d, \"max_new_tokens\": %d}", 1000 + j->index, GEN);
    float scale = 0.5f;
    int ok = ok_(r, "lora_sampler_create", lora_sampler_create("{\"max_new_tokens\": 10}", &greedy)) &&
             ok_(r, "lora_sampler_create", lora_sampler_create(cfg, &seeded)) &&
             generate(r, s, greedy, j->index, 0) && generate(r, s, seeded, j->index, 1) &&
             ok_(r, "lora_sampler_set_seed", lora_sampler_set_seed(seeded, 7)) &&
             generate(r, s, seeded, j->index, 2) &&
             ok_(r, "lora_session_set_adapters",
                 lora_session_set_adapters(s, &j->shared, &scale, 1)) &&
             generate(r, s, greedy, j->index, 3) &&
             ok_(r, "lora_session_set_adapters (detach)",
                 lora_session_set_adapters(s, NULL, NULL, 0));
    lora_sampler_free(greedy);
    lora_sampler_free(seeded);
    return ok;
}

/* Its own adapter and optimizer: losses, the saved adapter's bytes, a greedy generation. */
static int trainer(job *j, lora_session *s)
{
    result *r = &j->r;
    lora_adapter *a = NULL;
    lora_optimizer *o = NULL;
    lora_sampler *greedy = NULL;
    float one = 1.0f;
    int32_t ids[TB * TT], labels[TB * TT];
    for (int i = 0; i < TB * TT; i++)
        ids[i] = labels[i] = (int32_t)((j->index * 53 + i * 29 + 3) % 384);
    labels[0] = -100;
    char path[300];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", j->dir);
    int ok = ok_(r, "lora_adapter_create",
                 lora_adapter_create(j->model, "{\"r\": 4, \"lora_alpha\": 8, "
                                     "\"target_modules\": \"all-linear\"}",
                                     (uint64_t)j->index, &a)) &&
             ok_(r, "lora_session_set_adapters", lora_session_set_adapters(s, &a, &one, 1)) &&
             ok_(r, "lora_optimizer_create", lora_optimizer_create(s, "{\"lr\": 0.01}", &o));
    for (int k = 0; ok && k < STEPS; k++)
        ok = ok_(r, "lora_train_step", lora_train_step(o, ids, labels, TB, TT, &r->losses[k]));
    ok = ok && ok_(r, "lora_adapter_save", lora_adapter_save(a, j->dir)) && read_file(r, path) &&
         ok_(r, "lora_sampler_create", lora_sampler_create("{\"max_new_tokens\": 10}", &greedy)) &&
         generate(r, s, greedy, j->index, 0);
    lora_sampler_free(greedy);
    lora_optimizer_free(o);
    lora_adapter_free(a); /* the session still holds it until detached */
    return ok && ok_(r, "lora_session_set_adapters (detach)",
                     lora_session_set_adapters(s, NULL, NULL, 0));
}

/* Loads, attaches (with the shared adapter), generates, detaches and frees, round after round. */
static int churner(job *j, lora_session *s)
{
    result *r = &j->r;
    lora_sampler *greedy = NULL;
    int ok = ok_(r, "lora_sampler_create", lora_sampler_create("{\"max_new_tokens\": 10}", &greedy));
    for (int k = 0; ok && k < N_GEN; k++) {
        lora_adapter *both[2] = {NULL, j->shared};
        float scales[2] = {1.0f - 0.25f * (float)k, 0.25f};
        ok = ok_(r, "lora_adapter_load", lora_adapter_load(j->model, FIXTURE_ADAPTER, &both[0])) &&
             ok_(r, "lora_session_set_adapters",
                 lora_session_set_adapters(s, both, scales, (k & 1) ? 1 : 2));
        lora_adapter_free(both[0]); /* freed while attached: the session keeps it alive */
        ok = ok && generate(r, s, greedy, j->index, k) &&
             ok_(r, "lora_session_set_adapters (detach)",
                 lora_session_set_adapters(s, NULL, NULL, 0));
    }
    lora_sampler_free(greedy);
    return ok;
}

static void *run_job(void *arg)
{
    job *j = arg;
    memset(&j->r, 0, sizeof j->r);
    lora_session *s;
    /* one job's session uses two worker threads: teams inside application threads */
    const char *opts = j->index == 0 ? "{\"threads\": 2, \"max_context\": 64}"
                                     : "{\"threads\": 1, \"max_context\": 64}";
    lora_status st = lora_session_create(j->model, opts, &s);
    if (st != LORA_OK) {
        record(&j->r, "lora_session_create", st);
        return NULL;
    }
    switch (j->index % 3) {
    case 0: generator(j, s); break;
    case 1: trainer(j, s); break;
    default: churner(j, s); break;
    }
    lora_session_free(s);
    return NULL;
}

static void *run_rounds(void *arg)
{
    job *rounds = arg;
    for (int k = 0; k < ROUNDS; k++)
        run_job(&rounds[k]);
    return NULL;
}

static void remove_dir(const char *dir)
{
    char p[300];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    unlink(p);
    rmdir(dir);
}

static void compare(const result *a, const result *b, int index)
{
    ck_assert_msg(!a->err[0], "job %d (serial): %s", index, a->err);
    ck_assert_msg(!b->err[0], "job %d (threaded): %s", index, b->err);
    for (int g = 0; g < N_GEN; g++) {
        ck_assert_msg(a->n[g] == b->n[g], "job %d generation %d: %zu vs %zu tokens", index, g,
                      a->n[g], b->n[g]);
        ck_assert_msg(memcmp(a->ids[g], b->ids[g], a->n[g] * sizeof(int32_t)) == 0,
                      "job %d generation %d differs", index, g);
    }
    ck_assert_msg(memcmp(a->losses, b->losses, sizeof a->losses) == 0, "job %d: losses differ",
                  index);
    ck_assert_msg(a->adapter_len == b->adapter_len &&
                  (!a->adapter_len || memcmp(a->adapter_bytes, b->adapter_bytes,
                                             a->adapter_len) == 0),
                  "job %d: saved adapters differ", index);
}

START_TEST(threaded_work_equals_serial_work)
{
    lora_model *m;
    lora_adapter *shared;
    ck_assert_msg(lora_model_load(FIXTURE, "{\"threads\": 1}", &m) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_msg(lora_adapter_load(m, FIXTURE_ADAPTER, &shared) == LORA_OK, "%s",
                  lora_last_error());
    char tmp[] = "/tmp/lora_threads_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    static job serial[N_JOBS], threaded[N_JOBS][ROUNDS];
    for (int i = 0; i < N_JOBS; i++) {
        serial[i] = (job){.index = i, .model = m, .shared = shared};
        snprintf(serial[i].dir, sizeof serial[i].dir, "%s/serial_%d", tmp, i);
        for (int k = 0; k < ROUNDS; k++) {
            threaded[i][k] = serial[i];
            snprintf(threaded[i][k].dir, sizeof threaded[i][k].dir, "%s/threaded_%d_%d", tmp, i, k);
        }
        run_job(&serial[i]);
    }
    pthread_t th[N_JOBS];
    for (int i = 0; i < N_JOBS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, run_rounds, threaded[i]), 0);
    for (int i = 0; i < N_JOBS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N_JOBS; i++) {
        for (int k = 0; k < ROUNDS; k++) {
            compare(&serial[i].r, &threaded[i][k].r, i);
            free(threaded[i][k].r.adapter_bytes);
            remove_dir(threaded[i][k].dir);
        }
        /* the roles did what they are for */
        if (i % 3 == 0)
            ck_assert_msg(memcmp(serial[i].r.ids[1], serial[i].r.ids[0], GEN * 4) != 0 ||
                          memcmp(serial[i].r.ids[2], serial[i].r.ids[1], GEN * 4) != 0,
                          "job %d: seeded sampling gave the greedy tokens twice", i);
        if (i % 3 == 1)
            ck_assert_msg(serial[i].r.losses[STEPS - 1] < serial[i].r.losses[0] &&
                          serial[i].r.adapter_len > 0, "job %d: training did not train", i);
        free(serial[i].r.adapter_bytes);
        remove_dir(serial[i].dir);
    }
    rmdir(tmp);
    lora_adapter_free(shared);
    lora_model_free(m);
}
END_TEST

/* A host whose threads are OpenMP's: each calls liblora from inside its own parallel region,
 * where (nesting off) a session's worker team gets one thread instead of the two it asks for.
 * Every row must still be computed, as on a plain thread. */
START_TEST(sessions_inside_an_openmp_region)
{
    enum { B = 2, L = 24 };
    lora_model *m;
    ck_assert_int_eq(lora_model_load(FIXTURE, "{\"threads\": 2}", &m), LORA_OK);
    size_t V = lora_model_vocab_size(m);
    int32_t ids[B * L];
    for (int i = 0; i < B * L; i++)
        ids[i] = (int32_t)((i * 7919u + 13u) % V);
    float *ref = malloc(B * L * V * sizeof *ref), *got[2] = {NULL, NULL};
    lora_session *s;
    ck_assert_int_eq(lora_session_create(m, NULL, &s), LORA_OK);
    ck_assert_int_eq(lora_session_logits(s, ids, NULL, B, L, ref), LORA_OK);
    lora_session_free(s);
    int ok[2] = {0, 0}, team = 0;
    omp_set_max_active_levels(1);
#pragma omp parallel num_threads(2)
    {
        int t = omp_get_thread_num();
        if (t == 0)
            team = omp_get_num_threads(); /* 1 under OMP_THREAD_LIMIT=1 (make test-tsan) */
        lora_session *own;
        got[t] = malloc(B * L * V * sizeof(float));
        ok[t] = lora_session_create(m, NULL, &own) == LORA_OK &&
                lora_session_logits(own, ids, NULL, B, L, got[t]) == LORA_OK;
        lora_session_free(own);
    }
    for (int t = 0; t < team; t++) {
        ck_assert(ok[t]);
        ck_assert_msg(memcmp(got[t], ref, B * L * V * sizeof *ref) == 0,
                      "OpenMP thread %d: logits differ from a plain thread's", t);
    }
    for (int t = 0; t < team; t++)
        free(got[t]);
    free(ref);
    lora_model_free(m);
}
END_TEST

/* ---- the model's tokenizer, loaded on first use by whichever thread comes first ------------ */

static const char text[] = "What is 12 + 30? The answer is 42.";

typedef struct tok_job {
    lora_model *model;
    lora_tokenizer *t;
    int32_t ids[64];
    size_t n;
    char *decoded;
    char streamed[128];
    char err[ERR_CAP];
} tok_job;

static void *run_tok_job(void *arg)
{
    tok_job *j = arg;
    lora_detokenizer *d = NULL;
    lora_status st = lora_model_tokenizer(j->model, &j->t);
    if (!st)
        st = lora_tokenizer_encode(j->t, text, strlen(text), 0, j->ids, 64, &j->n);
    if (!st)
        st = lora_tokenizer_decode(j->t, j->ids, j->n, 0, &j->decoded, NULL);
    if (!st)
        st = lora_detokenizer_create(j->t, 0, &d);
    size_t at = 0;
    for (size_t i = 0; !st && i <= j->n; i++) {
        const char *piece;
        size_t len;
        st = i < j->n ? lora_detokenizer_push(d, j->ids[i], &piece, &len)
                      : lora_detokenizer_flush(d, &piece, &len);
        if (!st && at + len < sizeof j->streamed) {
            memcpy(j->streamed + at, piece, len);
            at += len;
        }
    }
    if (st)
        snprintf(j->err, sizeof j->err, "%s: %s", lora_status_string(st), lora_last_error());
    lora_detokenizer_free(d);
    return NULL;
}

START_TEST(model_tokenizer_shared_by_threads)
{
    lora_model *m;
    ck_assert_msg(lora_model_load(TINY, "{\"threads\": 1}", &m) == LORA_OK, "%s",
                  lora_last_error());
    tok_job jobs[N_JOBS];
    pthread_t th[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].model = m;
        ck_assert_int_eq(pthread_create(&th[i], NULL, run_tok_job, &jobs[i]), 0);
    }
    for (int i = 0; i < N_JOBS; i++)
        pthread_join(th[i], NULL);
    lora_model_free(m); /* the callers' tokenizer references outlive the model */
    lora_tokenizer *ref;
    ck_assert_int_eq(lora_tokenizer_load(TINY, NULL, &ref), LORA_OK);
    int32_t ids[64];
    size_t n;
    ck_assert_int_eq(lora_tokenizer_encode(ref, text, strlen(text), 0, ids, 64, &n), LORA_OK);
    for (int i = 0; i < N_JOBS; i++) {
        ck_assert_msg(!jobs[i].err[0], "thread %d: %s", i, jobs[i].err);
        ck_assert_msg(jobs[i].t == jobs[0].t, "thread %d got another tokenizer", i);
        ck_assert_uint_eq(jobs[i].n, n);
        ck_assert(memcmp(jobs[i].ids, ids, n * sizeof *ids) == 0);
        ck_assert_str_eq(jobs[i].decoded, text);
        ck_assert_str_eq(jobs[i].streamed, text);
        lora_string_free(jobs[i].decoded);
        lora_tokenizer_free(jobs[i].t);
    }
    lora_tokenizer_free(ref);
}
END_TEST

/* ---- misuse: NULL, freed and foreign handles ----------------------------------------------- */

static lora_model *mm;
static lora_session *ms;

static void misuse_setup(void)
{
    ck_assert_int_eq(lora_model_load(FIXTURE, "{\"threads\": 1}", &mm), LORA_OK);
    ck_assert_int_eq(lora_session_create(mm, "{\"max_context\": 16}", &ms), LORA_OK);
}

static void misuse_teardown(void)
{
    lora_session_free(ms);
    lora_model_free(mm);
}

/* The status is LORA_ERR_INVALID_ARGUMENT and the message names the function and the words. */
static void refused(lora_status st, const char *fn, const char *what)
{
    ck_assert_msg(st == LORA_ERR_INVALID_ARGUMENT, "%s: got %s (%s)", fn, lora_status_string(st),
                  lora_last_error());
    const char *msg = lora_last_error();
    ck_assert_msg(strncmp(msg, fn, strlen(fn)) == 0 && msg[strlen(fn)] == ':',
                  "message does not start with %s: %s", fn, msg);
    ck_assert_msg(strstr(msg, what), "message lacks '%s': %s", what, msg);
}

START_TEST(null_handles_are_refused_by_name)
{
    lora_session *s = (lora_session *)1;
    refused(lora_session_create(NULL, NULL, &s), "lora_session_create", "model is NULL");
    ck_assert_ptr_null(s);
    int32_t id = 1, out[4];
    size_t n;
    float f;
    refused(lora_session_append(NULL, &id, 1, NULL), "lora_session_append", "session is NULL");
    refused(lora_session_logits(NULL, &id, NULL, 1, 1, &f), "lora_session_logits",
            "session is NULL");
    lora_sampler *smp;
    ck_assert_int_eq(lora_sampler_create(NULL, &smp), LORA_OK);
    refused(lora_generate(ms, NULL, &id, 1, out, 4, &n, NULL, NULL), "lora_generate",
            "sampler is NULL");
    refused(lora_generate(NULL, smp, &id, 1, out, 4, &n, NULL, NULL), "lora_generate",
            "session is NULL");
    lora_sampler_free(smp);
    refused(lora_train_step(NULL, &id, &id, 1, 1, &f), "lora_train_step", "optimizer is NULL");
    refused(lora_adapter_save(NULL, "/tmp"), "lora_adapter_save", "adapter is NULL");
    refused(lora_tokenizer_encode(NULL, "a", 1, 0, out, 4, &n), "lora_tokenizer_encode",
            "tokenizer is NULL");
    refused(lora_dataset_seek(NULL, 0), "lora_dataset_seek", "dataset is NULL");
    const char *piece;
    refused(lora_detokenizer_flush(NULL, &piece, &n), "lora_detokenizer_flush", "detok is NULL");
    /* accessors answer 0 / NULL; frees of NULL do nothing */
    ck_assert_uint_eq(lora_model_vocab_size(NULL), 0);
    ck_assert_ptr_null(lora_adapter_info_json(NULL));
    ck_assert_uint_eq(lora_session_position(NULL), 0);
    lora_model_free(NULL);
    lora_session_free(NULL);
    lora_adapter_free(NULL);
    lora_optimizer_free(NULL);
    lora_sampler_free(NULL);
    lora_tokenizer_free(NULL);
    lora_detokenizer_free(NULL);
    lora_dataset_free(NULL);
}
END_TEST

START_TEST(handles_of_another_kind_are_refused)
{
    lora_session *out;
    refused(lora_session_create((lora_model *)ms, NULL, &out), "lora_session_create",
            "model is a lora_session, not a lora_model");
    lora_adapter *a;
    refused(lora_adapter_create((lora_model *)ms, NULL, 0, &a), "lora_adapter_create",
            "model is a lora_session, not a lora_model");
    int32_t id = 1, ids[4];
    size_t n;
    refused(lora_generate(ms, (lora_sampler *)mm, &id, 1, ids, 4, &n, NULL, NULL),
            "lora_generate", "sampler is a lora_model, not a lora_sampler");
    lora_optimizer *o;
    refused(lora_optimizer_create((lora_session *)mm, NULL, &o), "lora_optimizer_create",
            "session is a lora_model, not a lora_session");
    ck_assert_uint_eq(lora_model_vocab_size((lora_model *)ms), 0);
    ck_assert_str_eq(lora_last_error(),
                     "lora_model_vocab_size: model is a lora_session, not a lora_model");
    /* an adapter list holding a session */
    ck_assert_int_eq(lora_adapter_create(mm, NULL, 0, &a), LORA_OK);
    lora_adapter *list[2] = {a, (lora_adapter *)ms};
    float scales[2] = {1, 1};
    refused(lora_session_set_adapters(ms, list, scales, 2), "lora_session_set_adapters",
            "adapters[1] is a lora_session, not a lora_adapter");
    /* a free of the wrong kind does nothing: both handles still work afterwards */
    lora_model_free((lora_model *)a);
    ck_assert_int_eq(lora_session_set_adapters(ms, list, scales, 1), LORA_OK);
    lora_adapter_free(a);
    ck_assert_int_eq(lora_session_append(ms, &id, 1, NULL), LORA_OK);
}
END_TEST

START_TEST(freed_and_foreign_handles_are_refused)
{
    int32_t id = 1, ids[4];
    size_t n;
    float logits[384];
    /* freed: the registry forgets a handle before its memory goes, and is never read through
     * the stale pointer (ASan and valgrind would see that) */
    lora_sampler *smp;
    ck_assert_int_eq(lora_sampler_create(NULL, &smp), LORA_OK);
    lora_sampler_free(smp);
    for (int i = 0; i < 384; i++)
        logits[i] = (float)i;
    refused(lora_sampler_sample(smp, logits, 384, NULL, 0, 0, &id), "lora_sampler_sample",
            "sampler is not a live lora_sampler (freed, or not made by liblora)");
    refused(lora_generate(ms, smp, &id, 1, ids, 4, &n, NULL, NULL), "lora_generate",
            "sampler is not a live lora_sampler");
    lora_sampler_free(smp); /* a second free is a no-op, with a message */
    ck_assert_str_eq(lora_last_error(), "lora_sampler_free: sampler is not a live lora_sampler "
                     "(freed, or not made by liblora)");
    lora_adapter *a;
    ck_assert_int_eq(lora_adapter_create(mm, NULL, 0, &a), LORA_OK);
    lora_adapter_free(a);
    float one = 1;
    refused(lora_session_set_adapters(ms, &a, &one, 1), "lora_session_set_adapters",
            "adapters[0] is not a live lora_adapter");
    refused(lora_adapter_save(a, "/tmp/never"), "lora_adapter_save",
            "adapter is not a live lora_adapter");
    lora_session *s2;
    ck_assert_int_eq(lora_session_create(mm, NULL, &s2), LORA_OK);
    lora_session_free(s2);
    refused(lora_session_append(s2, &id, 1, NULL), "lora_session_append",
            "session is not a live lora_session");
    ck_assert_uint_eq(lora_session_position(s2), 0);
    /* a model whose last reference went */
    lora_model *m2;
    ck_assert_int_eq(lora_model_load(FIXTURE, "{\"threads\": 1}", &m2), LORA_OK);
    lora_model_free(m2);
    lora_model_free(m2);
    refused(lora_session_create(m2, NULL, &s2), "lora_session_create",
            "model is not a live lora_model");
    /* foreign: memory liblora never handed out */
    long junk[64] = {0};
    refused(lora_session_logits((lora_session *)junk, &id, NULL, 1, 1, logits),
            "lora_session_logits", "session is not a live lora_session");
    refused(lora_model_unmerge((lora_model *)junk), "lora_model_unmerge",
            "model is not a live lora_model");
    char *txt;
    refused(lora_tokenizer_decode((lora_tokenizer *)junk, &id, 1, 0, &txt, NULL),
            "lora_tokenizer_decode", "tokenizer is not a live lora_tokenizer");
    refused(lora_optimizer_set_lr((lora_optimizer *)junk, 0.1), "lora_optimizer_set_lr",
            "optimizer is not a live lora_optimizer");
    refused(lora_dataset_row((lora_dataset *)junk, 0, ids, ids, NULL, 4, &n), "lora_dataset_row",
            "dataset is not a live lora_dataset");
    lora_session_free((lora_session *)junk); /* ignored */
    ck_assert_ptr_null(lora_optimizer_stats_json((lora_optimizer *)junk));
    /* the real handles are untouched by all of it */
    ck_assert_int_eq(lora_session_append(ms, &id, 1, NULL), LORA_OK);
}
END_TEST

/* A handle the caller has freed but a child still holds keeps working for the child. */
START_TEST(children_keep_freed_parents_alive)
{
    lora_model *m;
    lora_session *s;
    lora_adapter *a;
    lora_optimizer *o;
    ck_assert_int_eq(lora_model_load(FIXTURE, "{\"threads\": 1}", &m), LORA_OK);
    ck_assert_int_eq(lora_session_create(m, "{\"max_context\": 16}", &s), LORA_OK);
    ck_assert_int_eq(lora_adapter_create(m, NULL, 0, &a), LORA_OK);
    float one = 1;
    ck_assert_int_eq(lora_session_set_adapters(s, &a, &one, 1), LORA_OK);
    ck_assert_int_eq(lora_optimizer_create(s, NULL, &o), LORA_OK);
    lora_adapter_free(a);
    lora_model_free(m);
    lora_session_free(s);
    int32_t ids[4] = {1, 2, 3, 4};
    float loss;
    ck_assert_msg(lora_train_step(o, ids, ids, 1, 4, &loss) == LORA_OK, "%s", lora_last_error());
    lora_optimizer_free(o); /* the last reference: everything goes (LSan and valgrind check) */
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_set_timeout(core, 600); /* TSan and valgrind runs are many times slower */
    tcase_add_test(core, threaded_work_equals_serial_work);
    tcase_add_test(core, model_tokenizer_shared_by_threads);
    tcase_add_test(core, sessions_inside_an_openmp_region);
    suite_add_tcase(s, core);
    TCase *misuse = tcase_create("misuse");
    tcase_set_tags(misuse, "misuse");
    tcase_set_timeout(misuse, 120);
    tcase_add_checked_fixture(misuse, misuse_setup, misuse_teardown);
    tcase_add_test(misuse, null_handles_are_refused_by_name);
    tcase_add_test(misuse, handles_of_another_kind_are_refused);
    tcase_add_test(misuse, freed_and_foreign_handles_are_refused);
    tcase_add_test(misuse, children_keep_freed_parents_alive);
    suite_add_tcase(s, misuse);
    return s;
}

int main(void) { return tu_run_suite(threads_suite()); }
