/* Training checkpoints: the trained weights, the optimizer state and the trainer's counters in
 * one folder, staged under DIR.tmp and swapped in by rename so that DIR is always whole. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/error.h"
#include "api/handle.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "train/trainer.h"
#include "util/file.h"

#define STATE_FORMAT "liblora-checkpoint"
#define MAX_STATE_BYTES (1u << 20)

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a folder this file wrote (or nothing, if it does not exist). */
static lora_status remove_tree(const char *dir)
{
    if (!lora__is_dir(dir))
        return LORA_OK;
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return lora__error(LORA_ERR_IO, "%s: could not remove: %s", dir, strerror(errno));
    return LORA_OK;
}

static char *sub(const char *dir, const char *fmt, size_t i)
{
    char name[64];
    snprintf(name, sizeof name, fmt, i);
    return lora__path_join(dir, name);
}

static lora_status write_state(const lora_optimizer *o, const char *dir, uint64_t data_position)
{
    json_t *j = json_pack("{s:s, s:i, s:I, s:I, s:I, s:s, s:I, s:I}", "format", STATE_FORMAT,
                          "format_version", 1, "step",
                          (json_int_t)lora__optim_step_count(o->optim), "tokens",
                          (json_int_t)o->tokens, "data_position", (json_int_t)data_position,
                          "train", o->full ? "full" : "adapters", "adapters",
                          (json_int_t)o->n_adapters, "micro_batches",
                          (json_int_t)o->micro_total);
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    char *path = lora__path_join(dir, "trainer_state.json");
    lora_status st = text && path ? lora__write_file_atomic(path, text, strlen(text))
                                  : lora__oom("trainer state", 1024);
    free(text);
    free(path);
    return st;
}

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
    if (!st) {
        char *p = lora__path_join(dir, "optimizer.safetensors");
        st = p ? lora__optim_save(o->optim, p) : lora__oom("path", 64);
        free(p);
    }
    return st ? st : write_state(o, dir, data_position);
}

static void sync_parent(const char *dir)
{
    char *copy = strdup(dir);
    if (!copy)
        return;
    char *slash = strrchr(copy, '/');
    const char *parent = slash ? (slash == copy ? "/" : (*slash = '\0', copy)) : ".";
    int fd = open(parent, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

/* DIR.tmp is filled, then DIR (if any) moves to DIR.old, DIR.tmp to DIR, and DIR.old goes. */
static lora_status save(const lora_optimizer *o, const char *dir, uint64_t data_position)
{
    size_t len = strlen(dir);
    char *tmp = malloc(len + 8), *old = malloc(len + 8);
    lora_status st = tmp && old ? LORA_OK : lora__oom("path", 2 * len + 16);
    if (!st) {
        sprintf(tmp, "%s.tmp", dir);
        sprintf(old, "%s.old", dir);
        if (!(st = remove_tree(tmp)) && !(st = remove_tree(old)) &&
            !(st = write_all(o, tmp, data_position))) {
            if (lora__is_dir(dir) && rename(dir, old) != 0)
                st = lora__error(LORA_ERR_IO, "%s: %s", dir, strerror(errno));
            else if (rename(tmp, dir) != 0)
                st = lora__error(LORA_ERR_IO, "%s: %s", dir, strerror(errno));
            else {
                sync_parent(dir);
                st = remove_tree(old);
            }
        } else
            remove_tree(tmp);
    }
    free(tmp);
    free(old);
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

static lora_status read_state(const char *dir, const lora_optimizer *o, loaded *l)
{
    char *path = lora__path_join(dir, "trainer_state.json"), *text = NULL;
    if (!path)
        return lora__oom("path", strlen(dir) + 32);
    lora_status st = lora__read_file(path, MAX_STATE_BYTES, &text, NULL);
    json_t *j = st ? NULL : json_loads(text, JSON_REJECT_DUPLICATES, NULL);
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

static lora_status load(lora_optimizer *o, const char *dir, uint64_t *data_position)
{
    loaded l = {0};
    char *opt = lora__path_join(dir, "optimizer.safetensors");
    lora_status st = opt ? LORA_OK : lora__oom("path", strlen(dir) + 32);
    /* every check first; lora__optim_load changes nothing unless it succeeds */
    if (!st && !(st = read_state(dir, o, &l)) && !(st = read_weights(dir, o, &l)) &&
        !(st = lora__optim_load(o->optim, opt))) {
        for (size_t i = 0; i < o->n_adapters; i++)
            memcpy(o->adapters[i]->arena, l.adapters[i]->arena,
                   o->adapters[i]->arena_floats * sizeof(float));
        if (o->full)
            memcpy(o->s->model->arena, l.model->arena, l.model->arena_floats * sizeof(float));
        o->tokens = l.tokens;
        o->micro_total = l.micro_total;
        o->micro = 0;
        if (data_position)
            *data_position = l.data_position;
    }
    for (size_t i = 0; i < o->n_adapters; i++)
        lora_adapter_free(l.adapters[i]);
    lora_model_free(l.model);
    free(opt);
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
