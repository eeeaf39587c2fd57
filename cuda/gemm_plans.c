/* The table of cached cuBLASLt plans: a fixed array scanned by hash (a few hundred 64-bit
 * compares, well under a microsecond, against the descriptor builds and the heuristic query it
 * saves), the least recently used entry replaced when full. Host code only: it never calls
 * cuBLASLt, so the core tests exercise it without a device. */
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "internal.h"

/* FNV-1a over the key's bytes (it has no padding: every field is 64 bits) */
static uint64_t key_hash(const lora_gemm_key *key)
{
    const unsigned char *b = (const unsigned char *)key;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < sizeof *key; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

lora_gemm_plan *lora__gemm_cache_find(lora_gemm_cache *c, const lora_gemm_key *key)
{
    if (c->e) {
        uint64_t h = key_hash(key);
        for (int i = 0; i < LORA_GEMM_PLANS; i++) {
            lora_gemm_entry *e = &c->e[i];
            if (e->live && e->hash == h && memcmp(&e->key, key, sizeof *key) == 0) {
                e->used = ++c->clock;
                c->hits++;
                return &e->plan;
            }
        }
    }
    c->misses++;
    return NULL;
}

bool lora__gemm_cache_insert(lora_gemm_cache *c, const lora_gemm_key *key,
                             const lora_gemm_plan *plan, lora_gemm_plan *evicted,
                             bool *was_evicted)
{
    *was_evicted = false;
    if (!c->e && !(c->e = lora__calloc(LORA_GEMM_PLANS, sizeof *c->e)))
        return false;
    lora_gemm_entry *slot = NULL;
    for (int i = 0; i < LORA_GEMM_PLANS; i++) {
        lora_gemm_entry *e = &c->e[i];
        if (!e->live) {
            slot = e;
            break;
        }
        if (!slot || e->used < slot->used)
            slot = e;
    }
    if (slot->live) {
        *evicted = slot->plan;
        *was_evicted = true;
        c->evictions++;
    } else
        c->live++;
    slot->key = *key;
    slot->hash = key_hash(key);
    slot->used = ++c->clock;
    slot->live = true;
    slot->plan = *plan;
    return true;
}

void lora__gemm_cache_drop(lora_gemm_cache *c)
{
    free(c->e);
    c->e = NULL;
    c->live = 0;
}
