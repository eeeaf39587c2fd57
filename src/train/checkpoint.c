/* Training checkpoints: the trained weights, the optimizer state and the trainer's counters in
 * one folder, staged whole under DIR.tmp and swapped in by one atomic exchange of the two names,
 * so that DIR is always a complete checkpoint, the previous one or the new one. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/error.h"
#include "io/manifest.h"
#include "api/handle.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "train/trainer.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/json_text.h"
#include "util/sysio.h"

#define STATE_FORMAT "liblora-checkpoint"
#define MAX_STATE_BYTES (1u << 20)

static char *sub(const char *dir, const char *fmt, size_t i)
{
    char name[64];
    snprintf(name, sizeof name, fmt, i);
    return lora__path_join(dir, name);
}

static lora_status write_state(const lora_optimizer *o, const char *path, uint64_t data_position)
{
    json_t *j = json_pack("{s:s, s:i, s:I, s:I, s:I, s:s, s:I, s:I}", "format", STATE_FORMAT,
                          "format_version", 1, "step",
                          (json_int_t)lora__optim_step_count(o->optim), "tokens",
                          (json_int_t)o->tokens, "data_position", (json_int_t)data_position,
                          "train", o->full ? "full" : "adapters", "adapters",
                          (json_int_t)o->n_adapters, "micro_batches",
                          (json_int_t)o->micro_total);
    char *text = j ? lora__json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    lora_status st = text ? lora__write_file_atomic(path, text, strlen(text))
                          : lora__oom("trainer state", 1024);
    free(text);
    return st;
}

/* The weights as their own folders, then optimizer.safetensors and trainer_state.json under
 * the checkpoint's manifest. */
static lora_status write_all(const lora_optimizer *o, const char *dir, uint64_t data_position)
{
    lora_status st = lora__make_dir(dir);
    for (size_t i = 0; !st && i < o->n_adapters; i++) {
        char *p = sub(dir, "adapter_%zu", i);
        st = p ? lora_adapter_save(o->adapters[i], p) : lora__oom("path", 64);
        free(p);
    }
    if (!st && o->full) {
        char *p = lora__path_join(dir, "model");
        st = p ? lora_model_save(o->s->model, p, "f32") : lora__oom("path", 64);
        free(p);
    }
    lora_txn *t = NULL;
    const char *opt, *state;
    if (!st && !(st = lora__txn_begin(dir, &t)) &&
        !(st = lora__txn_file(t, "optimizer.safetensors", &opt)) &&
        !(st = lora__txn_file(t, "trainer_state.json", &state)) &&
        !(st = lora__optim_save(o->optim, opt)) && !(st = write_state(o, state, data_position)))
        return lora__txn_commit(t);
    lora__txn_abort(t);
    return st;
}

static lora_status rename_error(const char *from, const char *to)
{
    return lora__error(LORA_ERR_IO, "cannot rename %s to %s: %s", from, to, strerror(errno));
}

/* DIR.tmp becomes DIR. Where the file system cannot exchange two names (NFS, some FUSE), DIR
 * first moves to DIR.old: a crash between the two renames leaves no DIR, and loading and the
 * next save both take DIR.old for it. */
static lora_status swap_in(const char *tmp, const char *dir, const char *old)
{
    if (!lora__is_dir(dir))
        return lora__sys_rename(tmp, dir) == 0 ? LORA_OK : rename_error(tmp, dir);
    if (lora__sys_exchange(tmp, dir) == 0)
        return LORA_OK;     /* tmp now holds the previous checkpoint */
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
        return rename_error(tmp, dir);
    if (lora__sys_rename(dir, old) != 0)
        return rename_error(dir, old);
    if (lora__sys_rename(tmp, dir) == 0)
        return LORA_OK;
    lora_status st = rename_error(tmp, dir);
    rename(old, dir);       /* DIR goes back where it was */
    return st;
}

/* "run/ckpt/" is the folder "run/ckpt", whose siblings are "run/ckpt.tmp" and "run/ckpt.old". */
static char *folder_name(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return lora__strndup(dir, n);
}

static char *parent_of(const char *dir)
{
    const char *slash = strrchr(dir, '/');
    return slash ? lora__strndup(dir, slash == dir ? 1 : (size_t)(slash - dir))
                 : lora__strdup(".");
}

static lora_status save(const lora_optimizer *o, const char *path, uint64_t data_position)
{
    size_t len = strlen(path);
    char *dir = folder_name(path), *tmp = lora__malloc(len + 8), *old = lora__malloc(len + 8);
    char *parent = dir ? parent_of(dir) : NULL;
    lora_status st = dir && tmp && old && parent ? LORA_OK : lora__oom("path", 4 * len + 16);
    if (!st) {
        sprintf(tmp, "%s.tmp", dir);
        sprintf(old, "%s.old", dir);
        /* a crash in the fallback of swap_in left the previous checkpoint as DIR.old */
        if (!lora__is_dir(dir) && lora__is_dir(old) && lora__sys_rename(old, dir) != 0)
            st = rename_error(old, dir);
    }
    if (!st && !(st = lora__remove_tree(tmp)) && !(st = lora__remove_tree(old)) &&
        !(st = write_all(o, tmp, data_position)) && !(st = lora__sync_dir(parent)) &&
        !(st = swap_in(tmp, dir, old)) && !(st = lora__sync_dir(parent))) {
        /* what is left is the previous checkpoint, under DIR.tmp or DIR.old */
        if (!(st = lora__remove_tree(tmp)))
            st = lora__remove_tree(old);
    } else if (tmp)
        lora__remove_tree(tmp);
    free(tmp);
    free(old);
    free(parent);
    free(dir);
    return st;
}

LORA_API lora_status lora_optimizer_save_checkpoint(lora_optimizer *o, const char *dir,
                                                    uint64_t data_position)
{
    lora__error_clear();
    static const char fn[] = "lora_optimizer_save_checkpoint";
    lora_status st = lora__handle_check(o, LORA__KIND_OPTIMIZER, fn, "optimizer");
    if (st)
        return st;
    if (!dir)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: dir is NULL", fn);
    if (o->micro)
        return lora__error(LORA_ERR_STATE, "%s: %lld micro-batches are accumulated; save at an "
                           "update boundary", fn, (long long)o->micro);
    st = save(o, dir, data_position);
    return st ? lora__error_prefix(st, "%s", fn) : LORA_OK;
}

/* ---- loading --------------------------------------------------------------------------------- */

typedef struct loaded {
    uint64_t tokens, data_position, micro_total;
    lora_adapter *adapters[LORA_MAX_ADAPTERS];
    lora_model *model;
} loaded;

static lora_status read_state(const char *dir, const lora_manifest *m, const lora_optimizer *o,
                              loaded *l)
{
    char *path, *text = NULL;
    lora_status st = lora__manifest_resolve(m, dir, "trainer_state.json", &path);
    if (st)
        return st;
    st = lora__read_file(path, MAX_STATE_BYTES, &text, NULL);
    json_t *j = st ? NULL : lora__json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    json_int_t step = -1, tokens = -1, pos = -1, n = -1, micro = -1;
    const char *format = "", *train = "";
    if (!st && (!j || json_unpack(j, "{s:s, s:I, s:I, s:I, s:s, s:I, s:I}", "format", &format,
                                  "step", &step, "tokens", &tokens, "data_position", &pos,
                                  "train", &train, "adapters", &n, "micro_batches", &micro) != 0 ||
                strcmp(format, STATE_FORMAT) != 0 || step < 0 || tokens < 0 || n < 0 ||
                micro < 0))
        st = lora__error(LORA_ERR_FORMAT, "%s: not a liblora trainer state", path);
    else if (!st && (strcmp(train, o->full ? "full" : "adapters") != 0 ||
                     (size_t)n != o->n_adapters))
        st = lora__error(LORA_ERR_CONFIG, "%s: the checkpoint trained %s (%lld adapters), this "
                         "optimizer trains %s (%zu)", path, train, (long long)n,
                         o->full ? "full" : "adapters", o->n_adapters);
    if (!st) {
        l->tokens = (uint64_t)tokens;
        l->micro_total = (uint64_t)micro;
        l->data_position = (uint64_t)pos;
    }
    json_decref(j);
    free(text);
    free(path);
    return st;
}

static bool same_layout(const lora_adapter *a, const lora_adapter *b)
{
    if (a->n_mods != b->n_mods || a->arena_floats != b->arena_floats)
        return false;
    for (size_t k = 0; k < a->n_mods; k++) {
        const lora_adapter_module *x = &a->mods[k], *y = &b->mods[k];
        if (x->layer != y->layer || x->proj != y->proj || x->r != y->r || x->in != y->in ||
            x->out != y->out || x->scaling != y->scaling || x->A - a->arena != y->A - b->arena ||
            x->B - a->arena != y->B - b->arena)
            return false;
    }
    return true;
}

static lora_status read_weights(const char *dir, const lora_optimizer *o, loaded *l)
{
    lora_status st = LORA_OK;
    for (size_t i = 0; !st && i < o->n_adapters; i++) {
        char *p = sub(dir, "adapter_%zu", i);
        st = p ? lora_adapter_load(o->s->model, p, &l->adapters[i]) : lora__oom("path", 64);
        if (!st && !same_layout(l->adapters[i], o->adapters[i]))
            st = lora__error(LORA_ERR_SHAPE, "%s: its modules, ranks or scalings differ from "
                             "the adapter being trained", p);
        free(p);
    }
    if (!st && o->full) {
        char *p = lora__path_join(dir, "model");
        st = p ? lora_model_load(p, "{\"threads\": 1}", &l->model) : lora__oom("path", 64);
        if (!st && l->model->arena_floats != o->s->model->arena_floats)
            st = lora__error(LORA_ERR_SHAPE, "%s: the weights differ in size from the model being "
                             "trained", p);
        free(p);
    }
    return st;
}

static lora_status load(lora_optimizer *o, const char *path, uint64_t *data_position)
{
    loaded l = {0};
    char *old = NULL, *opt = NULL;
    const char *dir = path;
    lora_manifest *m = NULL;
    lora_status st = LORA_OK;
    /* see swap_in: a crash between its two renames leaves the checkpoint as DIR.old */
    if (!lora__is_dir(path)) {
        char *name = folder_name(path);
        if (!name || lora__asprintf(&old, "%s.old", name) < 0) {
            old = NULL;
            st = lora__oom("path", strlen(path) + 8);
        } else if (lora__is_dir(old))
            dir = old;
        free(name);
    }
    if (!st && !(st = lora__manifest_load(dir, &m)))
        st = lora__manifest_resolve(m, dir, "optimizer.safetensors", &opt);
    /* every check first; lora__optim_load changes nothing unless it succeeds */
    if (!st && !(st = read_state(dir, m, o, &l)) && !(st = read_weights(dir, o, &l)) &&
        !(st = lora__optim_load(o->optim, opt))) {
        for (size_t i = 0; i < o->n_adapters && !st; i++) {
            memcpy(o->adapters[i]->arena, l.adapters[i]->arena,
                   o->adapters[i]->arena_floats * sizeof(float));
            st = lora__adapter_upload(o->adapters[i]);
        }
        if (o->full) {
            /* the checkpoint's weights replace the host arena and every device copy */
            memcpy(o->s->model->arena, l.model->arena, l.model->arena_floats * sizeof(float));
            o->s->model->host_stale = false;
            st = lora__model_upload(o->s->model);
        }
        o->tokens = l.tokens;
        o->micro_total = l.micro_total;
        o->micro = 0;
        if (data_position)
            *data_position = l.data_position;
    }
    for (size_t i = 0; i < o->n_adapters; i++)
        lora_adapter_free(l.adapters[i]);
    lora_model_free(l.model);
    lora__manifest_free(m);
    free(opt);
    free(old);
    return st;
}

LORA_API lora_status lora_optimizer_load_checkpoint(lora_optimizer *o, const char *dir,
                                                    uint64_t *data_position)
{
    lora__error_clear();
    static const char fn[] = "lora_optimizer_load_checkpoint";
    lora_status st = lora__handle_check(o, LORA__KIND_OPTIMIZER, fn, "optimizer");
    if (st)
        return st;
    if (!dir)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: dir is NULL", fn);
    st = load(o, dir, data_position);
    return st ? lora__error_prefix(st, "%s", fn) : LORA_OK;
}
