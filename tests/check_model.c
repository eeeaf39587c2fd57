/* Model loading: configs, checkpoints, options, describe and random init. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/manifest.h"
#include "io/safetensors.h"
#include "lora.h"
#include "model/model.h"
#include "model/session.h"
#include "util/suite.h"
#include "util/st_build.h"

#define QWEN2 "tests/fixtures/tiny-qwen2"

static const char qwen25_05b[] =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151643, \"hidden_act\": \"silu\","
    " \"hidden_size\": 896, \"initializer_range\": 0.02, \"intermediate_size\": 4864,"
    " \"max_position_embeddings\": 32768, \"max_window_layers\": 21, \"model_type\": \"qwen2\","
    " \"num_attention_heads\": 14, \"num_hidden_layers\": 24, \"num_key_value_heads\": 2,"
    " \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"sliding_window\": 32768,"
    " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
    " \"use_sliding_window\": false, \"vocab_size\": 151936}";

static const char small_cfg[] =
    "{\"model_type\": \"qwen2\", \"vocab_size\": 64, \"hidden_size\": 32,"
    " \"intermediate_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"max_position_embeddings\": 64, \"tie_word_embeddings\": true}";

static char *tmp;

static void setup(void) { tmp = tu_st_mkdtemp(); }
static void teardown(void)
{
    tu_st_rmtree(tmp);
    free(tmp);
}

static char *path_in(const char *dir, const char *name)
{
    static char buf[4][2048];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* tmp gets the fixture's weights and the given config text. */
static void fixture_with_config(const char *config)
{
    size_t n;
    uint8_t *w = tu_st_read_file(QWEN2 "/model.safetensors", &n);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "model.safetensors"), w, n), 0);
    free(w);
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "config.json"), config, strlen(config)), 0);
}

/* The tiny-qwen2 config with one key's value text replaced (or added). */
static char *qwen2_config_with(const char *key, const char *value)
{
    size_t n;
    uint8_t *raw = tu_st_read_file(QWEN2 "/config.json", &n);
    ck_assert_ptr_nonnull(raw);
    char *cfg = strndup((const char *)raw, n);
    free(raw);
    char *out = malloc(n + 256);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    char *at = strstr(cfg, pat);
    if (at) {
        char *end = at + strlen(pat);
        while (*end && *end != ',' && *end != '\n' && *end != '}')
            end++;
        sprintf(out, "%.*s\"%s\": %s%s", (int)(at - cfg), cfg, key, value, end);
    } else {
        char *brace = strchr(cfg, '{');
        sprintf(out, "{\"%s\": %s, %s", key, value, brace + 1);
    }
    free(cfg);
    return out;
}

static void expect_load_error(lora_status want, const char *needle)
{
    lora_model *m = (lora_model *)1;
    lora_status st = lora_model_load(tmp, NULL, &m);
    ck_assert_msg(st == want, "status %s, want %s: %s", lora_status_string(st),
                  lora_status_string(want), lora_last_error());
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(lora_last_error(), needle), "message '%s' lacks '%s'", lora_last_error(),
                  needle);
}

static void config_error(const char *key, const char *value, lora_status want, const char *needle)
{
    char *cfg = qwen2_config_with(key, value);
    fixture_with_config(cfg);
    free(cfg);
    expect_load_error(want, needle);
}

START_TEST(loads_every_fixture)
{
    static const char *const dirs[] = {"tiny-qwen2", "tiny-qwen2-bf16", "tiny-qwen3", "tiny-llama"};
    static const char *const types[] = {"\"qwen2\"", "\"qwen2\"", "\"qwen3\"", "\"llama\""};
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s", dirs[_i]);
    lora_model *m = NULL;
    ck_assert_msg(lora_model_load(path, "{\"threads\": 1}", &m) == LORA_OK, "%s",
                  lora_last_error());
    ck_assert(strstr(lora_model_info_json(m), types[_i]));
    ck_assert(lora_model_vocab_size(m) > 0);
    ck_assert(lora_model_num_parameters(m) > 0);
    lora_model_free(m);
}
END_TEST

/* rope_theta nested in rope_parameters (newer transformers) gives the same model */
START_TEST(nested_rope_parameters)
{
    char *cfg = qwen2_config_with("rope_theta", "1.0");
    char *nested = malloc(strlen(cfg) + 128);
    sprintf(nested, "{\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1000000.0}, %s",
            strchr(cfg, '{') + 1);
    fixture_with_config(nested);
    free(cfg);
    free(nested);
    int32_t ids[4] = {9, 8, 7, 6};
    size_t V;
    float *la = tu_logits(tmp, ids, 4, &V), *lb = tu_logits(QWEN2, ids, 4, &V);
    ck_assert(memcmp(la, lb, 4 * V * sizeof *la) == 0);
    free(la);
    free(lb);
}
END_TEST

START_TEST(bf16_weights_report_dtype)
{
    lora_model *m;
    ck_assert_int_eq(lora_model_load("tests/fixtures/tiny-qwen2-bf16", NULL, &m), LORA_OK);
    ck_assert(strstr(lora_model_info_json(m), "\"stored_dtype\":\"BF16\""));
    lora_model_free(m);
}
END_TEST

START_TEST(parameter_count_matches_config)
{
    /* tiny-qwen2: embed 384*64 + 2 layers * (q 64*64+64, k/v 2*(64*32+32), o 64*64,
     * mlp 3*64*160, norms 2*64) + final norm 64 */
    uint64_t want = 384 * 64 + 2 * ((64 * 64 + 64) + 2 * (64 * 32 + 32) + 64 * 64 +
                                    3 * 64 * 160 + 2 * 64) + 64;
    lora_model *m;
    ck_assert_int_eq(lora_model_load(QWEN2, NULL, &m), LORA_OK);
    ck_assert_uint_eq(lora_model_num_parameters(m), want);
    lora_model_free(m);
}
END_TEST

START_TEST(describe_qwen25_05b_config)
{
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "config.json"), qwen25_05b,
                                      strlen(qwen25_05b)), 0);
    char *json = NULL;
    ck_assert_msg(lora_model_describe(tmp, &json) == LORA_OK, "%s", lora_last_error());
    ck_assert_msg(strstr(json, "\"num_parameters\":494032768"), "%s", json);
    ck_assert(strstr(json, "\"has_weights\":false"));
    ck_assert(strstr(json, "\"stored_dtype\":\"BF16\""));
    lora_string_free(json);
    /* the config file itself is accepted too */
    ck_assert_int_eq(lora_model_describe(path_in(tmp, "config.json"), &json), LORA_OK);
    lora_string_free(json);
}
END_TEST

START_TEST(describe_checks_weights)
{
    char *json = NULL;
    ck_assert_int_eq(lora_model_describe(QWEN2, &json), LORA_OK);
    ck_assert(strstr(json, "\"has_weights\":true"));
    ck_assert(strstr(json, "\"stored_dtype\":\"F32\""));
    lora_string_free(json);
    char *cfg = qwen2_config_with("intermediate_size", "161");
    fixture_with_config(cfg);
    free(cfg);
    ck_assert_int_eq(lora_model_describe(tmp, &json), LORA_ERR_SHAPE);
    ck_assert_ptr_null(json);
}
END_TEST

START_TEST(init_is_deterministic_and_loads)
{
    char a[1100], b[1100];
    snprintf(a, sizeof a, "%s/a", tmp);
    snprintf(b, sizeof b, "%s/b", tmp);
    ck_assert_msg(lora_model_init_checkpoint(small_cfg, a, 7, "f32") == LORA_OK, "%s",
                  lora_last_error());
    ck_assert_int_eq(lora_model_init_checkpoint(small_cfg, b, 7, NULL), LORA_OK);
    size_t na, nb;
    uint8_t *wa = tu_st_read_file(path_in(a, "model.safetensors"), &na);
    uint8_t *wb = tu_st_read_file(path_in(b, "model.safetensors"), &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(wa, wb, na) == 0);
    free(wb);
    ck_assert_int_eq(lora_model_init_checkpoint(small_cfg, b, 8, NULL), LORA_OK);
    wb = tu_st_read_file(path_in(b, "model.safetensors"), &nb);
    ck_assert(memcmp(wa, wb, na) != 0);
    free(wa);
    free(wb);
    lora_model *m;
    ck_assert_msg(lora_model_load(a, NULL, &m) == LORA_OK, "%s", lora_last_error());
    lora_model_free(m);
}
END_TEST

START_TEST(init_bf16_loads_as_bf16)
{
    ck_assert_int_eq(lora_model_init_checkpoint(small_cfg, tmp, 1, "bf16"), LORA_OK);
    lora_model *m;
    ck_assert_int_eq(lora_model_load(tmp, NULL, &m), LORA_OK);
    ck_assert(strstr(lora_model_info_json(m), "\"stored_dtype\":\"BF16\""));
    lora_model_free(m);
    size_t n;
    uint8_t *raw = tu_st_read_file(path_in(tmp, "config.json"), &n);
    char *cfg = strndup((const char *)raw, n);
    ck_assert(strstr(cfg, "\"torch_dtype\": \"bfloat16\""));
    free(raw);
    free(cfg);
}
END_TEST

START_TEST(init_refuses_bad_input)
{
    ck_assert_int_eq(lora_model_init_checkpoint(small_cfg, tmp, 1, "f64"),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_model_init_checkpoint("{\"model_type\": \"gpt2\"}", tmp, 1, NULL),
                     LORA_ERR_UNSUPPORTED);
    ck_assert_int_eq(lora_model_init_checkpoint(small_cfg, "/nonexistent/dir/x", 1, NULL),
                     LORA_ERR_IO);
    ck_assert(strstr(lora_last_error(), "/nonexistent/dir/x"));
    ck_assert_int_eq(lora_model_init_checkpoint(NULL, tmp, 1, NULL), LORA_ERR_INVALID_ARGUMENT);
}
END_TEST

/* A two-shard copy of tiny-qwen2 with its index gives the same logits. */
START_TEST(sharded_checkpoint_loads)
{
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(QWEN2 "/model.safetensors", &f), LORA_OK);
    size_t n = lora__st_count(f), half = n / 2;
    char index[16384];
    size_t k = (size_t)snprintf(index, sizeof index, "{\"metadata\": {}, \"weight_map\": {");
    for (int shard = 0; shard < 2; shard++) {
        size_t lo = shard ? half : 0, hi = shard ? n : half;
        lora_st_decl *d = calloc(hi - lo, sizeof *d);
        for (size_t i = lo; i < hi; i++) {
            const lora_st_tensor *t = lora__st_at(f, i);
            d[i - lo].name = t->name;
            d[i - lo].dtype = t->dtype;
            d[i - lo].ndim = t->ndim;
            memcpy(d[i - lo].shape, t->shape, sizeof t->shape);
            k += (size_t)snprintf(index + k, sizeof index - k, "%s\"%s\": \"part%d.safetensors\"",
                                  i ? ", " : "", t->name, shard);
        }
        char name[32];
        snprintf(name, sizeof name, "part%d.safetensors", shard);
        lora_st_writer *w;
        ck_assert_int_eq(lora__st_writer_begin(path_in(tmp, name), d, hi - lo, NULL, &w), LORA_OK);
        for (size_t i = lo; i < hi; i++)
            ck_assert_int_eq(lora__st_writer_write(w, lora__st_at(f, i)->data,
                                                   lora__st_at(f, i)->nbytes), LORA_OK);
        ck_assert_int_eq(lora__st_writer_commit(w), LORA_OK);
        free(d);
    }
    snprintf(index + k, sizeof index - k, "}}");
    lora__st_close(f);
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "model.safetensors.index.json"), index,
                                      strlen(index)), 0);
    size_t cn;
    uint8_t *cfg = tu_st_read_file(QWEN2 "/config.json", &cn);
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "config.json"), cfg, cn), 0);
    free(cfg);

    int32_t ids[4] = {1, 2, 3, 4};
    size_t V;
    float *la = tu_logits(tmp, ids, 4, &V), *lb = tu_logits(QWEN2, ids, 4, &V);
    ck_assert(memcmp(la, lb, 4 * V * sizeof *la) == 0);
    free(la);
    free(lb);
}
END_TEST

START_TEST(config_errors_name_the_key)
{
    static const struct {
        const char *key, *value;
        lora_status want;
        const char *needle;
    } cases[] = {
        {"model_type", "\"gpt2\"", LORA_ERR_UNSUPPORTED, "'gpt2'"},
        {"model_type", "7", LORA_ERR_CONFIG, "model_type"},
        {"num_attention_heads", "5", LORA_ERR_CONFIG, "does not divide hidden_size"},
        {"num_key_value_heads", "3", LORA_ERR_CONFIG, "does not divide num_attention_heads"},
        {"hidden_size", "0", LORA_ERR_CONFIG, "'hidden_size' = 0"},
        {"vocab_size", "1000000000000", LORA_ERR_CONFIG, "'vocab_size'"},
        {"num_hidden_layers", "1000000", LORA_ERR_CONFIG, "'num_hidden_layers'"},
        {"intermediate_size", "\"160\"", LORA_ERR_CONFIG, "'intermediate_size' must be an integer"},
        {"rms_norm_eps", "-1", LORA_ERR_CONFIG, "'rms_norm_eps'"},
        {"rope_theta", "\"big\"", LORA_ERR_CONFIG, "'rope_theta'"},
        {"tie_word_embeddings", "1", LORA_ERR_CONFIG, "'tie_word_embeddings'"},
        {"hidden_act", "\"gelu\"", LORA_ERR_UNSUPPORTED, "'hidden_act'"},
        {"rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}", LORA_ERR_UNSUPPORTED,
         "'rope_scaling'"},
        {"use_sliding_window", "true", LORA_ERR_UNSUPPORTED, "'use_sliding_window'"},
        {"head_dim", "15", LORA_ERR_CONFIG, "'head_dim'"},
        {"quantization_config", "{}", LORA_ERR_UNSUPPORTED, "quantization_config"},
        {"rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", LORA_ERR_UNSUPPORTED,
         "'rope_parameters.rope_type'"},
        {"rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": -1}", LORA_ERR_CONFIG,
         "'rope_theta'"},
    };
    config_error(cases[_i].key, cases[_i].value, cases[_i].want, cases[_i].needle);
}
END_TEST

START_TEST(config_missing_or_malformed)
{
    expect_load_error(LORA_ERR_IO, "config.json");
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "config.json"), "{\"model_type\": ", 15), 0);
    expect_load_error(LORA_ERR_FORMAT, "config.json: line 1");
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "config.json"), "[1]", 3), 0);
    expect_load_error(LORA_ERR_FORMAT, "not a JSON object");
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "config.json"), "{\"model_type\": \"qwen2\"}",
                                      23), 0);
    expect_load_error(LORA_ERR_CONFIG, "required key 'vocab_size'");
}
END_TEST

START_TEST(weights_disagree_with_config)
{
    config_error("num_hidden_layers", "3", LORA_ERR_SHAPE, "'model.layers.2.input_layernorm.weight'");
    config_error("num_hidden_layers", "1", LORA_ERR_SHAPE, "unexpected tensor 'model.layers.1.");
    config_error("intermediate_size", "161", LORA_ERR_SHAPE, "[160, 64], config.json implies [161, 64]");
    config_error("model_type", "\"llama\"", LORA_ERR_SHAPE, "proj.bias': not part of a llama model");
}
END_TEST

/* Seen while writing the model_folder fuzz target (tests/fuzz/regressions/): the arena a config asks for (here 4 TiB) was allocated
 * before the tensors were checked, so a tiny folder failed with OUT_OF_MEMORY (or an ASan
 * abort) instead of naming the tensor that disagrees. */
START_TEST(huge_config_over_small_weights)
{
    fixture_with_config("{\"model_type\": \"qwen2\", \"vocab_size\": 16777216,"
                        " \"hidden_size\": 65536, \"intermediate_size\": 160,"
                        " \"num_hidden_layers\": 2, \"num_attention_heads\": 1024,"
                        " \"num_key_value_heads\": 2, \"tie_word_embeddings\": true}");
    expect_load_error(LORA_ERR_SHAPE, "config.json implies [16777216, 65536]");
}
END_TEST

START_TEST(weights_missing_or_truncated)
{
    size_t n;
    uint8_t *cfg = tu_st_read_file(QWEN2 "/config.json", &n);
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "config.json"), cfg, n), 0);
    free(cfg);
    expect_load_error(LORA_ERR_IO, "model.safetensors");
    uint8_t *w = tu_st_read_file(QWEN2 "/model.safetensors", &n);
    ck_assert_int_eq(tu_st_write_file(path_in(tmp, "model.safetensors"), w, n / 2), 0);
    free(w);
    expect_load_error(LORA_ERR_FORMAT, "model.safetensors");
}
END_TEST

START_TEST(weight_dtype_refused)
{
    /* one F64 tensor among F32 ones */
    const char *name = "model.norm.weight";
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s", small_cfg);
    ck_assert_int_eq(lora_model_init_checkpoint(cfg, tmp, 1, NULL), LORA_OK);
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(path_in(tmp, "model.safetensors"), &f), LORA_OK);
    size_t n = lora__st_count(f);
    lora_st_decl *d = calloc(n, sizeof *d);
    for (size_t i = 0; i < n; i++) {
        const lora_st_tensor *t = lora__st_at(f, i);
        d[i].name = t->name;
        d[i].dtype = strcmp(t->name, name) == 0 ? LORA_ST_I32 : t->dtype;
        d[i].ndim = t->ndim;
        memcpy(d[i].shape, t->shape, sizeof t->shape);
    }
    char out[1100];
    snprintf(out, sizeof out, "%s/x.safetensors", tmp);
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(out, d, n, NULL, &w), LORA_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(lora__st_writer_write(w, lora__st_at(f, i)->data, lora__st_at(f, i)->nbytes),
                         LORA_OK);
    ck_assert_int_eq(lora__st_writer_commit(w), LORA_OK);
    lora__st_close(f);
    free(d);
    ck_assert_int_eq(rename(out, path_in(tmp, "model.safetensors")), 0);
    /* edited by hand: without its manifest the folder is read unchecked, as any other */
    ck_assert_int_eq(remove(path_in(tmp, LORA_MANIFEST_NAME)), 0);
    expect_load_error(LORA_ERR_UNSUPPORTED, "'model.norm.weight' has dtype I32");
}
END_TEST

START_TEST(options_are_checked)
{
    lora_model *m = (lora_model *)1;
    ck_assert_int_eq(lora_model_load(QWEN2, "{\"thread\": 2}", &m), LORA_ERR_CONFIG);
    ck_assert_ptr_null(m);
    ck_assert(strstr(lora_last_error(), "'thread'"));
    ck_assert_int_eq(lora_model_load(QWEN2, "{\"threads\": 0}", &m), LORA_ERR_CONFIG);
    ck_assert_int_eq(lora_model_load(QWEN2, "{\"device\": \"tpu\"}", &m), LORA_ERR_CONFIG);
    ck_assert_int_eq(lora_model_load(QWEN2, "{\"device\": \"cuda\"}", &m), LORA_ERR_DEVICE);
    ck_assert(strstr(lora_last_error(), "cuda"));
    ck_assert_int_eq(lora_model_load(QWEN2, "not json", &m), LORA_ERR_CONFIG);
    ck_assert_int_eq(lora_model_load(QWEN2, "{\"device\": \"auto\"}", &m), LORA_OK);
    lora_model_free(m);
}
END_TEST

/* lora_device_memory's arguments; no GPU is used by this suite, so nothing is held */
START_TEST(device_memory_arguments)
{
    uint64_t used = 1, peak = 1;
    ck_assert_int_eq(lora_device_memory(NULL, &used, &peak, 0), LORA_ERR_INVALID_ARGUMENT);
#ifdef LORA_CUDA
    ck_assert_int_eq(lora_device_memory("cpu", &used, &peak, 0), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(lora_last_error(), "lora_device_memory") &&
                  strstr(lora_last_error(), "'cpu'"), "%s", lora_last_error());
    ck_assert_int_eq(lora_device_memory("cuda:x", &used, &peak, 0), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_device_memory("cuda:64", &used, &peak, 0), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(lora_last_error(), "cuda:0..cuda:63"), "%s", lora_last_error());
    ck_assert_int_eq(lora_device_memory("cuda:7", &used, &peak, 1), LORA_OK);
    ck_assert(used == 0 && peak == 0);
    ck_assert_int_eq(lora_device_memory("cuda", NULL, NULL, 0), LORA_OK);
#else
    ck_assert_int_eq(lora_device_memory("cuda", &used, &peak, 0), LORA_ERR_DEVICE);
    ck_assert(strstr(lora_last_error(), "no CUDA backend"));
#endif
}
END_TEST

START_TEST(null_arguments)
{
    lora_model *m = (lora_model *)1;
    ck_assert_int_eq(lora_model_load(NULL, NULL, &m), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(lora_model_load(QWEN2, NULL, NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_model_load("/nonexistent", NULL, &m), LORA_ERR_IO);
    ck_assert_int_eq(lora_model_describe(NULL, (char **)&m), LORA_ERR_INVALID_ARGUMENT);
    lora_model_free(NULL);
    lora_string_free(NULL);
    ck_assert_ptr_null(lora_model_info_json(NULL));
    ck_assert_uint_eq(lora_model_vocab_size(NULL), 0);
}
END_TEST

START_TEST(version_and_status_strings)
{
    ck_assert_int_eq(lora_abi_version(), LORA_ABI_VERSION);
    ck_assert_str_eq(lora_version_string(), LORA_VERSION_STRING);
    ck_assert_int_eq(lora_version_major(), LORA_VERSION_MAJOR);
    ck_assert_int_eq(lora_version_minor(), LORA_VERSION_MINOR);
    ck_assert_int_eq(lora_version_patch(), LORA_VERSION_PATCH);
    ck_assert_str_eq(lora_status_string(LORA_ERR_SHAPE), "LORA_ERR_SHAPE");
    ck_assert_str_eq(lora_status_string((lora_status)999), "LORA_ERR_UNKNOWN");
}
END_TEST

/* The device layout a GPU model would get, worked out by hand for tiny-qwen2 (V 384, C 64, q 64,
 * kv 32, I 160, two layers, tied, q/k/v biases): matrices 2 bytes a value with bf16, norms and
 * biases 4, each tensor rounded up to 256 bytes. Host arithmetic: runs without a GPU. */
START_TEST(device_layout_of_tiny_qwen2)
{
    lora_model *m;
    ck_assert_int_eq(lora_model_load(QWEN2, NULL, &m), LORA_OK);
    lora_dev_tensor *t;
    size_t n, bytes;
    ck_assert_int_eq(lora__model_device_plan(m, true, &t, &n, &bytes), LORA_OK);
    size_t layer = 2 * (64 * 64 + 32 * 64 + 32 * 64 + 64 * 64 + 3 * 160 * 64) + 5 * 256;
    ck_assert_uint_eq(bytes, 2 * 384 * 64 + 2 * layer + 256);
    ck_assert_uint_eq(n, 1 + 2 * 12 + 1);
    size_t matrices = 0;
    for (size_t i = 0; i < n; i++) {
        matrices += t[i].bf16;
        ck_assert(t[i].bf16 == (t[i].numel > 160)); /* every vector here is <= 64 long */
        ck_assert(t[i].dev_off % 256 == 0);
        if (i)
            ck_assert(t[i].off >= t[i - 1].off + t[i - 1].numel &&
                      t[i].dev_off >= t[i - 1].dev_off + t[i - 1].numel * (t[i - 1].bf16 ? 2 : 4));
    }
    ck_assert_uint_eq(matrices, 1 + 2 * 7);
    free(t);
    ck_assert_int_eq(lora__model_device_plan(m, false, &t, &n, &bytes), LORA_OK);
    size_t layer32 = 4 * (64 * 64 + 32 * 64 + 32 * 64 + 64 * 64 + 3 * 160 * 64) + 5 * 256;
    ck_assert_uint_eq(bytes, 4 * 384 * 64 + 2 * layer32 + 256);
    for (size_t i = 0; i < n; i++)
        ck_assert(!t[i].bf16);
    free(t);
    /* a CPU model reads its host arena */
    ck_assert_ptr_eq(lora__model_mem(m, m->embed), m->embed);
    ck_assert_ptr_null(lora__model_mem_bf16(m, m->embed));
    ck_assert_ptr_null(strstr(lora_model_info_json(m), "device_weight"));
    lora_model_free(m);
}
END_TEST

/* The output head's chunks: whole rows where the backend has no chunked cross-entropy (the
 * CPU's plan, 2^22 logits at most), on a GPU the whole vocabulary for at least 256 rows in
 * 2^26 logits, else vocabulary columns */
START_TEST(head_chunk_plan)
{
    const int64_t cpu = LORA_HEAD_CHUNK_FLOATS;
    lora_head_plan p = lora__head_plan(4096, 151936, 151936, cpu);
    ck_assert(p.cols == 151936 && p.rows == (1 << 22) / 151936);
    p = lora__head_plan(3, 151936, 151936, cpu);
    ck_assert(p.cols == 151936 && p.rows == 3);
    p = lora__head_plan(4096, 151936, LORA_HEAD_COLS, cpu);
    ck_assert(p.cols == 8192 && p.rows == 512);
    ck_assert_int_eq((151936 + p.cols - 1) / p.cols, 19); /* the last chunk: 4480 columns */
    p = lora__head_plan(100, 384, LORA_HEAD_COLS, cpu); /* a vocabulary smaller than a chunk */
    ck_assert(p.cols == 384 && p.rows == 100);
    p = lora__head_plan(7, 1000, 300, cpu);
    ck_assert(p.cols == 300 && p.rows == 7);
    p = lora__head_plan(7, (int64_t)1 << 23, (int64_t)1 << 23, cpu); /* a row over the budget */
    ck_assert(p.rows == 1);
    p = lora__head_plan(7, 1000, 0, cpu);
    ck_assert(p.cols == 1000);
    /* a GPU: Qwen's vocabulary whole, 441 rows at a time; one past 2^26 / 256 in columns */
    p = lora__head_plan_chunked(16384, 151936, 0);
    ck_assert(p.cols == 151936 && p.rows == ((int64_t)1 << 26) / 151936 && p.rows == 441);
    p = lora__head_plan_chunked(100, 151936, 0);
    ck_assert(p.cols == 151936 && p.rows == 100);
    p = lora__head_plan_chunked(4096, ((int64_t)1 << 18) + 1, 0);
    ck_assert(p.cols == LORA_HEAD_COLS && p.rows == 512);
    p = lora__head_plan_chunked(4096, 151936, 100); /* the tests' column chunks */
    ck_assert(p.cols == 100 && p.rows == 4096);
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_loop_test(core, loads_every_fixture, 0, 4);
    tcase_add_test(core, bf16_weights_report_dtype);
    tcase_add_test(core, nested_rope_parameters);
    tcase_add_test(core, parameter_count_matches_config);
    tcase_add_test(core, describe_qwen25_05b_config);
    tcase_add_test(core, describe_checks_weights);
    tcase_add_test(core, init_is_deterministic_and_loads);
    tcase_add_test(core, init_bf16_loads_as_bf16);
    tcase_add_test(core, sharded_checkpoint_loads);
    tcase_add_test(core, version_and_status_strings);
    tcase_add_test(core, device_layout_of_tiny_qwen2);
    tcase_add_test(core, head_chunk_plan);
    suite_add_tcase(s, core);

    TCase *misuse = tcase_create("misuse");
    tcase_set_tags(misuse, "misuse");
    tcase_add_checked_fixture(misuse, setup, teardown);
    tcase_add_loop_test(misuse, config_errors_name_the_key, 0, 18);
    tcase_add_test(misuse, config_missing_or_malformed);
    tcase_add_test(misuse, weights_disagree_with_config);
    tcase_add_test(misuse, weights_missing_or_truncated);
    tcase_add_test(misuse, huge_config_over_small_weights);
    tcase_add_test(misuse, weight_dtype_refused);
    tcase_add_test(misuse, options_are_checked);
    tcase_add_test(misuse, null_arguments);
    tcase_add_test(misuse, device_memory_arguments);
    tcase_add_test(misuse, init_refuses_bad_input);
    suite_add_tcase(s, misuse);
    return s;
}

int main(void) { return tu_run_suite(model_suite()); }
