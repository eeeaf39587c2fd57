/* The live-handle registry: an open-addressing hash set of addresses (linear probing,
 * backward-shift deletion) under a read-write lock, so that concurrent checks from many
 * threads do not serialise each other. */
#include "api/handle.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "api/error.h"
#include "util/alloc.h"

typedef struct slot {
    uintptr_t key;      /* 0: empty */
    lora__kind kind;
} slot;

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static slot *table;     /* cap slots, at most half full; freed when the last handle goes */
static size_t cap;      /* 0 or a power of two */
static size_t count;

static const char *const kind_names[] = {
    [LORA__KIND_MODEL] = "lora_model",         [LORA__KIND_SESSION] = "lora_session",
    [LORA__KIND_SAMPLER] = "lora_sampler",     [LORA__KIND_ADAPTER] = "lora_adapter",
    [LORA__KIND_OPTIMIZER] = "lora_optimizer", [LORA__KIND_TOKENIZER] = "lora_tokenizer",
    [LORA__KIND_DETOKENIZER] = "lora_detokenizer", [LORA__KIND_DATASET] = "lora_dataset",
};

static size_t home(uintptr_t key, size_t n)
{
    uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15u; /* Fibonacci hashing: the high bits mix */
    return (size_t)(h >> 32) & (n - 1);
}

static size_t find(uintptr_t key)
{
    if (!cap)
        return SIZE_MAX;
    for (size_t i = home(key, cap);; i = (i + 1) & (cap - 1)) {
        if (table[i].key == key)
            return i;
        if (!table[i].key)
            return SIZE_MAX;
    }
}

static void put(slot *t, size_t n, slot e)
{
    size_t i = home(e.key, n);
    while (t[i].key)
        i = (i + 1) & (n - 1);
    t[i] = e;
}

static int grow(void)
{
    size_t n = cap ? 2 * cap : 64;
    slot *t = lora__calloc(n, sizeof *t);
    if (!t)
        return 0;
    for (size_t i = 0; i < cap; i++)
        if (table[i].key)
            put(t, n, table[i]);
    free(table);
    table = t;
    cap = n;
    return 1;
}

lora_status lora__handle_add(const void *p, lora__kind k)
{
    pthread_rwlock_wrlock(&lock);
    int ok = 2 * (count + 1) <= cap || grow();
    if (ok) {
        put(table, cap, (slot){(uintptr_t)p, k});
        count++;
    }
    pthread_rwlock_unlock(&lock);
    return ok ? LORA_OK : lora__oom("the handle registry", 2 * cap * sizeof *table);
}

void lora__handle_remove(const void *p)
{
    if (!p)
        return;
    pthread_rwlock_wrlock(&lock);
    size_t i = find((uintptr_t)p);
    if (i != SIZE_MAX) {
        /* backward shift: move later entries of the probe run into the hole when their home
         * slot does not lie cyclically in (hole, their slot] */
        for (size_t j = (i + 1) & (cap - 1); table[j].key; j = (j + 1) & (cap - 1)) {
            size_t h = home(table[j].key, cap);
            int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
            if (!stays) {
                table[i] = table[j];
                i = j;
            }
        }
        table[i].key = 0;
        if (--count == 0) {
            free(table);
            table = NULL;
            cap = 0;
        }
    }
    pthread_rwlock_unlock(&lock);
}

lora_status lora__handle_check(const void *p, lora__kind k, const char *fn, const char *arg)
{
    if (!p)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, arg);
    pthread_rwlock_rdlock(&lock);
    size_t i = find((uintptr_t)p);
    lora__kind found = i == SIZE_MAX ? 0 : table[i].kind;
    pthread_rwlock_unlock(&lock);
    if (found == k)
        return LORA_OK;
    if (found)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is a %s, not a %s", fn, arg,
                           kind_names[found], kind_names[k]);
    return lora__error(LORA_ERR_INVALID_ARGUMENT,
                       "%s: %s is not a live %s (freed, or not made by liblora)", fn, arg,
                       kind_names[k]);
}

int lora__handle_freeable(const void *p, lora__kind k, const char *fn, const char *arg)
{
    return p && lora__handle_check(p, k, fn, arg) == LORA_OK;
}
