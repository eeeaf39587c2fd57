/* A checkpoint folder as one tensor namespace: model.safetensors, or the shards named by
 * model.safetensors.index.json, cross-checked so that every tensor has exactly one home; files
 * that liblora_manifest.json lists are checked against it first. */
#include "io/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/error.h"
#include "io/manifest.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/json_text.h"

#define SINGLE_NAME "model.safetensors"
#define INDEX_NAME "model.safetensors.index.json"

typedef struct set_entry {
    const lora_st_tensor *t;
    size_t file;
} set_entry;

struct lora_st_set {
    size_t n_files;
    lora_st_file **files;
    size_t n;
    set_entry *entries;           /* file by file, each in data order */
    const set_entry **by_name;    /* sorted by name, for bsearch */
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_entry_name(const void *a, const void *b)
{
    const set_entry *const *x = a, *const *y = b;
    return strcmp((*x)->t->name, (*y)->t->name);
}

/* Builds the combined tables once every file is open and cross-checked. */
static lora_status index_tensors(lora_st_set *s)
{
    s->n = 0;
    for (size_t f = 0; f < s->n_files; f++)
        s->n += lora__st_count(s->files[f]);
    s->entries = lora__calloc(s->n ? s->n : 1, sizeof *s->entries);
    s->by_name = lora__calloc(s->n ? s->n : 1, sizeof *s->by_name);
    if (!s->entries || !s->by_name)
        return lora__oom("checkpoint tensor table",
                         s->n * (sizeof *s->entries + sizeof *s->by_name));
    size_t k = 0;
    for (size_t f = 0; f < s->n_files; f++)
        for (size_t i = 0; i < lora__st_count(s->files[f]); i++, k++) {
            s->entries[k] = (set_entry){lora__st_at(s->files[f], i), f};
            s->by_name[k] = &s->entries[k];
        }
    qsort(s->by_name, s->n, sizeof *s->by_name, cmp_entry_name);
    return LORA_OK;
}

/* A shard name is a plain file name in the model folder; anything else could read elsewhere. */
static lora_status check_shard_name(const char *index_path, const char *tensor, const char *shard)
{
    if (shard[0] == '\0' || shard[0] == '/' || strchr(shard, '/') || strchr(shard, '\\') ||
        strncmp(shard, "..", 2) == 0)
        return lora__error(LORA_ERR_FORMAT, "%s: shard '%s' of tensor '%s' leaves the model "
                           "folder", index_path, shard, tensor);
    return LORA_OK;
}

static lora_status load_index(const char *path, json_t **weight_map_out, json_t **root_out)
{
    char *text = NULL;
    size_t len = 0;
    json_error_t err;
    /* An index is a list of names: the header limit is plenty. */
    lora_status st = lora__read_file(path, LORA_ST_MAX_HEADER, &text, &len);
    if (st)
        return st;
    json_t *root = lora__json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (!root)
        return lora__error(LORA_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", path,
                           err.text, err.line, err.column);
    json_t *map = json_object_get(root, "weight_map");
    const char *key;
    json_t *v;
    if (!json_is_object(map)) {
        json_decref(root);
        return lora__error(LORA_ERR_FORMAT, "%s: no \"weight_map\" object", path);
    }
    json_object_foreach(map, key, v) {
        if (!json_is_string(v))
            st = lora__error(LORA_ERR_FORMAT, "%s: weight_map value of tensor '%s' is not a "
                             "string", path, key);
        else
            st = check_shard_name(path, key, json_string_value(v));
        if (st) {
            json_decref(root);
            return st;
        }
    }
    *weight_map_out = map;
    *root_out = root;
    return LORA_OK;
}

/* The distinct shard names of weight_map, sorted; the strings belong to the map. */
static lora_status shard_names(const json_t *map, const char ***names_out, size_t *n_out)
{
    size_t n = 0, cap = json_object_size(map);
    const char **names = lora__calloc(cap ? cap : 1, sizeof *names);
    const char *key;
    json_t *v;
    if (!names)
        return lora__oom("shard names", cap * sizeof *names);
    json_object_foreach((json_t *)map, key, v)
        names[n++] = json_string_value(v);
    qsort(names, n, sizeof *names, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(names[u - 1], names[i]) != 0)
            names[u++] = names[i];
    *names_out = names;
    *n_out = u;
    return LORA_OK;
}

static lora_status open_shards(lora_st_set *s, const char *dir, const lora_manifest *m,
                               const char **names, size_t n)
{
    s->files = lora__calloc(n ? n : 1, sizeof *s->files);
    if (!s->files)
        return lora__oom("shard table", n * sizeof *s->files);
    for (size_t i = 0; i < n; i++) {
        char *path;
        lora_status st = lora__manifest_resolve(m, dir, names[i], &path);
        if (st)
            return st;
        st = lora__st_open(path, &s->files[i]);
        free(path);
        if (st)
            return st;
        s->n_files++;
    }
    return LORA_OK;
}

/* Every listed tensor is in its shard, and every shard tensor is listed under that shard:
 * together these mean each tensor lives in exactly one file. */
static lora_status cross_check(const lora_st_set *s, const char *index_path, const json_t *map,
                               const char **names)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)map, key, v) {
        const char **hit = bsearch(&(const char *){json_string_value(v)}, names, s->n_files,
                                   sizeof *names, cmp_str);
        if (!lora__st_find(s->files[hit - names], key))
            return lora__error(LORA_ERR_FORMAT, "%s: weight_map puts tensor '%s' in '%s', which "
                               "does not contain it", index_path, key, *hit);
    }
    for (size_t f = 0; f < s->n_files; f++)
        for (size_t i = 0; i < lora__st_count(s->files[f]); i++) {
            const char *name = lora__st_at(s->files[f], i)->name;
            const char *listed = json_string_value(json_object_get(map, name));
            if (!listed)
                return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s' is not listed in the "
                                   "weight_map of %s", lora__st_path(s->files[f]), name,
                                   index_path);
            if (strcmp(listed, names[f]) != 0)
                return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s' is in two shards, '%s' "
                                   "and '%s'", index_path, name, listed, names[f]);
        }
    return LORA_OK;
}

static lora_status open_sharded(lora_st_set *s, const char *dir, const lora_manifest *m,
                                const char *index_path)
{
    json_t *root = NULL, *map = NULL;
    const char **names = NULL;
    size_t n_names = 0;
    lora_status st = load_index(index_path, &map, &root);
    if (st)
        return st;
    if (!(st = shard_names(map, &names, &n_names)) &&
        !(st = open_shards(s, dir, m, names, n_names)))
        st = cross_check(s, index_path, map, names);
    free(names);
    json_decref(root);
    return st;
}

static lora_status open_single(lora_st_set *s, const char *path)
{
    if (!(s->files = lora__calloc(1, sizeof *s->files)))
        return lora__oom("shard table", sizeof *s->files);
    lora_status st = lora__st_open(path, &s->files[0]);
    if (!st)
        s->n_files = 1;
    return st;
}

/* Only a missing file counts as absent; any other stat failure is left for open to report. */
static int present(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 || errno != ENOENT;
}

static lora_status open_folder(lora_st_set *s, const char *dir)
{
    lora_manifest *m;
    char *single = NULL, *index = NULL;
    lora_status st = lora__manifest_load(dir, &m);
    if (!st && !(st = lora__manifest_resolve(m, dir, SINGLE_NAME, &single)) &&
        !(st = lora__manifest_resolve(m, dir, INDEX_NAME, &index))) {
        if (present(single))
            st = open_single(s, single);
        else if (present(index))
            st = open_sharded(s, dir, m, index);
        else
            st = lora__error(LORA_ERR_IO, "%s: neither %s nor %s exists", dir, single, index);
    }
    free(single);
    free(index);
    lora__manifest_free(m);
    return st;
}

lora_status lora__st_set_open(const char *dir, lora_st_set **out)
{
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__st_set_open: out is NULL");
    *out = NULL;
    if (!dir)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__st_set_open: dir is NULL");
    lora_st_set *s = lora__calloc(1, sizeof *s);
    if (!s)
        return lora__oom("checkpoint", sizeof *s);
    lora_status st = open_folder(s, dir);
    if (!st)
        st = index_tensors(s);
    if (st) {
        lora__st_set_close(s);
        return st;
    }
    *out = s;
    return LORA_OK;
}

void lora__st_set_close(lora_st_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_files; i++)
        lora__st_close(s->files[i]);
    free(s->files);
    free(s->entries);
    free(s->by_name);
    free(s);
}

size_t lora__st_set_count(const lora_st_set *s) { return s ? s->n : 0; }

const lora_st_tensor *lora__st_set_at(const lora_st_set *s, size_t i)
{
    return s && i < s->n ? s->entries[i].t : NULL;
}

static const set_entry *find_entry(const lora_st_set *s, const char *name)
{
    if (!s || !name)
        return NULL;
    lora_st_tensor t = {.name = name};
    set_entry key = {.t = &t};
    const set_entry *kp = &key;
    const set_entry *const *hit = bsearch(&kp, s->by_name, s->n, sizeof *s->by_name,
                                          cmp_entry_name);
    return hit ? *hit : NULL;
}

const lora_st_tensor *lora__st_set_find(const lora_st_set *s, const char *name)
{
    const set_entry *e = find_entry(s, name);
    return e ? e->t : NULL;
}

const char *lora__st_set_file_of(const lora_st_set *s, const char *name)
{
    const set_entry *e = find_entry(s, name);
    return e ? lora__st_path(s->files[e->file]) : NULL;
}
