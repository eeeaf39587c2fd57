/* GGUF files (llama.cpp's format): a validating reader, dequantization, and the conversion of
 * a Llama / Qwen2 / Qwen3 GGUF into what a Hugging Face folder holds (config.json, tensors
 * under Hugging Face names, tokenizer.json, tokenizer_config.json).
 *
 * Format (little-endian): "GGUF", u32 version (2 or 3), u64 tensor count, u64 metadata count,
 * the metadata (string key, u32 value type, value), the tensor infos (string name, u32 n_dims,
 * u64 dims[n_dims] innermost first, u32 ggml type, u64 offset), padding to general.alignment
 * (default 32), then the data section; every tensor offset is relative to it and aligned.
 * Strings are u64 length + bytes, not NUL-terminated. lora__gguf_open checks every count,
 * length and offset against the file before anything is handed out. */
#ifndef LORA_GGUF_GGUF_H
#define LORA_GGUF_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "lora.h"

#define LORA_GGUF_MAX_DIMS 4
#define LORA_GGUF_MAX_NAME 64          /* bytes of a tensor name, as in ggml */
#define LORA_GGUF_DEFAULT_ALIGNMENT 32

typedef enum lora_gguf_vtype {
    LORA_GGUF_U8, LORA_GGUF_I8, LORA_GGUF_U16, LORA_GGUF_I16, LORA_GGUF_U32, LORA_GGUF_I32,
    LORA_GGUF_F32, LORA_GGUF_BOOL, LORA_GGUF_STRING, LORA_GGUF_ARRAY, LORA_GGUF_U64,
    LORA_GGUF_I64, LORA_GGUF_F64, LORA_GGUF_VTYPE_COUNT
} lora_gguf_vtype;

typedef struct lora_gguf_str {
    const char *p;   /* inside the mapping; not NUL-terminated */
    uint64_t len;
} lora_gguf_str;

/* One metadata value. Scalars and arrays of scalars point into the mapping; arrays of strings
 * carry a table of their elements. */
typedef struct lora_gguf_kv {
    const char *key;          /* NUL-terminated copy */
    lora_gguf_vtype type;
    lora_gguf_vtype elem;     /* arrays: the element type */
    uint64_t n;               /* arrays: the element count */
    const uint8_t *data;      /* the value (arrays: the first element) */
    lora_gguf_str *strs;      /* arrays of strings: n entries; NULL otherwise */
} lora_gguf_kv;

typedef struct lora_gguf_tensor {
    const char *name;         /* NUL-terminated copy */
    int ndim;
    int64_t ne[LORA_GGUF_MAX_DIMS]; /* ggml order: ne[0] is the innermost (row length) */
    uint32_t type;            /* ggml type id */
    uint64_t numel;
    uint64_t offset;          /* in the data section */
    uint64_t nbytes;
    const uint8_t *data;
} lora_gguf_tensor;

typedef struct lora_gguf_file lora_gguf_file;

/* Maps and validates a file: LORA_ERR_IO (open, stat, map, not a regular file);
 * LORA_ERR_FORMAT for every structural fault (magic, truncation at any field, counts or
 * lengths past the file, bad value type, duplicate key or tensor name, bad alignment, dims,
 * unknown or misused ggml type id, a row that is not whole blocks, an offset misaligned,
 * outside the data section, or overlapping another tensor); LORA_ERR_UNSUPPORTED (version 1,
 * arrays of arrays). Messages start with the path and name the key or tensor and the offset. */
lora_status lora__gguf_open(const char *path, lora_gguf_file **out);
/* The same over a caller's buffer that outlives the handle; label names it in messages. */
lora_status lora__gguf_open_buffer(const uint8_t *buf, size_t size, const char *label,
                                   lora_gguf_file **out);
void lora__gguf_close(lora_gguf_file *f);

const char *lora__gguf_path(const lora_gguf_file *f);
uint32_t lora__gguf_version(const lora_gguf_file *f);
size_t lora__gguf_kv_count(const lora_gguf_file *f);
const lora_gguf_kv *lora__gguf_kv_at(const lora_gguf_file *f, size_t i);
const lora_gguf_kv *lora__gguf_find_kv(const lora_gguf_file *f, const char *key);
size_t lora__gguf_tensor_count(const lora_gguf_file *f);
const lora_gguf_tensor *lora__gguf_tensor_at(const lora_gguf_file *f, size_t i); /* file order */
const lora_gguf_tensor *lora__gguf_find_tensor(const lora_gguf_file *f, const char *name);

/* Typed metadata reads. Absent key: LORA_OK with *found = 0 (found may be NULL only where the
 * key is required: then absence is LORA_ERR_FORMAT naming it). A present key of the wrong
 * type or out of range is LORA_ERR_FORMAT naming the key. Integers accept every integer type. */
lora_status lora__gguf_get_int(const lora_gguf_file *f, const char *key, int64_t lo, int64_t hi,
                               int64_t *v, int *found);
lora_status lora__gguf_get_real(const lora_gguf_file *f, const char *key, double *v, int *found);
lora_status lora__gguf_get_bool(const lora_gguf_file *f, const char *key, int *v, int *found);
lora_status lora__gguf_get_str(const lora_gguf_file *f, const char *key, lora_gguf_str *v,
                               int *found);
/* An array of elem values (strings: kv->strs). */
lora_status lora__gguf_get_array(const lora_gguf_file *f, const char *key, lora_gguf_vtype elem,
                                 const lora_gguf_kv **v, int *found);
/* Element i of an integer array as int64 (the array's type checked by the caller). */
int64_t lora__gguf_array_int(const lora_gguf_kv *kv, uint64_t i);

/* ggml types: name ("Q4_K"; NULL for an unknown id), block length in elements and bytes
 * (0 for an unknown id), and whether this version dequantizes it. */
const char *lora__gguf_type_name(uint32_t type);
uint32_t lora__gguf_type_block(uint32_t type);
uint32_t lora__gguf_type_bytes(uint32_t type);
int lora__gguf_type_supported(uint32_t type);
/* Dequantizes n whole blocks (n * block elements) of a supported type from src into dst as
 * ggml does, float32 math in ggml's order, so results equal ggml's and gguf-py's bit for bit. */
void lora__gguf_dequant(uint32_t type, const uint8_t *src, size_t n_blocks, float *dst);

/* A GGUF converted to a Hugging Face model: texts of the folder's JSON files, and each tensor
 * under its Hugging Face name with its source (and the row permutation the converter applied
 * to Llama's q/k projections, undone on read). */
typedef struct lora_gguf_source {
    char name[80];                 /* Hugging Face name */
    int ndim;
    int64_t shape[2];              /* Hugging Face order: rows, columns */
    const lora_gguf_tensor *t;
    int64_t permute_heads;         /* 0: rows as stored; else heads of the Llama permutation */
} lora_gguf_source;

typedef struct lora_gguf_model {
    lora_gguf_file *file;
    char *config_json;             /* config.json text (torch_dtype float32) */
    char *tokenizer_json;
    char *tokenizer_config_json;
    lora_tokenizer *tokenizer;     /* those two texts parsed, as a load of the folder would */
    char *generation_config_json;
    size_t n;
    lora_gguf_source *src;         /* sorted by name */
} lora_gguf_model;

/* Opens path and converts it: LORA_ERR_UNSUPPORTED names an architecture, quantization type,
 * tokenizer model or pre-tokenizer, tensor or rope setting this version lacks; LORA_ERR_FORMAT
 * a missing or mistyped key, a tensor of the wrong shape, a tokenizer that its tokenizer.json
 * would not load as (a merge of tokens not in the vocabulary), or the statuses of
 * lora__gguf_open. */
lora_status lora__gguf_model_open(const char *path, lora_gguf_model **out);
void lora__gguf_model_free(lora_gguf_model *g);
const lora_gguf_source *lora__gguf_model_find(const lora_gguf_model *g, const char *hf_name);
/* Values [offset, offset + n) of a source in Hugging Face row-major order, as float32. */
void lora__gguf_source_read(const lora_gguf_source *s, size_t offset, float *dst, size_t n);
/* The tensor's stored type name ("Q4_1"), for messages and model info. */
const char *lora__gguf_source_type(const lora_gguf_source *s);
/* The stored type name holding most of the model's values (a quantized file keeps the
 * embedding or the norms in other types), for model info. */
const char *lora__gguf_model_main_type(const lora_gguf_model *g);

/* Builds tokenizer.json and tokenizer_config.json texts from the tokenizer.* metadata. */
lora_status lora__gguf_tokenizer_build(const lora_gguf_file *f, char **tokenizer_json,
                                       char **tokenizer_config_json);

/* 1 when the file at path starts with the GGUF magic. */
int lora__gguf_is_gguf(const char *path);

#endif
