/* A small deterministic PRNG (xoshiro256** seeded through splitmix64): the same seed gives the
 * same stream on every platform, which sampling and weight initialisation promise callers. */
#ifndef LORA_UTIL_RNG_H
#define LORA_UTIL_RNG_H

#include <stdint.h>

/* Held by value inside other structs; internal use only. */
typedef struct lora_rng {
    uint64_t s[4];
} lora_rng;

/* Restarts the stream: any seed, 0 included, gives a valid state. */
void lora__rng_seed(lora_rng *rng, uint64_t seed);
uint64_t lora__rng_u64(lora_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double lora__rng_uniform_f64(lora_rng *rng);
/* Standard normal (mean 0, variance 1) by Box-Muller; two uniform draws per call. */
double lora__rng_normal(lora_rng *rng);

#endif
