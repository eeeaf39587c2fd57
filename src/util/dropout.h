/* Dropout masks that need no storage: the mask of a row is a pure function of (seed, module,
 * row), so a backward regenerates exactly the mask its forward used. */
#ifndef LORA_UTIL_DROPOUT_H
#define LORA_UTIL_DROPOUT_H

#include <stdint.h>

/* The CUDA backend's dropout kernel includes this header: one definition of the masks. */
#ifdef __CUDACC__
#define LORA__HOST_DEVICE __host__ __device__
#else
#define LORA__HOST_DEVICE
#endif

LORA__HOST_DEVICE static inline uint64_t lora__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* out[i] = keep ? x[i] * scale : 0 for the values c0..c0+n-1 of one row, keep with
 * probability 1 - p, scale = 1 / (1 - p) (inverted dropout, as torch.nn.Dropout). Element i
 * of a row draws from its own counter, so any piece of a row gets the same mask. */
LORA__HOST_DEVICE static inline uint64_t lora__dropout_base(uint64_t seed, uint64_t module,
                                                            uint64_t row)
{
    return lora__mix64(seed ^ lora__mix64(module * 0x9e3779b97f4a7c15u + row));
}

/* keep when the top 32 bits of a uniform draw are at or past p * 2^32 */
LORA__HOST_DEVICE static inline uint64_t lora__dropout_cut(float p)
{
    return (uint64_t)((double)p * 4294967296.0);
}

/* Whether element col of the row with this base survives. */
LORA__HOST_DEVICE static inline int lora__dropout_keep(uint64_t base, int64_t col, uint64_t cut)
{
    return (lora__mix64(base + (uint64_t)col * 0x9e3779b97f4a7c15u) >> 32) >= cut;
}

static inline void lora__dropout_row_part(float *out, const float *x, int64_t c0, int64_t n,
                                          float p, uint64_t seed, uint64_t module, uint64_t row)
{
    uint64_t base = lora__dropout_base(seed, module, row), cut = lora__dropout_cut(p);
    float scale = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++)
        out[i] = lora__dropout_keep(base, c0 + i, cut) ? x[i] * scale : 0.0f;
}

static inline void lora__dropout_row(float *out, const float *x, int64_t n, float p,
                                     uint64_t seed, uint64_t module, uint64_t row)
{
    lora__dropout_row_part(out, x, 0, n, p, seed, module, row);
}

#endif
