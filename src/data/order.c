/* The order of rows in each epoch: seeded Fisher-Yates, a new permutation per epoch. */
#include "data/dataset.h"
#include "util/rng.h"

/* Uniform in 0..n-1 by Lemire's multiply-shift (bias below n / 2^64). */
static size_t below(lora_rng *r, size_t n)
{
    return (size_t)(((unsigned __int128)lora__rng_u64(r) * n) >> 64);
}

void lora__order_permute(size_t *perm, size_t n, uint64_t seed)
{
    lora_rng r;
    lora__rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = below(&r, i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

void lora__order_epoch(size_t *perm, size_t n, int shuffle, uint64_t seed, uint64_t epoch)
{
    if (!shuffle) {
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
        return;
    }
    /* An odd multiplier makes the epoch -> stream seed map one to one for a given seed. */
    lora__order_permute(perm, n, seed ^ (epoch * 0x9e3779b97f4a7c15ULL + 0xd1b54a32d192ed03ULL));
}
