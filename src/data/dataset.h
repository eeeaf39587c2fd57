/* Internal pieces of lora_dataset: options, reading JSONL, one sample, the tokenized store,
 * packing, epoch order. */
#ifndef LORA_DATA_DATASET_H
#define LORA_DATA_DATASET_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lora.h"

#define LORA__IGNORE_INDEX (-100)
/* A line longer than this is a bad line: it would be one sample of millions of tokens. */
#define LORA__MAX_LINE_BYTES ((size_t)4 << 20)
/* Lenient mode keeps this many bad-line messages for lora_dataset_stats_json. */
#define LORA__KEPT_ERRORS 5

/* ---- options (dataset_config.c) ---------------------------------------------------------- */

typedef enum lora__format {
    LORA__FORMAT_AUTO,
    LORA__FORMAT_MESSAGES,
    LORA__FORMAT_PROMPT_COMPLETION,
    LORA__FORMAT_TEXT
} lora__format;

typedef struct lora__dataset_config {
    lora__format format;
    int loss_all;        /* "loss": "all" */
    size_t max_length;
    int packing;
    int shuffle;
    uint64_t seed;
    int strict;
    json_t *chat;        /* owned reference, or NULL */
} lora__dataset_config;

/* Fills cfg from config_json (NULL: every default). LORA_ERR_CONFIG names the key; on failure
 * cfg owns nothing. */
lora_status lora__dataset_config_parse(const char *config_json, lora__dataset_config *cfg);
void lora__dataset_config_release(lora__dataset_config *cfg);
/* dst gets src's options, sharing its chat object. */
void lora__dataset_config_copy(lora__dataset_config *dst, const lora__dataset_config *src);

/* ---- lines of a JSONL file (jsonl.c) ----------------------------------------------------- */

typedef struct lora__jsonl {
    FILE *f;
    char *buf;            /* the current line, NUL-terminated */
    size_t cap;
    size_t line;          /* 1-based number of the current line */
    int eof;
} lora__jsonl;

typedef enum lora__line_kind { LORA__LINE_OK, LORA__LINE_TOO_LONG, LORA__LINE_END } lora__line_kind;

/* LORA_ERR_IO names the path. */
lora_status lora__jsonl_open(lora__jsonl *r, const char *path);
/* The next line that is not blank (only spaces, tabs, a CR), its end of line and a CR before
 * it removed. A line over LORA__MAX_LINE_BYTES is read to its end and reported as TOO_LONG.
 * LORA_ERR_IO on a read error, LORA_ERR_OUT_OF_MEMORY. */
lora_status lora__jsonl_next(lora__jsonl *r, const char **line, size_t *len,
                             lora__line_kind *kind);
void lora__jsonl_close(lora__jsonl *r);
/* The offset of the first byte of text that is not part of valid UTF-8 (overlong forms,
 * surrogates and values over U+10FFFF are invalid), or len when all is valid. */
size_t lora__utf8_invalid_at(const char *text, size_t len);

/* ---- one sample (sample.c) --------------------------------------------------------------- */

/* A tokenized sample: ids and whether each is in the loss (before truncation). */
typedef struct lora__sample {
    int32_t *ids;
    unsigned char *loss;
    size_t n;
} lora__sample;

/* Turns one parsed line into a sample. LORA_ERR_FORMAT is a bad line: the message (set with
 * lora__error) says what, without file or line. Other statuses fail the load. */
lora_status lora__sample_make(const lora_tokenizer *t, const lora__dataset_config *cfg,
                              const json_t *line, lora__sample *out);
void lora__sample_free(lora__sample *s);

/* ---- the tokenized samples, shared read-only by a dataset and its splits (store.c) -------- */

typedef struct lora__store {
    atomic_int refs;
    int32_t *ids;           /* every sample's ids, end to end */
    unsigned char *loss;    /* (same) 1: the token is in the loss */
    size_t *off;            /* sample i is [off[i], off[i+1]) */
    unsigned char *truncated;  /* (n) 1: the sample lost tokens to max_length */
    size_t n, n_tokens, cap_samples, cap_tokens;
    /* of the file read: non-blank lines, bad lines skipped, the first bad-line messages */
    size_t lines, skipped;
    char *errors[LORA__KEPT_ERRORS];
    size_t n_errors;
} lora__store;

lora_status lora__store_create(lora__store **out);
/* Appends s cut to max_length tokens. */
lora_status lora__store_add(lora__store *st, const lora__sample *s, size_t max_length);
/* Keeps msg (copied) when fewer than LORA__KEPT_ERRORS are kept. */
lora_status lora__store_note_error(lora__store *st, const char *msg);
void lora__store_retain(lora__store *st);
void lora__store_release(lora__store *st);

static inline size_t lora__store_len(const lora__store *st, size_t i)
{
    return st->off[i + 1] - st->off[i];
}

/* ---- rows (pack.c) ----------------------------------------------------------------------- */

/* Row r holds the store's samples items[start[r] .. start[r+1]), in that order. */
typedef struct lora__rows {
    size_t *items;
    size_t *start;  /* (n + 1) */
    size_t n;
} lora__rows;

/* One row per sample, samples[i] (n of them) in order. */
lora_status lora__rows_plain(const size_t *samples, size_t n, lora__rows *out);
/* Packs samples into rows of at most max_length tokens by best-fit decreasing. */
lora_status lora__rows_pack(const lora__store *st, const size_t *samples, size_t n,
                            size_t max_length, lora__rows *out);
void lora__rows_free(lora__rows *r);

/* ---- epoch order (order.c) --------------------------------------------------------------- */

/* perm (n) becomes epoch's order of 0..n-1: the identity without shuffling, else a
 * Fisher-Yates permutation drawn from a stream seeded by seed and epoch. */
void lora__order_epoch(size_t *perm, size_t n, int shuffle, uint64_t seed, uint64_t epoch);
/* A uniform permutation of 0..n-1 from a stream seeded by seed. */
void lora__order_permute(size_t *perm, size_t n, uint64_t seed);

/* ---- the handle (dataset.c) -------------------------------------------------------------- */

struct lora_dataset {
    lora_tokenizer *tokenizer;  /* held */
    lora__store *store;         /* held, read-only */
    lora__dataset_config cfg;
    size_t *samples;            /* this dataset's samples (store indices) in file order */
    size_t n_samples;
    lora__rows rows;
    int32_t pad_id;
    char *stats;                /* lora_dataset_stats_json's text */
    /* lora_dataset_next_batch's place: perm is the order of epoch perm_epoch */
    uint64_t position;
    size_t *perm;
    uint64_t perm_epoch;
    int perm_valid;
};

/* Copies row r into ids, labels, position_ids (any may be NULL) from index 0. */
void lora__dataset_copy_row(const lora_dataset *d, size_t r, int32_t *ids, int32_t *labels,
                            int32_t *position_ids);
size_t lora__dataset_row_len(const lora_dataset *d, size_t r);
/* Pads a row of seq entries after its n >= 1 tokens: ids pad_id, labels -100, position_ids
 * (may be NULL) counting on from the last token's, which keeps the row one run of positions
 * for a packed step. */
void lora__pad_row(int32_t *ids, int32_t *labels, int32_t *position_ids, size_t n, size_t seq,
                   int32_t pad_id);

/* The stats JSON text of d (stats.c); NULL when out of memory. */
char *lora__dataset_stats(const lora_dataset *d);

/* Reads path into a new store (load.c). */
lora_status lora__dataset_read(const lora_tokenizer *t, const char *path,
                               const lora__dataset_config *cfg, lora__store **out);

#endif
