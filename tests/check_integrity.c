/* Saved folders and their manifests: every file liblora saves is refused when a bit of it flips
 * or it is cut short, whatever the offset; a damaged manifest never lets a wrong file through; a
 * save interrupted before its commit leaves the old folder, one interrupted after it loads as the
 * new one; leftovers of crashed saves are ignored by loads and removed by the next save. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adapter/adapter.h"
#include "io/manifest.h"
#include "lora.h"
#include "util/file.h"
#include "util/st_build.h"
#include "util/suite.h"

#define QWEN2 "tests/fixtures/tiny-qwen2"
#define ADAPTER_CFG "{\"r\": 2, \"target_modules\": [\"q_proj\", \"v_proj\"], " \
                    "\"init_lora_weights\": false}"
#define ADAPTER_CFG_R4 "{\"r\": 4, \"target_modules\": [\"q_proj\", \"v_proj\"], " \
                       "\"init_lora_weights\": false}"

static char *tmp;
static lora_model *model;
static lora_session *session;
static lora_adapter *adapter;   /* attached to session, trained by opt */
static lora_optimizer *opt;

/* "dir/name", freed at teardown. */
static char **paths;
static size_t n_paths;

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    char **grown = realloc(paths, (n_paths + 1) * sizeof *paths);
    ck_assert(p && grown);
    sprintf(p, "%s/%s", dir, name);
    paths = grown;
    paths[n_paths++] = p;
    return p;
}

static void ok(lora_status st, const char *what)
{
    ck_assert_msg(st == LORA_OK, "%s: %s: %s", what, lora_status_string(st), lora_last_error());
}

static void setup(void)
{
    tmp = tu_st_mkdtemp();
    ok(lora_model_load(QWEN2, "{\"threads\": 1}", &model), "lora_model_load");
    ok(lora_session_create(model, NULL, &session), "lora_session_create");
    ok(lora_adapter_create(model, ADAPTER_CFG, 5, &adapter), "lora_adapter_create");
    float one = 1.0f;
    ok(lora_session_set_adapters(session, &adapter, &one, 1), "set_adapters");
    ok(lora_optimizer_create(session, "{\"lr\": 0.01}", &opt), "lora_optimizer_create");
    int32_t ids[8] = {1, 5, 9, 13, 17, 21, 25, 29};
    ok(lora_train_step(opt, ids, ids, 1, 8, NULL), "lora_train_step");
}

static void teardown(void)
{
    lora_optimizer_free(opt);
    lora_adapter_free(adapter);
    lora_session_free(session);
    lora_model_free(model);
    opt = NULL, adapter = NULL, session = NULL, model = NULL;
    tu_st_rmtree(tmp);
    free(tmp);
    for (size_t i = 0; i < n_paths; i++)
        free(paths[i]);
    free(paths);
    paths = NULL, n_paths = 0;
}

static lora_adapter *make_adapter(const char *cfg, uint64_t seed)
{
    lora_adapter *a;
    ok(lora_adapter_create(model, cfg, seed, &a), "lora_adapter_create");
    return a;
}

static void save_adapter(const char *cfg, uint64_t seed, const char *dir)
{
    lora_adapter *a = make_adapter(cfg, seed);
    ok(lora_adapter_save(a, dir), "lora_adapter_save");
    lora_adapter_free(a);
}

/* 1 if dir holds an adapter equal, weight for weight and in its config, to (cfg, seed). */
static int adapter_is(const char *dir, const char *cfg, uint64_t seed)
{
    lora_adapter *want = make_adapter(cfg, seed), *got;
    ok(lora_adapter_load(model, dir, &got), dir);
    int same = want->arena_floats == got->arena_floats &&
               strcmp(want->config_json, got->config_json) == 0 &&
               memcmp(want->arena, got->arena, want->arena_floats * sizeof(float)) == 0;
    lora_adapter_free(want);
    lora_adapter_free(got);
    return same;
}

/* ---- the three kinds of saved folder, each with a loader ------------------------------------- */

typedef struct folder_file {
    const char *folder, *file;  /* file relative to the folder */
} folder_file;

static const folder_file saved_files[] = {
    {"adapter", "adapter_model.safetensors"}, {"adapter", "adapter_config.json"},
    {"model", "model.safetensors"},           {"model", "config.json"},
    {"ckpt", "optimizer.safetensors"},        {"ckpt", "trainer_state.json"},
    {"ckpt", "adapter_0/adapter_model.safetensors"},
    {"ckpt", "adapter_0/adapter_config.json"},
};
#define N_SAVED_FILES (sizeof saved_files / sizeof *saved_files)

static void save_all(void)
{
    ok(lora_adapter_save(adapter, path_in(tmp, "adapter")), "lora_adapter_save");
    ok(lora_model_save(model, path_in(tmp, "model"), NULL), "lora_model_save");
    ok(lora_optimizer_save_checkpoint(opt, path_in(tmp, "ckpt"), 7), "save_checkpoint");
}

static lora_status load_folder(const char *folder)
{
    char *dir = path_in(tmp, folder);
    lora_status st;
    if (strcmp(folder, "adapter") == 0) {
        lora_adapter *a = NULL;
        st = lora_adapter_load(model, dir, &a);
        lora_adapter_free(a);
    } else if (strcmp(folder, "model") == 0) {
        lora_model *m = NULL;
        st = lora_model_load(dir, "{\"threads\": 1}", &m);
        lora_model_free(m);
    } else {
        uint64_t pos = 0;
        st = lora_optimizer_load_checkpoint(opt, dir, &pos);
        ck_assert(st != LORA_OK || pos == 7);
    }
    return st;
}

/* Offsets spread over the file, and every one of its first 64 bytes (length prefix, header). */
static size_t nth_offset(size_t i, size_t n_offsets, size_t len)
{
    return i < 64 ? i : 64 + (i - 64) * (len - 64) / (n_offsets - 64);
}

static void expect_refused(const folder_file *ff, const char *what, const char *mismatch)
{
    lora_status st = load_folder(ff->folder);
    ck_assert_msg(st == LORA_ERR_FORMAT, "%s/%s %s: %s (%s)", ff->folder, ff->file, what,
                  lora_status_string(st), lora_last_error());
    const char *base = strrchr(ff->file, '/') ? strrchr(ff->file, '/') + 1 : ff->file;
    ck_assert_msg(strstr(lora_last_error(), base) && strstr(lora_last_error(), mismatch) &&
                  strstr(lora_last_error(), LORA_MANIFEST_NAME),
                  "%s/%s %s: message \"%s\" should name the file and \"%s\"", ff->folder,
                  ff->file, what, lora_last_error(), mismatch);
}

START_TEST(bit_flips_refused)
{
    const folder_file *ff = &saved_files[_i];
    save_all();
    char *path = path_in(path_in(tmp, ff->folder), ff->file);
    size_t len;
    uint8_t *orig = tu_st_read_file(path, &len), *buf = malloc(len);
    ck_assert(orig && buf && len > 64);
    size_t n_offsets = len < 256 ? len : 256;
    for (size_t i = 0; i < n_offsets; i++) {
        size_t off = n_offsets == len ? i : nth_offset(i, n_offsets, len);
        char what[64];
        memcpy(buf, orig, len);
        buf[off] ^= (uint8_t)(1u << (i % 8));
        ck_assert_int_eq(tu_st_write_file(path, buf, len), 0);
        snprintf(what, sizeof what, "with bit %zu of byte %zu flipped", i % 8, off);
        expect_refused(ff, what, "SHA-256");
    }
    ck_assert_int_eq(tu_st_write_file(path, orig, len), 0);
    ok(load_folder(ff->folder), "restored");
    free(orig);
    free(buf);
}
END_TEST

START_TEST(truncations_refused)
{
    const folder_file *ff = &saved_files[_i];
    save_all();
    char *path = path_in(path_in(tmp, ff->folder), ff->file);
    size_t len;
    uint8_t *orig = tu_st_read_file(path, &len);
    ck_assert(orig && len > 64);
    size_t n_cuts = len < 256 ? len : 256;
    for (size_t i = 0; i < n_cuts; i++) {
        size_t cut = n_cuts == len ? i : nth_offset(i, n_cuts, len);
        char what[64];
        ck_assert_int_eq(tu_st_write_file(path, orig, cut), 0);
        snprintf(what, sizeof what, "cut to %zu of %zu bytes", cut, len);
        expect_refused(ff, what, "bytes, but");
    }
    /* one byte more is refused too */
    uint8_t *longer = calloc(len + 1, 1);
    memcpy(longer, orig, len);
    ck_assert_int_eq(tu_st_write_file(path, longer, len + 1), 0);
    expect_refused(ff, "one byte longer", "bytes, but");
    ck_assert_int_eq(tu_st_write_file(path, orig, len), 0);
    ok(load_folder(ff->folder), "restored");
    free(longer);
    free(orig);
}
END_TEST

/* Any one-bit damage to a manifest either refuses the folder or changes nothing that is read:
 * a wrong file never loads. */
START_TEST(damaged_manifest_never_admits_a_wrong_file)
{
    char *dir = path_in(tmp, "a");
    save_adapter(ADAPTER_CFG, 3, dir);
    char *mpath = path_in(dir, LORA_MANIFEST_NAME);
    size_t len;
    uint8_t *orig = tu_st_read_file(mpath, &len), *buf = malloc(len);
    ck_assert(orig && buf);
    /* the weights are another adapter's: only the manifest tells */
    char *other = path_in(tmp, "b");
    save_adapter(ADAPTER_CFG, 4, other);
    size_t wlen;
    uint8_t *w = tu_st_read_file(path_in(other, "adapter_model.safetensors"), &wlen);
    ck_assert_int_eq(tu_st_write_file(path_in(dir, "adapter_model.safetensors"), w, wlen), 0);
    free(w);
    size_t refused = 0, trials = 0;
    for (size_t off = 0; off < len; off++)
        for (int bit = 0; bit < 8; bit += 3, trials++) {
            memcpy(buf, orig, len);
            buf[off] ^= (uint8_t)(1u << bit);
            ck_assert_int_eq(tu_st_write_file(mpath, buf, len), 0);
            lora_adapter *a = NULL;
            lora_status st = lora_adapter_load(model, dir, &a);
            /* loading is allowed only where the flip made the manifest forget the weights */
            ck_assert_msg(st == LORA_ERR_FORMAT ||
                          (st == LORA_OK && !memmem(buf, len, "\"adapter_model.safetensors\"",
                                                    27)),
                          "byte %zu bit %d: %s (%s)", off, bit, lora_status_string(st),
                          lora_last_error());
            refused += st != LORA_OK;
            lora_adapter_free(a);
        }
    /* cut short at every length */
    for (size_t cut = 0; cut < len; cut++, trials++) {
        ck_assert_int_eq(tu_st_write_file(mpath, orig, cut), 0);
        lora_adapter *a = NULL;
        ck_assert_int_eq(lora_adapter_load(model, dir, &a), LORA_ERR_FORMAT);
        refused++;
    }
    ck_assert_msg(refused * 10 > trials * 9, "only %zu of %zu damaged manifests refused", refused,
                  trials);
    free(orig);
    free(buf);
}
END_TEST

START_TEST(manifest_records_what_was_saved)
{
    save_all();
    for (size_t i = 0; i < N_SAVED_FILES; i++) {
        const folder_file *ff = &saved_files[i];
        char folder[2048];
        snprintf(folder, sizeof folder, "%s", path_in(tmp, ff->folder));
        const char *slash = strrchr(ff->file, '/');
        if (slash)
            snprintf(folder + strlen(folder), sizeof folder - strlen(folder), "/%.*s",
                     (int)(slash - ff->file), ff->file);
        const char *name = slash ? slash + 1 : ff->file;
        lora_manifest *m;
        ok(lora__manifest_load(folder, &m), folder);
        ck_assert_ptr_nonnull(m);
        uint64_t bytes, want_bytes = 0;
        const char *sha, *want_sha = "";
        char hex[65];
        for (size_t k = 0; k < lora__manifest_count(m); k++)
            if (strcmp(lora__manifest_entry(m, k, &bytes, &sha), name) == 0)
                want_bytes = bytes, want_sha = sha;
        ok(lora__file_sha256(path_in(folder, name), &bytes, hex), name);
        ck_assert_uint_eq(bytes, want_bytes);
        ck_assert_str_eq(hex, want_sha);
        char *resolved;
        ok(lora__manifest_resolve(m, folder, name, &resolved), name);
        ck_assert_str_eq(resolved, path_in(folder, name));
        free(resolved);
        lora__manifest_free(m);
        /* nothing staged or temporary is left */
        ck_assert(!lora__is_dir(path_in(folder, LORA_STAGING_NAME)));
    }
    ck_assert(!lora__is_dir(path_in(tmp, "ckpt.tmp")) && !lora__is_dir(path_in(tmp, "ckpt.old")));
    /* the checksum is the SHA-256 that sha256sum prints: the empty file's is well known */
    uint64_t bytes;
    char hex[65];
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "empty"), "", 0), 0);
    ok(lora__file_sha256(path_in(tmp, "empty"), &bytes, hex), "empty");
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ck_assert_uint_eq(bytes, 0);
    /* the same adapter saved twice gives the same manifest, byte for byte */
    save_adapter(ADAPTER_CFG, 9, path_in(tmp, "x"));
    save_adapter(ADAPTER_CFG, 9, path_in(tmp, "y"));
    size_t nx, ny;
    uint8_t *x = tu_st_read_file(path_in(path_in(tmp, "x"), LORA_MANIFEST_NAME), &nx);
    uint8_t *y = tu_st_read_file(path_in(path_in(tmp, "y"), LORA_MANIFEST_NAME), &ny);
    ck_assert(x && y && nx == ny && memcmp(x, y, nx) == 0);
    free(x);
    free(y);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *b = tu_st_read_file(from, &n);
    ck_assert_msg(b != NULL, "cannot read %s", from);
    ck_assert_int_eq(tu_st_write_file(to, b, n), 0);
    free(b);
}

static const char *const adapter_files[] = {"adapter_model.safetensors", "adapter_config.json"};

/* A folder as a save of `next` left it when killed after its commit, with `moved` of its files
 * already renamed into place: next's manifest, the rest staged. */
static void interrupted_after_commit(const char *dir, const char *next, int moved)
{
    ck_assert_int_eq(mkdir(path_in(dir, LORA_STAGING_NAME), 0777), 0);
    for (int i = 0; i < 2; i++)
        copy_file(path_in(next, adapter_files[i]),
                  path_in(i < moved ? dir : path_in(dir, LORA_STAGING_NAME), adapter_files[i]));
    copy_file(path_in(next, LORA_MANIFEST_NAME), path_in(dir, LORA_MANIFEST_NAME));
}

START_TEST(interrupted_after_commit_loads_the_new_folder)
{
    /* version 1 has r 2, version 2 r 4: a mix of their files could not even load */
    char *next = strdup(path_in(tmp, "v2"));
    save_adapter(ADAPTER_CFG_R4, 2, next);
    for (int moved = 0; moved <= 2; moved++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", moved);
        char *dir = strdup(path_in(tmp, name));
        save_adapter(ADAPTER_CFG, 1, dir);
        interrupted_after_commit(dir, next, moved);
        ck_assert_msg(adapter_is(dir, ADAPTER_CFG_R4, 2), "%d moved: not the new adapter", moved);
        /* the next save finishes the interrupted one before anything else */
        lora_txn *t;
        ok(lora__txn_begin(dir, &t), "lora__txn_begin");
        lora__txn_abort(t);
        ck_assert(!lora__is_dir(path_in(dir, LORA_STAGING_NAME)));
        ck_assert_msg(adapter_is(dir, ADAPTER_CFG_R4, 2), "%d moved: lost by the next save",
                      moved);
        /* and the files in the folder are the new ones: they load without the manifest */
        ck_assert_int_eq(remove(path_in(dir, LORA_MANIFEST_NAME)), 0);
        ck_assert(adapter_is(dir, ADAPTER_CFG_R4, 2));
        free(dir);
    }
    /* the first save into a folder, killed after its commit: nothing was moved yet */
    char *dir = strdup(path_in(tmp, "first"));
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    interrupted_after_commit(dir, next, 0);
    ck_assert(adapter_is(dir, ADAPTER_CFG_R4, 2));
    free(dir);
    free(next);
}
END_TEST

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

START_TEST(leftovers_ignored_then_removed)
{
    char *dir = path_in(tmp, "a");
    save_adapter(ADAPTER_CFG, 1, dir);
    ck_assert_int_eq(tu_st_write_file(path_in(dir, "README.md"), "mine", 4), 0);
    /* a save killed before its commit: half-written staged files and temporary files */
    ck_assert_int_eq(mkdir(path_in(dir, LORA_STAGING_NAME), 0777), 0);
    ck_assert_int_eq(tu_st_write_file(path_in(path_in(dir, LORA_STAGING_NAME),
                                              "adapter_model.safetensors"), "\x10\0\0", 3), 0);
    ck_assert_int_eq(tu_st_write_file(path_in(path_in(dir, LORA_STAGING_NAME),
                                              ".adapter_config.json.tmp.Ab12Cd"), "{", 1), 0);
    ck_assert_int_eq(tu_st_write_file(path_in(dir, ".liblora_manifest.json.tmp.x1y2z3"), "{", 1),
                     0);
    ck_assert_int_eq(tu_st_write_file(path_in(dir, ".adapter_model.safetensors.tmp.QwErTy"),
                                      "xx", 2), 0);
    ck_assert_int_eq(count_entries(dir), 7);
    ck_assert(adapter_is(dir, ADAPTER_CFG, 1));
    save_adapter(ADAPTER_CFG_R4, 2, dir);
    /* the three saved files and README.md */
    ck_assert_int_eq(count_entries(dir), 4);
    ck_assert(lora__is_file(path_in(dir, "README.md")));
    ck_assert(adapter_is(dir, ADAPTER_CFG_R4, 2));
}
END_TEST

START_TEST(folders_without_manifest_still_load)
{
    /* PEFT's own folder, and a liblora one whose manifest was deleted */
    lora_adapter *a;
    ok(lora_adapter_load(model, QWEN2 "/adapter", &a), "PEFT fixture");
    lora_adapter_free(a);
    char *dir = path_in(tmp, "a");
    save_adapter(ADAPTER_CFG, 1, dir);
    ck_assert_int_eq(remove(path_in(dir, LORA_MANIFEST_NAME)), 0);
    ck_assert(adapter_is(dir, ADAPTER_CFG, 1));
    /* saving over a PEFT folder keeps its other files and adds the manifest */
    char *peft = path_in(tmp, "peft");
    ck_assert_int_eq(mkdir(peft, 0777), 0);
    copy_file(QWEN2 "/adapter/adapter_config.json", path_in(peft, "adapter_config.json"));
    copy_file(QWEN2 "/adapter/adapter_model.safetensors",
              path_in(peft, "adapter_model.safetensors"));
    ck_assert_int_eq(tu_st_write_file(path_in(peft, "README.md"), "card", 4), 0);
    save_adapter(ADAPTER_CFG_R4, 2, peft);
    ck_assert(lora__is_file(path_in(peft, "README.md")));
    ck_assert(adapter_is(peft, ADAPTER_CFG_R4, 2));
}
END_TEST

START_TEST(saves_of_two_kinds_share_a_folder)
{
    /* a model and an adapter in one folder: each save keeps the other's manifest entries */
    char *dir = path_in(tmp, "both");
    ok(lora_model_save(model, dir, "bf16"), "lora_model_save");
    save_adapter(ADAPTER_CFG, 1, dir);
    lora_manifest *m;
    ok(lora__manifest_load(dir, &m), "manifest");
    ck_assert_uint_eq(lora__manifest_count(m), 4);
    lora__manifest_free(m);
    lora_model *m2;
    ok(lora_model_load(dir, "{\"threads\": 1}", &m2), "lora_model_load");
    lora_model_free(m2);
    ck_assert(adapter_is(dir, ADAPTER_CFG, 1));
    /* and still guards the model */
    size_t len;
    uint8_t *b = tu_st_read_file(path_in(dir, "model.safetensors"), &len);
    b[len / 2] ^= 1;
    ck_assert_int_eq(tu_st_write_file(path_in(dir, "model.safetensors"), b, len), 0);
    free(b);
    ck_assert_int_eq(lora_model_load(dir, NULL, &m2), LORA_ERR_FORMAT);
    ck_assert(strstr(lora_last_error(), "model.safetensors: SHA-256"));
}
END_TEST

START_TEST(checkpoint_crash_between_fallback_renames)
{
    /* where names cannot be exchanged, a crash between the two renames leaves only DIR.old */
    char *dir = path_in(tmp, "ckpt"), *old = path_in(tmp, "ckpt.old");
    ok(lora_optimizer_save_checkpoint(opt, dir, 7), "save_checkpoint");
    ck_assert_int_eq(rename(dir, old), 0);
    ck_assert_int_eq(mkdir(path_in(tmp, "ckpt.tmp"), 0777), 0);     /* the half-made new one */
    ok(load_folder("ckpt"), "load from ckpt.old");
    ok(lora_optimizer_save_checkpoint(opt, dir, 7), "save over it");
    ck_assert(lora__is_dir(dir) && !lora__is_dir(old) && !lora__is_dir(path_in(tmp, "ckpt.tmp")));
    ok(load_folder("ckpt"), "load");
    /* a second save exchanges the folders and removes the previous one */
    ok(lora_optimizer_save_checkpoint(opt, dir, 7), "save again");
    ck_assert(!lora__is_dir(old) && !lora__is_dir(path_in(tmp, "ckpt.tmp")));
    ok(load_folder("ckpt"), "load");
    /* "ckpt/" is the same folder, with the same siblings */
    char *slashed = path_in(tmp, "ckpt/");
    ok(lora_optimizer_save_checkpoint(opt, slashed, 7), "save to ckpt/");
    ck_assert_int_eq(count_entries(dir), 4);    /* adapter_0, the two files, the manifest */
    ck_assert_int_eq(rename(dir, old), 0);
    uint64_t pos = 0;
    ok(lora_optimizer_load_checkpoint(opt, slashed, &pos), "load ckpt/ from ckpt.old");
    ck_assert_uint_eq(pos, 7);
}
END_TEST

/* ---- misuse ----------------------------------------------------------------------------------- */

static void expect_manifest_refused(const char *text, const char *substr)
{
    char *dir = path_in(tmp, "m");
    save_adapter(ADAPTER_CFG, 1, dir);
    ck_assert_int_eq(tu_st_write_file(path_in(dir, LORA_MANIFEST_NAME), text, strlen(text)), 0);
    lora_adapter *a = NULL;
    ck_assert_int_eq(lora_adapter_load(model, dir, &a), LORA_ERR_FORMAT);
    ck_assert_msg(strstr(lora_last_error(), substr) &&
                  strstr(lora_last_error(), LORA_MANIFEST_NAME),
                  "\"%s\" does not mention \"%s\"", lora_last_error(), substr);
    /* a save replaces a manifest it cannot read */
    save_adapter(ADAPTER_CFG, 1, dir);
    ck_assert(adapter_is(dir, ADAPTER_CFG, 1));
}

#define SHA0 "\"0000000000000000000000000000000000000000000000000000000000000000\""

START_TEST(malformed_manifests_refused)
{
    expect_manifest_refused("[]", "not a JSON object");
    expect_manifest_refused("{\"format\": \"liblora-manifest\", \"format_version\": 1, "
                            "\"files\": {}, \"extra\": 1}", "unknown key 'extra'");
    expect_manifest_refused("{\"format\": \"other\", \"format_version\": 1, \"files\": {}}",
                            "\"format\"");
    expect_manifest_refused("{\"format\": \"liblora-manifest\", \"format_version\": 2, "
                            "\"files\": {}}", "newer liblora");
    expect_manifest_refused("{\"format\": \"liblora-manifest\", \"format_version\": 1, "
                            "\"files\": {\"../x\": {\"bytes\": 1, \"sha256\": " SHA0 "}}}",
                            "'../x' is not a plain file name");
    expect_manifest_refused("{\"format\": \"liblora-manifest\", \"format_version\": 1, "
                            "\"files\": {\"x\": {\"bytes\": -1, \"sha256\": " SHA0 "}}}",
                            "no byte count");
    expect_manifest_refused("{\"format\": \"liblora-manifest\", \"format_version\": 1, "
                            "\"files\": {\"x\": {\"bytes\": 1, \"sha256\": \"ABC\"}}}",
                            "64 lowercase hex");
    expect_manifest_refused("{\"format\": \"liblora-manifest\", \"format_version\": 1, "
                            "\"files\": {\"x\": {\"bytes\": 1, \"sha\": " SHA0 "}}}",
                            "unknown key 'sha'");
}
END_TEST

START_TEST(staged_names_must_be_plain)
{
    lora_txn *t;
    const char *p;
    ok(lora__txn_begin(path_in(tmp, "t"), &t), "lora__txn_begin");
    ck_assert_int_eq(lora__txn_file(t, "a/b", &p), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora__txn_file(t, ".hidden", &p), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora__txn_file(t, "", &p), LORA_ERR_INVALID_ARGUMENT);
    ok(lora__txn_file(t, "x.json", &p), "plain name");
    /* a file that was named but never written stops the commit, and nothing changes */
    ck_assert_int_eq(lora__txn_commit(t), LORA_ERR_INTERNAL);
    ck_assert(!lora__is_file(path_in(path_in(tmp, "t"), LORA_MANIFEST_NAME)));
    ck_assert(!lora__is_dir(path_in(path_in(tmp, "t"), LORA_STAGING_NAME)));
    lora__txn_abort(NULL);
}
END_TEST

static Suite *integrity_suite(void)
{
    Suite *s = suite_create("integrity");
    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_set_timeout(core, 120);
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_loop_test(core, bit_flips_refused, 0, N_SAVED_FILES);
    tcase_add_loop_test(core, truncations_refused, 0, N_SAVED_FILES);
    tcase_add_test(core, damaged_manifest_never_admits_a_wrong_file);
    tcase_add_test(core, manifest_records_what_was_saved);
    tcase_add_test(core, interrupted_after_commit_loads_the_new_folder);
    tcase_add_test(core, leftovers_ignored_then_removed);
    tcase_add_test(core, folders_without_manifest_still_load);
    tcase_add_test(core, saves_of_two_kinds_share_a_folder);
    tcase_add_test(core, checkpoint_crash_between_fallback_renames);
    suite_add_tcase(s, core);

    TCase *misuse = tcase_create("misuse");
    tcase_set_tags(misuse, "misuse");
    tcase_add_checked_fixture(misuse, setup, teardown);
    tcase_add_test(misuse, malformed_manifests_refused);
    tcase_add_test(misuse, staged_names_must_be_plain);
    suite_add_tcase(s, misuse);
    return s;
}

int main(void) { return tu_run_suite(integrity_suite()); }
