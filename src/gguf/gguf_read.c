/* GGUF reader: maps a file and validates the header, every metadata value and every tensor
 * info against the file's size before any of it is handed out. */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/error.h"
#include "util/alloc.h"

#define MAX_KEY 65535           /* bytes of a metadata key */
#define MAX_ALIGNMENT (1u << 20)

static const char *const vtype_names[LORA_GGUF_VTYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string",
    "array", "uint64", "int64", "float64",
};
static const uint8_t vtype_size[LORA_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

struct lora_gguf_file {
    char *path;
    void *map;
    size_t map_size;
    int borrowed;                   /* map is the caller's buffer: never unmapped */
    uint32_t version;
    size_t n_kv, n_tensors;
    lora_gguf_kv *kv;
    lora_gguf_tensor *tensors;      /* file order */
    const lora_gguf_kv **kv_by_key;
    const lora_gguf_tensor **t_by_name;
};

typedef struct cursor {
    const uint8_t *buf;
    size_t size, pos;
    const char *label;
} cursor;

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static lora_status truncated(const cursor *c, const char *what, uint64_t need)
{
    return lora__error(LORA_ERR_FORMAT, "%s: truncated at offset %zu: %s needs %" PRIu64
                       " bytes, %zu remain", c->label, c->pos, what, need, c->size - c->pos);
}

static lora_status take(cursor *c, uint64_t n, const char *what, const uint8_t **p)
{
    if (n > c->size - c->pos)
        return truncated(c, what, n);
    *p = c->buf + c->pos;
    c->pos += (size_t)n;
    return LORA_OK;
}

static lora_status read_uint(cursor *c, int bytes, const char *what, uint64_t *v)
{
    const uint8_t *p = NULL;
    lora_status st = take(c, (uint64_t)bytes, what, &p);
    if (!st)
        *v = le(p, bytes);
    return st;
}

static lora_status read_str(cursor *c, const char *what, lora_gguf_str *s)
{
    uint64_t len;
    const uint8_t *p = NULL;
    size_t at = c->pos;
    lora_status st = read_uint(c, 8, what, &len);
    if (st)
        return st;
    if (len > c->size - c->pos)
        return lora__error(LORA_ERR_FORMAT, "%s: %s at offset %zu has length %" PRIu64
                           ", past the end of the %zu-byte file", c->label, what, at, len,
                           c->size);
    take(c, len, what, &p);
    s->p = (const char *)p;
    s->len = len;
    return LORA_OK;
}

/* Keys and names are copied NUL-terminated; they must be non-empty and free of NUL bytes. */
static lora_status name_copy(const lora_gguf_file *f, const lora_gguf_str *s, uint64_t max,
                             const char *what, size_t at, const char **out)
{
    if (s->len == 0 || s->len > max || memchr(s->p, '\0', s->len))
        return lora__error(LORA_ERR_FORMAT, "%s: %s at offset %zu: %s", f->path, what, at,
                           s->len == 0 ? "empty" : s->len > max ? "too long" : "contains a NUL byte");
    char *d = lora__malloc(s->len + 1);
    if (!d)
        return lora__oom(what, s->len + 1);
    memcpy(d, s->p, s->len);
    d[s->len] = '\0';
    *out = d;
    return LORA_OK;
}

static lora_status check_vtype(const cursor *c, uint64_t t, const char *key, size_t at)
{
    if (t >= LORA_GGUF_VTYPE_COUNT)
        return lora__error(LORA_ERR_FORMAT, "%s: key '%s' at offset %zu: value type %" PRIu64
                           " is not a GGUF type", c->label, key, at, t);
    return LORA_OK;
}

/* The value of one key; c stands after its type. */
static lora_status read_value(cursor *c, lora_gguf_kv *kv)
{
    lora_status st;
    const uint8_t *p = NULL;
    if (kv->type == LORA_GGUF_STRING) {
        lora_gguf_str s;
        kv->data = c->buf + c->pos;
        return read_str(c, "string value", &s);
    }
    if (kv->type != LORA_GGUF_ARRAY) {
        kv->data = c->buf + c->pos;
        st = take(c, vtype_size[kv->type], "value", &p);
        if (!st && kv->type == LORA_GGUF_BOOL && *p > 1)
            st = lora__error(LORA_ERR_FORMAT, "%s: key '%s' at offset %zu: bool value %u is not "
                             "0 or 1", c->label, kv->key, c->pos - 1, *p);
        return st;
    }
    uint64_t et, n;
    size_t at = c->pos;
    if ((st = read_uint(c, 4, "array type", &et)) || (st = check_vtype(c, et, kv->key, at)) ||
        (st = read_uint(c, 8, "array length", &n)))
        return st;
    if (et == LORA_GGUF_ARRAY)
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key '%s' at offset %zu: arrays of arrays "
                           "are not supported", c->label, kv->key, at);
    kv->elem = (lora_gguf_vtype)et;
    kv->n = n;
    kv->data = c->buf + c->pos;
    size_t remain = c->size - c->pos;
    if (et != LORA_GGUF_STRING) {
        if (n > remain / vtype_size[et])
            return lora__error(LORA_ERR_FORMAT, "%s: key '%s' at offset %zu: %" PRIu64
                               " %s elements run past the end of the %zu-byte file", c->label,
                               kv->key, at, n, vtype_names[et], c->size);
        take(c, n * vtype_size[et], "array", &p);
        for (uint64_t i = 0; et == LORA_GGUF_BOOL && i < n; i++)
            if (p[i] > 1)
                return lora__error(LORA_ERR_FORMAT, "%s: key '%s' element %" PRIu64 ": bool "
                                   "value %u is not 0 or 1", c->label, kv->key, i, p[i]);
        return LORA_OK;
    }
    if (n > remain / 8)
        return lora__error(LORA_ERR_FORMAT, "%s: key '%s' at offset %zu: %" PRIu64 " strings "
                           "run past the end of the %zu-byte file", c->label, kv->key, at, n,
                           c->size);
    kv->strs = lora__malloc((n ? n : 1) * sizeof *kv->strs);
    if (!kv->strs)
        return lora__oom("GGUF string array", n * sizeof *kv->strs);
    for (uint64_t i = 0; i < n; i++) {
        size_t sat = c->pos;
        uint64_t len = 0;
        if (c->size - c->pos >= 8)
            read_uint(c, 8, "string length", &len);
        if (sat + 8 > c->size || len > c->size - c->pos)
            return lora__error(LORA_ERR_FORMAT, "%s: key '%s' element %" PRIu64 " at offset %zu:"
                               " %s past the end of the %zu-byte file", c->label, kv->key, i,
                               sat, sat + 8 > c->size ? "its length runs" : "its bytes run",
                               c->size);
        kv->strs[i].p = (const char *)c->buf + c->pos;
        kv->strs[i].len = len;
        c->pos += (size_t)len;
    }
    return LORA_OK;
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp((*(const lora_gguf_kv *const *)a)->key, (*(const lora_gguf_kv *const *)b)->key);
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp((*(const lora_gguf_tensor *const *)a)->name,
                  (*(const lora_gguf_tensor *const *)b)->name);
}

static int cmp_offset(const void *a, const void *b)
{
    const lora_gguf_tensor *x = *(const lora_gguf_tensor *const *)a;
    const lora_gguf_tensor *y = *(const lora_gguf_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return strcmp(x->name, y->name);
}

static lora_status read_header(lora_gguf_file *f, cursor *c, uint64_t *n_tensors, uint64_t *n_kv)
{
    const uint8_t *p = NULL;
    uint64_t version;
    lora_status st = take(c, 4, "magic", &p);
    if (st)
        return st;
    if (memcmp(p, "GGUF", 4) != 0)
        return lora__error(LORA_ERR_FORMAT, "%s: not a GGUF file (the first 4 bytes are not "
                           "\"GGUF\")", f->path);
    if ((st = read_uint(c, 4, "version", &version)))
        return st;
    if (version == 1)
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: GGUF version 1 (32-bit counts) is not "
                           "supported; convert the file again with a current llama.cpp", f->path);
    if (version != 2 && version != 3)
        return lora__error(LORA_ERR_FORMAT, "%s: GGUF version %" PRIu64 " is not 2 or 3 (a "
                           "big-endian file, or a newer format)", f->path, version);
    f->version = (uint32_t)version;
    if ((st = read_uint(c, 8, "tensor count", n_tensors)) ||
        (st = read_uint(c, 8, "metadata count", n_kv)))
        return st;
    /* the smallest key/value is 13 bytes, the smallest tensor info 29: counts the file cannot
     * hold are refused before anything is allocated for them */
    size_t remain = c->size - c->pos;
    if (*n_kv > remain / 13)
        return lora__error(LORA_ERR_FORMAT, "%s: metadata count %" PRIu64 " is more than the "
                           "%zu-byte file can hold", f->path, *n_kv, c->size);
    if (*n_tensors > remain / 29)
        return lora__error(LORA_ERR_FORMAT, "%s: tensor count %" PRIu64 " is more than the "
                           "%zu-byte file can hold", f->path, *n_tensors, c->size);
    return LORA_OK;
}

static lora_status read_kvs(lora_gguf_file *f, cursor *c)
{
    lora_status st;
    for (size_t i = 0; i < f->n_kv; i++) {
        lora_gguf_kv *kv = &f->kv[i];
        lora_gguf_str key;
        uint64_t t;
        size_t at = c->pos;
        if ((st = read_str(c, "metadata key", &key)) ||
            (st = name_copy(f, &key, MAX_KEY, "metadata key", at, &kv->key)))
            return st;
        size_t tat = c->pos;
        if ((st = read_uint(c, 4, "value type", &t)) || (st = check_vtype(c, t, kv->key, tat)))
            return st;
        kv->type = (lora_gguf_vtype)t;
        if ((st = read_value(c, kv)))
            return st;
        f->kv_by_key[i] = kv;
    }
    qsort(f->kv_by_key, f->n_kv, sizeof *f->kv_by_key, cmp_kv);
    for (size_t i = 1; i < f->n_kv; i++)
        if (strcmp(f->kv_by_key[i]->key, f->kv_by_key[i - 1]->key) == 0)
            return lora__error(LORA_ERR_FORMAT, "%s: metadata key '%s' appears twice", f->path,
                               f->kv_by_key[i]->key);
    return LORA_OK;
}

static lora_status read_tensor_info(lora_gguf_file *f, cursor *c, lora_gguf_tensor *t)
{
    lora_gguf_str name;
    uint64_t nd, v;
    size_t at = c->pos;
    lora_status st;
    if ((st = read_str(c, "tensor name", &name)) ||
        (st = name_copy(f, &name, LORA_GGUF_MAX_NAME, "tensor name", at, &t->name)) ||
        (st = read_uint(c, 4, "tensor n_dims", &nd)))
        return st;
    if (nd < 1 || nd > LORA_GGUF_MAX_DIMS)
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s' at offset %zu: n_dims %" PRIu64
                           " is not 1..%d", f->path, t->name, at, nd, LORA_GGUF_MAX_DIMS);
    t->ndim = (int)nd;
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if ((st = read_uint(c, 8, "tensor dimension", &v)))
            return st;
        if (v < 1 || v > (uint64_t)INT64_MAX / t->numel)
            return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': dimension %d = %" PRIu64 " %s",
                               f->path, t->name, d, v, v < 1 ? "is zero" : "overflows the size");
        t->ne[d] = (int64_t)v;
        t->numel *= v;
    }
    if ((st = read_uint(c, 4, "tensor type", &v)))
        return st;
    t->type = (uint32_t)v;
    uint32_t blk = lora__gguf_type_block(t->type), bytes = lora__gguf_type_bytes(t->type);
    if (!blk || v > UINT32_MAX)
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': type id %" PRIu64 " is not a ggml "
                           "type", f->path, t->name, v);
    if (t->ne[0] % blk != 0)
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': row length %" PRId64 " is not a "
                           "multiple of the %s block of %u", f->path, t->name, t->ne[0],
                           lora__gguf_type_name(t->type), blk);
    uint64_t blocks = t->numel / blk;
    if (blocks > UINT64_MAX / bytes)
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': byte size overflows", f->path,
                           t->name);
    t->nbytes = blocks * bytes;
    return read_uint(c, 8, "tensor offset", &t->offset);
}

static lora_status read_alignment(lora_gguf_file *f, uint64_t *align)
{
    *align = LORA_GGUF_DEFAULT_ALIGNMENT;
    const lora_gguf_kv *kv = lora__gguf_find_kv(f, "general.alignment");
    if (!kv)
        return LORA_OK;
    if (kv->type != LORA_GGUF_U32)
        return lora__error(LORA_ERR_FORMAT, "%s: key 'general.alignment' must be a uint32, not "
                           "%s", f->path, vtype_names[kv->type]);
    *align = le(kv->data, 4);
    if (*align == 0 || (*align & (*align - 1)) || *align > MAX_ALIGNMENT)
        return lora__error(LORA_ERR_FORMAT, "%s: key 'general.alignment' = %" PRIu64 " is not a "
                           "power of two up to %u", f->path, *align, MAX_ALIGNMENT);
    return LORA_OK;
}

/* Offsets aligned, each tensor inside the data section, no two overlapping. */
static lora_status check_layout(lora_gguf_file *f, size_t info_end)
{
    uint64_t align;
    lora_status st = read_alignment(f, &align);
    if (st)
        return st;
    uint64_t data_start = (info_end + align - 1) / align * align;
    if (f->n_tensors && data_start > f->map_size)
        return lora__error(LORA_ERR_FORMAT, "%s: the data section would start at offset %" PRIu64
                           ", past the end of the %zu-byte file", f->path, data_start,
                           f->map_size);
    uint64_t data_size = f->n_tensors ? f->map_size - data_start : 0;
    const lora_gguf_tensor **by_off = lora__malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *by_off);
    if (!by_off)
        return lora__oom("GGUF tensor order", f->n_tensors * sizeof *by_off);
    for (size_t i = 0; i < f->n_tensors; i++)
        by_off[i] = &f->tensors[i];
    qsort(by_off, f->n_tensors, sizeof *by_off, cmp_offset);
    for (size_t i = 0; i < f->n_tensors && !st; i++) {
        const lora_gguf_tensor *t = by_off[i];
        if (t->offset % align)
            st = lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': offset %" PRIu64 " is not a "
                             "multiple of the alignment %" PRIu64, f->path, t->name, t->offset,
                             align);
        else if (t->offset > data_size || t->nbytes > data_size - t->offset)
            st = lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': bytes [%" PRIu64 ", +%" PRIu64
                             ") of the data section run past its end (%" PRIu64 " bytes from "
                             "file offset %" PRIu64 ")", f->path, t->name, t->offset, t->nbytes,
                             data_size, data_start);
        else if (i > 0 && t->offset < by_off[i - 1]->offset + by_off[i - 1]->nbytes)
            st = lora__error(LORA_ERR_FORMAT, "%s: tensors '%s' [%" PRIu64 ", +%" PRIu64 ") and "
                             "'%s' [%" PRIu64 ", +%" PRIu64 ") overlap", f->path,
                             by_off[i - 1]->name, by_off[i - 1]->offset, by_off[i - 1]->nbytes,
                             t->name, t->offset, t->nbytes);
    }
    free(by_off);
    for (size_t i = 0; i < f->n_tensors && !st; i++)
        f->tensors[i].data = (const uint8_t *)f->map + data_start + f->tensors[i].offset;
    return st;
}

static lora_status validate(lora_gguf_file *f, const uint8_t *buf, size_t size)
{
    cursor c = {buf, size, 0, f->path};
    uint64_t nt = 0, nkv = 0;
    lora_status st = read_header(f, &c, &nt, &nkv);
    if (st)
        return st;
    f->n_kv = (size_t)nkv;
    f->n_tensors = (size_t)nt;
    f->kv = lora__calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    f->kv_by_key = lora__calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv_by_key);
    f->tensors = lora__calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    f->t_by_name = lora__calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->t_by_name);
    if (!f->kv || !f->kv_by_key || !f->tensors || !f->t_by_name)
        return lora__oom("GGUF tables", f->n_kv * sizeof *f->kv +
                         f->n_tensors * sizeof *f->tensors);
    if ((st = read_kvs(f, &c)))
        return st;
    for (size_t i = 0; i < f->n_tensors; i++) {
        if ((st = read_tensor_info(f, &c, &f->tensors[i])))
            return st;
        f->t_by_name[i] = &f->tensors[i];
    }
    qsort(f->t_by_name, f->n_tensors, sizeof *f->t_by_name, cmp_tensor);
    for (size_t i = 1; i < f->n_tensors; i++)
        if (strcmp(f->t_by_name[i]->name, f->t_by_name[i - 1]->name) == 0)
            return lora__error(LORA_ERR_FORMAT, "%s: tensor name '%s' appears twice", f->path,
                               f->t_by_name[i]->name);
    return check_layout(f, c.pos);
}

static lora_gguf_file *file_new(const char *label)
{
    lora_gguf_file *f = lora__calloc(1, sizeof *f);
    if (f && !(f->path = lora__strdup(label))) {
        free(f);
        f = NULL;
    }
    return f;
}

void lora__gguf_close(lora_gguf_file *f)
{
    if (!f)
        return;
    if (!f->borrowed && f->map)
        munmap(f->map, f->map_size);
    for (size_t i = 0; f->kv && i < f->n_kv; i++) {
        free((char *)f->kv[i].key);
        free(f->kv[i].strs);
    }
    for (size_t i = 0; f->tensors && i < f->n_tensors; i++)
        free((char *)f->tensors[i].name);
    free(f->kv);
    free(f->kv_by_key);
    free(f->tensors);
    free(f->t_by_name);
    free(f->path);
    free(f);
}

lora_status lora__gguf_open_buffer(const uint8_t *buf, size_t size, const char *label,
                                   lora_gguf_file **out)
{
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__gguf_open_buffer: out is NULL");
    *out = NULL;
    if (!label || (!buf && size))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__gguf_open_buffer: NULL %s",
                           label ? "buffer" : "label");
    lora_gguf_file *f = file_new(label);
    if (!f)
        return lora__oom("GGUF file", sizeof *f + strlen(label) + 1);
    static const uint8_t empty[1];
    f->map = (void *)(buf ? buf : empty);
    f->map_size = size;
    f->borrowed = 1;
    lora_status st = validate(f, f->map, size);
    if (st) {
        lora__gguf_close(f);
        return st;
    }
    *out = f;
    return LORA_OK;
}

lora_status lora__gguf_open(const char *path, lora_gguf_file **out)
{
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__gguf_open: out is NULL");
    *out = NULL;
    if (!path)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__gguf_open: path is NULL");
    lora_gguf_file *f = file_new(path);
    if (!f)
        return lora__oom("GGUF file", sizeof *f + strlen(path) + 1);
    /* O_NONBLOCK: a FIFO must fail the regular-file check, not hang the open. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    lora_status st = LORA_OK;
    struct stat sb;
    if (fd < 0)
        st = lora__error(LORA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    else if (fstat(fd, &sb) != 0)
        st = lora__error(LORA_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = lora__error(LORA_ERR_IO, "%s: not a regular file%s", path,
                         S_ISDIR(sb.st_mode) ? " (it is a directory)" : "");
    else if (sb.st_size > 0) {
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
            st = lora__error(LORA_ERR_IO, "%s: cannot map %lld bytes: %s", path,
                             (long long)sb.st_size, strerror(errno));
        else {
            f->map = map;
            f->map_size = (size_t)sb.st_size;
        }
    }
    if (fd >= 0)
        close(fd);
    static const uint8_t empty[1];
    if (!st)
        st = validate(f, f->map ? f->map : empty, f->map_size);
    if (st) {
        lora__gguf_close(f);
        return st;
    }
    *out = f;
    return LORA_OK;
}

const char *lora__gguf_path(const lora_gguf_file *f) { return f ? f->path : NULL; }
uint32_t lora__gguf_version(const lora_gguf_file *f) { return f ? f->version : 0; }
size_t lora__gguf_kv_count(const lora_gguf_file *f) { return f ? f->n_kv : 0; }
size_t lora__gguf_tensor_count(const lora_gguf_file *f) { return f ? f->n_tensors : 0; }

const lora_gguf_kv *lora__gguf_kv_at(const lora_gguf_file *f, size_t i)
{
    return f && i < f->n_kv ? &f->kv[i] : NULL;
}

const lora_gguf_tensor *lora__gguf_tensor_at(const lora_gguf_file *f, size_t i)
{
    return f && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const lora_gguf_kv *lora__gguf_find_kv(const lora_gguf_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    lora_gguf_kv k = {.key = key};
    const lora_gguf_kv *kp = &k;
    const lora_gguf_kv *const *hit = bsearch(&kp, f->kv_by_key, f->n_kv, sizeof *f->kv_by_key,
                                             cmp_kv);
    return hit ? *hit : NULL;
}

const lora_gguf_tensor *lora__gguf_find_tensor(const lora_gguf_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    lora_gguf_tensor k = {.name = name};
    const lora_gguf_tensor *kp = &k;
    const lora_gguf_tensor *const *hit = bsearch(&kp, f->t_by_name, f->n_tensors,
                                                 sizeof *f->t_by_name, cmp_tensor);
    return hit ? *hit : NULL;
}

/* --- typed metadata ------------------------------------------------------------------------ */

static lora_status lookup(const lora_gguf_file *f, const char *key, int *found,
                          const lora_gguf_kv **kv)
{
    *kv = lora__gguf_find_kv(f, key);
    if (found)
        *found = *kv != NULL;
    if (!*kv && !found)
        return lora__error(LORA_ERR_FORMAT, "%s: required key '%s' is missing", f->path, key);
    return LORA_OK;
}

static lora_status wrong_type(const lora_gguf_file *f, const lora_gguf_kv *kv, const char *want)
{
    int arr = kv->type == LORA_GGUF_ARRAY;
    return lora__error(LORA_ERR_FORMAT, "%s: key '%s' must be %s, not %s%s", f->path, kv->key,
                       want, arr ? "an array of " : "", vtype_names[arr ? kv->elem : kv->type]);
}

static int is_int_type(lora_gguf_vtype t)
{
    return t <= LORA_GGUF_I32 || t == LORA_GGUF_U64 || t == LORA_GGUF_I64;
}

static int64_t int_at(lora_gguf_vtype t, const uint8_t *p, int *overflow)
{
    *overflow = 0;
    switch (t) {
    case LORA_GGUF_U8: return p[0];
    case LORA_GGUF_I8: return (int8_t)p[0];
    case LORA_GGUF_U16: return (int64_t)le(p, 2);
    case LORA_GGUF_I16: return (int16_t)le(p, 2);
    case LORA_GGUF_U32: return (int64_t)le(p, 4);
    case LORA_GGUF_I32: return (int32_t)le(p, 4);
    case LORA_GGUF_I64: return (int64_t)le(p, 8);
    default: {
        uint64_t u = le(p, 8);
        *overflow = u > INT64_MAX;
        return (int64_t)u;
    }
    }
}

int64_t lora__gguf_array_int(const lora_gguf_kv *kv, uint64_t i)
{
    int overflow;
    int64_t v = int_at(kv->elem, kv->data + i * vtype_size[kv->elem], &overflow);
    return overflow ? -1 : v;
}

lora_status lora__gguf_get_int(const lora_gguf_file *f, const char *key, int64_t lo, int64_t hi,
                               int64_t *v, int *found)
{
    const lora_gguf_kv *kv;
    lora_status st = lookup(f, key, found, &kv);
    if (st || !kv)
        return st;
    if (!is_int_type(kv->type))
        return wrong_type(f, kv, "an integer");
    int overflow;
    int64_t x = int_at(kv->type, kv->data, &overflow);
    if (overflow || x < lo || x > hi)
        return lora__error(LORA_ERR_FORMAT, "%s: key '%s' = %" PRId64 "%s is outside %" PRId64
                           "..%" PRId64, f->path, key, x, overflow ? " (wrapped)" : "", lo, hi);
    *v = x;
    return LORA_OK;
}

lora_status lora__gguf_get_real(const lora_gguf_file *f, const char *key, double *v, int *found)
{
    const lora_gguf_kv *kv;
    lora_status st = lookup(f, key, found, &kv);
    if (st || !kv)
        return st;
    if (kv->type == LORA_GGUF_F32) {
        uint32_t u = (uint32_t)le(kv->data, 4);
        float x;
        memcpy(&x, &u, 4);
        *v = x;
    } else if (kv->type == LORA_GGUF_F64) {
        uint64_t u = le(kv->data, 8);
        memcpy(v, &u, 8);
    } else {
        return wrong_type(f, kv, "a float");
    }
    return LORA_OK;
}

lora_status lora__gguf_get_bool(const lora_gguf_file *f, const char *key, int *v, int *found)
{
    const lora_gguf_kv *kv;
    lora_status st = lookup(f, key, found, &kv);
    if (st || !kv)
        return st;
    if (kv->type != LORA_GGUF_BOOL)
        return wrong_type(f, kv, "a bool");
    *v = kv->data[0];
    return LORA_OK;
}

lora_status lora__gguf_get_str(const lora_gguf_file *f, const char *key, lora_gguf_str *v,
                               int *found)
{
    const lora_gguf_kv *kv;
    lora_status st = lookup(f, key, found, &kv);
    if (st || !kv)
        return st;
    if (kv->type != LORA_GGUF_STRING)
        return wrong_type(f, kv, "a string");
    v->len = le(kv->data, 8);
    v->p = (const char *)kv->data + 8;
    return LORA_OK;
}

lora_status lora__gguf_get_array(const lora_gguf_file *f, const char *key, lora_gguf_vtype elem,
                                 const lora_gguf_kv **v, int *found)
{
    const lora_gguf_kv *kv;
    lora_status st = lookup(f, key, found, &kv);
    if (st || !kv)
        return st;
    int ok = kv->type == LORA_GGUF_ARRAY &&
             (kv->elem == elem || (is_int_type(elem) && is_int_type(kv->elem)));
    if (!ok) {
        char want[48];
        snprintf(want, sizeof want, "an array of %s", is_int_type(elem) ? "integers"
                 : vtype_names[elem]);
        return wrong_type(f, kv, want);
    }
    *v = kv;
    return LORA_OK;
}

int lora__gguf_is_gguf(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    struct stat sb;
    char magic[4];
    int yes = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && read(fd, magic, 4) == 4 &&
              memcmp(magic, "GGUF", 4) == 0;
    close(fd);
    return yes;
}
