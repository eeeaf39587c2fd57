/* Crash consistency of saves (tests/run_crash.sh): a child process saves version after version
 * of an adapter, a model or a training checkpoint into one folder and is killed with SIGKILL at
 * a random moment; then the folder must load and hold exactly the version before the save that
 * was cut or the one it was writing, whatever the moment.
 *
 *   crash_save run MODEL WORK TRIALS SEED        the driver: TRIALS kills, then a summary
 *   crash_save child MODEL KIND FOLDER FIRST LOG FD   (started by the driver) writes a byte to
 *       FD when ready, then saves FIRST, FIRST+1, ... logging "b V" before and "d V" after each
 *
 * "Exactly" is checked through the manifests: every file a load reads must have the size and
 * SHA-256 of the same file in a reference save of that version, made undisturbed, and the folder
 * must list the same files. Versions alternate the adapter's rank and the model's dtype, so both
 * of a folder's files change at every save and a mix of two versions would show. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/manifest.h"
#include "lora.h"
#include "util/file.h"

enum { KIND_ADAPTER, KIND_MODEL, KIND_CKPT, N_KINDS };
static const char *const kind_names[N_KINDS] = {"adapter", "model", "ckpt"};

static lora_model *model;

static int fail(const char *what)
{
    fprintf(stderr, "crash_save: %s: %s\n", what, lora_last_error());
    return 1;
}

static void adapter_config(unsigned v, char *buf, size_t cap)
{
    snprintf(buf, cap, "{\"r\": %u, \"target_modules\": [\"q_proj\", \"v_proj\"], "
             "\"init_lora_weights\": false}", v % 2 ? 2u : 4u);
}

static lora_status make_adapter(unsigned v, lora_adapter **a)
{
    char cfg[256];
    adapter_config(v, cfg, sizeof cfg);
    return lora_adapter_create(model, cfg, v, a);
}

/* Version v of a checkpoint: an adapter of seed v after one update, at data position v. */
static lora_status make_trainer(unsigned v, lora_adapter **a, lora_session **s,
                                lora_optimizer **o)
{
    static const int32_t ids[8] = {3, 1, 4, 1, 5, 9, 2, 6};
    float one = 1.0f;
    lora_status st = make_adapter(v, a);
    if (!st)
        st = lora_session_create(model, NULL, s);
    if (!st)
        st = lora_session_set_adapters(*s, a, &one, 1);
    if (!st)
        st = lora_optimizer_create(*s, "{\"lr\": 0.01}", o);
    if (!st)
        st = lora_train_step(*o, ids, ids, 1, 8, NULL);
    return st;
}

static lora_status save_version(int kind, unsigned v, const char *dir)
{
    lora_adapter *a = NULL;
    lora_session *s = NULL;
    lora_optimizer *o = NULL;
    lora_status st;
    if (kind == KIND_ADAPTER) {
        if (!(st = make_adapter(v, &a)))
            st = lora_adapter_save(a, dir);
    } else if (kind == KIND_MODEL) {
        if (!(st = make_adapter(v, &a)) &&
            !(st = lora_model_merge(model, a, 1.0f, NULL, 0, NULL))) {
            st = lora_model_save(model, dir, v % 2 ? "f32" : "bf16");
            lora_model_unmerge(model);
        }
    } else if (!(st = make_trainer(v, &a, &s, &o)))
        st = lora_optimizer_save_checkpoint(o, dir, v);
    lora_optimizer_free(o);
    lora_session_free(s);
    lora_adapter_free(a);
    return st;
}

/* ---- child ----------------------------------------------------------------------------------- */

static void log_line(int fd, char what, unsigned v)
{
    char line[32];
    int n = snprintf(line, sizeof line, "%c %u\n", what, v);
    if (write(fd, line, (size_t)n) != n)
        _exit(3);
}

static int child(int kind, const char *dir, unsigned first, const char *log_path, int ready)
{
    int log = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log < 0)
        return perror(log_path), 1;
    if (write(ready, "r", 1) != 1)     /* the driver's clock starts */
        return 1;
    for (unsigned v = first; v < first + 1000; v++) {
        log_line(log, 'b', v);
        if (save_version(kind, v, dir))
            return fail("save");
        log_line(log, 'd', v);
    }
    return 0;
}

/* ---- driver ---------------------------------------------------------------------------------- */

typedef struct driver {
    const char *model_dir, *work;
    uint64_t rng;
    double save_seconds[N_KINDS];
    unsigned version[N_KINDS];     /* what each folder holds */
    int trials, failed;
    int old_kept, new_taken, between, leftovers, staged_reads;
} driver;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double uniform(driver *d)
{
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return (double)(d->rng >> 11) / 9007199254740992.0;
}

static char *path2(const char *a, const char *b)
{
    char *p = lora__path_join(a, b);
    if (!p)
        exit(2);
    return p;
}

static char *folder_of(const driver *d, int kind) { return path2(d->work, kind_names[kind]); }

static char *ref_of(const driver *d, int kind, unsigned v)
{
    char name[64];
    snprintf(name, sizeof name, "ref/%s-%u", kind_names[kind], v);
    return path2(d->work, name);
}

/* The reference save of version v, made once. */
static int reference(const driver *d, int kind, unsigned v, char **out)
{
    *out = ref_of(d, kind, v);
    if (lora__is_dir(*out))
        return 0;
    return save_version(kind, v, *out) ? fail("reference save") : 0;
}

/* 0 if dir's manifest lists exactly ref's files and every one resolves to bytes of the same
 * size and SHA-256; counts reads from the staging folder. */
static int same_files(driver *d, const char *dir, const char *ref, char *why, size_t cap)
{
    lora_manifest *m = NULL, *r = NULL;
    int bad = 0;
    if (lora__manifest_load(dir, &m) || lora__manifest_load(ref, &r) || !m || !r) {
        snprintf(why, cap, "%s: manifest: %s", dir, m ? lora_last_error() : "missing");
        bad = 1;
    } else if (lora__manifest_count(m) != lora__manifest_count(r)) {
        snprintf(why, cap, "%s lists %zu files, the reference %zu", dir,
                 lora__manifest_count(m), lora__manifest_count(r));
        bad = 1;
    }
    for (size_t i = 0; !bad && i < lora__manifest_count(r); i++) {
        uint64_t bytes, got_bytes;
        const char *sha, *name = lora__manifest_entry(r, i, &bytes, &sha);
        char *path = NULL, hex[65];
        if (lora__manifest_resolve(m, dir, name, &path) ||
            lora__file_sha256(path, &got_bytes, hex)) {
            snprintf(why, cap, "%s", lora_last_error());
            bad = 1;
        } else if (got_bytes != bytes || strcmp(hex, sha) != 0) {
            snprintf(why, cap, "%s differs from the reference", path);
            bad = 1;
        } else if (strstr(path, LORA_STAGING_NAME))
            d->staged_reads++;
        free(path);
    }
    lora__manifest_free(m);
    lora__manifest_free(r);
    return bad;
}

/* The public loader must take the folder too (for the checkpoint: DIR, or DIR.old after a
 * crash in the rename fallback). */
static int loads(int kind, unsigned v, const char *dir, char *why, size_t cap)
{
    lora_status st;
    if (kind == KIND_ADAPTER) {
        lora_adapter *a = NULL;
        st = lora_adapter_load(model, dir, &a);
        lora_adapter_free(a);
    } else if (kind == KIND_MODEL) {
        lora_model *m = NULL;
        st = lora_model_load(dir, "{\"threads\": 1}", &m);
        lora_model_free(m);
    } else {
        lora_adapter *a = NULL;
        lora_session *s = NULL;
        lora_optimizer *o = NULL;
        uint64_t pos = 0;
        st = make_trainer(v, &a, &s, &o);
        if (!st && !(st = lora_optimizer_load_checkpoint(o, dir, &pos)) && pos != v) {
            snprintf(why, cap, "%s: data position %llu, want %u", dir, (unsigned long long)pos,
                     v);
            st = LORA_ERR_INTERNAL;
        }
        lora_optimizer_free(o);
        lora_session_free(s);
        lora_adapter_free(a);
        if (st == LORA_ERR_INTERNAL)
            return 1;
    }
    if (st)
        snprintf(why, cap, "%s: %s", lora_status_string(st), lora_last_error());
    return st != LORA_OK;
}

/* 0 if the folder of kind is version v, exactly. */
static int holds(driver *d, int kind, unsigned v, char *why, size_t cap)
{
    char *dir = folder_of(d, kind), *ref;
    if (kind == KIND_CKPT && !lora__is_dir(dir)) {
        char *old = malloc(strlen(dir) + 5);
        sprintf(old, "%s.old", dir);
        free(dir);
        dir = old;
    }
    int bad = reference(d, kind, v, &ref) || same_files(d, dir, ref, why, cap);
    if (!bad && kind == KIND_CKPT) {
        char *sub = path2(dir, "adapter_0"), *ref_sub = path2(ref, "adapter_0");
        bad = same_files(d, sub, ref_sub, why, cap);
        free(sub);
        free(ref_sub);
    }
    if (!bad)
        bad = loads(kind, v, dir, why, cap);
    free(ref);
    free(dir);
    return bad;
}

/* 1 if what crashed saves leave is in the folder: a staging folder, temporary files, DIR.tmp
 * or DIR.old beside a checkpoint. */
static int has_leftovers(const driver *d, int kind)
{
    char *dir = folder_of(d, kind);
    char *sub = kind == KIND_CKPT ? path2(dir, "adapter_0") : strdup(dir);
    char *side = malloc(strlen(dir) + 5);
    int found = 0;
    for (int k = 0; k < 2; k++) {
        const char *where = k ? sub : dir;
        char *staging = path2(where, LORA_STAGING_NAME);
        found |= lora__is_dir(staging);
        free(staging);
        DIR *dd = opendir(where);
        for (struct dirent *e; dd && (e = readdir(dd));)
            found |= e->d_name[0] == '.' && strstr(e->d_name, ".tmp.") != NULL;
        if (dd)
            closedir(dd);
    }
    for (int k = 0; kind == KIND_CKPT && k < 2; k++) {
        sprintf(side, "%s.%s", dir, k ? "old" : "tmp");
        found |= lora__is_dir(side);
    }
    free(side);
    free(sub);
    free(dir);
    return found;
}

/* Starts a child saving kind from version first, waits until it is ready, lets it run for
 * delay seconds and kills it. */
static int run_child(driver *d, int kind, unsigned first, double delay, const char *log)
{
    int ready[2];
    char first_s[16];
    snprintf(first_s, sizeof first_s, "%u", first);
    char *dir = folder_of(d, kind);
    char fd_s[16];
    if (pipe2(ready, O_CLOEXEC) != 0)
        return perror("pipe"), 1;
    snprintf(fd_s, sizeof fd_s, "%d", ready[1]);
    pid_t pid = fork();
    if (pid < 0)
        return perror("fork"), 1;
    if (pid == 0) {
        fcntl(ready[1], F_SETFD, 0);    /* only the write end reaches the child */
        execl("/proc/self/exe", "crash_save", "child", d->model_dir, kind_names[kind], dir,
              first_s, log, fd_s, (char *)NULL);
        _exit(127);
    }
    close(ready[1]);
    char c;
    ssize_t got = read(ready[0], &c, 1);
    close(ready[0]);
    if (got == 1) {
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    free(dir);
    if (got != 1 || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        fprintf(stderr, "crash_save: the %s child ended by itself (status %d)\n",
                kind_names[kind], status);
        return 1;
    }
    return 0;
}

/* The versions the folder may hold after a kill, from the child's log: lo..hi. */
static void allowed(const char *log, unsigned before, unsigned *lo, unsigned *hi)
{
    FILE *f = fopen(log, "r");
    char what;
    unsigned v;
    *lo = *hi = before;
    while (f && fscanf(f, " %c %u", &what, &v) == 2) {
        *hi = v;
        *lo = what == 'd' ? v : v - 1;
    }
    if (f)
        fclose(f);
}

static void trial(driver *d, int t)
{
    int kind = t % N_KINDS;
    unsigned before = d->version[kind], lo, hi;
    char *log = path2(d->work, "log");
    unlink(log);
    double delay = uniform(d) * 2.5 * d->save_seconds[kind];
    char why[1024] = "";
    if (run_child(d, kind, before + 1, delay, log)) {
        d->failed++;
        free(log);
        return;
    }
    allowed(log, before, &lo, &hi);
    d->leftovers += has_leftovers(d, kind);
    int ok = 0;
    for (unsigned v = hi + 1; !ok && v-- > lo;) {
        if (!holds(d, kind, v, why, sizeof why)) {
            ok = 1;
            d->version[kind] = v;
            if (lo == hi)
                d->between++;
            else if (v == lo)
                d->old_kept++;
            else
                d->new_taken++;
        }
    }
    if (!ok) {
        fprintf(stderr, "FAIL trial %d (%s, killed after %.1f ms): not version %u..%u: %s\n", t,
                kind_names[kind], delay * 1e3, lo, hi, why);
        d->failed++;
    }
    free(log);
}

/* After the last kill, one undisturbed save per folder: it must clean up everything. */
static void final_saves(driver *d)
{
    for (int kind = 0; kind < N_KINDS; kind++) {
        char why[1024] = "";
        char *dir = folder_of(d, kind), *notes = path2(dir, "notes.txt");
        unsigned v = d->version[kind] + 1;
        if (save_version(kind, v, dir) || holds(d, kind, v, why, sizeof why)) {
            fprintf(stderr, "FAIL final %s save: %s %s\n", kind_names[kind], why,
                    lora_last_error());
            d->failed++;
        } else if (has_leftovers(d, kind)) {
            fprintf(stderr, "FAIL final %s save left temporary files behind\n", kind_names[kind]);
            d->failed++;
        } else if (kind != KIND_CKPT && !lora__is_file(notes)) {
            fprintf(stderr, "FAIL %s: a file liblora does not own was removed\n", dir);
            d->failed++;
        }
        free(notes);
        free(dir);
    }
}

static int run(driver *d, int trials)
{
    char *ref = path2(d->work, "ref");
    mkdir(ref, 0777);
    free(ref);
    /* version 1 of each folder, undisturbed; its duration sets the range of kill times */
    for (int kind = 0; kind < N_KINDS; kind++) {
        char *dir = folder_of(d, kind), *notes = path2(dir, "notes.txt");
        double t0 = now();
        if (save_version(kind, 1, dir))
            return fail("first save");
        d->save_seconds[kind] = now() - t0;
        d->version[kind] = 1;
        if (kind != KIND_CKPT) {
            FILE *f = fopen(notes, "w");
            if (!f || fputs("not liblora's\n", f) < 0 || fclose(f) != 0)
                return perror(notes), 1;
        }
        free(notes);
        free(dir);
    }
    double t0 = now();
    for (int t = 0; t < trials; t++)
        trial(d, t);
    final_saves(d);
    int mid = d->old_kept + d->new_taken;
    printf("crash: %d trials in %.1f s (saves took %.0f/%.0f/%.0f ms): killed mid-save %d times "
           "(old folder kept %d, new one taken %d, of which %d read files still staged), "
           "between saves %d; leftovers found after %d kills; %d failed\n", trials,
           now() - t0, d->save_seconds[0] * 1e3, d->save_seconds[1] * 1e3,
           d->save_seconds[2] * 1e3, mid, d->old_kept, d->new_taken, d->staged_reads, d->between,
           d->leftovers, d->failed);
    if (!d->old_kept || !d->new_taken) {
        printf("crash: FAIL: the kills did not land both before and after commit points\n");
        d->failed++;
    }
    printf("RESULT %d %d\n", trials - (d->failed < trials ? d->failed : trials), d->failed);
    return d->failed != 0;
}

int main(int argc, char **argv)
{
    int child_mode = argc == 8 && strcmp(argv[1], "child") == 0;
    if (!child_mode && !(argc == 6 && strcmp(argv[1], "run") == 0))
        return fprintf(stderr, "usage: see the comment in tests/crash/crash_save.c\n"), 2;
    if (lora_model_load(argv[2], "{\"threads\": 1}", &model) != LORA_OK)
        return fail(argv[2]);
    int rc;
    if (child_mode) {
        int kind = 0;
        while (kind < N_KINDS && strcmp(kind_names[kind], argv[3]) != 0)
            kind++;
        rc = kind < N_KINDS ? child(kind, argv[4], (unsigned)strtoul(argv[5], NULL, 10), argv[6],
                                    atoi(argv[7]))
                            : 2;
    } else {
        driver d = {.model_dir = argv[2], .work = argv[3],
                    .rng = strtoull(argv[5], NULL, 10) * 2654435761u + 1};
        rc = run(&d, atoi(argv[4]));
    }
    lora_model_free(model);
    return rc;
}
