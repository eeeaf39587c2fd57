#include "util/rng.h"

#include <math.h>

/* splitmix64 spreads a seed over the whole state, so that nearby seeds (0, 1, 2...) give
 * unrelated streams and xoshiro never starts from its all-zero fixed point. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void lora__rng_seed(lora_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

uint64_t lora__rng_u64(lora_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double lora__rng_uniform_f64(lora_rng *rng)
{
    return (double)(lora__rng_u64(rng) >> 11) * 0x1.0p-53;
}

double lora__rng_normal(lora_rng *rng)
{
    /* 1 - u lies in (0, 1], so the logarithm is finite. */
    double u1 = 1.0 - lora__rng_uniform_f64(rng);
    double u2 = lora__rng_uniform_f64(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
