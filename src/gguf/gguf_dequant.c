/* ggml's tensor types and their dequantization, one function per block layout (the layouts of
 * the GGUF spec and ggml-quants). Each product and sum is its own float32 operation in ggml's
 * order, so that the results equal ggml's and gguf-py's bit for bit; the library is built in
 * ISO C mode, where compilers do not contract them into fused multiply-adds. */
#include "gguf/gguf.h"

#include <string.h>

#include "model/dtype.h"

#define QK_K 256

static const struct {
    const char *name;
    uint32_t block, bytes;
} types[] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},
    [2] = {"Q4_0", 32, 18},      [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 40},
    [10] = {"Q2_K", 256, 84},    [11] = {"Q3_K", 256, 110},
    [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},
    [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},   [23] = {"IQ4_XS", 256, 136},
    [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},
    [28] = {"F64", 1, 8},        [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},
};
#define N_TYPES (sizeof types / sizeof *types)

const char *lora__gguf_type_name(uint32_t type) { return type < N_TYPES ? types[type].name : NULL; }
uint32_t lora__gguf_type_block(uint32_t type) { return type < N_TYPES ? types[type].block : 0; }
uint32_t lora__gguf_type_bytes(uint32_t type) { return type < N_TYPES ? types[type].bytes : 0; }

static float f16(const uint8_t *p)
{
    float x;
    lora__f32_from_f16(&x, p, 1);
    return x;
}

/* Q4_0: f16 scale, 16 bytes of nibbles; low nibbles are elements 0..15, high ones 16..31. */
static void q4_0(const uint8_t *b, float *y)
{
    float d = f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((qs[j] & 0xF) - 8);
        y[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

/* Q4_1: f16 scale and minimum, then nibbles as in Q4_0, unsigned. */
static void q4_1(const uint8_t *b, float *y)
{
    float d = f16(b), m = f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        float lo = d * (float)(qs[j] & 0xF), hi = d * (float)(qs[j] >> 4);
        y[j] = lo + m;
        y[j + 16] = hi + m;
    }
}

/* Q5_0 / Q5_1: as Q4_0 / Q4_1, and a 32-bit word whose bit j is element j's fifth bit. */
static void q5_0(const uint8_t *b, float *y)
{
    float d = f16(b);
    uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0xF) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

static void q5_1(const uint8_t *b, float *y)
{
    float d = f16(b), m = f16(b + 2);
    uint32_t qh = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0xF) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        float a = d * (float)lo, c = d * (float)hi;
        y[j] = a + m;
        y[j + 16] = c + m;
    }
}

/* Q8_0: f16 scale, 32 signed bytes. */
static void q8_0(const uint8_t *b, float *y)
{
    float d = f16(b);
    for (int j = 0; j < 32; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q2_K: 16 bytes of 4-bit scale | 4-bit min per 16 elements, 64 bytes of 2-bit values (each
 * byte serves four 32-element rows of its 128-element half), f16 scale, f16 min scale. */
static void q2_k(const uint8_t *b, float *y)
{
    const uint8_t *sc = b, *qs = b + 16;
    float d = f16(b + 80), dmin = f16(b + 82);
    for (int e = 0; e < QK_K; e++) {
        int h = e / 128, s = e % 128 / 32, l = e % 32;
        int q = (qs[h * 32 + l] >> (2 * s)) & 3;
        float dl = d * (float)(sc[e / 16] & 0xF), ml = dmin * (float)(sc[e / 16] >> 4);
        float p = dl * (float)q;
        y[e] = p - ml;
    }
}

/* Q3_K: 32 bytes of high bits (bit j of byte l: element 32j + l; a set bit means no -4),
 * 64 bytes of 2-bit values as in Q2_K, 12 bytes packing 16 6-bit signed scales, f16 scale. */
static void q3_k(const uint8_t *b, float *y)
{
    const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    float d = f16(b + 108);
    float dl[16];
    for (int i = 0; i < 16; i++) {
        int lo = (i < 8 ? sc[i] : sc[i - 8] >> 4) & 0xF;
        int hi = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
        dl[i] = d * (float)((lo | hi << 4) - 32);
    }
    for (int e = 0; e < QK_K; e++) {
        int h = e / 128, s = e % 128 / 32, l = e % 32;
        int q = (qs[h * 32 + l] >> (2 * s)) & 3;
        int high = (hm[l] >> (e / 32)) & 1;
        y[e] = dl[e / 16] * (float)(q - (high ? 0 : 4));
    }
}

/* The eight 6-bit scales and minimums of Q4_K and Q5_K, packed in 12 bytes. */
static void scale_min_k4(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q4_K: f16 scale, f16 min scale, 12 scale bytes, 128 bytes of nibbles (each 32 bytes: the
 * low nibbles of one 32-element group, then the high nibbles of the next). */
static void q4_k(const uint8_t *b, float *y)
{
    float d = f16(b), dmin = f16(b + 2);
    const uint8_t *sc = b + 4, *qs = b + 16;
    for (int g = 0; g < 8; g++) {
        int s, m;
        scale_min_k4(sc, g, &s, &m);
        float d1 = d * (float)s, m1 = dmin * (float)m;
        for (int l = 0; l < 32; l++) {
            float p = d1 * (float)((qs[g / 2 * 32 + l] >> (4 * (g % 2))) & 0xF);
            y[g * 32 + l] = p - m1;
        }
    }
}

/* Q5_K: Q4_K plus 32 bytes of fifth bits (bit g of byte l: element 32g + l), before the
 * nibbles. */
static void q5_k(const uint8_t *b, float *y)
{
    float d = f16(b), dmin = f16(b + 2);
    const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + 48;
    for (int g = 0; g < 8; g++) {
        int s, m;
        scale_min_k4(sc, g, &s, &m);
        float d1 = d * (float)s, m1 = dmin * (float)m;
        for (int l = 0; l < 32; l++) {
            int q = ((qs[g / 2 * 32 + l] >> (4 * (g % 2))) & 0xF) | ((qh[l] >> g) & 1) << 4;
            float p = d1 * (float)q;
            y[g * 32 + l] = p - m1;
        }
    }
}

/* Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed 8-bit scales (one
 * per 16 elements), f16 scale. Each 128-element half uses 64 low bytes and 32 high bytes. */
static void q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = f16(b + 208);
    for (int e = 0; e < QK_K; e++) {
        int h = e / 128, r = e % 128;
        int lo = (ql[h * 64 + r % 64] >> (4 * (r / 64))) & 0xF;
        int hi = (qh[h * 32 + r % 32] >> (2 * (r / 32))) & 3;
        float ds = d * (float)sc[e / 16];
        y[e] = ds * (float)((lo | hi << 4) - 32);
    }
}

typedef void (*block_fn)(const uint8_t *, float *);

static block_fn block_fn_of(uint32_t type)
{
    switch (type) {
    case 2: return q4_0;
    case 3: return q4_1;
    case 6: return q5_0;
    case 7: return q5_1;
    case 8: return q8_0;
    case 10: return q2_k;
    case 11: return q3_k;
    case 12: return q4_k;
    case 13: return q5_k;
    case 14: return q6_k;
    default: return NULL;
    }
}

int lora__gguf_type_supported(uint32_t type)
{
    return type == 0 || type == 1 || type == 30 || block_fn_of(type) != NULL;
}

void lora__gguf_dequant(uint32_t type, const uint8_t *src, size_t n_blocks, float *dst)
{
    if (type == 0) {
        lora__f32_from_f32(dst, src, n_blocks);
    } else if (type == 1) {
        lora__f32_from_f16(dst, src, n_blocks);
    } else if (type == 30) {
        lora__f32_from_bf16(dst, src, n_blocks);
    } else {
        block_fn fn = block_fn_of(type);
        size_t blk = types[type].block, bytes = types[type].bytes;
        for (size_t i = 0; i < n_blocks; i++)
            fn(src + i * bytes, dst + i * blk);
    }
}
