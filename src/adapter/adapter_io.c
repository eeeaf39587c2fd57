/* PEFT adapter folders: adapter_config.json and adapter_model.safetensors, read with every tensor
 * checked against the config and the model (and both files against liblora_manifest.json when
 * liblora saved them), written as F32 by a folder transaction (io/manifest.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/adapter.h"
#include "api/error.h"
#include "io/manifest.h"
#include "api/handle.h"
#include "io/safetensors.h"
#include "model/dtype.h"
#include "model/weights.h"
#include "util/alloc.h"
#include "util/file.h"

#define MAX_CONFIG_BYTES (16u << 20)
#define NAME_CAP 128

/* ---- load ----------------------------------------------------------------------------------- */

static lora_status read_spec(const char *dir, const lora_manifest *m, const lora_config *c,
                             lora_adapter_spec *s)
{
    char *path;
    lora_status st = lora__manifest_resolve(m, dir, "adapter_config.json", &path);
    if (st)
        return st;
    char *text = NULL;
    size_t len;
    if (!lora__is_file(path))
        st = lora__error(LORA_ERR_IO, "%s: adapter_config.json is missing", dir);
    else if (!(st = lora__read_file(path, MAX_CONFIG_BYTES, &text, &len))) {
        if (strlen(text) != len)
            st = lora__error(LORA_ERR_FORMAT, "%s: contains a NUL byte", path);
        else if ((st = lora__adapter_spec_parse(text, c, LORA_ERR_FORMAT, s)))
            lora__error_prefix(st, "%s", path);
    }
    free(text);
    free(path);
    return st;
}

static lora_status open_weights(const char *dir, const lora_manifest *m, lora_st_file **f)
{
    char *path, *bin;
    lora_status st = lora__manifest_resolve(m, dir, "adapter_model.safetensors", &path);
    if (st)
        return st;
    if (!(bin = lora__path_join(dir, "adapter_model.bin")))
        st = lora__oom("path", strlen(dir) + 32);
    else if (lora__is_file(path))
        st = lora__st_open(path, f);
    else if (lora__is_file(bin))
        st = lora__error(LORA_ERR_UNSUPPORTED,
                         "%s: only adapter_model.bin is present; pickled PyTorch files are not "
                         "read (convert it to adapter_model.safetensors, e.g. with PEFT's "
                         "save_pretrained(safe_serialization=True))", dir);
    else
        st = lora__error(LORA_ERR_IO, "%s: adapter_model.safetensors is missing", dir);
    free(path);
    free(bin);
    return st;
}

/* The tensor called name, with its shape and dtype checked (its data stay in the file). */
static lora_status find_tensor(const lora_st_file *f, const char *name, int64_t rows,
                               int64_t cols, const lora_st_tensor **out)
{
    int64_t want[2] = {rows, cols};
    char ws[64], gs[64];
    const lora_st_tensor *t = lora__st_find(f, name);
    if (!t)
        return lora__error(LORA_ERR_SHAPE, "%s: tensor '%s' %s is missing", lora__st_path(f),
                           name, lora__shape_str(want, 2, ws, sizeof ws));
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return lora__error(LORA_ERR_SHAPE,
                           "%s: tensor '%s' has shape %s, adapter_config.json and the model "
                           "imply %s", lora__st_path(f), name,
                           lora__shape_str(t->shape, t->ndim, gs, sizeof gs),
                           lora__shape_str(want, 2, ws, sizeof ws));
    if (t->dtype != LORA_ST_F32 && t->dtype != LORA_ST_BF16 && t->dtype != LORA_ST_F16)
        return lora__error(LORA_ERR_UNSUPPORTED,
                           "%s: tensor '%s' has dtype %s; adapter weights must be F32, BF16 or "
                           "F16", lora__st_path(f), name, lora__st_dtype_name(t->dtype));
    *out = t;
    return LORA_OK;
}

static lora_status read_tensor(const lora_st_file *f, const char *name, int64_t rows,
                               int64_t cols, float *dst)
{
    const lora_st_tensor *t;
    lora_status st = find_tensor(f, name, rows, cols, &t);
    if (st)
        return st;
    size_t n = (size_t)(rows * cols);
    if (t->dtype == LORA_ST_F32)
        lora__f32_from_f32(dst, t->data, n);
    else if (t->dtype == LORA_ST_BF16)
        lora__f32_from_bf16(dst, t->data, n);
    else
        lora__f32_from_f16(dst, t->data, n);
    return LORA_OK;
}

/* Every tensor the spec implies is in the file, checked before the adapter is built: the arena
 * it allocates and zeroes is sized by adapter_config.json alone (r up to 65536), which a few
 * bytes of JSON could otherwise turn into gigabytes before the file is looked at. */
static lora_status check_tensors(const lora_adapter_spec *s, const lora_config *c,
                                 const lora_st_file *f)
{
    char name[NAME_CAP];
    const lora_st_tensor *t;
    lora_status st = LORA_OK;
    for (int64_t l = 0; l < c->n_layers && !st; l++)
        for (int p = 0; p < LORA_PROJ_COUNT && s->layer_on[l] && !st; p++) {
            if (!(s->targets & (1u << p)))
                continue;
            int64_t r, out, in;
            double alpha;
            lora__adapter_spec_module(s, l, (lora_proj)p, &r, &alpha);
            lora__proj_shape(c, (lora_proj)p, &out, &in);
            lora__adapter_tensor_name(l, (lora_proj)p, 'A', name, sizeof name);
            if (!(st = find_tensor(f, name, r, in, &t))) {
                lora__adapter_tensor_name(l, (lora_proj)p, 'B', name, sizeof name);
                st = find_tensor(f, name, out, r, &t);
            }
        }
    return st;
}

/* 1 if name is the lora_A / lora_B of a module the adapter has. */
static int expected(const lora_adapter *a, const char *name)
{
    static const char prefix[] = "base_model.model.model.layers.";
    if (strncmp(name, prefix, sizeof prefix - 1) != 0)
        return 0;
    const char *d = name + sizeof prefix - 1;
    char *end;
    if (*d < '0' || *d > '9')
        return 0;
    long long layer = strtoll(d, &end, 10);
    if (layer < 0 || layer >= a->model->cfg.n_layers)
        return 0;
    char buf[NAME_CAP];
    for (int p = 0; p < LORA_PROJ_COUNT; p++) {
        if (!lora__adapter_module(a, layer, (lora_proj)p))
            continue;
        for (int w = 0; w < 2; w++) {
            lora__adapter_tensor_name(layer, (lora_proj)p, w ? 'B' : 'A', buf, sizeof buf);
            if (strcmp(buf, name) == 0)
                return 1;
        }
    }
    return 0;
}

static lora_status refuse_extra(const lora_adapter *a, const lora_st_file *f)
{
    for (size_t i = 0; i < lora__st_count(f); i++) {
        const char *name = lora__st_at(f, i)->name;
        if (expected(a, name))
            continue;
        const char *hint = "";
        if (strstr(name, ".default."))
            hint = " (PEFT saves tensors without the adapter name, e.g. "
                   "'...q_proj.lora_A.weight'; only that form is read)";
        else if (strstr(name, "lora_magnitude_vector"))
            hint = " (a DoRA magnitude vector; DoRA is not supported)";
        return lora__error(LORA_ERR_SHAPE,
                           "%s: unexpected tensor '%.200s': not the lora_A or lora_B of a "
                           "module adapter_config.json targets%s", lora__st_path(f), name, hint);
    }
    return LORA_OK;
}

static lora_status read_weights(lora_adapter *a, const lora_st_file *f)
{
    char name[NAME_CAP];
    for (size_t i = 0; i < a->n_mods; i++) {
        lora_adapter_module *m = &a->mods[i];
        lora__adapter_tensor_name(m->layer, m->proj, 'A', name, sizeof name);
        lora_status st = read_tensor(f, name, m->r, m->in, m->A);
        if (st)
            return st;
        lora__adapter_tensor_name(m->layer, m->proj, 'B', name, sizeof name);
        if ((st = read_tensor(f, name, m->out, m->r, m->B)))
            return st;
    }
    return refuse_extra(a, f);
}

static lora_status load(lora_model *model, const char *dir, lora_adapter **out)
{
    if (!lora__is_dir(dir))
        return lora__error(LORA_ERR_IO, "%s: not a folder", dir);
    lora_manifest *m;
    lora_status st = lora__manifest_load(dir, &m);
    if (st)
        return st;
    lora_adapter_spec s;
    if ((st = read_spec(dir, m, &model->cfg, &s))) {
        lora__manifest_free(m);
        return st;
    }
    lora_st_file *f = NULL;
    lora_adapter *a = NULL;
    if (!(st = open_weights(dir, m, &f)) && !(st = check_tensors(&s, &model->cfg, f)) &&
        !(st = lora__adapter_build(model, &s, &a)) && !(st = read_weights(a, f)))
        st = lora__adapter_upload(a);
    lora__st_close(f);
    lora__adapter_spec_free(&s);
    lora__manifest_free(m);
    if (st) {
        lora__adapter_release(a);
        return st;
    }
    *out = a;
    return LORA_OK;
}

LORA_API lora_status lora_adapter_load(lora_model *model, const char *peft_dir,
                                       lora_adapter **out)
{
    lora__error_clear();
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_adapter_load: out is NULL");
    *out = NULL;
    lora_status st = lora__handle_check(model, LORA__KIND_MODEL, "lora_adapter_load", "model");
    if (st)
        return st;
    if (!peft_dir)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_adapter_load: peft_dir is NULL");
    st = load(model, peft_dir, out);
    return st ? lora__error_prefix(st, "lora_adapter_load") : LORA_OK;
}

/* ---- save ----------------------------------------------------------------------------------- */

typedef struct out_tensor {
    char name[NAME_CAP];
    const float *data;
    int64_t rows, cols;
} out_tensor;

static int cmp_tensor(const void *x, const void *y)
{
    return strcmp(((const out_tensor *)x)->name, ((const out_tensor *)y)->name);
}

/* Tensors in name order, as PEFT's safetensors files list them. */
static lora_status write_weights(const lora_adapter *a, const char *path)
{
    size_t n = 2 * a->n_mods;
    out_tensor *t = lora__calloc(n, sizeof *t);
    lora_st_decl *decls = lora__calloc(n, sizeof *decls);
    lora_status st = LORA_OK;
    if (!t || !decls) {
        st = lora__oom("adapter writer", n * (sizeof *t + sizeof *decls));
        goto done;
    }
    for (size_t i = 0; i < a->n_mods; i++) {
        const lora_adapter_module *m = &a->mods[i];
        out_tensor *ta = &t[2 * i], *tb = &t[2 * i + 1];
        lora__adapter_tensor_name(m->layer, m->proj, 'A', ta->name, sizeof ta->name);
        lora__adapter_tensor_name(m->layer, m->proj, 'B', tb->name, sizeof tb->name);
        ta->data = m->A, ta->rows = m->r, ta->cols = m->in;
        tb->data = m->B, tb->rows = m->out, tb->cols = m->r;
    }
    qsort(t, n, sizeof *t, cmp_tensor);
    for (size_t i = 0; i < n; i++) {
        decls[i].name = t[i].name;
        decls[i].dtype = LORA_ST_F32;
        decls[i].ndim = 2;
        decls[i].shape[0] = t[i].rows;
        decls[i].shape[1] = t[i].cols;
    }
    lora_st_writer *w;
    if ((st = lora__st_writer_begin(path, decls, n, "{\"format\": \"pt\"}", &w)))
        goto done;
    for (size_t i = 0; i < n && !st; i++)
        st = lora__st_writer_write(w, t[i].data, (size_t)(t[i].rows * t[i].cols) * sizeof(float));
    if (st)
        lora__st_writer_abort(w);
    else
        st = lora__st_writer_commit(w);
done:
    free(decls);
    free(t);
    return st;
}

static lora_status save(const lora_adapter *a, const char *dir)
{
    lora_txn *t;
    const char *weights, *cfg;
    lora_status st = lora__txn_begin(dir, &t);
    if (st)
        return st;
    if (!(st = lora__txn_file(t, "adapter_model.safetensors", &weights)) &&
        !(st = lora__txn_file(t, "adapter_config.json", &cfg)) &&
        !(st = write_weights(a, weights)) &&
        !(st = lora__write_file_atomic(cfg, a->config_json, strlen(a->config_json))))
        return lora__txn_commit(t);
    lora__txn_abort(t);
    return st;
}

LORA_API lora_status lora_adapter_save(const lora_adapter *adapter, const char *peft_dir)
{
    lora__error_clear();
    lora_status st = lora__handle_check(adapter, LORA__KIND_ADAPTER, "lora_adapter_save",
                                        "adapter");
    if (st)
        return st;
    if (!peft_dir)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_adapter_save: peft_dir is NULL");
    /* training on a GPU leaves the host copy behind; the handle's const is its public face */
    st = lora__adapter_host_sync((lora_adapter *)adapter);
    if (!st)
        st = save(adapter, peft_dir);
    return st ? lora__error_prefix(st, "lora_adapter_save") : LORA_OK;
}
