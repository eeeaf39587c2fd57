/* The tokenizer's insides, shared by the files of src/tokenizer/ (others use tokenizer.h). */
#ifndef LORA_TOKENIZER_INTERNAL_H
#define LORA_TOKENIZER_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/bytebuf.h"
#include "tokenizer/hashmap.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

/* The largest id a tokenizer.json may use: ids index dense per-id arrays. */
#define LORA__MAX_TOKEN_ID (1 << 24)

typedef struct lora__added_token {
    char *content;  /* UTF-8, as matched in the input and as decoded */
    size_t len;
    int32_t id;
    unsigned char special, lstrip, rstrip, single_word, normalized;
} lora__added_token;

enum { LORA__ID_NONE = 0, LORA__ID_VOCAB = 1, LORA__ID_ADDED = 2, LORA__ID_SPECIAL = 3 };

struct lora_tokenizer {
    atomic_int refs;
    size_t n_ids;            /* largest id + 1 */
    unsigned char *kind;     /* (n_ids) LORA__ID_* */
    size_t *raw_off;         /* (n_ids + 1) each id's bytes in raw: what it decodes to */
    unsigned char *raw;

    /* the BPE model */
    lora__strmap vocab;      /* byte-level text -> id */
    lora__u64map merges;     /* left << 32 | right -> rank << 32 | merged id */
    int32_t byte_id[256];    /* the id of each byte alone; -1 when the vocabulary lacks it */
    int32_t unk_id;          /* -1: characters outside the vocabulary are dropped */
    int fuse_unk, ignore_merges;

    /* added tokens, matched before everything else */
    lora__added_token *added;
    size_t n_added;
    lora__strmap added_map;  /* content -> index in added */
    unsigned char added_first[256]; /* bit 1: an added token starts with this byte; bit 2: a
                                       non-special one does */
    size_t *added_lens;      /* the distinct content lengths, longest first */
    size_t n_added_lens;

    int nfc;                 /* the normalizer is NFC (else none) */
    lora__pretok pre;

    int32_t special_id[3];   /* lora__special order; -1 when absent */
    char *special_text[3];
    char *chat_template;
    char *template_override;
    char *info_json;
};

/* lora__tokenizer_encode, with start and end left NULL unless offsets is 1. */
lora_status lora__encode(const lora_tokenizer *t, const char *text, size_t len, unsigned flags,
                         int offsets, lora__encoding *out);
/* Appends the bytes ids decode to (special tokens left out when skip_special); LORA_ERR_RANGE
 * names the index and id of one outside the vocabulary. where names the public function. */
lora_status lora__decode_bytes(const lora_tokenizer *t, const int32_t *ids, size_t n,
                               int skip_special, lora__bytebuf *out, const char *where);

/* Parses tokenizer.json (text of len bytes, named path in messages) into t. */
lora_status lora__tokenizer_parse(lora_tokenizer *t, const char *text, size_t len,
                                  const char *path);
/* Reads tokenizer_config.json at path if it exists. */
lora_status lora__tokenizer_config_read(lora_tokenizer *t, const char *path);
/* The same from its text (len bytes, named path in messages). */
lora_status lora__tokenizer_config_parse(lora_tokenizer *t, const char *text, size_t len,
                                         const char *path);
/* The load options {"chat_template": ...}. */
lora_status lora__tokenizer_options(lora_tokenizer *t, const char *json);
/* template_name: the chat template in use (a built-in name, "custom") or NULL for none. */
lora_status lora__tokenizer_info_build(lora_tokenizer *t, const char *template_name);
/* The id of a token text: an added token's content or a vocabulary entry; -1 when none. */
int32_t lora__tokenizer_lookup(const lora_tokenizer *t, const char *text, size_t len);
void lora__tokenizer_release(lora_tokenizer *t);

/* Bytes an id decodes to. */
static inline const unsigned char *lora__id_bytes(const lora_tokenizer *t, int32_t id, size_t *n)
{
    *n = t->raw_off[id + 1] - t->raw_off[id];
    return t->raw + t->raw_off[id];
}

#endif
