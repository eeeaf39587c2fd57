/* Folder saves as transactions: staged files, the manifest as the commit point, then renames
 * (the protocol is described in io/manifest.h). */
#include "io/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/error.h"
#include "io/safetensors.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/json_text.h"
#include "util/sysio.h"

struct lora_txn {
    char *dir;
    char *staging;
    lora_manifest *old;     /* NULL when the folder had no valid manifest */
    size_t n, cap;
    char **names;
    char **paths;           /* staging/name */
    char **finals;          /* dir/name, made before the commit so that nothing after it allocates */
    int staging_made;       /* by this save: abort removes it */
    int committed;          /* the manifest is written: the staged files are the folder's */
};

static lora_status make_dir(const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return lora__error(LORA_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!lora__is_dir(dir))
        return lora__error(LORA_ERR_IO, "%s: not a folder", dir);
    return LORA_OK;
}

/* Removes dir/.NAME.tmp.* (what an atomic write of dir/NAME leaves when killed). */
static lora_status remove_temps(const char *dir, const char *name)
{
    char prefix[300];
    int len = snprintf(prefix, sizeof prefix, ".%s.tmp.", name);
    if (len < 0 || (size_t)len >= sizeof prefix)
        return LORA_OK;     /* no writer makes temporary names that long */
    DIR *d = opendir(dir);
    if (!d)
        return lora__error(LORA_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    lora_status st = LORA_OK;
    struct dirent *e;
    while (!st && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, (size_t)len) == 0) {
            char *p = lora__path_join(dir, e->d_name);
            st = p ? lora__remove_tree(p) : lora__oom("path", strlen(dir) + 256);
            free(p);
        }
    closedir(d);
    return st;
}

/* A save that was killed after writing its manifest left some files staged: they are what
 * the manifest records, so they go where they belong before anything is staged again. */
static lora_status finish_interrupted(const lora_txn *t)
{
    if (!t->old || !lora__is_dir(t->staging))
        return LORA_OK;
    lora_status st = LORA_OK;
    int moved = 0;
    for (size_t i = 0; !st && i < lora__manifest_count(t->old); i++) {
        uint64_t want_bytes, bytes;
        const char *want, *name = lora__manifest_entry(t->old, i, &want_bytes, &want);
        char hex[65];
        char *staged = lora__path_join(t->staging, name), *final = lora__path_join(t->dir, name);
        if (!staged || !final)
            st = lora__oom("path", strlen(t->staging) + strlen(name) + 2);
        else if (lora__is_file(staged) && !(st = lora__file_sha256(staged, &bytes, hex)) &&
                 bytes == want_bytes && strcmp(hex, want) == 0) {
            if (lora__sys_rename(staged, final) != 0)
                st = lora__error(LORA_ERR_IO, "%s: cannot move %s into place: %s", final,
                                 staged, strerror(errno));
            moved = 1;
        }
        free(staged);
        free(final);
    }
    return !st && moved ? lora__sync_dir(t->dir) : st;
}

static lora_status clean(const lora_txn *t)
{
    lora_status st = lora__remove_tree(t->staging);
    if (!st)
        st = remove_temps(t->dir, LORA_MANIFEST_NAME);
    for (size_t i = 0; !st && i < lora__manifest_count(t->old); i++) {
        uint64_t bytes;
        const char *sha;
        st = remove_temps(t->dir, lora__manifest_entry(t->old, i, &bytes, &sha));
    }
    return st;
}

static lora_status begin(lora_txn *t, const char *dir)
{
    lora_status st;
    if (!(t->dir = lora__strdup(dir)) || !(t->staging = lora__path_join(dir, LORA_STAGING_NAME)))
        return lora__oom("path", strlen(dir) + sizeof LORA_STAGING_NAME + 1);
    if ((st = make_dir(dir)))
        return st;
    /* an unreadable manifest is replaced: this save rewrites what it lists */
    if ((st = lora__manifest_load(dir, &t->old)) == LORA_ERR_FORMAT)
        st = LORA_OK;
    if (!st && !(st = finish_interrupted(t)) && !(st = clean(t)) && !(st = make_dir(t->staging)))
        t->staging_made = 1;
    return st;
}

lora_status lora__txn_begin(const char *dir, lora_txn **out)
{
    *out = NULL;
    lora_txn *t = lora__calloc(1, sizeof *t);
    if (!t)
        return lora__oom("save transaction", sizeof *t);
    lora_status st = begin(t, dir);
    if (st) {
        lora__txn_abort(t);
        return st;
    }
    *out = t;
    return LORA_OK;
}

lora_status lora__txn_file(lora_txn *t, const char *name, const char **path)
{
    *path = NULL;
    if (!name[0] || name[0] == '.' || strchr(name, '/'))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: '%s' is not a plain file name",
                           t->dir, name);
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], name) == 0) {
            *path = t->paths[i];
            return LORA_OK;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4;
        char ***tables[3] = {&t->names, &t->paths, &t->finals};
        for (int k = 0; k < 3; k++) {
            char **grown = lora__realloc(*tables[k], cap * sizeof **tables[k]);
            if (!grown)
                return lora__oom("staged file table", cap * sizeof **tables[k]);
            *tables[k] = grown;
        }
        t->cap = cap;
    }
    char *copy = lora__strdup(name), *p = lora__path_join(t->staging, name);
    char *final = lora__path_join(t->dir, name);
    if (!copy || !p || !final) {
        free(copy);
        free(p);
        free(final);
        return lora__oom("path", strlen(t->staging) + strlen(name) + 2);
    }
    t->names[t->n] = copy;
    t->paths[t->n] = p;
    t->finals[t->n++] = final;
    *path = p;
    return LORA_OK;
}

static int staged(const lora_txn *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], name) == 0)
            return 1;
    return 0;
}

static lora_status add_entry(json_t *files, const char *name, uint64_t bytes, const char *sha)
{
    json_t *e = json_pack("{s:I, s:s}", "bytes", (json_int_t)bytes, "sha256", sha);
    if (!e || json_object_set_new(files, name, e) != 0)
        return lora__oom("manifest entry", strlen(name) + 128);
    return LORA_OK;
}

/* The manifest text: this save's files, and the older entries of files it did not rewrite
 * that are still there (another kind of save into the same folder). */
static lora_status manifest_text(const lora_txn *t, char **out)
{
    json_t *files = json_object();
    json_t *root = files ? json_pack("{s:s, s:i, s:o}", "format", "liblora-manifest",
                                     "format_version", 1, "files", files)
                         : NULL;
    lora_status st = root ? LORA_OK : lora__oom("manifest", 256);
    for (size_t i = 0; !st && i < lora__manifest_count(t->old); i++) {
        uint64_t bytes;
        const char *sha, *name = lora__manifest_entry(t->old, i, &bytes, &sha);
        char *final = lora__path_join(t->dir, name);
        if (!final)
            st = lora__oom("path", strlen(t->dir) + strlen(name) + 2);
        else if (!staged(t, name) && lora__is_file(final))
            st = add_entry(files, name, bytes, sha);
        free(final);
    }
    for (size_t i = 0; !st && i < t->n; i++) {
        uint64_t bytes;
        char hex[65];
        if (!lora__is_file(t->paths[i]))
            st = lora__error(LORA_ERR_INTERNAL, "%s: '%s' was never written", t->dir,
                             t->names[i]);
        else if (!(st = lora__file_sha256(t->paths[i], &bytes, hex)))
            st = add_entry(files, t->names[i], bytes, hex);
    }
    char *text = st ? NULL : lora__json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    char *line = text ? lora__realloc(text, strlen(text) + 2) : NULL;
    if (!st && !line) {
        free(text);
        st = lora__oom("manifest text", 1024);
    }
    if (!st)
        strcat(line, "\n");
    json_decref(root);
    *out = st ? NULL : line;
    return st;
}

static lora_status commit(lora_txn *t)
{
    char *text = NULL, *path = lora__path_join(t->dir, LORA_MANIFEST_NAME);
    lora_status st = path ? manifest_text(t, &text) : lora__oom("path", strlen(t->dir) + 32);
    if (!st)
        st = lora__write_file_atomic(path, text, strlen(text));
    free(text);
    free(path);
    if (st)
        return st;
    /* from here a load finds every file, in the folder or still staged: move in all it can */
    t->committed = 1;
    for (size_t i = 0; i < t->n; i++)
        if (lora__sys_rename(t->paths[i], t->finals[i]) != 0 && !st)
            st = lora__error(LORA_ERR_IO, "%s: the save is committed (liblora loads the new "
                             "files), but moving %s into place failed: %s", t->finals[i],
                             t->paths[i], strerror(errno));
    if (!st)
        st = lora__sync_dir(t->dir);
    if (st)
        return st;
    /* the save is whole: leftovers that cannot be removed now are the next save's to remove */
    lora_status left = lora__remove_tree(t->staging);
    for (size_t i = 0; !left && i < t->n; i++)
        left = remove_temps(t->dir, t->names[i]);
    (void)left;
    return LORA_OK;
}

lora_status lora__txn_commit(lora_txn *t)
{
    lora_status st = commit(t);
    lora__txn_abort(t);
    return st;
}

void lora__txn_abort(lora_txn *t)
{
    if (!t)
        return;
    /* once committed, staged files left by a failed rename are the ones a load reads */
    if (t->staging_made && !t->committed)
        lora__remove_tree(t->staging);
    for (size_t i = 0; i < t->n; i++) {
        free(t->names[i]);
        free(t->paths[i]);
        free(t->finals[i]);
    }
    free(t->names);
    free(t->paths);
    free(t->finals);
    lora__manifest_free(t->old);
    free(t->staging);
    free(t->dir);
    free(t);
}
