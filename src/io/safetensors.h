/* Safetensors files: a validating reader (mmap) and an atomic streaming writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON object
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data section. Offsets are relative to the data
 * section. lora__st_open validates everything before a byte of tensor data is handed out. */
#ifndef LORA_IO_SAFETENSORS_H
#define LORA_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "lora.h"

typedef enum lora_st_dtype {
    LORA_ST_BOOL, LORA_ST_U8, LORA_ST_I8, LORA_ST_F8_E4M3, LORA_ST_F8_E5M2,
    LORA_ST_I16, LORA_ST_U16, LORA_ST_F16, LORA_ST_BF16,
    LORA_ST_I32, LORA_ST_U32, LORA_ST_F32,
    LORA_ST_I64, LORA_ST_U64, LORA_ST_F64,
    LORA_ST_DTYPE_COUNT
} lora_st_dtype;

#define LORA_ST_MAX_DIMS 8
#define LORA_ST_MAX_HEADER 100000000ull

typedef struct lora_st_tensor {
    const char *name;
    lora_st_dtype dtype;
    int ndim;                       /* 0 for a scalar */
    int64_t shape[LORA_ST_MAX_DIMS];
    uint64_t numel;                 /* product of shape; 1 for a scalar, 0 if any dim is 0 */
    const uint8_t *data;            /* numel * dtype size bytes, inside the mapping; may be unaligned */
    uint64_t nbytes;
} lora_st_tensor;

typedef struct lora_st_file lora_st_file;

/* Size in bytes of one element; "F32" <-> LORA_ST_F32. name_to_dtype returns -1 if unknown. */
size_t lora__st_dtype_size(lora_st_dtype dt);
const char *lora__st_dtype_name(lora_st_dtype dt);
int lora__st_dtype_from_name(const char *name);

/* Maps and validates a file. Failures: LORA_ERR_IO (open/stat/mmap), LORA_ERR_FORMAT (every
 * structural problem: short file, header length, JSON, duplicate names, dtype, shape overflow,
 * byte ranges, offsets out of order / overlapping / gaps / past the end, non-string metadata).
 * Messages start with the path and name the tensor or key. */
lora_status lora__st_open(const char *path, lora_st_file **out);
/* The same validation over a buffer the caller keeps alive (used by tests and fuzzing);
 * label names the source in messages. */
lora_status lora__st_open_buffer(const uint8_t *buf, size_t size, const char *label,
                                 lora_st_file **out);
void lora__st_close(lora_st_file *f);

size_t lora__st_count(const lora_st_file *f);
const lora_st_tensor *lora__st_at(const lora_st_file *f, size_t i);   /* in file order of data */
const lora_st_tensor *lora__st_find(const lora_st_file *f, const char *name); /* NULL if absent */
/* Value of a __metadata__ key, NULL if absent. */
const char *lora__st_metadata(const lora_st_file *f, const char *key);
const char *lora__st_path(const lora_st_file *f);

/* A checkpoint folder: model.safetensors, or model.safetensors.index.json and its shards.
 * Shard names must stay inside the folder (no '/', no "..", not absolute); every tensor named
 * in weight_map must be in its shard, and a tensor may live in one shard only. */
typedef struct lora_st_set lora_st_set;
/* LORA_ERR_IO if neither file exists (message names both). */
lora_status lora__st_set_open(const char *dir, lora_st_set **out);
void lora__st_set_close(lora_st_set *s);
size_t lora__st_set_count(const lora_st_set *s);
const lora_st_tensor *lora__st_set_at(const lora_st_set *s, size_t i);
const lora_st_tensor *lora__st_set_find(const lora_st_set *s, const char *name);
/* The file a tensor came from (for messages). */
const char *lora__st_set_file_of(const lora_st_set *s, const char *name);

/* Atomic streaming writer: header first, then each tensor's bytes in declaration order, then
 * commit (fsync, rename over path, fsync the folder). Until commit, path is untouched; abort or
 * any failure removes the temporary file. */
typedef struct lora_st_writer lora_st_writer;
typedef struct lora_st_decl {
    const char *name;
    lora_st_dtype dtype;
    int ndim;
    int64_t shape[LORA_ST_MAX_DIMS];
} lora_st_decl;
/* metadata: NULL or a JSON object of string values, written as __metadata__. */
lora_status lora__st_writer_begin(const char *path, const lora_st_decl *decls, size_t n,
                                  const char *metadata_json, lora_st_writer **out);
/* Appends bytes of the current tensor; calls may split a tensor's bytes arbitrarily, but the
 * total for each tensor must equal numel * dtype size (checked at commit). */
lora_status lora__st_writer_write(lora_st_writer *w, const void *data, size_t nbytes);
lora_status lora__st_writer_commit(lora_st_writer *w);   /* frees w in every case */
void lora__st_writer_abort(lora_st_writer *w);            /* frees w; NULL is a no-op */

/* Atomic small-file write (config.json): temp file in the same folder, fsync, rename. */
lora_status lora__write_file_atomic(const char *path, const void *data, size_t nbytes);

#endif
