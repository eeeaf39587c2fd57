#include "model/checkpoint.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/error.h"
#include "io/manifest.h"
#include "io/safetensors.h"
#include "model/dtype.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/json_text.h"

lora_status lora__write_hf_config(const char *path, const char *config_json, int bf16)
{
    json_t *o = lora__json_loads(config_json, 0, NULL);
    if (!o)
        return lora__oom("config", strlen(config_json));
    char *text = json_object_set_new(o, "torch_dtype", json_string(bf16 ? "bfloat16" : "float32"))
                     ? NULL : lora__json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return lora__oom("config", strlen(config_json));
    lora_status st = lora__write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

lora_status lora__make_dir(const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return lora__error(LORA_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!lora__is_dir(dir))
        return lora__error(LORA_ERR_IO, "%s: not a folder", dir);
    return LORA_OK;
}

#define CHUNK 65536 /* elements converted per write */

typedef struct chunk_buf {
    float vals[CHUNK];
    uint16_t halves[CHUNK];
} chunk_buf;

static lora_status write_slot(lora_st_writer *w, chunk_buf *buf, const lora_weight_slot *s,
                              int bf16, lora_fill_fn fill, void *ctx)
{
    size_t numel = (size_t)s->shape[0] * (size_t)(s->ndim == 2 ? s->shape[1] : 1);
    for (size_t done = 0; done < numel;) {
        size_t n = numel - done < CHUNK ? numel - done : CHUNK;
        fill(ctx, s, done, buf->vals, n);
        lora_status st;
        if (bf16) {
            for (size_t i = 0; i < n; i++)
                buf->halves[i] = lora__bf16_from_f32(buf->vals[i]);
            st = lora__st_writer_write(w, buf->halves, n * sizeof(uint16_t));
        } else
            st = lora__st_writer_write(w, buf->vals, n * sizeof(float));
        if (st)
            return st;
        done += n;
    }
    return LORA_OK;
}

lora_status lora__write_weights(const char *path, const lora_weight_slot *slots, size_t n,
                                int bf16, lora_fill_fn fill, void *ctx)
{
    lora_st_decl *decls = lora__calloc(n, sizeof *decls);
    chunk_buf *buf = lora__malloc(sizeof *buf);
    lora_st_writer *w = NULL;
    lora_status st = LORA_OK;
    if (!decls || !buf) {
        st = lora__oom("checkpoint writer", sizeof *buf + n * sizeof *decls);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        decls[i].name = slots[i].name;
        decls[i].dtype = bf16 ? LORA_ST_BF16 : LORA_ST_F32;
        decls[i].ndim = slots[i].ndim;
        memcpy(decls[i].shape, slots[i].shape, sizeof slots[i].shape);
    }
    if ((st = lora__st_writer_begin(path, decls, n, "{\"format\": \"pt\"}", &w)))
        goto done;
    for (size_t i = 0; i < n && !st; i++)
        st = write_slot(w, buf, &slots[i], bf16, fill, ctx);
    if (st)
        lora__st_writer_abort(w);
    else
        st = lora__st_writer_commit(w);
done:
    free(buf);
    free(decls);
    return st;
}

lora_status lora__write_hf_folder(const char *dir, const char *config_json,
                                  const lora_weight_slot *slots, size_t n, int bf16,
                                  lora_fill_fn fill, void *ctx)
{
    lora_txn *t;
    const char *weights, *cfg;
    lora_status st = lora__txn_begin(dir, &t);
    if (st)
        return st;
    if (!(st = lora__txn_file(t, "model.safetensors", &weights)) &&
        !(st = lora__txn_file(t, "config.json", &cfg)) &&
        !(st = lora__write_weights(weights, slots, n, bf16, fill, ctx)) &&
        !(st = lora__write_hf_config(cfg, config_json, bf16)))
        return lora__txn_commit(t);
    lora__txn_abort(t);
    return st;
}
