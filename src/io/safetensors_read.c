/* Safetensors reader: maps a file and validates every header field and byte range before any
 * tensor data is handed out, so that callers may trust shapes, dtypes and pointers. */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/error.h"
#include "util/alloc.h"
#include "util/json_text.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[LORA_ST_DTYPE_COUNT] = {
    [LORA_ST_BOOL] = {"BOOL", 1},        [LORA_ST_U8] = {"U8", 1},
    [LORA_ST_I8] = {"I8", 1},            [LORA_ST_F8_E4M3] = {"F8_E4M3", 1},
    [LORA_ST_F8_E5M2] = {"F8_E5M2", 1},  [LORA_ST_I16] = {"I16", 2},
    [LORA_ST_U16] = {"U16", 2},          [LORA_ST_F16] = {"F16", 2},
    [LORA_ST_BF16] = {"BF16", 2},        [LORA_ST_I32] = {"I32", 4},
    [LORA_ST_U32] = {"U32", 4},          [LORA_ST_F32] = {"F32", 4},
    [LORA_ST_I64] = {"I64", 8},          [LORA_ST_U64] = {"U64", 8},
    [LORA_ST_F64] = {"F64", 8},
};

/* Out-of-range values give size 0 and name NULL, so a writer can reject them. */
size_t lora__st_dtype_size(lora_st_dtype dt)
{
    return (unsigned)dt < LORA_ST_DTYPE_COUNT ? dtypes[dt].size : 0;
}

const char *lora__st_dtype_name(lora_st_dtype dt)
{
    return (unsigned)dt < LORA_ST_DTYPE_COUNT ? dtypes[dt].name : NULL;
}

int lora__st_dtype_from_name(const char *name)
{
    for (int i = 0; i < LORA_ST_DTYPE_COUNT; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return i;
    return -1;
}

/* The data offsets stay beside the public view: they order the tensors during validation. */
typedef struct st_entry {
    lora_st_tensor t;
    uint64_t begin, end;
} st_entry;

struct lora_st_file {
    char *path;
    void *map;                  /* NULL for a caller's buffer */
    size_t map_size;
    json_t *root;               /* owns the tensor names and the metadata strings */
    const json_t *metadata;     /* NULL without __metadata__ */
    size_t n;
    st_entry *entries;          /* sorted by data offset */
    const st_entry **by_name;   /* sorted by name, for bsearch */
};

static uint64_t read_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void format_shape(const lora_st_tensor *t, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? ", " : "", t->shape[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
}

static lora_status check_metadata(const char *label, const json_t *meta)
{
    const char *key;
    const json_t *v;
    if (!json_is_object(meta))
        return lora__error(LORA_ERR_FORMAT, "%s: __metadata__ is not an object", label);
    json_object_foreach((json_t *)meta, key, v)
        if (!json_is_string(v))
            return lora__error(LORA_ERR_FORMAT, "%s: __metadata__ key '%s' is not a string",
                               label, key);
    return LORA_OK;
}

static lora_status parse_dtype(const char *label, const char *name, const json_t *v,
                               lora_st_dtype *out)
{
    if (!json_is_string(v))
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string", label,
                           name);
    int dt = lora__st_dtype_from_name(json_string_value(v));
    if (dt < 0)
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", label, name,
                           json_string_value(v));
    *out = (lora_st_dtype)dt;
    return LORA_OK;
}

static lora_status parse_shape(const char *label, const char *name, const json_t *v,
                               lora_st_tensor *t)
{
    if (!json_is_array(v))
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array", label,
                           name);
    size_t ndim = json_array_size(v);
    if (ndim > LORA_ST_MAX_DIMS)
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': shape has %zu dims, at most %d "
                           "are supported", label, name, ndim, LORA_ST_MAX_DIMS);
    t->ndim = (int)ndim;
    t->numel = 1;
    for (size_t i = 0; i < ndim; i++) {
        const json_t *d = json_array_get(v, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': shape dim %zu is not a "
                               "non-negative integer", label, name, i);
        t->shape[i] = json_integer_value(d);
        /* Like the reference implementation, any overflow of the running product is an error,
         * even if a later dim is 0. */
        if (__builtin_mul_overflow(t->numel, (uint64_t)t->shape[i], &t->numel))
            return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': shape product overflows 64 "
                               "bits", label, name);
    }
    if (__builtin_mul_overflow(t->numel, lora__st_dtype_size(t->dtype), &t->nbytes))
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': byte size of %" PRIu64 " %s "
                           "elements overflows 64 bits", label, name, t->numel,
                           lora__st_dtype_name(t->dtype));
    return LORA_OK;
}

static lora_status parse_offsets(const char *label, const char *name, const json_t *v,
                                 st_entry *e)
{
    const json_t *b = json_array_get(v, 0), *en = json_array_get(v, 1);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(b) ||
        !json_is_integer(en) || json_integer_value(b) < 0 || json_integer_value(en) < 0)
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not two "
                           "non-negative integers", label, name);
    e->begin = (uint64_t)json_integer_value(b);
    e->end = (uint64_t)json_integer_value(en);
    if (e->begin > e->end)
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %"
                           PRIu64 "] end before they begin", label, name, e->begin, e->end);
    return LORA_OK;
}

static lora_status parse_tensor(const char *label, const char *name, const json_t *v,
                                st_entry *e)
{
    static const char *const keys[] = {"dtype", "shape", "data_offsets"};
    const char *key;
    const json_t *field;
    lora_status st;

    if (!json_is_object(v))
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s' is not an object", label, name);
    json_object_foreach((json_t *)v, key, field)
        if (strcmp(key, keys[0]) && strcmp(key, keys[1]) && strcmp(key, keys[2]))
            return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': unknown key '%s'", label,
                               name, key);
    for (size_t i = 0; i < 3; i++)
        if (!json_object_get(v, keys[i]))
            return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", label, name,
                               keys[i]);

    e->t.name = name;
    if ((st = parse_dtype(label, name, json_object_get(v, "dtype"), &e->t.dtype)) ||
        (st = parse_shape(label, name, json_object_get(v, "shape"), &e->t)) ||
        (st = parse_offsets(label, name, json_object_get(v, "data_offsets"), e)))
        return st;
    if (e->end - e->begin != e->t.nbytes) {
        char shape[LORA_ST_MAX_DIMS * 22 + 2];
        format_shape(&e->t, shape, sizeof shape);
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %"
                           PRIu64 "] span %" PRIu64 " bytes but %s %s needs %" PRIu64, label,
                           name, e->begin, e->end, e->end - e->begin,
                           lora__st_dtype_name(e->t.dtype), shape, e->t.nbytes);
    }
    return LORA_OK;
}

/* Zero-size tensors sort before a tensor that starts at the same offset, so that the
 * contiguity walk sees them as empty steps; names break the remaining ties for determinism. */
static int cmp_offset(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->t.name, y->t.name);
}

/* The tensors must tile the data section exactly: no gap, no overlap, nothing past the end. */
static lora_status check_layout(const char *label, const st_entry *e, size_t n,
                                uint64_t data_size)
{
    if (n == 0)
        return data_size == 0 ? LORA_OK
               : lora__error(LORA_ERR_FORMAT, "%s: gap at end: the data section has %" PRIu64
                             " bytes but there are no tensors", label, data_size);
    if (e[0].begin != 0)
        return lora__error(LORA_ERR_FORMAT, "%s: gap of %" PRIu64 " bytes before the first "
                           "tensor '%s'", label, e[0].begin, e[0].t.name);
    for (size_t i = 1; i < n; i++) {
        if (e[i].begin > e[i - 1].end)
            return lora__error(LORA_ERR_FORMAT, "%s: gap of %" PRIu64 " bytes between tensor "
                               "'%s' (ends at %" PRIu64 ") and tensor '%s' (begins at %"
                               PRIu64 ")", label, e[i].begin - e[i - 1].end, e[i - 1].t.name,
                               e[i - 1].end, e[i].t.name, e[i].begin);
        if (e[i].begin < e[i - 1].end)
            return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s' [%" PRIu64 ", %" PRIu64 "] "
                               "and tensor '%s' [%" PRIu64 ", %" PRIu64 "] overlap", label,
                               e[i - 1].t.name, e[i - 1].begin, e[i - 1].end, e[i].t.name,
                               e[i].begin, e[i].end);
    }
    const st_entry *last = &e[n - 1];
    if (last->end > data_size)
        return lora__error(LORA_ERR_FORMAT, "%s: tensor '%s' ends at %" PRIu64 ", past the end "
                           "of the %" PRIu64 "-byte data section", label, last->t.name,
                           last->end, data_size);
    if (last->end < data_size)
        return lora__error(LORA_ERR_FORMAT, "%s: gap at end: %" PRIu64 " bytes after the last "
                           "tensor '%s' belong to no tensor", label, data_size - last->end,
                           last->t.name);
    return LORA_OK;
}

static int cmp_name(const void *a, const void *b)
{
    const st_entry *const *x = a, *const *y = b;
    return strcmp((*x)->t.name, (*y)->t.name);
}

static lora_status parse_json(lora_st_file *f, const uint8_t *hdr, size_t len)
{
    json_error_t err;
    f->root = lora__json_loadb((const char *)hdr, len, JSON_REJECT_DUPLICATES, &err);
    if (!f->root) {
        if (json_error_code(&err) == json_error_invalid_utf8)
            return lora__error(LORA_ERR_FORMAT, "%s: header is not valid UTF-8 (byte %d)",
                               f->path, err.position);
        if (json_error_code(&err) == json_error_duplicate_key)
            return lora__error(LORA_ERR_FORMAT, "%s: header has a duplicate key (tensor name "
                               "or field): %s", f->path, err.text);
        return lora__error(LORA_ERR_FORMAT, "%s: header is not valid JSON: %s (byte %d)",
                           f->path, err.text, err.position);
    }
    if (!json_is_object(f->root))
        return lora__error(LORA_ERR_FORMAT, "%s: header JSON is not an object", f->path);
    return LORA_OK;
}

/* Fills f->entries from the header object; data pointers are set once the layout is valid. */
static lora_status parse_entries(lora_st_file *f)
{
    const char *key;
    json_t *v;
    lora_status st;

    f->metadata = json_object_get(f->root, "__metadata__");
    if (f->metadata && (st = check_metadata(f->path, f->metadata)))
        return st;
    f->n = json_object_size(f->root) - (f->metadata != NULL);
    f->entries = lora__calloc(f->n ? f->n : 1, sizeof *f->entries);
    f->by_name = lora__calloc(f->n ? f->n : 1, sizeof *f->by_name);
    if (!f->entries || !f->by_name)
        return lora__oom("safetensors tensor table", f->n * (sizeof *f->entries + sizeof
                         *f->by_name));
    size_t i = 0;
    json_object_foreach(f->root, key, v) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        if ((st = parse_tensor(f->path, key, v, &f->entries[i++])))
            return st;
    }
    return LORA_OK;
}

static lora_status validate(lora_st_file *f, const uint8_t *buf, size_t size)
{
    lora_status st;
    if (size < 8)
        return lora__error(LORA_ERR_FORMAT, "%s: file has %zu bytes, too short for the 8-byte "
                           "header length", f->path, size);
    uint64_t hlen = read_le64(buf);
    if (hlen > LORA_ST_MAX_HEADER)
        return lora__error(LORA_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the limit "
                           "of %llu bytes", f->path, hlen, LORA_ST_MAX_HEADER);
    if (hlen > size - 8)
        return lora__error(LORA_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end "
                           "of the %zu-byte file", f->path, hlen, size);
    if ((st = parse_json(f, buf + 8, hlen)) || (st = parse_entries(f)))
        return st;
    qsort(f->entries, f->n, sizeof *f->entries, cmp_offset);
    if ((st = check_layout(f->path, f->entries, f->n, size - 8 - hlen)))
        return st;
    for (size_t i = 0; i < f->n; i++) {
        f->entries[i].t.data = buf + 8 + hlen + f->entries[i].begin;
        f->by_name[i] = &f->entries[i];
    }
    qsort(f->by_name, f->n, sizeof *f->by_name, cmp_name);
    return LORA_OK;
}

static lora_st_file *file_new(const char *label)
{
    lora_st_file *f = lora__calloc(1, sizeof *f);
    if (f && !(f->path = lora__strdup(label))) {
        free(f);
        f = NULL;
    }
    return f;
}

lora_status lora__st_open_buffer(const uint8_t *buf, size_t size, const char *label,
                                 lora_st_file **out)
{
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__st_open_buffer: out is NULL");
    *out = NULL;
    if (!label || (!buf && size))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__st_open_buffer: NULL %s",
                           label ? "buffer" : "label");
    lora_st_file *f = file_new(label);
    if (!f)
        return lora__oom("safetensors file", sizeof *f + strlen(label) + 1);
    lora_status st = validate(f, buf, size);
    if (st) {
        lora__st_close(f);
        return st;
    }
    *out = f;
    return LORA_OK;
}

/* Opens, checks and maps path into f->map; an empty file stays unmapped (mmap refuses it) and
 * validate() reports it as too short. */
static lora_status map_file(lora_st_file *f)
{
    /* O_NONBLOCK: a FIFO must fail the regular-file check, not hang the open. */
    int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return lora__error(LORA_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat sb;
    lora_status st = LORA_OK;
    if (fstat(fd, &sb) != 0)
        st = lora__error(LORA_ERR_IO, "%s: cannot stat: %s", f->path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = lora__error(LORA_ERR_IO, "%s: not a regular file%s", f->path,
                         S_ISDIR(sb.st_mode) ? " (it is a directory)" : "");
    else if (sb.st_size > 0) {
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
            st = lora__error(LORA_ERR_IO, "%s: cannot map %lld bytes: %s", f->path,
                             (long long)sb.st_size, strerror(errno));
        else {
            f->map = map;
            f->map_size = (size_t)sb.st_size;
        }
    }
    close(fd);
    return st;
}

lora_status lora__st_open(const char *path, lora_st_file **out)
{
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__st_open: out is NULL");
    *out = NULL;
    if (!path)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__st_open: path is NULL");
    lora_st_file *f = file_new(path);
    if (!f)
        return lora__oom("safetensors file", sizeof *f + strlen(path) + 1);
    lora_status st = map_file(f);
    if (!st)
        st = validate(f, f->map, f->map_size);
    if (st) {
        lora__st_close(f);
        return st;
    }
    *out = f;
    return LORA_OK;
}

void lora__st_close(lora_st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_size);
    json_decref(f->root);
    free(f->entries);
    free(f->by_name);
    free(f->path);
    free(f);
}

size_t lora__st_count(const lora_st_file *f) { return f ? f->n : 0; }

const lora_st_tensor *lora__st_at(const lora_st_file *f, size_t i)
{
    return f && i < f->n ? &f->entries[i].t : NULL;
}

const lora_st_tensor *lora__st_find(const lora_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    st_entry key = {.t.name = name};
    const st_entry *kp = &key;
    const st_entry *const *hit = bsearch(&kp, f->by_name, f->n, sizeof *f->by_name, cmp_name);
    return hit ? &(*hit)->t : NULL;
}

const char *lora__st_metadata(const lora_st_file *f, const char *key)
{
    if (!f || !f->metadata || !key)
        return NULL;
    return json_string_value(json_object_get(f->metadata, key));
}

const char *lora__st_path(const lora_st_file *f) { return f ? f->path : NULL; }
