/* Atomic writes: everything goes to a temporary file beside the destination, which is fsynced
 * and renamed over it, so a crash or an error never leaves a half-written checkpoint. */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/error.h"
#include "util/alloc.h"
#include "util/json_text.h"
#include "util/sysio.h"

/* Coalesces the many small tensors (norms, biases) into few write(2) calls. */
#define WRITE_BUF_SIZE (1u << 20)

struct lora_st_writer {
    int fd;
    char *tmp;
    char *path;
    size_t n;
    char **names;           /* for the commit message */
    uint64_t *ends;         /* end offset of each tensor in the data section */
    uint64_t total;         /* data bytes declared */
    uint64_t written;       /* data bytes accepted so far */
    lora_status failed;     /* a write error poisons the writer */
    uint8_t *buf;
    size_t buf_len;
};

/* mkstemp creates mode 0600; a checkpoint should get what open(2) would give (0666 less the
 * umask), and umask(2) cannot be read without setting it, which races other threads. */
static mode_t new_file_mode(void)
{
    unsigned mask = 077;
    char line[128];
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return 0666 & ~mask;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", &mask) == 1)
            break;
    fclose(f);
    return 0666 & ~(mode_t)mask;
}

static lora_status temp_create(const char *path, char **tmp_out, int *fd_out)
{
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    char *tmp;
    if (path[dirlen] == '\0')
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: path names a folder, not a file",
                           path);
    if (lora__asprintf(&tmp, "%.*s.%s.tmp.XXXXXX", (int)dirlen, path, path + dirlen) < 0)
        return lora__oom("temporary file name", strlen(path) + 16);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        lora_status st = lora__error(LORA_ERR_IO, "%s: cannot create a temporary file in its "
                                     "folder: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    if (fchmod(fd, new_file_mode()) != 0) {
        lora_status st = lora__error(LORA_ERR_IO, "%s: cannot set the mode of %s: %s", path,
                                     tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return st;
    }
    *tmp_out = tmp;
    *fd_out = fd;
    return LORA_OK;
}

static lora_status write_all(int fd, const char *path, const void *data, size_t nbytes)
{
    const uint8_t *p = data;
    while (nbytes > 0) {
        ssize_t r = lora__sys_write(fd, p, nbytes);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return lora__error(LORA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        p += r;
        nbytes -= (size_t)r;
    }
    return LORA_OK;
}

/* The rename is only durable once the folder's entry is on disk too. */
static lora_status sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? lora__strndup(path, slash == path ? 1 : (size_t)(slash - path))
                      : lora__strdup(".");
    if (!dir)
        return lora__oom("folder name", strlen(path) + 1);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    lora_status st = LORA_OK;
    if (fd < 0 || lora__sys_fsync(fd) != 0)
        st = lora__error(LORA_ERR_IO, "%s: cannot sync folder %s: %s", path, dir,
                         strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return st;
}

/* Closes fd. A failure up to the rename removes tmp and leaves path untouched; after the
 * rename only the folder sync can fail, and that is still reported. */
static lora_status temp_finish(int fd, const char *tmp, const char *path)
{
    lora_status st = LORA_OK;
    if (lora__sys_fsync(fd) != 0)
        st = lora__error(LORA_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && !st)
        st = lora__error(LORA_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (!st && lora__sys_rename(tmp, path) != 0)
        st = lora__error(LORA_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp,
                         strerror(errno));
    if (st) {
        unlink(tmp);
        return st;
    }
    return sync_dir(path);
}

lora_status lora__write_file_atomic(const char *path, const void *data, size_t nbytes)
{
    if (!path || (!data && nbytes))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__write_file_atomic: NULL %s",
                           path ? "data" : "path");
    char *tmp;
    int fd;
    lora_status st = temp_create(path, &tmp, &fd);
    if (st)
        return st;
    if ((st = write_all(fd, path, data, nbytes))) {
        close(fd);
        unlink(tmp);
    } else {
        st = temp_finish(fd, tmp, path);
    }
    free(tmp);
    return st;
}

/* ---- safetensors writer ---------------------------------------------------------------------- */

static lora_status check_decl(const char *path, const lora_st_decl *d, size_t i, uint64_t *nbytes)
{
    size_t size = lora__st_dtype_size(d->dtype);
    uint64_t numel = 1;
    if (!d->name || strcmp(d->name, "__metadata__") == 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: tensor %zu has name %s", path, i,
                           d->name ? "'__metadata__', which is reserved" : "NULL");
    if (size == 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: tensor '%s': dtype %d is unknown",
                           path, d->name, (int)d->dtype);
    if (d->ndim < 0 || d->ndim > LORA_ST_MAX_DIMS)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: tensor '%s': ndim %d is outside 0..%d",
                           path, d->name, d->ndim, LORA_ST_MAX_DIMS);
    for (int k = 0; k < d->ndim; k++) {
        if (d->shape[k] < 0)
            return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: tensor '%s': dim %d is %" PRId64,
                               path, d->name, k, d->shape[k]);
        if (__builtin_mul_overflow(numel, (uint64_t)d->shape[k], &numel))
            return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: tensor '%s': shape product "
                               "overflows 64 bits", path, d->name);
    }
    if (__builtin_mul_overflow(numel, size, nbytes))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: tensor '%s': byte size overflows 64 "
                           "bits", path, d->name);
    return LORA_OK;
}

/* NULL only when out of memory. */
static json_t *tensor_json(const lora_st_decl *d, uint64_t begin, uint64_t end)
{
    json_t *shape = json_array();
    if (!shape)
        return NULL;
    for (int k = 0; k < d->ndim; k++)
        if (json_array_append_new(shape, json_integer(d->shape[k])) != 0) {
            json_decref(shape);
            return NULL;
        }
    /* "o" takes the reference to shape, also when packing fails. */
    return json_pack("{s:s, s:o, s:[I, I]}", "dtype", lora__st_dtype_name(d->dtype), "shape",
                     shape, "data_offsets", (json_int_t)begin, (json_int_t)end);
}

static lora_status add_metadata(const char *path, json_t *hdr, const char *metadata_json)
{
    json_error_t err;
    json_t *meta = lora__json_loads(metadata_json, JSON_REJECT_DUPLICATES, &err);
    const char *key;
    json_t *v;
    if (!json_is_object(meta)) {
        json_decref(meta);
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: metadata is not a JSON object%s%s",
                           path, meta ? "" : ": ", meta ? "" : err.text);
    }
    json_object_foreach(meta, key, v)
        if (!json_is_string(v)) {
            /* key lives in meta: report before letting go of it. */
            lora_status st = lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: metadata key '%s' is "
                                         "not a string", path, key);
            json_decref(meta);
            return st;
        }
    if (json_object_set_new(hdr, "__metadata__", meta) != 0)
        return lora__oom("safetensors metadata", 64);
    return LORA_OK;
}

/* Validates the declarations, fills w->names and w->ends, and returns the header JSON. */
static lora_status build_header(lora_st_writer *w, const lora_st_decl *decls,
                                const char *metadata_json, json_t **out)
{
    json_t *hdr = json_object();
    lora_status st = LORA_OK;
    if (!hdr)
        return lora__oom("safetensors header", 0);
    if (metadata_json)
        st = add_metadata(w->path, hdr, metadata_json);
    for (size_t i = 0; !st && i < w->n; i++) {
        const lora_st_decl *d = &decls[i];
        uint64_t nbytes = 0;
        json_t *t;
        if ((st = check_decl(w->path, d, i, &nbytes)))
            break;
        if (json_object_get(hdr, d->name))
            st = lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: tensor '%s' is declared twice",
                             w->path, d->name);
        else if (__builtin_add_overflow(w->total, nbytes, &w->ends[i]) || w->ends[i] > INT64_MAX)
            st = lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: tensor '%s': total data size "
                             "overflows", w->path, d->name);
        else if (!(w->names[i] = lora__strdup(d->name)) ||
                 !(t = tensor_json(d, w->total, w->ends[i])))
            st = lora__oom("safetensors header entry", strlen(d->name));
        else if (json_object_set_new(hdr, d->name, t) != 0)
            st = lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: tensor name '%s' is not valid "
                             "UTF-8", w->path, d->name);
        else
            w->total = w->ends[i];
    }
    if (st) {
        json_decref(hdr);
        return st;
    }
    *out = hdr;
    return LORA_OK;
}

static lora_status flush_buf(lora_st_writer *w)
{
    lora_status st = write_all(w->fd, w->path, w->buf, w->buf_len);
    w->buf_len = 0;
    if (st)
        w->failed = st;
    return st;
}

static lora_status put(lora_st_writer *w, const void *data, size_t nbytes)
{
    if (w->buf_len + nbytes > WRITE_BUF_SIZE && w->buf_len > 0) {
        lora_status st = flush_buf(w);
        if (st)
            return st;
    }
    if (nbytes >= WRITE_BUF_SIZE) {
        lora_status st = write_all(w->fd, w->path, data, nbytes);
        if (st)
            w->failed = st;
        return st;
    }
    memcpy(w->buf + w->buf_len, data, nbytes);
    w->buf_len += nbytes;
    return LORA_OK;
}

/* The 8-byte length, then the JSON padded with spaces so the data section starts 8-aligned. */
static lora_status put_header(lora_st_writer *w, const json_t *hdr)
{
    char *text = lora__json_dumps(hdr, JSON_COMPACT);
    if (!text)
        return lora__oom("safetensors header text", 0);
    size_t len = strlen(text);
    uint64_t padded = (len + 7) & ~(uint64_t)7;
    uint8_t prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (uint8_t)(padded >> (8 * i));
    lora_status st = put(w, prefix, 8);
    if (!st)
        st = put(w, text, len);
    if (!st)
        st = put(w, "        ", (size_t)(padded - len));
    free(text);
    return st;
}

static lora_status writer_alloc(const char *path, size_t n, lora_st_writer **out)
{
    lora_st_writer *w = lora__calloc(1, sizeof *w);
    if (!w)
        return lora__oom("safetensors writer", sizeof *w);
    /* From here the caller frees w with lora__st_writer_abort, also on failure. */
    w->fd = -1;
    w->n = n;
    w->path = lora__strdup(path);
    w->names = lora__calloc(n ? n : 1, sizeof *w->names);
    w->ends = lora__calloc(n ? n : 1, sizeof *w->ends);
    w->buf = lora__malloc(WRITE_BUF_SIZE);
    *out = w;
    if (!w->path || !w->names || !w->ends || !w->buf)
        return lora__oom("safetensors writer", WRITE_BUF_SIZE + n * 16);
    return LORA_OK;
}

lora_status lora__st_writer_begin(const char *path, const lora_st_decl *decls, size_t n,
                                  const char *metadata_json, lora_st_writer **out)
{
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__st_writer_begin: out is NULL");
    *out = NULL;
    if (!path || (!decls && n))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__st_writer_begin: NULL %s",
                           path ? "decls" : "path");
    lora_st_writer *w = NULL;
    json_t *hdr = NULL;
    lora_status st = writer_alloc(path, n, &w);
    if (!st)
        st = build_header(w, decls, metadata_json, &hdr);
    if (!st)
        st = temp_create(path, &w->tmp, &w->fd);
    if (!st)
        st = put_header(w, hdr);
    json_decref(hdr);
    if (st) {
        lora__st_writer_abort(w);
        return st;
    }
    *out = w;
    return LORA_OK;
}

lora_status lora__st_writer_write(lora_st_writer *w, const void *data, size_t nbytes)
{
    if (!w || (!data && nbytes))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__st_writer_write: NULL %s",
                           w ? "data" : "writer");
    if (w->failed)
        return lora__error(w->failed, "%s: an earlier write failed", w->path);
    if (nbytes > w->total - w->written)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: writing %zu more bytes would exceed "
                           "the %" PRIu64 " declared data bytes (%" PRIu64 " written)", w->path,
                           nbytes, w->total, w->written);
    lora_status st = put(w, data, nbytes);
    if (!st)
        w->written += nbytes;
    return st;
}

/* Names the first tensor the stream stopped inside, for the short-write message. */
static lora_status short_write(const lora_st_writer *w)
{
    size_t i = 0;
    while (w->ends[i] <= w->written)
        i++;
    uint64_t begin = i ? w->ends[i - 1] : 0;
    return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: only %" PRIu64 " of %" PRIu64 " data "
                       "bytes written; tensor '%s' got %" PRIu64 " of its %" PRIu64, w->path,
                       w->written, w->total, w->names[i], w->written - begin,
                       w->ends[i] - begin);
}

lora_status lora__st_writer_commit(lora_st_writer *w)
{
    if (!w)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__st_writer_commit: writer is NULL");
    lora_status st = LORA_OK;
    if (w->failed)
        st = lora__error(w->failed, "%s: an earlier write failed", w->path);
    else if (w->written != w->total)
        st = short_write(w);
    else if (!(st = flush_buf(w))) {
        st = temp_finish(w->fd, w->tmp, w->path);
        w->fd = -1;         /* closed, and the temporary file renamed or removed */
        free(w->tmp);
        w->tmp = NULL;
    }
    lora__st_writer_abort(w);
    return st;
}

void lora__st_writer_abort(lora_st_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp)
        unlink(w->tmp);
    for (size_t i = 0; w->names && i < w->n; i++)
        free(w->names[i]);
    free(w->names);
    free(w->ends);
    free(w->buf);
    free(w->tmp);
    free(w->path);
    free(w);
}
