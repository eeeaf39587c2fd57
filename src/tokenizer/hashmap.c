#include "tokenizer/hashmap.h"

#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/alloc.h"

struct lora__strslot {
    uint64_t hash;    /* 0 marks an empty slot */
    size_t off;       /* key bytes in the arena */
    uint32_t len;
    int64_t value;
};

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    return x;
}

uint64_t lora__hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xA0761D6478BD642Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = mix(h ^ w) * 0xE7037ED1A0B428DBull;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = mix(h ^ w ^ ((uint64_t)n << 56));
    return h ? h : 1;
}

static size_t capacity_for(size_t expected)
{
    size_t c = 16;
    while (c < expected * 2)
        c *= 2;
    return c;
}

lora_status lora__strmap_init(lora__strmap *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    size_t cap = capacity_for(expected);
    m->slots = lora__calloc(cap, sizeof *m->slots);
    if (!m->slots)
        return lora__oom("hash map", cap * sizeof *m->slots);
    m->mask = cap - 1;
    return LORA_OK;
}

static lora_status rehash(lora__strmap *m)
{
    size_t cap = (m->mask + 1) * 2;
    struct lora__strslot *s = lora__calloc(cap, sizeof *s);
    if (!s)
        return lora__oom("hash map", cap * sizeof *s);
    for (size_t i = 0; i <= m->mask; i++) {
        if (!m->slots[i].hash)
            continue;
        size_t j = (size_t)m->slots[i].hash & (cap - 1);
        while (s[j].hash)
            j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->mask = cap - 1;
    return LORA_OK;
}

static struct lora__strslot *find(const lora__strmap *m, const void *key, size_t len, uint64_t h)
{
    size_t i = (size_t)h & m->mask;
    for (;;) {
        struct lora__strslot *s = &m->slots[i];
        if (!s->hash || (s->hash == h && s->len == len && memcmp(m->arena + s->off, key, len) == 0))
            return s;
        i = (i + 1) & m->mask;
    }
}

lora_status lora__strmap_put(lora__strmap *m, const void *key, size_t len, int64_t value,
                             int *inserted, int64_t *existing)
{
    if (len > UINT32_MAX)
        return lora__error(LORA_ERR_RANGE, "hash map: key of %zu bytes", len);
    if ((m->count + 1) * 4 > (m->mask + 1) * 3) {
        lora_status st = rehash(m);
        if (st)
            return st;
    }
    uint64_t h = lora__hash_bytes(key, len);
    struct lora__strslot *s = find(m, key, len, h);
    if (s->hash) {
        if (inserted)
            *inserted = 0;
        if (existing)
            *existing = s->value;
        return LORA_OK;
    }
    if (m->arena_len + len > m->arena_cap) {
        size_t c = m->arena_cap ? m->arena_cap : 4096;
        while (c < m->arena_len + len)
            c *= 2;
        char *a = lora__realloc(m->arena, c);
        if (!a)
            return lora__oom("hash map keys", c);
        m->arena = a;
        m->arena_cap = c;
    }
    if (len)
        memcpy(m->arena + m->arena_len, key, len);
    s->hash = h;
    s->off = m->arena_len;
    s->len = (uint32_t)len;
    s->value = value;
    m->arena_len += len;
    m->count++;
    if (inserted)
        *inserted = 1;
    return LORA_OK;
}

int64_t lora__strmap_get(const lora__strmap *m, const void *key, size_t len)
{
    const struct lora__strslot *s = find(m, key, len, lora__hash_bytes(key, len));
    return s->hash ? s->value : -1;
}

void lora__strmap_free(lora__strmap *m)
{
    free(m->slots);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

lora_status lora__u64map_init(lora__u64map *m, size_t expected)
{
    size_t cap = capacity_for(expected);
    m->keys = lora__malloc(cap * sizeof *m->keys);
    m->vals = lora__malloc(cap * sizeof *m->vals);
    m->mask = cap - 1;
    m->count = 0;
    if (!m->keys || !m->vals) {
        lora__u64map_free(m);
        return lora__oom("hash map", cap * 16);
    }
    memset(m->vals, 0xFF, cap * sizeof *m->vals);
    return LORA_OK;
}

static lora_status u64_rehash(lora__u64map *m)
{
    lora__u64map n;
    lora_status st = lora__u64map_init(&n, m->mask + 1);
    if (st)
        return st;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->vals[i] != UINT64_MAX)
            lora__u64map_set(&n, m->keys[i], m->vals[i]);
    lora__u64map_free(m);
    *m = n;
    return LORA_OK;
}

lora_status lora__u64map_set(lora__u64map *m, uint64_t key, uint64_t value)
{
    if ((m->count + 1) * 4 > (m->mask + 1) * 3) {
        lora_status st = u64_rehash(m);
        if (st)
            return st;
    }
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 32) & m->mask;
    while (m->vals[i] != UINT64_MAX && m->keys[i] != key)
        i = (i + 1) & m->mask;
    if (m->vals[i] == UINT64_MAX)
        m->count++;
    m->keys[i] = key;
    m->vals[i] = value;
    return LORA_OK;
}

void lora__u64map_free(lora__u64map *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = m->vals = NULL;
    m->mask = m->count = 0;
}
