/* Fault injection: for every public call path, the k-th heap allocation fails (once, and from
 * the k-th on) for k = 1, 2, ... until a run sees no failure; every save also meets write,
 * fsync and rename failures (ENOSPC, EIO). Each failed run must return a clean error status and
 * a message, hand out nothing and change nothing; a run that absorbed a failure must give the
 * unfaulted result. LeakSanitizer (build/asan-tests/check_faults) checks that nothing leaks. */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/manifest.h"
#include "lora.h"
#include "util/alloc.h"
#include "util/suite.h"
#include "util/sysio.h"

#define QWEN2 "tests/fixtures/tiny-qwen2"
#define TOKENIZER "models/tiny"
#define CHAT_DATA "tests/fixtures/data/chat.jsonl"
#define MODEL_CFG "{\"threads\": 1}"
#define ADAPTER_CFG "{\"r\": 2, \"lora_dropout\": 0}"
#define OPT_CFG "{\"lr\": 0.01}"
#define T 8
#define MAX_V 384
#define CAP 256
#define NOT_SET ((void *)&F) /* an out pointer the call must overwrite */

/* ---- folder snapshots: every file under a folder, by relative path ------------------------- */

typedef struct file_copy {
    char *rel;
    char *data;
    size_t len;
} file_copy;

typedef struct tree {
    file_copy f[64];
    size_t n;
} tree;

static tree *snap_into;
static size_t snap_root_len;

static int snap_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag != FTW_F)
        return 0;
    ck_assert_uint_lt(snap_into->n, 64);
    file_copy *c = &snap_into->f[snap_into->n++];
    c->rel = strdup(path + snap_root_len);
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    c->len = (size_t)ftell(fp);
    rewind(fp);
    c->data = malloc(c->len + 1);
    ck_assert_uint_eq(fread(c->data, 1, c->len, fp), c->len);
    fclose(fp);
    return 0;
}

static int cmp_copy(const void *a, const void *b)
{
    return strcmp(((const file_copy *)a)->rel, ((const file_copy *)b)->rel);
}

/* Every regular file under dir, sorted by path; an absent dir gives an empty tree. */
static void snap(const char *dir, tree *t)
{
    t->n = 0;
    snap_into = t;
    snap_root_len = strlen(dir);
    if (access(dir, F_OK) == 0)
        ck_assert_int_eq(nftw(dir, snap_entry, 16, FTW_PHYS), 0);
    qsort(t->f, t->n, sizeof t->f[0], cmp_copy);
}

static void tree_free(tree *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->f[i].rel);
        free(t->f[i].data);
    }
    t->n = 0;
}

static const file_copy *tree_find(const tree *t, const char *rel)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->f[i].rel, rel) == 0)
            return &t->f[i];
    return NULL;
}

static int same_file(const file_copy *a, const file_copy *b)
{
    return a && b && a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static const char *tree_diff; /* the first path where two trees differed */

static int same_tree(const tree *a, const tree *b)
{
    tree_diff = "(the number of files)";
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->f[i].rel, b->f[i].rel) != 0 || !same_file(&a->f[i], &b->f[i])) {
            tree_diff = a->f[i].rel;
            return 0;
        }
    return 1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    if (access(dir, F_OK) == 0)
        ck_assert_int_eq(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Replaces dir by the snapshot's files. */
static void restore(const char *dir, const tree *t)
{
    char path[512];
    rm_tree(dir);
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    for (size_t i = 0; i < t->n; i++) {
        snprintf(path, sizeof path, "%s%s", dir, t->f[i].rel);
        for (char *s = strchr(path + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
            *s = '\0';
            mkdir(path, 0777);
            *s = '/';
        }
        FILE *fp = fopen(path, "wb");
        ck_assert_ptr_nonnull(fp);
        ck_assert_uint_eq(fwrite(t->f[i].data, 1, t->f[i].len, fp), t->f[i].len);
        fclose(fp);
    }
}

/* ---- the fixture ------------------------------------------------------------------------------ */

static struct fx {
    lora_model *model;
    lora_session *sess;
    lora_tokenizer *tok;
    lora_adapter *adapter;
    lora_optimizer *opt;
    lora_sampler *sampler;
    lora_dataset *data;
    char root[64], dir[96];          /* a scratch folder, and the folder saves go to */
    size_t vocab;
    int32_t ids[T], pos[T];
    float base[T * MAX_V];           /* logits of ids without adapters */
    /* outputs of the call under test */
    void *obj, *obj2;
    char *text;
    size_t len, n;
    int32_t out_ids[CAP];
    int32_t labels[CAP], positions[CAP];
    float out[T * MAX_V];
    float loss;
    double alpha;
    lora_status check_status;
    /* what the folder held before a save, and what a successful save writes */
    tree before, after;
} F;

static void logits(float *out)
{
    ck_assert_msg(lora_session_logits(F.sess, F.ids, NULL, 1, T, out) == LORA_OK, "%s",
                  lora_last_error());
}

static void same_logits(const float *want)
{
    float got[T * MAX_V];
    logits(got);
    ck_assert_msg(memcmp(got, want, T * F.vocab * sizeof *got) == 0, "logits changed");
}

static void setup(void)
{
    ck_assert_int_eq(lora_model_load(QWEN2, MODEL_CFG, &F.model), LORA_OK);
    ck_assert_int_eq(lora_session_create(F.model, NULL, &F.sess), LORA_OK);
    ck_assert_int_eq(lora_tokenizer_load(TOKENIZER, NULL, &F.tok), LORA_OK);
    F.vocab = lora_model_vocab_size(F.model);
    ck_assert_uint_le(F.vocab, MAX_V);
    for (int t = 0; t < T; t++) {
        F.ids[t] = (int32_t)(7 + 37 * t) % (int32_t)F.vocab;
        F.pos[t] = t;
    }
    logits(F.base);
    /* thousands of saves: on tmpfs their fsyncs cost nothing */
    snprintf(F.root, sizeof F.root, "%s/lora-faults-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(F.root));
    snprintf(F.dir, sizeof F.dir, "%s/out", F.root);
}

static void teardown(void)
{
    lora_dataset_free(F.data);
    lora_sampler_free(F.sampler);
    lora_optimizer_free(F.opt);
    lora_session_free(F.sess);
    lora_adapter_free(F.adapter);
    lora_tokenizer_free(F.tok);
    lora_model_free(F.model);
    tree_free(&F.before);
    tree_free(&F.after);
    rm_tree(F.root);
}

static lora_adapter *new_adapter(uint64_t seed)
{
    lora_adapter *a;
    ck_assert_int_eq(lora_adapter_create(F.model, ADAPTER_CFG, seed, &a), LORA_OK);
    return a;
}

static void attach(lora_adapter *a)
{
    float one = 1;
    ck_assert_int_eq(lora_session_set_adapters(F.sess, &a, &one, a ? 1 : 0), LORA_OK);
}

/* A fresh adapter (B made non-zero by one step, so that it changes the logits), attached,
 * and a fresh optimizer over it. */
static void fresh_training(int steps)
{
    lora_optimizer_free(F.opt);
    lora_adapter_free(F.adapter);
    F.adapter = new_adapter(1);
    attach(F.adapter);
    ck_assert_int_eq(lora_optimizer_create(F.sess, OPT_CFG, &F.opt), LORA_OK);
    for (int i = 0; i < steps; i++)
        ck_assert_int_eq(lora_train_step(F.opt, F.ids, F.ids, 1, T, NULL), LORA_OK);
}

static void expect_null(void *p) { ck_assert_msg(p == NULL, "a failed call handed out %p", p); }

static void expect_text(const char *want)
{
    ck_assert_ptr_nonnull(F.text);
    ck_assert_str_eq(F.text, want);
    lora_string_free(F.text);
}

/* ---- the call paths --------------------------------------------------------------------------
 * prepare (unfaulted) sets up one run, call is the run under faults, check (unfaulted) sees
 * what it left: with st != LORA_OK nothing handed out and nothing changed; with LORA_OK the
 * unfaulted result, which it then releases. */

typedef struct fcase {
    const char *name;
    void (*prepare)(void);
    lora_status (*call)(void);
    void (*check)(lora_status st);
    int save;                         /* writes F.dir (also run under I/O faults) */
} fcase;

static void prep_out(void)
{
    F.obj = F.obj2 = NOT_SET;
    F.text = NOT_SET;
}

/* model */
static lora_status call_model_load(void)
{
    return lora_model_load(QWEN2, MODEL_CFG, (lora_model **)&F.obj);
}
static void check_model_load(lora_status st)
{
    if (st)
        return expect_null(F.obj);
    ck_assert_str_eq(lora_model_info_json(F.obj), lora_model_info_json(F.model));
    lora_model_free(F.obj);
}

static lora_status call_describe(void) { return lora_model_describe(QWEN2, &F.text); }
static void check_describe(lora_status st)
{
    if (st)
        return expect_null(F.text);
    char *want;
    ck_assert_int_eq(lora_model_describe(QWEN2, &want), LORA_OK);
    expect_text(want);
    lora_string_free(want);
}

static void prep_init_checkpoint(void)
{
    rm_tree(F.dir);
}
static lora_status call_init_checkpoint(void)
{
    return lora_model_init_checkpoint("{\"model_type\": \"qwen2\", \"vocab_size\": 64, "
                                      "\"hidden_size\": 16, \"intermediate_size\": 32, "
                                      "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                                      "\"num_key_value_heads\": 1}", F.dir, 3, "f32");
}
static void check_init_checkpoint(lora_status st)
{
    tree now;
    snap(F.dir, &now);
    if (st) {
        /* the folder may exist; what is in it is whole */
        for (size_t i = 0; i < now.n; i++)
            ck_assert_msg(!strstr(now.f[i].rel, ".tmp"), "left %s", now.f[i].rel);
    } else {
        if (!F.after.n) {
            F.after = now;
            return;
        }
        ck_assert_msg(same_tree(&now, &F.after), "%s differs", tree_diff);
    }
    tree_free(&now);
}

/* session */
static lora_status call_session_create(void)
{
    return lora_session_create(F.model, NULL, (lora_session **)&F.obj);
}
static void check_session_create(lora_status st)
{
    if (st)
        return expect_null(F.obj);
    float got[T * MAX_V];
    ck_assert_int_eq(lora_session_logits(F.obj, F.ids, NULL, 1, T, got), LORA_OK);
    ck_assert(memcmp(got, F.base, T * F.vocab * sizeof *got) == 0);
    lora_session_free(F.obj);
}

static lora_status call_logits(void)
{
    return lora_session_logits(F.sess, F.ids, NULL, 1, T, F.out);
}
static void check_logits(lora_status st)
{
    if (!st)
        ck_assert(memcmp(F.out, F.base, T * F.vocab * sizeof *F.out) == 0);
    same_logits(F.base);
}

static lora_status call_logprobs(void)
{
    return lora_session_logprobs(F.sess, F.ids, NULL, 1, T, F.out);
}
static void check_logprobs(lora_status st)
{
    static float want[T * MAX_V];
    ck_assert_int_eq(lora_session_logprobs(F.sess, F.ids, NULL, 1, T, want), LORA_OK);
    if (!st)
        ck_assert(memcmp(F.out, want, T * F.vocab * sizeof *F.out) == 0);
}

static lora_status call_loss(void)
{
    return lora_session_loss(F.sess, F.ids, F.ids, 1, T, &F.loss, &F.n);
}
static void check_loss(lora_status st)
{
    float want;
    size_t n;
    ck_assert_int_eq(lora_session_loss(F.sess, F.ids, F.ids, 1, T, &want, &n), LORA_OK);
    if (!st)
        ck_assert(F.loss == want && F.n == n);
}

/* the second half of ids appended to a cache holding the first */
static void prep_append(void)
{
    lora_session_reset(F.sess);
    ck_assert_int_eq(lora_session_append(F.sess, F.ids, T / 2, NULL), LORA_OK);
}
static lora_status call_append(void)
{
    return lora_session_append(F.sess, F.ids + T / 2, T / 2, F.out);
}
static void check_append(lora_status st)
{
    static float want[T * MAX_V];
    if (st) {
        ck_assert_uint_eq(lora_session_position(F.sess), T / 2);
        ck_assert_int_eq(lora_session_append(F.sess, F.ids + T / 2, T / 2, F.out), LORA_OK);
    }
    ck_assert_uint_eq(lora_session_position(F.sess), T);
    prep_append();
    ck_assert_int_eq(lora_session_append(F.sess, F.ids + T / 2, T / 2, want), LORA_OK);
    ck_assert(memcmp(F.out, want, T / 2 * F.vocab * sizeof *F.out) == 0);
}

/* adapters */
static lora_status call_adapter_create(void)
{
    return lora_adapter_create(F.model, ADAPTER_CFG, 1, (lora_adapter **)&F.obj);
}
static void check_adapter_create(lora_status st)
{
    if (st)
        return expect_null(F.obj);
    lora_adapter *want = new_adapter(1);
    ck_assert_str_eq(lora_adapter_info_json(F.obj), lora_adapter_info_json(want));
    lora_adapter_free(want);
    lora_adapter_free(F.obj);
}

static lora_status call_adapter_load(void)
{
    return lora_adapter_load(F.model, QWEN2 "/adapter", (lora_adapter **)&F.obj);
}
static void check_adapter_load(lora_status st)
{
    if (st)
        return expect_null(F.obj);
    lora_adapter *want;
    ck_assert_int_eq(lora_adapter_load(F.model, QWEN2 "/adapter", &want), LORA_OK);
    ck_assert_str_eq(lora_adapter_info_json(F.obj), lora_adapter_info_json(want));
    lora_adapter_free(want);
    lora_adapter_free(F.obj);
}

static void prep_set_adapters(void)
{
    attach(NULL);
    lora_adapter_free(F.adapter);
    F.adapter = NULL;
    fresh_training(1);
    attach(NULL);
}
static lora_status call_set_adapters(void)
{
    float scale = 0.5f;
    return lora_session_set_adapters(F.sess, &F.adapter, &scale, 1);
}
static void check_set_adapters(lora_status st)
{
    if (st)
        return same_logits(F.base);
    float got[T * MAX_V];
    logits(got);
    ck_assert_msg(memcmp(got, F.base, T * F.vocab * sizeof *got) != 0, "adapter not applied");
    attach(NULL);
}

/* Saves go to F.dir, which holds an earlier save (of other contents) before each run. */
static void prep_save_over(void (*save_other)(void))
{
    if (!F.before.n) {
        rm_tree(F.dir);
        save_other();
        snap(F.dir, &F.before);
        ck_assert_uint_gt(F.before.n, 0);
    }
    restore(F.dir, &F.before);
}

/* For a file of a save's staging folder (io/manifest.h), the path it is staged for. */
static const char *staged_for(const char *rel, char *buf, size_t cap)
{
    const char *at = strstr(rel, "/" LORA_STAGING_NAME "/");
    if (!at)
        return NULL;
    snprintf(buf, cap, "%.*s%s", (int)(at - rel), rel, at + strlen(LORA_STAGING_NAME) + 1);
    return buf;
}

/* After a save: without error the folder holds what an unfaulted save writes; after an error
 * every file is its old or its complete new self (whole == 1: all old or all new), no file is
 * added (temporary files are removed) and none is lost. A save that failed after its commit
 * (the new manifest written) may leave files it could not move in staged, where a load reads
 * them: each must be the new file. */
static void check_saved(lora_status st, int whole)
{
    tree now;
    snap(F.dir, &now);
    if (!st) {
        if (!F.after.n) {
            F.after = now;
            return;
        }
        ck_assert_msg(same_tree(&now, &F.after), "a successful save wrote other bytes: %s",
                      tree_diff);
        tree_free(&now);
        return;
    }
    if (whole)
        ck_assert_msg(same_tree(&now, &F.before) || (F.after.n && same_tree(&now, &F.after)),
                      "the folder is neither the old save nor the new one");
    size_t staged = 0;
    for (size_t i = 0; i < now.n; i++) {
        char buf[512], manifest[512];
        const char *rel = staged_for(now.f[i].rel, buf, sizeof buf);
        if (!rel)
            continue;
        snprintf(manifest, sizeof manifest, "%.*s" LORA_MANIFEST_NAME,
                 (int)(strrchr(rel, '/') + 1 - rel), rel);
        ck_assert_msg(F.after.n && same_file(tree_find(&now, manifest),
                                             tree_find(&F.after, manifest)) &&
                      same_file(&now.f[i], tree_find(&F.after, rel)),
                      "a failed save left %s, and it is not a committed new file", now.f[i].rel);
        staged++;
    }
    /* committed: the new manifest is in place, and the files it brings that the folder did
     * not have before may already be moved in */
    const file_copy *manifest = tree_find(&now, "/" LORA_MANIFEST_NAME);
    int committed = F.after.n && manifest &&
                    same_file(manifest, tree_find(&F.after, "/" LORA_MANIFEST_NAME));
    size_t added = 0;
    for (size_t i = 0; i < now.n; i++) {
        char buf[512];
        if (staged_for(now.f[i].rel, buf, sizeof buf))
            continue;
        const file_copy *c = &now.f[i], *old = tree_find(&F.before, c->rel);
        if (!old && committed && same_file(c, tree_find(&F.after, c->rel))) {
            added++;
            continue;
        }
        ck_assert_msg(old, "a failed save left %s", c->rel);
        ck_assert_msg(same_file(c, old) || (F.after.n && same_file(c, tree_find(&F.after, c->rel))),
                      "%s is neither its old content nor its new one", c->rel);
    }
    ck_assert_uint_eq(now.n - staged - added, F.before.n);
    tree_free(&now);
}

static void save_other_adapter(void)
{
    lora_adapter *a = new_adapter(2);
    ck_assert_int_eq(lora_adapter_save(a, F.dir), LORA_OK);
    lora_adapter_free(a);
}
static void prep_adapter_save(void)
{
    if (!F.adapter)
        fresh_training(1);
    prep_save_over(save_other_adapter);
}
static lora_status call_adapter_save(void) { return lora_adapter_save(F.adapter, F.dir); }
static void check_adapter_save(lora_status st) { check_saved(st, 0); }

static void save_model_bf16(void)
{
    ck_assert_int_eq(lora_model_save(F.model, F.dir, "bf16"), LORA_OK);
}
static void prep_model_save(void) { prep_save_over(save_model_bf16); }
static lora_status call_model_save(void) { return lora_model_save(F.model, F.dir, "f32"); }
static void check_model_save(lora_status st) { check_saved(st, 0); }

/* merge */
static void prep_merge(void)
{
    if (!F.adapter)
        prep_set_adapters();
}
static lora_status call_merge(void)
{
    float change;
    return lora_model_merge(F.model, F.adapter, 1.0f, F.ids, T, &change);
}
static void check_merge(lora_status st)
{
    if (st) {
        ck_assert_int_eq(lora_model_unmerge(F.model), LORA_ERR_STATE);
        return same_logits(F.base);
    }
    float got[T * MAX_V];
    logits(got);
    ck_assert(memcmp(got, F.base, T * F.vocab * sizeof *got) != 0);
    ck_assert_int_eq(lora_model_unmerge(F.model), LORA_OK);
    same_logits(F.base);
}

/* training */
static void prep_optimizer_create(void)
{
    if (!F.adapter) {
        F.adapter = new_adapter(1);
        attach(F.adapter);
    }
}
static lora_status call_optimizer_create(void)
{
    return lora_optimizer_create(F.sess, OPT_CFG, (lora_optimizer **)&F.obj);
}
static void check_optimizer_create(lora_status st)
{
    if (st)
        return expect_null(F.obj);
    ck_assert_int_eq(lora_train_step(F.obj, F.ids, F.ids, 1, T, NULL), LORA_OK);
    lora_optimizer_free(F.obj);
    /* the step changed the adapter: start the next run from a fresh one */
    attach(NULL);
    lora_adapter_free(F.adapter);
    F.adapter = NULL;
    prep_optimizer_create();
}

static float first_loss;
static float before_step[T * MAX_V];

static void prep_step(void)
{
    fresh_training(1);
    logits(before_step);
}
static lora_status call_step(void)
{
    return lora_train_step(F.opt, F.ids, F.ids, 1, T, &F.loss);
}
static lora_status call_step_packed(void)
{
    return lora_train_step_packed(F.opt, F.ids, F.ids, F.pos, 1, T, &F.loss);
}
/* a failed step changes no weight and counts no step */
static void check_step(lora_status st)
{
    const char *stats = lora_optimizer_stats_json(F.opt);
    ck_assert_ptr_nonnull(stats);
    if (st) {
        ck_assert_msg(strstr(stats, "\"step\":1,"), "%s", stats);
        return same_logits(before_step);
    }
    ck_assert_msg(strstr(stats, "\"step\":2,"), "%s", stats);
    if (first_loss == 0)
        first_loss = F.loss;
    ck_assert(F.loss == first_loss);
}

static void prep_stats(void)
{
    if (!F.opt)
        fresh_training(1);
}
static lora_status call_stats(void)
{
    F.obj = (void *)lora_optimizer_stats_json(F.opt);
    return F.obj ? LORA_OK : LORA_ERR_OUT_OF_MEMORY;
}
static void check_stats(lora_status st)
{
    if (st)
        return;
    char *got = strdup(F.obj);
    ck_assert_str_eq(got, lora_optimizer_stats_json(F.opt));
    free(got);
}

static void save_checkpoint_at_step_1(void)
{
    fresh_training(1);
    ck_assert_int_eq(lora_optimizer_save_checkpoint(F.opt, F.dir, 3), LORA_OK);
    ck_assert_int_eq(lora_train_step(F.opt, F.ids, F.ids, 1, T, NULL), LORA_OK);
}
static void prep_checkpoint_save(void) { prep_save_over(save_checkpoint_at_step_1); }
static lora_status call_checkpoint_save(void)
{
    return lora_optimizer_save_checkpoint(F.opt, F.dir, 7);
}
static void check_checkpoint_save(lora_status st)
{
    check_saved(st, 1);
    /* the staging folders beside it are gone */
    char side[128];
    snprintf(side, sizeof side, "%s.tmp", F.dir);
    ck_assert_msg(access(side, F_OK) != 0, "%s is left", side);
    snprintf(side, sizeof side, "%s.old", F.dir);
    ck_assert_msg(access(side, F_OK) != 0, "%s is left", side);
}

/* a checkpoint one step ahead is loaded into an optimizer at step 1 */
static float ahead[T * MAX_V];
static void prep_checkpoint_load(void)
{
    if (!F.before.n) {
        fresh_training(2);
        logits(ahead);
        rm_tree(F.dir);
        ck_assert_int_eq(lora_optimizer_save_checkpoint(F.opt, F.dir, 5), LORA_OK);
        snap(F.dir, &F.before);
    }
    prep_step();
}
static lora_status call_checkpoint_load(void)
{
    F.n = 0;
    uint64_t pos = 0;
    lora_status st = lora_optimizer_load_checkpoint(F.opt, F.dir, &pos);
    F.n = (size_t)pos;
    return st;
}
static void check_checkpoint_load(lora_status st)
{
    if (st)
        return same_logits(before_step);
    ck_assert_uint_eq(F.n, 5);
    same_logits(ahead);
}

/* sampling and generation */
#define SAMPLER_CFG "{\"temperature\": 0.8, \"top_k\": 20, \"top_p\": 0.9, " \
                    "\"repetition_penalty\": 1.1, \"seed\": 4, \"max_new_tokens\": 6}"
static lora_status call_sampler_create(void)
{
    return lora_sampler_create(SAMPLER_CFG, (lora_sampler **)&F.obj);
}
static void check_sampler_create(lora_status st)
{
    if (st)
        return expect_null(F.obj);
    lora_sampler_free(F.obj);
}

static void prep_sampler(void)
{
    if (!F.sampler)
        ck_assert_int_eq(lora_sampler_create(SAMPLER_CFG, &F.sampler), LORA_OK);
    ck_assert_int_eq(lora_sampler_set_seed(F.sampler, 4), LORA_OK);
    lora_session_reset(F.sess);
}
static lora_status call_sample(void)
{
    return lora_sampler_sample(F.sampler, F.base, F.vocab, F.ids, T, T / 2, &F.out_ids[0]);
}
static void check_sample(lora_status st)
{
    int32_t want;
    prep_sampler();
    ck_assert_int_eq(lora_sampler_sample(F.sampler, F.base, F.vocab, F.ids, T, T / 2, &want),
                     LORA_OK);
    if (!st)
        ck_assert_int_eq(F.out_ids[0], want);
}

static lora_status call_generate(void)
{
    return lora_generate(F.sess, F.sampler, F.ids, T / 2, F.out_ids, CAP, &F.n, NULL, NULL);
}
static void check_generate(lora_status st)
{
    int32_t want[CAP];
    size_t n;
    prep_sampler();
    ck_assert_int_eq(lora_generate(F.sess, F.sampler, F.ids, T / 2, want, CAP, &n, NULL, NULL),
                     LORA_OK);
    if (!st) {
        ck_assert_uint_eq(F.n, n);
        ck_assert(memcmp(F.out_ids, want, n * sizeof *want) == 0);
    }
}

/* tokenizer */
static const char TEXT[] = "Héllo, wörld! 12+34 = 46.\n<|im_start|>user\nnaïve café";

static lora_status call_tokenizer_load(void)
{
    return lora_tokenizer_load(TOKENIZER, NULL, (lora_tokenizer **)&F.obj);
}
static void check_tokenizer_load(lora_status st)
{
    if (st)
        return expect_null(F.obj);
    ck_assert_str_eq(lora_tokenizer_info_json(F.obj), lora_tokenizer_info_json(F.tok));
    lora_tokenizer_free(F.obj);
}

static lora_status call_encode(void)
{
    return lora_tokenizer_encode(F.tok, TEXT, strlen(TEXT), 0, F.out_ids, CAP, &F.n);
}
static void check_encode(lora_status st)
{
    int32_t want[CAP];
    size_t n;
    ck_assert_int_eq(lora_tokenizer_encode(F.tok, TEXT, strlen(TEXT), 0, want, CAP, &n),
                     LORA_OK);
    if (!st) {
        ck_assert_uint_eq(F.n, n);
        ck_assert(memcmp(F.out_ids, want, n * sizeof *want) == 0);
    }
}

static int32_t text_ids[CAP];
static size_t text_n;
static void prep_text_ids(void)
{
    prep_out();
    ck_assert_int_eq(lora_tokenizer_encode(F.tok, TEXT, strlen(TEXT), 0, text_ids, CAP, &text_n),
                     LORA_OK);
}
static lora_status call_decode(void)
{
    return lora_tokenizer_decode(F.tok, text_ids, text_n, 0, &F.text, &F.len);
}
static void check_decode(lora_status st)
{
    if (st)
        return expect_null(F.text);
    ck_assert_uint_eq(F.len, strlen(TEXT));
    expect_text(TEXT);
}

/* a streaming decode: create, a push per token, flush */
static lora_status call_detokenizer(void)
{
    lora_detokenizer *d;
    lora_status st = lora_detokenizer_create(F.tok, 0, &d);
    if (st)
        return st;
    F.len = 0;
    const char *piece;
    size_t len;
    for (size_t i = 0; !st && i <= text_n; i++) {
        st = i < text_n ? lora_detokenizer_push(d, text_ids[i], &piece, &len)
                        : lora_detokenizer_flush(d, &piece, &len);
        if (!st && F.len + len < sizeof F.out) {
            memcpy((char *)F.out + F.len, piece, len);
            F.len += len;
        }
    }
    lora_detokenizer_free(d);
    return st;
}
static void check_detokenizer(lora_status st)
{
    if (!st) {
        ck_assert_uint_eq(F.len, strlen(TEXT));
        ck_assert(memcmp(F.out, TEXT, F.len) == 0);
    }
}

/* chat */
#define MESSAGES "[{\"role\": \"system\", \"content\": \"Be brief.\"}, " \
                 "{\"role\": \"user\", \"content\": \"2+2?\"}, " \
                 "{\"role\": \"assistant\", \"content\": \"4\"}, " \
                 "{\"role\": \"user\", \"content\": \"3+3?\"}]"
#define CHAT_OPTS "{\"add_generation_prompt\": true}"
static lora_status call_chat(void)
{
    return lora_chat_render(F.tok, MESSAGES, CHAT_OPTS, &F.text);
}
static void check_chat(lora_status st)
{
    if (st)
        return expect_null(F.text);
    char *want;
    ck_assert_int_eq(lora_chat_render(F.tok, MESSAGES, CHAT_OPTS, &want), LORA_OK);
    expect_text(want);
    lora_string_free(want);
}

#define EXAMPLES "[{\"q\": \"2+2\", \"a\": \"4\"}, {\"q\": \"3+3\", \"a\": \"6\"}]"
static lora_status call_few_shot(void)
{
    return lora_prompt_few_shot(F.tok, EXAMPLES, "5+5", NULL, &F.text);
}
static void check_few_shot(lora_status st)
{
    if (st)
        return expect_null(F.text);
    char *want;
    ck_assert_int_eq(lora_prompt_few_shot(F.tok, EXAMPLES, "5+5", NULL, &want), LORA_OK);
    expect_text(want);
    lora_string_free(want);
}

/* datasets */
#define DATA_CFG "{\"max_length\": 64, \"seed\": 1}"
static lora_status call_dataset_load(void)
{
    return lora_dataset_load(F.tok, CHAT_DATA, DATA_CFG, (lora_dataset **)&F.obj);
}
static void check_dataset_load(lora_status st)
{
    if (st)
        return expect_null(F.obj);
    lora_dataset *want;
    ck_assert_int_eq(lora_dataset_load(F.tok, CHAT_DATA, DATA_CFG, &want), LORA_OK);
    ck_assert_str_eq(lora_dataset_stats_json(F.obj), lora_dataset_stats_json(want));
    lora_dataset_free(want);
    lora_dataset_free(F.obj);
}

static void prep_dataset(void)
{
    prep_out();
    if (!F.data)
        ck_assert_int_eq(lora_dataset_load(F.tok, CHAT_DATA, DATA_CFG, &F.data), LORA_OK);
    ck_assert_int_eq(lora_dataset_seek(F.data, 0), LORA_OK);
}
static lora_status call_split(void)
{
    return lora_dataset_split(F.data, 0.34, 1, (lora_dataset **)&F.obj,
                              (lora_dataset **)&F.obj2);
}
static void check_split(lora_status st)
{
    if (st) {
        expect_null(F.obj);
        return expect_null(F.obj2);
    }
    ck_assert_uint_eq(lora_dataset_size(F.obj) + lora_dataset_size(F.obj2),
                      lora_dataset_size(F.data));
    lora_dataset_free(F.obj);
    lora_dataset_free(F.obj2);
}

static lora_status call_next_batch(void)
{
    size_t seq, rows;
    lora_status st = lora_dataset_next_batch(F.data, 2, F.out_ids, F.labels, F.positions, CAP,
                                             &seq, &rows);
    F.n = seq * rows;
    return st;
}
static void check_next_batch(lora_status st)
{
    if (st)
        ck_assert_uint_eq(lora_dataset_position(F.data), 0);
    int32_t ids[CAP];
    size_t seq, rows;
    ck_assert_int_eq(lora_dataset_seek(F.data, 0), LORA_OK);
    ck_assert_int_eq(lora_dataset_next_batch(F.data, 2, ids, F.labels, F.positions, CAP, &seq,
                                             &rows), LORA_OK);
    if (!st) {
        ck_assert_uint_eq(F.n, seq * rows);
        ck_assert(memcmp(ids, F.out_ids, F.n * sizeof *ids) == 0);
    }
}

static lora_status call_row(void)
{
    return lora_dataset_row(F.data, 1, F.out_ids, F.labels, F.positions, CAP, &F.n);
}
static void check_row(lora_status st)
{
    int32_t ids[CAP];
    size_t n;
    ck_assert_int_eq(lora_dataset_row(F.data, 1, ids, F.labels, F.positions, CAP, &n), LORA_OK);
    if (!st) {
        ck_assert_uint_eq(F.n, n);
        ck_assert(memcmp(ids, F.out_ids, n * sizeof *ids) == 0);
    }
}

/* evaluation */
static lora_status call_flops(void)
{
    return lora_flops_json(F.model, NULL, ADAPTER_CFG, 32, 2, &F.text);
}
static void check_flops(lora_status st)
{
    if (st)
        return expect_null(F.text);
    char *want;
    ck_assert_int_eq(lora_flops_json(F.model, NULL, ADAPTER_CFG, 32, 2, &want), LORA_OK);
    expect_text(want);
    lora_string_free(want);
}

static const char ANSWER_TEXT[] = "Let me think. 12 + 34 = 46, so the answer is \\boxed{46}.";
static lora_status call_extract(void)
{
    return lora_answer_extract(ANSWER_TEXT, strlen(ANSWER_TEXT), &F.text);
}
static void check_extract(lora_status st)
{
    if (st)
        return expect_null(F.text);
    expect_text("46");
}

static lora_status call_normalize(void) { return lora_answer_normalize(" $1,234.50 ", &F.text); }
static void check_normalize(lora_status st)
{
    if (st)
        return expect_null(F.text);
    char *want;
    ck_assert_int_eq(lora_answer_normalize(" $1,234.50 ", &want), LORA_OK);
    expect_text(want);
    lora_string_free(want);
}

static lora_status call_match(void)
{
    int m = -1;
    lora_status st = lora_answer_match("\\frac{1}{2}", "0.5", &m);
    F.n = (size_t)m;
    return st;
}
static void check_match(lora_status st)
{
    int want;
    ck_assert_int_eq(lora_answer_match("\\frac{1}{2}", "0.5", &want), LORA_OK);
    if (!st)
        ck_assert_int_eq((int)F.n, want);
}

static const uint8_t CORRECT[] = {1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0};
static lora_status call_pass_table(void)
{
    return lora_pass_at_k_table(CORRECT, 3, 4, (char **)&F.obj, &F.text);
}
static void check_pass_table(lora_status st)
{
    if (st) {
        expect_null(F.obj);
        return expect_null(F.text);
    }
    char *json, *text;
    ck_assert_int_eq(lora_pass_at_k_table(CORRECT, 3, 4, &json, &text), LORA_OK);
    ck_assert_str_eq(F.obj, json);
    expect_text(text);
    lora_string_free(F.obj);
    lora_string_free(json);
    lora_string_free(text);
}

/* LLMTIME */
static const float SERIES[] = {1, 2, 2, 4, 3, 6, -1.5f, 0};
static lora_status call_llmtime_encode(void)
{
    return lora_llmtime_encode(SERIES, 4, 2, "{\"decimals\": 3}", &F.text, &F.alpha);
}
static void check_llmtime_encode(lora_status st)
{
    if (st)
        return expect_null(F.text);
    char *want;
    double alpha;
    ck_assert_int_eq(lora_llmtime_encode(SERIES, 4, 2, "{\"decimals\": 3}", &want, &alpha),
                     LORA_OK);
    ck_assert(alpha == F.alpha);
    expect_text(want);
    lora_string_free(want);
}

static const char SERIES_TEXT[] = "1.67,3.33;3.33,6.67;5.00,10.00;-2.5,0.0";
static lora_status call_llmtime_decode(void)
{
    return lora_llmtime_decode(SERIES_TEXT, strlen(SERIES_TEXT), 10.0 / 6, 2, F.out, 8, &F.n);
}
static void check_llmtime_decode(lora_status st)
{
    if (!st)
        ck_assert_uint_eq(F.n, 3);
}

/* GGUF (the imported model is tests/fixtures/gguf/tiny-q4.gguf, models/tiny in 4 bits) */
#define GGUF "tests/fixtures/gguf/tiny-q4.gguf"
static lora_status call_gguf_load(void)
{
    return lora_model_load(GGUF, MODEL_CFG, (lora_model **)&F.obj);
}
static char *gguf_info; /* lora_model_info_json of an unfaulted load */
static void prep_gguf_load(void)
{
    prep_out();
    if (gguf_info)
        return;
    lora_model *m;
    ck_assert_int_eq(lora_model_load(GGUF, MODEL_CFG, &m), LORA_OK);
    gguf_info = strdup(lora_model_info_json(m));
    lora_model_free(m);
}
static void check_gguf_load(lora_status st)
{
    if (st)
        return expect_null(F.obj);
    ck_assert_str_eq(lora_model_info_json(F.obj), gguf_info);
    lora_model_free(F.obj);
}

static void prep_gguf_import(void) { prep_save_over(save_model_bf16); }
static lora_status call_gguf_import(void) { return lora_gguf_import(GGUF, F.dir, NULL); }
static void check_gguf_import(lora_status st) { check_saved(st, 0); }

/* the tokenizer a model folder carries, loaded on first use: a fresh model for every run */
static void prep_model_tokenizer(void)
{
    prep_out();
    ck_assert_int_eq(lora_model_load(TOKENIZER, MODEL_CFG, (lora_model **)&F.obj2), LORA_OK);
}
static lora_status call_model_tokenizer(void)
{
    return lora_model_tokenizer(F.obj2, (lora_tokenizer **)&F.obj);
}
static void check_model_tokenizer(lora_status st)
{
    if (st)
        expect_null(F.obj);
    else
        ck_assert_uint_eq(lora_tokenizer_vocab_size(F.obj), lora_tokenizer_vocab_size(F.tok));
    if (!st)
        lora_tokenizer_free(F.obj);
    lora_model_free(F.obj2);
}

/* calls that allocate nothing: each must run without one (the loop sees no injection) */
static int32_t token_id;
static lora_status call_token_id(void)
{
    return lora_tokenizer_token_id(F.tok, "<|im_end|>", &token_id);
}
static void check_token_id(lora_status st)
{
    if (!st)
        ck_assert_int_eq(token_id, 345);
}

static double metric[3];
static lora_status call_forecast_metrics(void)
{
    static const float pred[4] = {1, 2, 3, 5}, truth[4] = {1, 2, 3, 4};
    return lora_forecast_metrics(pred, truth, 4, &metric[0], &metric[1], &metric[2]);
}
static void check_forecast_metrics(lora_status st)
{
    if (!st)
        ck_assert(metric[0] == 0.25 && metric[1] == 0.25 && metric[2] == 0.8);
}

static lora_status call_pass_at_k(void) { return lora_pass_at_k(8, 3, 4, &metric[0]); }
static void check_pass_at_k(lora_status st)
{
    if (!st) /* 1 - C(5,4) / C(8,4) */
        ck_assert_double_eq_tol(metric[0], 1 - 5.0 / 70, 1e-15);
}

static lora_status call_mfu(void) { return lora_mfu(1e9, 1000, 1e14, &metric[0], &metric[1]); }
static void check_mfu(lora_status st)
{
    if (!st)
        ck_assert(metric[0] == 1e12 && metric[1] == 0.01);
}

static lora_status call_set_lr(void) { return lora_optimizer_set_lr(F.opt, 1e-3); }
static void check_set_lr(lora_status st) { (void)st; }

static lora_status call_set_temperature(void)
{
    return lora_sampler_set_temperature(F.sampler, 0.5f);
}
static void check_set_temperature(lora_status st) { (void)st; }

static lora_status call_num_parameters(void)
{
    return lora_model_num_parameters(F.model) ? LORA_OK : LORA_ERR_INTERNAL;
}
static void check_num_parameters(lora_status st) { (void)st; }

static const fcase CASES[] = {
    {"model_load", prep_out, call_model_load, check_model_load, 0},
    {"model_describe", prep_out, call_describe, check_describe, 0},
    {"model_init_checkpoint", prep_init_checkpoint, call_init_checkpoint, check_init_checkpoint, 0},
    {"session_create", prep_out, call_session_create, check_session_create, 0},
    {"session_logits", NULL, call_logits, check_logits, 0},
    {"session_logprobs", NULL, call_logprobs, check_logprobs, 0},
    {"session_loss", NULL, call_loss, check_loss, 0},
    {"session_append", prep_append, call_append, check_append, 0},
    {"adapter_create", prep_out, call_adapter_create, check_adapter_create, 0},
    {"adapter_load", prep_out, call_adapter_load, check_adapter_load, 0},
    {"adapter_save", prep_adapter_save, call_adapter_save, check_adapter_save, 1},
    {"session_set_adapters", prep_set_adapters, call_set_adapters, check_set_adapters, 0},
    {"model_merge", prep_merge, call_merge, check_merge, 0},
    {"model_save", prep_model_save, call_model_save, check_model_save, 1},
    {"optimizer_create", prep_optimizer_create, call_optimizer_create, check_optimizer_create, 0},
    {"train_step", prep_step, call_step, check_step, 0},
    {"train_step_packed", prep_step, call_step_packed, check_step, 0},
    {"optimizer_stats_json", prep_stats, call_stats, check_stats, 0},
    {"checkpoint_save", prep_checkpoint_save, call_checkpoint_save, check_checkpoint_save, 1},
    {"checkpoint_load", prep_checkpoint_load, call_checkpoint_load, check_checkpoint_load, 0},
    {"sampler_create", prep_out, call_sampler_create, check_sampler_create, 0},
    {"sampler_sample", prep_sampler, call_sample, check_sample, 0},
    {"generate", prep_sampler, call_generate, check_generate, 0},
    {"tokenizer_load", prep_out, call_tokenizer_load, check_tokenizer_load, 0},
    {"tokenizer_encode", NULL, call_encode, check_encode, 0},
    {"tokenizer_decode", prep_text_ids, call_decode, check_decode, 0},
    {"detokenizer", prep_text_ids, call_detokenizer, check_detokenizer, 0},
    {"chat_render", prep_out, call_chat, check_chat, 0},
    {"prompt_few_shot", prep_out, call_few_shot, check_few_shot, 0},
    {"dataset_load", prep_out, call_dataset_load, check_dataset_load, 0},
    {"dataset_split", prep_dataset, call_split, check_split, 0},
    {"dataset_next_batch", prep_dataset, call_next_batch, check_next_batch, 0},
    {"dataset_row", prep_dataset, call_row, check_row, 0},
    {"flops_json", prep_out, call_flops, check_flops, 0},
    {"answer_extract", prep_out, call_extract, check_extract, 0},
    {"answer_normalize", prep_out, call_normalize, check_normalize, 0},
    {"answer_match", NULL, call_match, check_match, 0},
    {"pass_at_k_table", prep_out, call_pass_table, check_pass_table, 0},
    {"llmtime_encode", prep_out, call_llmtime_encode, check_llmtime_encode, 0},
    {"llmtime_decode", NULL, call_llmtime_decode, check_llmtime_decode, 0},
    {"gguf_load", prep_gguf_load, call_gguf_load, check_gguf_load, 0},
    {"gguf_import", prep_gguf_import, call_gguf_import, check_gguf_import, 1},
    {"model_tokenizer", prep_model_tokenizer, call_model_tokenizer, check_model_tokenizer, 0},
    {"tokenizer_token_id", NULL, call_token_id, check_token_id, 0},
    {"forecast_metrics", NULL, call_forecast_metrics, check_forecast_metrics, 0},
    {"pass_at_k", NULL, call_pass_at_k, check_pass_at_k, 0},
    {"mfu", NULL, call_mfu, check_mfu, 0},
    {"optimizer_set_lr", prep_stats, call_set_lr, check_set_lr, 0},
    {"sampler_set_temperature", prep_sampler, call_set_temperature, check_set_temperature, 0},
    {"model_num_parameters", NULL, call_num_parameters, check_num_parameters, 0},
};
#define N_CASES (int)(sizeof CASES / sizeof CASES[0])

/* ---- the drivers ------------------------------------------------------------------------------ */

static void run_clean(const fcase *c)
{
    if (c->prepare)
        c->prepare();
    lora_status st = c->call();
    ck_assert_msg(st == LORA_OK, "%s unfaulted: %s", c->name, lora_last_error());
    c->check(st);
}

/* One run under an armed fault; returns whether a failure was injected. */
typedef void (*arm_fn)(uint64_t k, lora__fault_mode mode);
typedef uint64_t (*injected_fn)(void);

static char last_msg[1024]; /* lora_last_error() of the last faulted run */

static int run_faulted(const fcase *c, arm_fn arm, injected_fn injected, uint64_t k,
                       lora__fault_mode mode, lora_status *st_out)
{
    char *msg = last_msg;
    if (c->prepare)
        c->prepare();
    arm(k, mode);
    lora_status st = c->call();
    uint64_t n = injected();
    arm(0, LORA__FAULT_OFF);
    snprintf(last_msg, sizeof last_msg, "%s", lora_last_error());
    const char *how = mode == LORA__FAULT_ONCE ? "once" : "from";
    if (n && st) {
        ck_assert_msg(st != LORA_ERR_INTERNAL, "%s, fault %s #%llu: %s: %s", c->name, how,
                      (unsigned long long)k, lora_status_string(st), msg);
        ck_assert_msg(msg[0] != '\0', "%s, fault %s #%llu: %s without a message", c->name, how,
                      (unsigned long long)k, lora_status_string(st));
    }
    if (!n)
        ck_assert_msg(st == LORA_OK, "%s, nothing injected (%s #%llu): %s", c->name, how,
                      (unsigned long long)k, msg);
    c->check(st);
    *st_out = st;
    return n > 0;
}

static void alloc_arm(uint64_t k, lora__fault_mode mode) { lora__fault_alloc(k, mode); }

static int io_ops_errno;
static void io_arm(uint64_t k, lora__fault_mode mode)
{
    lora__fault_io(LORA__IO_WRITE | LORA__IO_FSYNC | LORA__IO_RENAME, k, mode, io_ops_errno);
}

/* Loops k = 1.. in both modes until a run injects nothing. Returns the runs with a failure
 * injected, and counts those that still succeeded (a failure absorbed, e.g. a regex JIT
 * falling back to the interpreter). */
static uint64_t drive(const fcase *c, arm_fn arm, injected_fn injected, uint64_t *absorbed,
                      uint64_t *oom, unsigned *others)
{
    uint64_t runs = 0;
    static const lora__fault_mode modes[] = {LORA__FAULT_ONCE, LORA__FAULT_FROM};
    for (int m = 0; m < 2; m++)
        for (uint64_t k = 1;; k++) {
            lora_status st;
            if (!run_faulted(c, arm, injected, k, modes[m], &st))
                break;
            runs++;
            if (!st)
                (*absorbed)++;
            else if (st == LORA_ERR_OUT_OF_MEMORY)
                (*oom)++;
            else
                *others |= 1u << st;
            ck_assert_msg(k < 200000, "%s: no end to the allocations", c->name);
        }
    return runs;
}

/* FAULT_CASE=name runs that call path only (when debugging one). */
static int skipped(const fcase *c)
{
    const char *only = getenv("FAULT_CASE");
    return only && strcmp(only, c->name) != 0;
}

START_TEST(allocation_failures)
{
    const fcase *c = &CASES[_i];
    if (skipped(c))
        return;
    run_clean(c);
    lora__fault_alloc(1, LORA__FAULT_OFF);
    run_clean(c);
    uint64_t absorbed = 0, oom = 0;
    unsigned others = 0;
    uint64_t runs = drive(c, alloc_arm, lora__fault_alloc_injected, &absorbed, &oom, &others);
    fprintf(stderr, "faults: alloc %-22s %6llu failed runs (%llu out of memory, %llu absorbed)",
            c->name, (unsigned long long)runs, (unsigned long long)oom,
            (unsigned long long)absorbed);
    for (int s = 0; s < 32; s++)
        if (others & (1u << s))
            fprintf(stderr, " %s", lora_status_string((lora_status)s));
    fprintf(stderr, "\n");
}
END_TEST

static const int SAVES[] = {10, 13, 18, 41}; /* adapter, model, checkpoint saves; gguf_import */

START_TEST(write_failures)
{
    const fcase *c = &CASES[SAVES[_i / 2]];
    ck_assert(c->save);
    if (skipped(c))
        return;
    io_ops_errno = _i % 2 ? EIO : ENOSPC;
    run_clean(c);
    uint64_t absorbed = 0, runs = 0;
    static const lora__fault_mode modes[] = {LORA__FAULT_ONCE, LORA__FAULT_FROM};
    for (int m = 0; m < 2; m++)
        for (uint64_t k = 1;; k++) {
            lora_status st;
            if (!run_faulted(c, io_arm, lora__fault_io_injected, k, modes[m], &st))
                break;
            runs++;
            absorbed += st == LORA_OK;
            if (st) {
                ck_assert_msg(st == LORA_ERR_IO, "%s: %s: %s", c->name, lora_status_string(st),
                              last_msg);
                ck_assert_msg(strstr(last_msg, strerror(io_ops_errno)), "%s", last_msg);
            }
        }
    ck_assert_uint_eq(absorbed, 0);
    ck_assert_uint_gt(runs, 2);
    fprintf(stderr, "faults: io %s %-18s %4llu failed runs\n", io_ops_errno == EIO ? "EIO   " :
            "ENOSPC", c->name, (unsigned long long)runs);
}
END_TEST

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *alloc = tcase_create("allocation");
    tcase_set_tags(alloc, "limits");
    tcase_set_timeout(alloc, 600);
    tcase_add_checked_fixture(alloc, setup, teardown);
    tcase_add_loop_test(alloc, allocation_failures, 0, N_CASES);
    suite_add_tcase(s, alloc);

    TCase *io = tcase_create("io");
    tcase_set_tags(io, "limits");
    tcase_set_timeout(io, 600);
    tcase_add_checked_fixture(io, setup, teardown);
    tcase_add_loop_test(io, write_failures, 0, 2 * (int)(sizeof SAVES / sizeof SAVES[0]));
    suite_add_tcase(s, io);
    return s;
}

int main(void) { return tu_run_suite(faults_suite()); }
