/* Stored dtypes: exact BF16/F16 -> float32 conversion, BF16 rounding, F16 checkpoints. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "lora.h"
#include "util/suite.h"
#include "model/dtype.h"
#include "util/st_build.h"

static float from_half(uint16_t h)
{
    uint8_t b[2] = {(uint8_t)(h & 0xff), (uint8_t)(h >> 8)};
    float f;
    lora__f32_from_f16(&f, b, 1);
    return f;
}

static float from_bf16(uint16_t h)
{
    uint8_t b[2] = {(uint8_t)(h & 0xff), (uint8_t)(h >> 8)};
    float f;
    lora__f32_from_bf16(&f, b, 1);
    return f;
}

START_TEST(half_patterns)
{
    ck_assert(from_half(0x3c00) == 1.0f);
    ck_assert(from_half(0xc000) == -2.0f);
    ck_assert(from_half(0x7bff) == 65504.0f);            /* largest normal */
    ck_assert(from_half(0x0400) == ldexpf(1.0f, -14));   /* smallest normal */
    ck_assert(from_half(0x0001) == ldexpf(1.0f, -24));   /* smallest subnormal */
    ck_assert(from_half(0x03ff) == ldexpf(1023.0f, -24)); /* largest subnormal */
    ck_assert(from_half(0x8000) == 0.0f && signbit(from_half(0x8000)));
    ck_assert(isinf(from_half(0x7c00)) && from_half(0x7c00) > 0);
    ck_assert(isinf(from_half(0xfc00)) && from_half(0xfc00) < 0);
    ck_assert(isnan(from_half(0x7e00)));
    ck_assert(from_half(0x3555) == (1.0f + 0x155 / 1024.0f) * 0.25f); /* ~1/3 */
}
END_TEST

START_TEST(bf16_patterns_and_rounding)
{
    ck_assert(from_bf16(0x3f80) == 1.0f);
    ck_assert(from_bf16(0xc0a0) == -5.0f);
    ck_assert(isinf(from_bf16(0x7f80)));
    ck_assert(isnan(from_bf16(0x7fc0)));
    ck_assert_uint_eq(lora__bf16_from_f32(1.0f), 0x3f80);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0) */
    ck_assert_uint_eq(lora__bf16_from_f32(1.0f + ldexpf(1.0f, -8)), 0x3f80);
    /* 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even) */
    ck_assert_uint_eq(lora__bf16_from_f32(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
    ck_assert_uint_eq(lora__bf16_from_f32(1.0f + ldexpf(1.0f, -8) + ldexpf(1.0f, -20)), 0x3f81);
    ck_assert(isnan(from_bf16(lora__bf16_from_f32(NAN))));
    for (uint32_t h = 0; h < 0x7f80; h += 7) /* every finite positive pattern round-trips */
        ck_assert_uint_eq(lora__bf16_from_f32(from_bf16((uint16_t)h)), h);
}
END_TEST

/* the bulk rounding of a GPU model's weights: the scalar rounding value for value, over both
 * signs, ties, values that round up to infinity, subnormals, NaN */
START_TEST(bf16_bulk_rounding)
{
    enum { N = 4096 };
    static float src[N];
    static uint16_t dst[N];
    uint32_t u = 1u;
    for (size_t i = 0; i < N; i++) {
        u = u * 1664525u + 1013904223u;
        uint32_t bits = i % 4 == 0 ? (u & 0xffff0000u) | 0x8000u /* a tie */ : u;
        memcpy(&src[i], &bits, sizeof bits);
    }
    src[0] = 3.4028235e38f; /* FLT_MAX: past bfloat16's largest finite value, rounds to inf */
    src[1] = -0.0f;
    src[2] = NAN;
    src[3] = ldexpf(1.0f, -130); /* subnormal */
    lora__bf16_from_f32_n(dst, src, N);
    for (size_t i = 0; i < N; i++)
        ck_assert_msg(dst[i] == lora__bf16_from_f32(src[i]), "value %zu: 0x%04x", i, dst[i]);
    ck_assert_uint_eq(dst[0], 0x7f80);
    ck_assert_uint_eq(dst[1], 0x8000);
    ck_assert(isnan(from_bf16(dst[2])));
    ck_assert(from_bf16(dst[3]) == ldexpf(1.0f, -130));
}
END_TEST

/* round-to-nearest float -> half for the test's own checkpoint (normal range only) */
static uint16_t to_half(float f)
{
    if (f == 0.0f)
        return signbit(f) ? 0x8000 : 0;
    int e;
    float m = frexpf(fabsf(f), &e); /* f = m * 2^e, m in [0.5, 1) */
    uint16_t sign = f < 0 ? 0x8000 : 0;
    if (e - 1 < -14) { /* subnormal: units of 2^-24 */
        long q = lrintf(ldexpf(fabsf(f), 24));
        return (uint16_t)(sign | (uint16_t)q);
    }
    long mant = lrintf((m * 2.0f - 1.0f) * 1024.0f);
    int exp = e - 1 + 15;
    if (mant == 1024) {
        mant = 0;
        exp++;
    }
    return (uint16_t)(sign | (exp << 10) | mant);
}

START_TEST(f16_checkpoint_loads)
{
    char *tmp = tu_st_mkdtemp();
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open("tests/fixtures/tiny-qwen2/model.safetensors", &f), LORA_OK);
    size_t n = lora__st_count(f);
    lora_st_decl *d = calloc(n, sizeof *d);
    for (size_t i = 0; i < n; i++) {
        const lora_st_tensor *t = lora__st_at(f, i);
        d[i] = (lora_st_decl){t->name, LORA_ST_F16, t->ndim, {0}};
        memcpy(d[i].shape, t->shape, sizeof t->shape);
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(path, d, n, NULL, &w), LORA_OK);
    for (size_t i = 0; i < n; i++) {
        const lora_st_tensor *t = lora__st_at(f, i);
        uint16_t *h = malloc(t->numel * sizeof *h + 1);
        for (size_t k = 0; k < t->numel; k++) {
            float x;
            memcpy(&x, t->data + 4 * k, 4);
            h[k] = to_half(x);
        }
        ck_assert_int_eq(lora__st_writer_write(w, h, t->numel * sizeof *h), LORA_OK);
        free(h);
    }
    ck_assert_int_eq(lora__st_writer_commit(w), LORA_OK);
    lora__st_close(f);
    free(d);
    size_t cn;
    uint8_t *cfg = tu_st_read_file("tests/fixtures/tiny-qwen2/config.json", &cn);
    snprintf(path, sizeof path, "%s/config.json", tmp);
    ck_assert_int_eq(tu_st_write_file(path, cfg, cn), 0);
    free(cfg);

    int32_t ids[6] = {1, 50, 7, 300, 2, 9};
    size_t V;
    float *la = tu_logits(tmp, ids, 6, &V), *lb = tu_logits("tests/fixtures/tiny-qwen2", ids, 6, &V);
    /* F16 keeps 11 significant bits: logits agree to about 1e-3, not better, not worse */
    double err = tu_max_rel_err(la, lb, 6 * V);
    ck_assert_msg(err < 5e-3 && err > 0, "rel diff %g", err);
    free(la);
    free(lb);
    char *info;
    ck_assert_int_eq(lora_model_describe(tmp, &info), LORA_OK);
    ck_assert(strstr(info, "\"stored_dtype\":\"F16\""));
    lora_string_free(info);
    tu_st_rmtree(tmp);
    free(tmp);
}
END_TEST

static Suite *dtype_suite(void)
{
    Suite *s = suite_create("dtype");
    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_add_test(core, half_patterns);
    tcase_add_test(core, bf16_patterns_and_rounding);
    tcase_add_test(core, bf16_bulk_rounding);
    tcase_add_test(core, f16_checkpoint_loads);
    suite_add_tcase(s, core);
    return s;
}

int main(void) { return tu_run_suite(dtype_suite()); }
