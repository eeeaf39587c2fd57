/* Open-addressing hash maps for the tokenizer: byte strings to 64-bit values (vocabulary, the
 * per-call word cache) and 64-bit keys to 64-bit values (merges: a pair of ids to rank and id). */
#ifndef LORA_TOKENIZER_HASHMAP_H
#define LORA_TOKENIZER_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

#include "lora.h"

uint64_t lora__hash_bytes(const void *p, size_t n);

/* Keys are copied into the map's own arena. */
typedef struct lora__strmap {
    struct lora__strslot *slots;
    size_t mask;   /* capacity - 1, a power of two */
    size_t count;
    char *arena;
    size_t arena_len, arena_cap;
} lora__strmap;

lora_status lora__strmap_init(lora__strmap *m, size_t expected);
/* Inserts key -> value; when the key is present its value is kept and *existing (if not NULL)
 * gets it with LORA_OK and *inserted = 0. */
lora_status lora__strmap_put(lora__strmap *m, const void *key, size_t len, int64_t value,
                             int *inserted, int64_t *existing);
/* The value, or -1 when absent. */
int64_t lora__strmap_get(const lora__strmap *m, const void *key, size_t len);
void lora__strmap_free(lora__strmap *m);

typedef struct lora__u64map {
    uint64_t *keys;
    uint64_t *vals;  /* UINT64_MAX marks an empty slot */
    size_t mask;
    size_t count;
} lora__u64map;

lora_status lora__u64map_init(lora__u64map *m, size_t expected);
/* Sets key -> value (value != UINT64_MAX), replacing an earlier value. */
lora_status lora__u64map_set(lora__u64map *m, uint64_t key, uint64_t value);
/* The value, or UINT64_MAX when absent. */
static inline uint64_t lora__u64map_get(const lora__u64map *m, uint64_t key)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 32) & m->mask;
    for (;;) {
        uint64_t v = m->vals[i];
        if (v == UINT64_MAX || m->keys[i] == key)
            return v;
        i = (i + 1) & m->mask;
    }
}
void lora__u64map_free(lora__u64map *m);

#endif
