/* Safetensors reader, checkpoint sets and the atomic writer. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "util/st_build.h"
#include "util/suite.h"

#define LABEL "mem/model.safetensors"
#define QWEN2 "tests/fixtures/tiny-qwen2"

/* A header entry; headers are written with ' for " (see open_header). */
#define T(dtype, shape, begin, end) \
    "{'dtype':'" dtype "','shape':" shape ",'data_offsets':[" #begin "," #end "]}"

#define ck_assert_fails(expr, status, substr)                                                    \
    do {                                                                                         \
        lora_status st_ = (expr);                                                                \
        ck_assert_msg(st_ == (status), "%s gave %s, expected %s (message: %s)", #expr,           \
                      lora_status_string(st_), lora_status_string(status), lora_last_error());   \
        ck_assert_msg(strstr(lora_last_error(), (substr)) != NULL,                               \
                      "message \"%s\" does not mention \"%s\"", lora_last_error(), (substr));    \
    } while (0)

/* Header text with ' turned into ", so that tests stay readable. */
static char *dq(const char *s)
{
    char *out = strdup(s);
    ck_assert_ptr_nonnull(out);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

/* Validates header followed by data_len zero bytes; returns the status, leaving no handle. */
static lora_status open_header(const char *header, size_t data_len)
{
    char *text = dq(header);
    size_t size;
    uint8_t *buf = tu_st_build(text, NULL, data_len, &size);
    lora_st_file *f = NULL;
    lora_status st = lora__st_open_buffer(buf, size, LABEL, &f);
    if (st == LORA_OK)
        lora__st_close(f);
    else
        ck_assert_ptr_null(f);
    free(buf);
    free(text);
    return st;
}

/* Every buffer failure is FORMAT, starts with the label, and names what is wrong. */
static void expect_format(const char *header, size_t data_len, const char *substr)
{
    ck_assert_fails(open_header(header, data_len), LORA_ERR_FORMAT, substr);
    ck_assert_msg(strncmp(lora_last_error(), LABEL ": ", strlen(LABEL) + 2) == 0,
                  "message \"%s\" does not start with the label", lora_last_error());
}

static char *path_in(const char *dir, const char *name)
{
    char *p;
    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

static void write_in(const char *dir, const char *name, const void *buf, size_t size)
{
    char *p = path_in(dir, name);
    ck_assert_int_eq(tu_st_write_file(p, buf, size), 0);
    free(p);
}

/* Writes header + data_len zero bytes as dir/name. */
static void write_st(const char *dir, const char *name, const char *header, size_t data_len)
{
    char *text = dq(header);
    size_t size;
    uint8_t *buf = tu_st_build(text, NULL, data_len, &size);
    write_in(dir, name, buf, size);
    free(buf);
    free(text);
}

/* Entries of dir other than . and ..; the first name goes to first (if not NULL). */
static int count_entries(const char *dir, char *first, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && n++ == 0 && first)
            snprintf(first, cap, "%s", e->d_name);
    closedir(d);
    return n;
}

/* ---- dtypes ---------------------------------------------------------------------------------- */

START_TEST(dtype_names_round_trip)
{
    static const char *const names[] = {"F32", "BF16", "F16", "F64", "I64", "I32", "I16", "I8",
                                        "U8", "BOOL", "U16", "U32", "U64", "F8_E4M3",
                                        "F8_E5M2"};
    static const size_t sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1, 2, 4, 8, 1, 1};
    ck_assert_int_eq(sizeof names / sizeof *names, LORA_ST_DTYPE_COUNT);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        int dt = lora__st_dtype_from_name(names[i]);
        ck_assert_msg(dt >= 0, "%s unknown", names[i]);
        ck_assert_str_eq(lora__st_dtype_name((lora_st_dtype)dt), names[i]);
        ck_assert_uint_eq(lora__st_dtype_size((lora_st_dtype)dt), sizes[i]);
    }
    ck_assert_int_eq(lora__st_dtype_from_name("f32"), -1);
    ck_assert_int_eq(lora__st_dtype_from_name("F31"), -1);
    ck_assert_int_eq(lora__st_dtype_from_name(""), -1);
    ck_assert_uint_eq(lora__st_dtype_size(LORA_ST_DTYPE_COUNT), 0);
    ck_assert_ptr_null(lora__st_dtype_name(LORA_ST_DTYPE_COUNT));
}
END_TEST

/* ---- reading valid files --------------------------------------------------------------------- */

START_TEST(buffer_valid_tensors_and_metadata)
{
    /* Declared out of data order: lora__st_at must follow the data. */
    char *text = dq("{'__metadata__':{'format':'pt','note':''},"
                    "'b':" T("BF16", "[3]", 16, 22) ",'a':" T("F32", "[2,2]", 0, 16) "}");
    uint8_t data[22];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    size_t size;
    uint8_t *buf = tu_st_build(text, data, sizeof data, &size);
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open_buffer(buf, size, LABEL, &f), LORA_OK);

    ck_assert_str_eq(lora__st_path(f), LABEL);
    ck_assert_uint_eq(lora__st_count(f), 2);
    const lora_st_tensor *a = lora__st_at(f, 0), *b = lora__st_at(f, 1);
    ck_assert_str_eq(a->name, "a");
    ck_assert_str_eq(b->name, "b");
    ck_assert_ptr_null(lora__st_at(f, 2));
    ck_assert_int_eq(a->dtype, LORA_ST_F32);
    ck_assert_int_eq(a->ndim, 2);
    ck_assert_int_eq(a->shape[0], 2);
    ck_assert_int_eq(a->shape[1], 2);
    ck_assert_uint_eq(a->numel, 4);
    ck_assert_uint_eq(a->nbytes, 16);
    ck_assert_int_eq(b->dtype, LORA_ST_BF16);
    ck_assert_uint_eq(b->nbytes, 6);
    ck_assert_ptr_eq(a->data, buf + 8 + strlen(text));
    ck_assert_mem_eq(a->data, data, 16);
    ck_assert_mem_eq(b->data, data + 16, 6);

    ck_assert_ptr_eq(lora__st_find(f, "a"), a);
    ck_assert_ptr_eq(lora__st_find(f, "b"), b);
    ck_assert_ptr_null(lora__st_find(f, "c"));
    ck_assert_ptr_null(lora__st_find(f, "__metadata__"));
    ck_assert_str_eq(lora__st_metadata(f, "format"), "pt");
    ck_assert_str_eq(lora__st_metadata(f, "note"), "");
    ck_assert_ptr_null(lora__st_metadata(f, "missing"));

    lora__st_close(f);
    free(buf);
    free(text);
}
END_TEST

START_TEST(scalars_and_zero_size_tensors_are_valid)
{
    /* Zero-size tensors at the start, between two tensors and at the end of the data. */
    char *text = dq("{'s':" T("I64", "[]", 0, 8) ",'z0':" T("F32", "[0]", 0, 0)
                    ",'z1':" T("F16", "[3,0,2]", 8, 8) ",'t':" T("U8", "[2]", 8, 10)
                    ",'z2':" T("BOOL", "[0,5]", 10, 10) "}");
    size_t size;
    uint8_t *buf = tu_st_build(text, NULL, 10, &size);
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open_buffer(buf, size, LABEL, &f), LORA_OK);
    ck_assert_uint_eq(lora__st_count(f), 5);
    const lora_st_tensor *s = lora__st_find(f, "s"), *z1 = lora__st_find(f, "z1");
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_uint_eq(s->numel, 1);
    ck_assert_uint_eq(s->nbytes, 8);
    ck_assert_int_eq(z1->ndim, 3);
    ck_assert_uint_eq(z1->numel, 0);
    ck_assert_uint_eq(z1->nbytes, 0);
    ck_assert_str_eq(lora__st_at(f, 0)->name, "z0");
    ck_assert_str_eq(lora__st_at(f, 4)->name, "z2");
    lora__st_close(f);
    free(buf);
    free(text);
}
END_TEST

START_TEST(empty_header_and_padding_are_valid)
{
    ck_assert_int_eq(open_header("{}", 0), LORA_OK);
    ck_assert_int_eq(open_header("{'__metadata__':{}}", 0), LORA_OK);
    ck_assert_int_eq(open_header("{'a':" T("F32", "[1]", 0, 4) "}      ", 4), LORA_OK);
    ck_assert_int_eq(open_header("  \n{'a':" T("F32", "[1]", 0, 4) "}", 4), LORA_OK);
}
END_TEST

/* Compares every tensor's bytes with the file read independently, and find with at. */
static void check_against_file(const lora_st_file *f, const char *path)
{
    size_t size;
    uint8_t *raw = tu_st_read_file(path, &size);
    ck_assert_ptr_nonnull(raw);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | raw[i];
    uint64_t offset = 8 + hlen;
    for (size_t i = 0; i < lora__st_count(f); i++) {
        const lora_st_tensor *t = lora__st_at(f, i);
        ck_assert_ptr_eq(lora__st_find(f, t->name), t);
        ck_assert_uint_eq(t->nbytes, t->numel * lora__st_dtype_size(t->dtype));
        ck_assert_mem_eq(t->data, raw + offset, t->nbytes);
        offset += t->nbytes;
    }
    ck_assert_uint_eq(offset, size);
    free(raw);
}

START_TEST(fixture_model_is_valid)
{
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(QWEN2 "/model.safetensors", &f), LORA_OK);
    ck_assert_uint_eq(lora__st_count(f), 26);
    const lora_st_tensor *e = lora__st_find(f, "model.embed_tokens.weight");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->dtype, LORA_ST_F32);
    ck_assert_int_eq(e->ndim, 2);
    ck_assert_int_eq(e->shape[0], 384);
    ck_assert_int_eq(e->shape[1], 64);
    ck_assert_str_eq(lora__st_metadata(f, "format"), "pt");
    check_against_file(f, QWEN2 "/model.safetensors");
    lora__st_close(f);
}
END_TEST

START_TEST(fixture_golden_is_valid)
{
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(QWEN2 "/golden.safetensors", &f), LORA_OK);
    const lora_st_tensor *ids = lora__st_find(f, "input_ids");
    const lora_st_tensor *loss = lora__st_find(f, "loss_base");
    ck_assert_ptr_nonnull(ids);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(ids->dtype, LORA_ST_I64);
    ck_assert_int_eq(ids->shape[0], 2);
    ck_assert_int_eq(ids->shape[1], 12);
    ck_assert_int_eq(loss->dtype, LORA_ST_F64);
    ck_assert_str_eq(lora__st_metadata(f, "format"), "liblora-golden");
    ck_assert_ptr_nonnull(strstr(lora__st_metadata(f, "adamw"), "weight_decay"));
    check_against_file(f, QWEN2 "/golden.safetensors");
    lora__st_close(f);
}
END_TEST

START_TEST(empty_file_on_disk_is_format_error)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "empty.safetensors");
    lora_st_file *f = NULL;
    ck_assert_int_eq(tu_st_write_file(p, "", 0), 0);
    ck_assert_fails(lora__st_open(p, &f), LORA_ERR_FORMAT, p);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(tu_st_write_file(p, "\x02\0\0\0", 4), 0);
    ck_assert_fails(lora__st_open(p, &f), LORA_ERR_FORMAT, "too short");
    free(p);
    tu_st_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- malformed files ------------------------------------------------------------------------- */

START_TEST(file_shorter_than_8_bytes)
{
    static const uint8_t bytes[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    for (size_t n = 0; n < 8; n++) {
        uint8_t *buf = malloc(n ? n : 1);
        memcpy(buf, bytes, n);
        lora_st_file *f;
        ck_assert_fails(lora__st_open_buffer(buf, n, LABEL, &f), LORA_ERR_FORMAT, LABEL);
        ck_assert_ptr_nonnull(strstr(lora_last_error(), "too short"));
        free(buf);
    }
}
END_TEST

START_TEST(header_length_past_end_of_file)
{
    uint8_t buf[16] = {0};
    lora_st_file *f;
    tu_st_put_le64(buf, 9);
    memcpy(buf + 8, "{}      ", 8);
    ck_assert_fails(lora__st_open_buffer(buf, sizeof buf, LABEL, &f), LORA_ERR_FORMAT,
                    "header length 9 runs past the end");
    tu_st_put_le64(buf, UINT64_MAX);
    ck_assert_fails(lora__st_open_buffer(buf, sizeof buf, LABEL, &f), LORA_ERR_FORMAT,
                    "header length");
}
END_TEST

START_TEST(header_not_utf8)
{
    /* In a tensor name, in a metadata value, an overlong '/', a UTF-16 surrogate, a bare byte. */
    expect_format("{'a\xff':" T("F32", "[1]", 0, 4) "}", 4, "UTF-8");
    expect_format("{'__metadata__':{'k':'\xc3'}}", 0, "UTF-8");
    expect_format("{'__metadata__':{'k':'\xc0\xaf'}}", 0, "UTF-8");
    expect_format("{'__metadata__':{'k':'\xed\xa0\x80'}}", 0, "UTF-8");
    expect_format("{\x80}", 0, "UTF-8");
    /* Valid multi-byte UTF-8 names are fine. */
    ck_assert_int_eq(open_header("{'\xc3\xa9\xe2\x82\xac':" T("U8", "[1]", 0, 1) "}", 1), LORA_OK);
}
END_TEST

START_TEST(header_not_an_object)
{
    expect_format("[]", 0, "not an object");
    expect_format("[{'a':1}]", 0, "not an object");
    expect_format("3", 0, "JSON");
    expect_format("'s'", 0, "JSON");
    expect_format("null", 0, "JSON");
}
END_TEST

START_TEST(header_not_json)
{
    expect_format("", 0, "not valid JSON");
    expect_format("{", 0, "not valid JSON");
    expect_format("{'a':}", 0, "not valid JSON");
    expect_format("{} x", 0, "not valid JSON");
    expect_format("{'a':" T("F32", "[1]", 0, 4) ",}", 4, "not valid JSON");
    /* jansson refuses NUL in keys, so names stay C strings. */
    expect_format("{'a\\u0000b':" T("F32", "[1]", 0, 4) "}", 4, "not valid JSON");
}
END_TEST

START_TEST(duplicate_tensor_names)
{
    expect_format("{'a':" T("F32", "[1]", 0, 4) ",'a':" T("F32", "[1]", 4, 8) "}", 8,
                  "duplicate key (tensor name or field): duplicate object key near '\"a\"'");
    expect_format("{'__metadata__':{},'__metadata__':{}}", 0, "duplicate");
    expect_format("{'w':{'dtype':'F32','dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 4,
                  "'\"dtype\"'");
}
END_TEST

START_TEST(unknown_dtype)
{
    expect_format("{'w':" T("F31", "[1]", 0, 4) "}", 4, "unknown dtype 'F31'");
    expect_format("{'w':" T("f32", "[1]", 0, 4) "}", 4, "tensor 'w'");
}
END_TEST

START_TEST(missing_fields)
{
    expect_format("{'w':{'shape':[1],'data_offsets':[0,4]}}", 4, "missing \"dtype\"");
    expect_format("{'w':{'dtype':'F32','data_offsets':[0,4]}}", 4, "missing \"shape\"");
    expect_format("{'w':{'dtype':'F32','shape':[1]}}", 4, "missing \"data_offsets\"");
    expect_format("{'w':{}}", 4, "tensor 'w'");
}
END_TEST

START_TEST(fields_of_wrong_type)
{
    expect_format("{'w':[1]}", 4, "tensor 'w' is not an object");
    expect_format("{'w':{'dtype':4,'shape':[1],'data_offsets':[0,4]}}", 4, "\"dtype\"");
    expect_format("{'w':{'dtype':'F32','shape':4,'data_offsets':[0,4]}}", 4, "\"shape\"");
    expect_format("{'w':{'dtype':'F32','shape':[1.0],'data_offsets':[0,4]}}", 4, "shape dim 0");
    expect_format("{'w':{'dtype':'F32','shape':['1'],'data_offsets':[0,4]}}", 4, "shape dim 0");
    expect_format("{'w':{'dtype':'F32','shape':[1],'data_offsets':'0'}}", 4, "\"data_offsets\"");
    expect_format("{'w':{'dtype':'F32','shape':[1],'data_offsets':[0]}}", 4, "\"data_offsets\"");
    expect_format("{'w':{'dtype':'F32','shape':[1],'data_offsets':[0,4,8]}}", 4, "tensor 'w'");
    expect_format("{'w':{'dtype':'F32','shape':[1],'data_offsets':[0,4.0]}}", 4, "tensor 'w'");
    expect_format("{'w':{'dtype':'F32','shape':[1],'data_offsets':{}}}", 4, "tensor 'w'");
}
END_TEST

START_TEST(unknown_tensor_key)
{
    expect_format("{'w':{'dtype':'F32','shape':[1],'data_offsets':[0,4],'stride':[1]}}", 4,
                  "unknown key 'stride'");
}
END_TEST

START_TEST(negative_dim_or_offset)
{
    expect_format("{'w':" T("F32", "[2,-1]", 0, 4) "}", 4, "shape dim 1");
    expect_format("{'w':" T("F32", "[1]", -4, 0) "}", 4, "tensor 'w'");
}
END_TEST

START_TEST(offsets_end_before_begin)
{
    expect_format("{'w':" T("F32", "[0]", 4, 0) "}", 4, "data_offsets [4, 0] end before");
}
END_TEST

START_TEST(byte_range_disagrees_with_shape)
{
    expect_format("{'a.weight':" T("F32", "[2,2]", 0, 12) "}", 12,
                  "tensor 'a.weight': data_offsets [0, 12] span 12 bytes but F32 [2, 2] needs "
                  "16");
    expect_format("{'s':" T("F64", "[]", 0, 4) "}", 4, "F64 [] needs 8");
    expect_format("{'z':" T("BF16", "[0]", 0, 2) "}", 2, "span 2 bytes");
}
END_TEST

START_TEST(gap_before_first_tensor)
{
    expect_format("{'a':" T("F32", "[1]", 4, 8) "}", 8, "before the first tensor 'a'");
}
END_TEST

START_TEST(gap_between_tensors)
{
    expect_format("{'a':" T("F32", "[1]", 0, 4) ",'b':" T("F32", "[1]", 8, 12) "}", 12,
                  "between tensor 'a' (ends at 4) and tensor 'b' (begins at 8)");
}
END_TEST

START_TEST(overlapping_tensors)
{
    expect_format("{'b':" T("F32", "[2]", 4, 12) ",'a':" T("F32", "[2]", 0, 8) "}", 12,
                  "tensor 'a' [0, 8] and tensor 'b' [4, 12] overlap");
    /* Two tensors over the same bytes. */
    expect_format("{'a':" T("F32", "[1]", 0, 4) ",'b':" T("I32", "[1]", 0, 4) "}", 4,
                  "overlap");
}
END_TEST

START_TEST(gap_at_end_of_data)
{
    expect_format("{'a':" T("F32", "[1]", 0, 4) "}", 6, "gap at end");
    expect_format("{'a':" T("F32", "[1]", 0, 4) "}", 6, "'a'");
    expect_format("{}", 3, "gap at end");
}
END_TEST

START_TEST(tensor_past_end_of_data)
{
    expect_format("{'a':" T("F32", "[1]", 0, 4) ",'b':" T("F32", "[1]", 4, 8) "}", 6,
                  "tensor 'b' ends at 8, past the end");
}
END_TEST

START_TEST(metadata_not_string_map)
{
    expect_format("{'__metadata__':[]}", 0, "__metadata__ is not an object");
    expect_format("{'__metadata__':'pt'}", 0, "__metadata__ is not an object");
    expect_format("{'__metadata__':{'format':'pt','total_size':12}}", 0,
                  "__metadata__ key 'total_size'");
    expect_format("{'__metadata__':{'nested':{}}}", 0, "__metadata__ key 'nested'");
}
END_TEST

START_TEST(missing_file_is_io_error)
{
    lora_st_file *f = (lora_st_file *)&f;
    ck_assert_fails(lora__st_open("tests/fixtures/no-such/model.safetensors", &f), LORA_ERR_IO,
                    "tests/fixtures/no-such/model.safetensors");
    ck_assert_ptr_null(f);
}
END_TEST

START_TEST(directory_is_io_error)
{
    lora_st_file *f;
    ck_assert_fails(lora__st_open(QWEN2, &f), LORA_ERR_IO, QWEN2);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "directory"));
}
END_TEST

START_TEST(null_arguments)
{
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(NULL, &f), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora__st_open(QWEN2 "/model.safetensors", NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora__st_open_buffer(NULL, 8, LABEL, &f), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(lora__st_count(NULL), 0);
    ck_assert_ptr_null(lora__st_find(NULL, "a"));
    ck_assert_ptr_null(lora__st_metadata(NULL, "a"));
    lora__st_close(NULL);
}
END_TEST

/* ---- limits ---------------------------------------------------------------------------------- */

START_TEST(header_length_over_limit)
{
    uint8_t buf[24] = {0};
    lora_st_file *f;
    tu_st_put_le64(buf, LORA_ST_MAX_HEADER + 1);
    memcpy(buf + 8, "{}", 2);
    ck_assert_fails(lora__st_open_buffer(buf, sizeof buf, LABEL, &f), LORA_ERR_FORMAT,
                    "header length 100000001 exceeds the limit");
}
END_TEST

START_TEST(header_length_at_limit_is_valid)
{
    size_t size = 8 + LORA_ST_MAX_HEADER;
    uint8_t *buf = malloc(size);
    lora_st_file *f;
    ck_assert_ptr_nonnull(buf);
    tu_st_put_le64(buf, LORA_ST_MAX_HEADER);
    memset(buf + 8, ' ', LORA_ST_MAX_HEADER);
    memcpy(buf + 8, "{}", 2);
    ck_assert_int_eq(lora__st_open_buffer(buf, size, LABEL, &f), LORA_OK);
    ck_assert_uint_eq(lora__st_count(f), 0);
    lora__st_close(f);
    free(buf);
}
END_TEST

START_TEST(too_many_dims)
{
    ck_assert_int_eq(open_header("{'w':" T("U8", "[1,1,1,1,1,1,1,2]", 0, 2) "}", 2), LORA_OK);
    expect_format("{'w':" T("U8", "[1,1,1,1,1,1,1,1,2]", 0, 2) "}", 2, "9 dims");
}
END_TEST

START_TEST(shape_product_overflow)
{
    expect_format("{'w':" T("U8", "[4294967296,4294967296,16]", 0, 0) "}", 0,
                  "tensor 'w': shape product overflows");
    /* Overflow of the running product is refused even when a later dim is 0. */
    expect_format("{'w':" T("U8", "[4294967296,4294967296,16,0]", 0, 0) "}", 0, "overflows");
    /* The element count fits but the byte count does not. */
    expect_format("{'w':" T("F32", "[4611686018427387904]", 0, 0) "}", 0,
                  "tensor 'w': byte size");
}
END_TEST

START_TEST(huge_offsets)
{
    expect_format("{'w':" T("U8", "[1]", 0, 9223372036854775807) "}", 1, "needs 1");
    expect_format("{'w':" T("U8", "[9223372036854775807]", 0, 9223372036854775807) "}", 1,
                  "past the end");
    /* Past int64: jansson refuses the number. */
    expect_format("{'w':" T("U8", "[1]", 0, 18446744073709551615) "}", 1, "not valid JSON");
}
END_TEST

/* A valid image with metadata, a scalar, a zero-size tensor and two dtypes, for fuzzing. */
static uint8_t *fuzz_seed(size_t *size)
{
    char *text = dq("{'__metadata__':{'format':'pt'},'a':" T("F32", "[2,2]", 0, 16)
                    ",'b':" T("BF16", "[3]", 16, 22) ",'s':" T("I64", "[]", 22, 30)
                    ",'z':" T("U8", "[0,3]", 30, 30) "}");
    uint8_t data[30];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i + 1);
    uint8_t *buf = tu_st_build(text, data, sizeof data, size);
    free(text);
    return buf;
}

/* Accepted mutants must still describe tensors inside the buffer. */
static void check_mutant(const uint8_t *buf, size_t size, lora_status st, lora_st_file *f)
{
    if (st != LORA_OK) {
        ck_assert_int_eq(st, LORA_ERR_FORMAT);
        ck_assert_str_ne(lora_last_error(), "");
        return;
    }
    unsigned sum = 0;
    for (size_t i = 0; i < lora__st_count(f); i++) {
        const lora_st_tensor *t = lora__st_at(f, i);
        ck_assert_uint_eq(t->nbytes, t->numel * lora__st_dtype_size(t->dtype));
        ck_assert(t->data >= buf && t->data + t->nbytes <= buf + size);
        for (uint64_t k = 0; k < t->nbytes; k++)
            sum += t->data[k];
    }
    (void)sum;
    lora__st_close(f);
}

START_TEST(fuzz_bit_flips)
{
    size_t size;
    uint8_t *seed = fuzz_seed(&size);
    for (size_t pos = 0; pos < size; pos++)
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *buf = malloc(size);
            memcpy(buf, seed, size);
            buf[pos] ^= (uint8_t)(1u << bit);
            lora_st_file *f = NULL;
            lora_status st = lora__st_open_buffer(buf, size, LABEL, &f);
            check_mutant(buf, size, st, f);
            free(buf);
        }
    free(seed);
}
END_TEST

START_TEST(fuzz_truncation)
{
    size_t size;
    uint8_t *seed = fuzz_seed(&size);
    for (size_t len = 0; len < size; len++) {
        /* An exact-size copy, so that ASan sees any read past the end. */
        uint8_t *buf = malloc(len ? len : 1);
        memcpy(buf, seed, len);
        lora_st_file *f = NULL;
        ck_assert_fails(lora__st_open_buffer(buf, len, LABEL, &f), LORA_ERR_FORMAT, LABEL);
        free(buf);
    }
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open_buffer(seed, size, LABEL, &f), LORA_OK);
    lora__st_close(f);
    free(seed);
}
END_TEST

/* ---- checkpoint folders ---------------------------------------------------------------------- */

START_TEST(set_single_file_fixture)
{
    lora_st_set *s;
    ck_assert_int_eq(lora__st_set_open(QWEN2, &s), LORA_OK);
    ck_assert_uint_eq(lora__st_set_count(s), 26);
    for (size_t i = 0; i < lora__st_set_count(s); i++) {
        const lora_st_tensor *t = lora__st_set_at(s, i);
        ck_assert_ptr_eq(lora__st_set_find(s, t->name), t);
        ck_assert_str_eq(lora__st_set_file_of(s, t->name), QWEN2 "/model.safetensors");
    }
    ck_assert_ptr_null(lora__st_set_at(s, 26));
    ck_assert_ptr_null(lora__st_set_find(s, "nope"));
    ck_assert_ptr_null(lora__st_set_file_of(s, "nope"));
    lora__st_set_close(s);
}
END_TEST

/* Data order differs from name order, so that find cannot get by without sorting. */
#define SHARD_A "{'x':" T("F32", "[1]", 8, 12) ",'y':" T("F32", "[2]", 0, 8) "}"
#define SHARD_B "{'z':" T("I32", "[1]", 0, 4) "}"

/* A temp folder with shards a-1.safetensors (x, y), b-2.safetensors (z) and the given index. */
static char *sharded_dir(const char *index)
{
    char *dir = tu_st_mkdtemp();
    write_st(dir, "a-1.safetensors", SHARD_A, 12);
    write_st(dir, "b-2.safetensors", SHARD_B, 4);
    char *text = dq(index);
    write_in(dir, "model.safetensors.index.json", text, strlen(text));
    free(text);
    return dir;
}

static void remove_dir(char *dir)
{
    tu_st_rmtree(dir);
    free(dir);
}

#define GOOD_INDEX "{'metadata':{'total_size':16},'weight_map':{'x':'a-1.safetensors'," \
                   "'z':'b-2.safetensors','y':'a-1.safetensors'}}"

START_TEST(set_sharded_folder)
{
    char *dir = sharded_dir(GOOD_INDEX);
    lora_st_set *s;
    ck_assert_int_eq(lora__st_set_open(dir, &s), LORA_OK);
    ck_assert_uint_eq(lora__st_set_count(s), 3);
    static const char *const order[] = {"y", "x", "z"};
    for (size_t i = 0; i < 3; i++)
        ck_assert_str_eq(lora__st_set_at(s, i)->name, order[i]);
    ck_assert_int_eq(lora__st_set_find(s, "y")->shape[0], 2);
    ck_assert_int_eq(lora__st_set_find(s, "z")->dtype, LORA_ST_I32);
    char *a = path_in(dir, "a-1.safetensors"), *b = path_in(dir, "b-2.safetensors");
    ck_assert_str_eq(lora__st_set_file_of(s, "y"), a);
    ck_assert_str_eq(lora__st_set_file_of(s, "z"), b);
    ck_assert_ptr_null(lora__st_set_find(s, "w"));
    lora__st_set_close(s);
    free(a);
    free(b);
    remove_dir(dir);
}
END_TEST

START_TEST(set_prefers_single_file)
{
    char *dir = sharded_dir(GOOD_INDEX);
    write_st(dir, "model.safetensors", "{'only':" T("U8", "[1]", 0, 1) "}", 1);
    lora_st_set *s;
    ck_assert_int_eq(lora__st_set_open(dir, &s), LORA_OK);
    ck_assert_uint_eq(lora__st_set_count(s), 1);
    ck_assert_ptr_nonnull(lora__st_set_find(s, "only"));
    lora__st_set_close(s);
    remove_dir(dir);
}
END_TEST

/* Opens a sharded folder with this index and expects status with substr in the message. */
static void expect_set_error(const char *index, lora_status status, const char *substr)
{
    char *dir = sharded_dir(index);
    lora_st_set *s = (lora_st_set *)&s;
    ck_assert_fails(lora__st_set_open(dir, &s), status, substr);
    ck_assert_ptr_null(s);
    remove_dir(dir);
}

START_TEST(set_index_not_json)
{
    expect_set_error("{'weight_map':", LORA_ERR_FORMAT, "model.safetensors.index.json: not valid "
                     "JSON");
    expect_set_error("{'weight_map':{'x':'a-1.safetensors','x':'a-1.safetensors'}}",
                     LORA_ERR_FORMAT, "not valid JSON");
}
END_TEST

START_TEST(set_index_without_weight_map)
{
    expect_set_error("{'metadata':{}}", LORA_ERR_FORMAT, "no \"weight_map\" object");
    expect_set_error("{'weight_map':['a-1.safetensors']}", LORA_ERR_FORMAT, "\"weight_map\"");
    expect_set_error("[]", LORA_ERR_FORMAT, "\"weight_map\"");
}
END_TEST

START_TEST(set_index_value_not_string)
{
    expect_set_error("{'weight_map':{'x':1}}", LORA_ERR_FORMAT, "tensor 'x' is not a string");
}
END_TEST

START_TEST(set_shard_leaves_folder)
{
    static const char *const bad[] = {"/etc/passwd", "sub/a-1.safetensors", "..\\\\a", "..",
                                      "..a-1.safetensors", "a\\\\b", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char index[256], shard[64];
        snprintf(index, sizeof index, "{'weight_map':{'x':'a-1.safetensors','y':'%s'}}",
                 bad[i]);
        /* The message shows the shard as it is after JSON unescaping. */
        snprintf(shard, sizeof shard, "shard '%s' of tensor 'y' leaves the model folder",
                 bad[i]);
        for (char *p = strstr(shard, "\\\\"); p; p = strstr(p + 1, "\\\\"))
            memmove(p, p + 1, strlen(p));
        expect_set_error(index, LORA_ERR_FORMAT, shard);
    }
}
END_TEST

START_TEST(set_listed_tensor_missing_from_shard)
{
    expect_set_error("{'weight_map':{'x':'a-1.safetensors','y':'a-1.safetensors',"
                     "'z':'a-1.safetensors'}}", LORA_ERR_FORMAT,
                     "puts tensor 'z' in 'a-1.safetensors', which does not contain it");
}
END_TEST

START_TEST(set_tensor_in_two_shards)
{
    char *dir = sharded_dir(GOOD_INDEX);
    write_st(dir, "b-2.safetensors", "{'z':" T("I32", "[1]", 0, 4) ",'x':" T("F32", "[1]", 4, 8)
             "}", 8);
    lora_st_set *s;
    ck_assert_fails(lora__st_set_open(dir, &s), LORA_ERR_FORMAT,
                    "tensor 'x' is in two shards, 'a-1.safetensors' and 'b-2.safetensors'");
    remove_dir(dir);
}
END_TEST

START_TEST(set_shard_tensor_not_listed)
{
    expect_set_error("{'weight_map':{'x':'a-1.safetensors','z':'b-2.safetensors'}}",
                     LORA_ERR_FORMAT, "tensor 'y' is not listed in the weight_map");
}
END_TEST

START_TEST(set_missing_shard_is_io_error)
{
    expect_set_error("{'weight_map':{'x':'a-1.safetensors','y':'a-1.safetensors',"
                     "'z':'c-3.safetensors'}}", LORA_ERR_IO, "/c-3.safetensors: cannot open");
}
END_TEST

START_TEST(set_invalid_shard_is_format_error)
{
    char *dir = sharded_dir(GOOD_INDEX);
    write_st(dir, "b-2.safetensors", "{'z':" T("I32", "[2]", 0, 4) "}", 4);
    lora_st_set *s;
    ck_assert_fails(lora__st_set_open(dir, &s), LORA_ERR_FORMAT, "b-2.safetensors: tensor 'z'");
    remove_dir(dir);
}
END_TEST

START_TEST(set_folder_without_weights_is_io_error)
{
    char *dir = tu_st_mkdtemp();
    lora_st_set *s;
    ck_assert_fails(lora__st_set_open(dir, &s), LORA_ERR_IO, "/model.safetensors nor ");
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "/model.safetensors.index.json"));
    ck_assert_fails(lora__st_set_open("tests/fixtures/no-such", &s), LORA_ERR_IO,
                    "tests/fixtures/no-such");
    remove_dir(dir);
}
END_TEST

/* ---- writer ---------------------------------------------------------------------------------- */

static lora_st_decl decl(const char *name, lora_st_dtype dt, int ndim, int64_t d0, int64_t d1)
{
    lora_st_decl d = {.name = name, .dtype = dt, .ndim = ndim, .shape = {d0, d1}};
    return d;
}

START_TEST(writer_round_trip)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "out.safetensors");
    const lora_st_decl decls[] = {
        decl("w", LORA_ST_F32, 2, 2, 3), decl("b", LORA_ST_BF16, 1, 3, 0),
        decl("s", LORA_ST_I64, 0, 0, 0), decl("e", LORA_ST_F16, 2, 0, 4),
        decl("m", LORA_ST_U8, 1, 5, 0),
    };
    uint8_t data[24 + 6 + 8 + 0 + 5];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(255 - i);
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(p, decls, 5, "{\"format\":\"pt\",\"k\":\"v\"}", &w),
                     LORA_OK);
    ck_assert_int_eq(lora__st_writer_write(w, data, sizeof data), LORA_OK);
    ck_assert_int_eq(lora__st_writer_commit(w), LORA_OK);

    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(p, &f), LORA_OK);
    ck_assert_uint_eq(lora__st_count(f), 5);
    size_t off = 0;
    for (size_t i = 0; i < 5; i++) {
        const lora_st_tensor *t = lora__st_at(f, i);
        ck_assert_str_eq(t->name, decls[i].name);
        ck_assert_int_eq(t->dtype, decls[i].dtype);
        ck_assert_int_eq(t->ndim, decls[i].ndim);
        for (int k = 0; k < t->ndim; k++)
            ck_assert_int_eq(t->shape[k], decls[i].shape[k]);
        ck_assert_mem_eq(t->data, data + off, t->nbytes);
        off += t->nbytes;
    }
    ck_assert_uint_eq(off, sizeof data);
    ck_assert_str_eq(lora__st_metadata(f, "format"), "pt");
    ck_assert_str_eq(lora__st_metadata(f, "k"), "v");
    lora__st_close(f);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 1);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(writer_header_format)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "all.safetensors");
    lora_st_decl decls[LORA_ST_DTYPE_COUNT];
    static const char *const names[LORA_ST_DTYPE_COUNT] = {
        "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11", "t12", "t13",
        "t14"};
    size_t total = 0;
    for (int i = 0; i < LORA_ST_DTYPE_COUNT; i++) {
        decls[i] = decl(names[i], (lora_st_dtype)i, 1, 1, 0);
        total += lora__st_dtype_size((lora_st_dtype)i);
    }
    uint8_t zeros[64] = {0};
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(p, decls, LORA_ST_DTYPE_COUNT, NULL, &w), LORA_OK);
    ck_assert_int_eq(lora__st_writer_write(w, zeros, total), LORA_OK);
    ck_assert_int_eq(lora__st_writer_commit(w), LORA_OK);

    size_t size;
    uint8_t *raw = tu_st_read_file(p, &size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | raw[i];
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert_uint_eq(size, 8 + hlen + total);
    char *hdr = strndup((const char *)raw + 8, hlen);
    for (int i = 0; i < LORA_ST_DTYPE_COUNT; i++) {
        char want[64];
        snprintf(want, sizeof want, "\"dtype\":\"%s\"", lora__st_dtype_name((lora_st_dtype)i));
        ck_assert_msg(strstr(hdr, want), "header lacks %s: %s", want, hdr);
    }
    ck_assert_ptr_null(strstr(hdr, "__metadata__"));
    ck_assert_ptr_nonnull(strstr(hdr, "\"data_offsets\":[0,1]"));
    free(hdr);
    free(raw);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(writer_split_writes)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "split.safetensors");
    /* The big tensor exceeds the writer's buffer, so it also takes the direct-write path. */
    const size_t big = 3000001;
    const lora_st_decl decls[] = {decl("a", LORA_ST_F32, 1, 3, 0), decl("b", LORA_ST_U8, 1, 5, 0),
                                  decl("big", LORA_ST_U8, 1, (int64_t)big, 0),
                                  decl("c", LORA_ST_I16, 2, 2, 2)};
    size_t total = 12 + 5 + big + 8;
    uint8_t *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)(i * 31 + 7);
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(p, decls, 4, NULL, &w), LORA_OK);
    /* Pieces that straddle tensor boundaries, then the rest in two uneven parts. */
    static const size_t pieces[] = {1, 0, 2, 3, 5, 7, 1500000};
    size_t off = 0;
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
        ck_assert_int_eq(lora__st_writer_write(w, data + off, pieces[i]), LORA_OK);
        off += pieces[i];
    }
    ck_assert_int_eq(lora__st_writer_write(w, data + off, total - off - 3), LORA_OK);
    ck_assert_int_eq(lora__st_writer_write(w, data + total - 3, 3), LORA_OK);
    ck_assert_int_eq(lora__st_writer_commit(w), LORA_OK);

    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(p, &f), LORA_OK);
    ck_assert_mem_eq(lora__st_find(f, "a")->data, data, 12);
    ck_assert_mem_eq(lora__st_find(f, "b")->data, data + 12, 5);
    ck_assert_int_eq(memcmp(lora__st_find(f, "big")->data, data + 17, big), 0);
    ck_assert_mem_eq(lora__st_find(f, "c")->data, data + 17 + big, 8);
    lora__st_close(f);
    free(data);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(writer_no_tensors)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "empty.safetensors");
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(p, NULL, 0, "{\"a\":\"b\"}", &w), LORA_OK);
    ck_assert_int_eq(lora__st_writer_commit(w), LORA_OK);
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(p, &f), LORA_OK);
    ck_assert_uint_eq(lora__st_count(f), 0);
    ck_assert_str_eq(lora__st_metadata(f, "a"), "b");
    lora__st_close(f);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(writer_short_commit_keeps_destination)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "out.safetensors");
    static const char original[] = "the previous checkpoint";
    ck_assert_int_eq(tu_st_write_file(p, original, sizeof original), 0);
    const lora_st_decl decls[] = {decl("a", LORA_ST_F32, 1, 2, 0), decl("b", LORA_ST_F32, 1, 4, 0)};
    uint8_t data[24] = {1, 2, 3};
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(p, decls, 2, NULL, &w), LORA_OK);
    ck_assert_int_eq(lora__st_writer_write(w, data, 12), LORA_OK);
    ck_assert_fails(lora__st_writer_commit(w), LORA_ERR_INVALID_ARGUMENT,
                    "tensor 'b' got 4 of its 16");

    size_t size;
    uint8_t *raw = tu_st_read_file(p, &size);
    ck_assert_uint_eq(size, sizeof original);
    ck_assert_mem_eq(raw, original, sizeof original);
    free(raw);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 1);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(writer_rejects_extra_bytes)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "out.safetensors");
    const lora_st_decl d = decl("a", LORA_ST_U8, 1, 4, 0);
    uint8_t data[8] = {0};
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(p, &d, 1, NULL, &w), LORA_OK);
    ck_assert_int_eq(lora__st_writer_write(w, data, 3), LORA_OK);
    ck_assert_fails(lora__st_writer_write(w, data, 2), LORA_ERR_INVALID_ARGUMENT,
                    "would exceed the 4 declared");
    /* The refused write changed nothing: the right amount still commits. */
    ck_assert_int_eq(lora__st_writer_write(w, data, 1), LORA_OK);
    ck_assert_int_eq(lora__st_writer_commit(w), LORA_OK);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 1);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(writer_abort_removes_temp_file)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "out.safetensors");
    const lora_st_decl d = decl("a", LORA_ST_U8, 1, 4, 0);
    char name[256] = "";
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(p, &d, 1, NULL, &w), LORA_OK);
    ck_assert_int_eq(lora__st_writer_write(w, "ab", 2), LORA_OK);
    /* The temporary file is beside the destination, named after it; the destination waits. */
    ck_assert_int_eq(count_entries(dir, name, sizeof name), 1);
    ck_assert_msg(strncmp(name, ".out.safetensors.tmp.", 21) == 0, "temp file is %s", name);
    lora__st_writer_abort(w);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 0);
    lora__st_writer_abort(NULL);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(writer_failed_rename_removes_temp_file)
{
    /* A non-empty folder where the file should go makes the final rename fail. */
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "out.safetensors");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    write_in(p, "keep", "k", 1);
    const lora_st_decl d = decl("a", LORA_ST_U8, 1, 2, 0);
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(p, &d, 1, NULL, &w), LORA_OK);
    ck_assert_int_eq(lora__st_writer_write(w, "ab", 2), LORA_OK);
    ck_assert_fails(lora__st_writer_commit(w), LORA_ERR_IO, "cannot rename");
    ck_assert_int_eq(count_entries(dir, NULL, 0), 1);
    ck_assert_int_eq(count_entries(p, NULL, 0), 1);
    ck_assert_fails(lora__write_file_atomic(p, "{}", 2), LORA_ERR_IO, p);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 1);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(writer_missing_folder_is_io_error)
{
    const lora_st_decl d = decl("a", LORA_ST_U8, 1, 4, 0);
    lora_st_writer *w = (lora_st_writer *)&w;
    ck_assert_fails(lora__st_writer_begin("/tmp/lora-no-such-dir/x/out.safetensors", &d, 1, NULL,
                                          &w), LORA_ERR_IO, "/tmp/lora-no-such-dir/x/out");
    ck_assert_ptr_null(w);
    ck_assert_fails(lora__write_file_atomic("/tmp/lora-no-such-dir/x/config.json", "{}", 2),
                    LORA_ERR_IO, "/tmp/lora-no-such-dir/x/config.json");
}
END_TEST

START_TEST(writer_rejects_bad_declarations)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "out.safetensors");
    lora_st_writer *w;
    lora_st_decl two[] = {decl("a", LORA_ST_U8, 1, 1, 0), decl("a", LORA_ST_U8, 1, 1, 0)};
    ck_assert_fails(lora__st_writer_begin(p, two, 2, NULL, &w), LORA_ERR_INVALID_ARGUMENT,
                    "tensor 'a' is declared twice");
    two[1] = decl("b", LORA_ST_DTYPE_COUNT, 1, 1, 0);
    ck_assert_fails(lora__st_writer_begin(p, two, 2, NULL, &w), LORA_ERR_INVALID_ARGUMENT,
                    "tensor 'b': dtype");
    two[1] = decl("b", LORA_ST_U8, LORA_ST_MAX_DIMS + 1, 1, 1);
    ck_assert_fails(lora__st_writer_begin(p, two, 2, NULL, &w), LORA_ERR_INVALID_ARGUMENT,
                    "tensor 'b': ndim 9");
    two[1] = decl("b", LORA_ST_U8, 2, 1, -1);
    ck_assert_fails(lora__st_writer_begin(p, two, 2, NULL, &w), LORA_ERR_INVALID_ARGUMENT,
                    "tensor 'b': dim 1 is -1");
    two[1] = decl("__metadata__", LORA_ST_U8, 1, 1, 0);
    ck_assert_fails(lora__st_writer_begin(p, two, 2, NULL, &w), LORA_ERR_INVALID_ARGUMENT,
                    "'__metadata__'");
    two[1] = decl("b", LORA_ST_F64, 2, INT64_MAX, 2);
    ck_assert_fails(lora__st_writer_begin(p, two, 2, NULL, &w), LORA_ERR_INVALID_ARGUMENT,
                    "tensor 'b'");
    two[1] = decl("b\xff", LORA_ST_U8, 1, 1, 0);
    ck_assert_fails(lora__st_writer_begin(p, two, 2, NULL, &w), LORA_ERR_INVALID_ARGUMENT,
                    "not valid UTF-8");
    ck_assert_fails(lora__st_writer_begin(p, two, 1, "[\"a\"]", &w), LORA_ERR_INVALID_ARGUMENT,
                    "metadata is not a JSON object");
    ck_assert_fails(lora__st_writer_begin(p, two, 1, "{\"n\":1}", &w), LORA_ERR_INVALID_ARGUMENT,
                    "metadata key 'n'");
    ck_assert_int_eq(count_entries(dir, NULL, 0), 0);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(write_file_atomic_replaces_file)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "config.json");
    size_t size;
    ck_assert_int_eq(lora__write_file_atomic(p, "{\"a\": 1}", 8), LORA_OK);
    ck_assert_int_eq(lora__write_file_atomic(p, "{}", 2), LORA_OK);
    uint8_t *raw = tu_st_read_file(p, &size);
    ck_assert_uint_eq(size, 2);
    ck_assert_mem_eq(raw, "{}", 2);
    free(raw);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 1);
    ck_assert_int_eq(lora__write_file_atomic(p, NULL, 0), LORA_OK);
    raw = tu_st_read_file(p, &size);
    ck_assert_uint_eq(size, 0);
    free(raw);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(written_files_follow_umask)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "config.json");
    struct stat sb;
    umask(027);
    ck_assert_int_eq(lora__write_file_atomic(p, "{}", 2), LORA_OK);
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0640);
    umask(022);
    ck_assert_int_eq(lora__write_file_atomic(p, "{}", 2), LORA_OK);
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);
    free(p);
    remove_dir(dir);
}
END_TEST

START_TEST(write_file_atomic_rejects_folder_path)
{
    char *dir = tu_st_mkdtemp();
    char *p = path_in(dir, "");
    ck_assert_fails(lora__write_file_atomic(p, "{}", 2), LORA_ERR_INVALID_ARGUMENT, p);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 0);
    free(p);
    remove_dir(dir);
}
END_TEST

/* ---- suite ----------------------------------------------------------------------------------- */

static TCase *tcase(Suite *s, const char *name, const char *tags)
{
    TCase *tc = tcase_create(name);
    tcase_set_tags(tc, tags);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase(s, "read", "core");
    tcase_add_test(tc, dtype_names_round_trip);
    tcase_add_test(tc, buffer_valid_tensors_and_metadata);
    tcase_add_test(tc, scalars_and_zero_size_tensors_are_valid);
    tcase_add_test(tc, empty_header_and_padding_are_valid);
    tcase_add_test(tc, fixture_model_is_valid);
    tcase_add_test(tc, fixture_golden_is_valid);

    tc = tcase(s, "malformed", "misuse");
    tcase_add_test(tc, empty_file_on_disk_is_format_error);
    tcase_add_test(tc, file_shorter_than_8_bytes);
    tcase_add_test(tc, header_length_past_end_of_file);
    tcase_add_test(tc, header_not_utf8);
    tcase_add_test(tc, header_not_an_object);
    tcase_add_test(tc, header_not_json);
    tcase_add_test(tc, duplicate_tensor_names);
    tcase_add_test(tc, unknown_dtype);
    tcase_add_test(tc, missing_fields);
    tcase_add_test(tc, fields_of_wrong_type);
    tcase_add_test(tc, unknown_tensor_key);
    tcase_add_test(tc, negative_dim_or_offset);
    tcase_add_test(tc, offsets_end_before_begin);
    tcase_add_test(tc, byte_range_disagrees_with_shape);
    tcase_add_test(tc, gap_before_first_tensor);
    tcase_add_test(tc, gap_between_tensors);
    tcase_add_test(tc, overlapping_tensors);
    tcase_add_test(tc, gap_at_end_of_data);
    tcase_add_test(tc, tensor_past_end_of_data);
    tcase_add_test(tc, metadata_not_string_map);
    tcase_add_test(tc, missing_file_is_io_error);
    tcase_add_test(tc, directory_is_io_error);
    tcase_add_test(tc, null_arguments);

    tc = tcase(s, "limits", "limits");
    /* Headroom for the 100 MB header on slow machines (it takes about 0.3 s). */
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, header_length_over_limit);
    tcase_add_test(tc, header_length_at_limit_is_valid);
    tcase_add_test(tc, too_many_dims);
    tcase_add_test(tc, shape_product_overflow);
    tcase_add_test(tc, huge_offsets);
    tcase_add_test(tc, fuzz_bit_flips);
    tcase_add_test(tc, fuzz_truncation);

    tc = tcase(s, "set", "core");
    tcase_add_test(tc, set_single_file_fixture);
    tcase_add_test(tc, set_sharded_folder);
    tcase_add_test(tc, set_prefers_single_file);

    tc = tcase(s, "set-malformed", "misuse");
    tcase_add_test(tc, set_index_not_json);
    tcase_add_test(tc, set_index_without_weight_map);
    tcase_add_test(tc, set_index_value_not_string);
    tcase_add_test(tc, set_shard_leaves_folder);
    tcase_add_test(tc, set_listed_tensor_missing_from_shard);
    tcase_add_test(tc, set_tensor_in_two_shards);
    tcase_add_test(tc, set_shard_tensor_not_listed);
    tcase_add_test(tc, set_missing_shard_is_io_error);
    tcase_add_test(tc, set_invalid_shard_is_format_error);
    tcase_add_test(tc, set_folder_without_weights_is_io_error);

    tc = tcase(s, "write", "core");
    tcase_add_test(tc, writer_round_trip);
    tcase_add_test(tc, writer_header_format);
    tcase_add_test(tc, writer_split_writes);
    tcase_add_test(tc, writer_no_tensors);
    tcase_add_test(tc, writer_short_commit_keeps_destination);
    tcase_add_test(tc, writer_abort_removes_temp_file);
    tcase_add_test(tc, write_file_atomic_replaces_file);
    tcase_add_test(tc, written_files_follow_umask);

    tc = tcase(s, "write-misuse", "misuse");
    tcase_add_test(tc, writer_rejects_extra_bytes);
    tcase_add_test(tc, writer_failed_rename_removes_temp_file);
    tcase_add_test(tc, writer_missing_folder_is_io_error);
    tcase_add_test(tc, writer_rejects_bad_declarations);
    tcase_add_test(tc, write_file_atomic_rejects_folder_path);
    return s;
}

int main(void) { return tu_run_suite(safetensors_suite()); }
