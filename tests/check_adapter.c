/* LoRA adapters: PEFT config parsing, creation and initialisation, PEFT folders (load, save,
 * round trip), the parameter report, and every refusal naming its key or tensor. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter/adapter.h"
#include "io/safetensors.h"
#include "lora.h"
#include "model/config.h"
#include "model/dtype.h"
#include "util/st_build.h"
#include "util/suite.h"

#define QWEN2 "tests/fixtures/tiny-qwen2"
#define QWEN25_CONFIG "tests/fixtures/qwen2.5-0.5b-config/config.json"

static const char *const fixtures[] = {"tiny-qwen2", "tiny-qwen2-bf16", "tiny-qwen3",
                                       "tiny-llama"};

static char *tmp;
static lora_model *model; /* tiny-qwen2, loaded by the fixture */

static void setup(void)
{
    tmp = tu_st_mkdtemp();
    ck_assert_msg(lora_model_load(QWEN2, "{\"threads\": 1}", &model) == LORA_OK, "%s",
                  lora_last_error());
}

static void teardown(void)
{
    lora_model_free(model);
    model = NULL;
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

static lora_adapter *create_ok(const char *json, uint64_t seed)
{
    lora_adapter *a = NULL;
    ck_assert_msg(lora_adapter_create(model, json, seed, &a) == LORA_OK, "%s: %s", json,
                  lora_last_error());
    ck_assert_ptr_nonnull(a);
    return a;
}

static void expect_create_error(const char *json, lora_status want, const char *needle)
{
    lora_adapter *a = (lora_adapter *)1;
    lora_status st = lora_adapter_create(model, json, 1, &a);
    ck_assert_msg(st == want, "%s: status %s, want %s: %s", json, lora_status_string(st),
                  lora_status_string(want), lora_last_error());
    ck_assert_ptr_null(a);
    ck_assert_msg(strstr(lora_last_error(), needle), "%s: message '%s' lacks '%s'", json,
                  lora_last_error(), needle);
    ck_assert_msg(strstr(lora_last_error(), "lora_adapter_create"), "%s", lora_last_error());
}

static void expect_load_error(const char *dir, lora_status want, const char *needle)
{
    lora_adapter *a = (lora_adapter *)1;
    lora_status st = lora_adapter_load(model, dir, &a);
    ck_assert_msg(st == want, "status %s, want %s: %s", lora_status_string(st),
                  lora_status_string(want), lora_last_error());
    ck_assert_ptr_null(a);
    ck_assert_msg(strstr(lora_last_error(), needle), "message '%s' lacks '%s'",
                  lora_last_error(), needle);
}

/* A key of lora_adapter_info_json as a number. */
static double info_number(const lora_adapter *a, const char *key)
{
    json_t *o = json_loads(lora_adapter_info_json(a), 0, NULL);
    ck_assert_ptr_nonnull(o);
    json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_number(v), "info lacks '%s': %s", key, lora_adapter_info_json(a));
    double x = json_number_value(v);
    json_decref(o);
    return x;
}

static void write_text(const char *path, const char *text)
{
    ck_assert_int_eq(tu_st_write_file(path, text, strlen(text)), 0);
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *b = tu_st_read_file(from, &n);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(tu_st_write_file(to, b, n), 0);
    free(b);
}

/* tmp/name gets the tiny-qwen2 adapter's config (or config_text) and its tensors, rewritten:
 * `skip` left out, `extra` added (a copy of the first tensor), `retype` stored as I32. */
static char *adapter_copy(const char *name, const char *config_text, const char *skip,
                          const char *extra, const char *retype)
{
    char *dir = strdup(path_in(tmp, name));
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    if (config_text)
        write_text(path_in(dir, "adapter_config.json"), config_text);
    else
        copy_file(QWEN2 "/adapter/adapter_config.json", path_in(dir, "adapter_config.json"));
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(QWEN2 "/adapter/adapter_model.safetensors", &f), LORA_OK);
    size_t n = lora__st_count(f), k = 0;
    lora_st_decl *d = calloc(n + 1, sizeof *d);
    const lora_st_tensor **src = calloc(n + 1, sizeof *src);
    for (size_t i = 0; i < n; i++) {
        const lora_st_tensor *t = lora__st_at(f, i);
        if (skip && strcmp(t->name, skip) == 0)
            continue;
        src[k] = t;
        d[k].name = t->name;
        d[k].dtype = retype && strcmp(t->name, retype) == 0 ? LORA_ST_I32 : t->dtype;
        d[k].ndim = t->ndim;
        memcpy(d[k].shape, t->shape, sizeof t->shape);
        k++;
    }
    if (extra) {
        src[k] = lora__st_at(f, 0);
        d[k] = d[0];
        d[k].name = extra;
        k++;
    }
    lora_st_writer *w;
    ck_assert_int_eq(lora__st_writer_begin(path_in(dir, "adapter_model.safetensors"), d, k,
                                           "{\"format\": \"pt\"}", &w), LORA_OK);
    for (size_t i = 0; i < k; i++)
        ck_assert_int_eq(lora__st_writer_write(w, src[i]->data, src[i]->nbytes), LORA_OK);
    ck_assert_msg(lora__st_writer_commit(w) == LORA_OK, "%s", lora_last_error());
    lora__st_close(f);
    free(d);
    free(src);
    return dir;
}

/* The tiny-qwen2 adapter config with one key's value text replaced or added. */
static char *qwen2_adapter_config_with(const char *key, const char *value)
{
    size_t n;
    uint8_t *raw = tu_st_read_file(QWEN2 "/adapter/adapter_config.json", &n);
    ck_assert_ptr_nonnull(raw);
    json_t *o = json_loadb((const char *)raw, n, 0, NULL);
    free(raw);
    ck_assert_ptr_nonnull(o);
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(v);
    json_object_set_new(o, key, v);
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

/* ---- counts ----------------------------------------------------------------------------------- */

START_TEST(count_qwen25_05b_all_linear)
{
    lora_config c;
    ck_assert_msg(lora__config_load(QWEN25_CONFIG, &c) == LORA_OK, "%s", lora_last_error());
    uint64_t modules, trainable;
    ck_assert_msg(lora__adapter_count(&c, "{\"r\": 8, \"target_modules\": \"all-linear\"}",
                                      &modules, &trainable) == LORA_OK, "%s", lora_last_error());
    ck_assert_uint_eq(modules, 168);
    ck_assert_uint_eq(trainable, 4399104);
    uint64_t total = lora__config_num_params(&c) + trainable;
    ck_assert_uint_eq(total, 498431872);
    char ratio[32];
    snprintf(ratio, sizeof ratio, "%.4f", 100.0 * (double)trainable / (double)total);
    ck_assert_str_eq(ratio, "0.8826");
    /* the groups give the same */
    ck_assert_int_eq(lora__adapter_count(&c, "{\"target_modules\": [\"attn\", \"ffn\"]}",
                                         &modules, &trainable), LORA_OK);
    ck_assert_uint_eq(modules, 168);
    ck_assert_uint_eq(trainable, 4399104);
    /* defaults: r 8 on q_proj and v_proj: 24 * 8 * ((896 + 896) + (896 + 128)) */
    ck_assert_int_eq(lora__adapter_count(&c, NULL, &modules, &trainable), LORA_OK);
    ck_assert_uint_eq(modules, 48);
    ck_assert_uint_eq(trainable, 24u * 8u * (1792u + 1024u));
    /* rank_pattern changes the count: q_proj of layer 0 at r 16 adds 8 * 1792 */
    ck_assert_int_eq(lora__adapter_count(&c, "{\"rank_pattern\": "
                                         "{\"model.layers.0.self_attn.q_proj\": 16}}",
                                         &modules, &trainable), LORA_OK);
    ck_assert_uint_eq(trainable, 24u * 8u * (1792u + 1024u) + 8u * 1792u);
    /* errors name the key */
    ck_assert_int_eq(lora__adapter_count(&c, "{\"r\": 0}", &modules, &trainable),
                     LORA_ERR_CONFIG);
    ck_assert(strstr(lora_last_error(), "'r'"));
}
END_TEST

/* ---- fixtures --------------------------------------------------------------------------------- */

/* Every module's A and B equal the file's tensors (converted to float32). */
static void assert_matches_file(const lora_adapter *a, const char *st_path)
{
    lora_st_file *f;
    ck_assert_int_eq(lora__st_open(st_path, &f), LORA_OK);
    ck_assert_uint_eq(lora__st_count(f), 2 * a->n_mods);
    char name[128];
    for (size_t i = 0; i < a->n_mods; i++) {
        const lora_adapter_module *m = &a->mods[i];
        for (int w = 0; w < 2; w++) {
            lora__adapter_tensor_name(m->layer, m->proj, w ? 'B' : 'A', name, sizeof name);
            const lora_st_tensor *t = lora__st_find(f, name);
            ck_assert_msg(t != NULL, "%s missing", name);
            size_t n = (size_t)(m->r * (w ? m->out : m->in));
            ck_assert_uint_eq(t->numel, n);
            float *want = malloc(n * sizeof *want);
            if (t->dtype == LORA_ST_BF16)
                lora__f32_from_bf16(want, t->data, n);
            else if (t->dtype == LORA_ST_F16)
                lora__f32_from_f16(want, t->data, n);
            else
                lora__f32_from_f32(want, t->data, n);
            ck_assert_msg(memcmp(want, w ? m->B : m->A, n * sizeof *want) == 0, "%s differs",
                          name);
            free(want);
        }
    }
    lora__st_close(f);
}

START_TEST(fixture_adapters_load)
{
    /* modules, r, scaling: tiny-qwen3 uses rslora (16 / sqrt(4)) */
    static const struct { uint64_t modules; int64_t r; double scaling; } want[] = {
        {14, 4, 2.0}, {4, 8, 2.0}, {14, 4, 8.0}, {12, 2, 2.0}};
    char dir[256], adir[256];
    snprintf(dir, sizeof dir, "tests/fixtures/%.32s", fixtures[_i]);
    snprintf(adir, sizeof adir, "%.64s/adapter", dir);
    lora_model *m;
    ck_assert_int_eq(lora_model_load(dir, "{\"threads\": 1}", &m), LORA_OK);
    lora_adapter *a = NULL;
    ck_assert_msg(lora_adapter_load(m, adir, &a) == LORA_OK, "%s", lora_last_error());
    ck_assert_uint_eq(a->n_mods, want[_i].modules);
    ck_assert_int_eq(a->r, want[_i].r);
    for (size_t i = 0; i < a->n_mods; i++) {
        ck_assert_int_eq(a->mods[i].r, want[_i].r);
        ck_assert_float_eq(a->mods[i].scaling, (float)want[_i].scaling);
        ck_assert_ptr_eq(lora__adapter_module(a, a->mods[i].layer, a->mods[i].proj), &a->mods[i]);
        ck_assert_uint_eq((uintptr_t)a->mods[i].A % 64, 0);
        ck_assert_uint_eq((uintptr_t)a->mods[i].B % 64, 0);
        /* ordered by layer, then q, k, v, o, gate, up, down */
        if (i)
            ck_assert(a->mods[i - 1].layer < a->mods[i].layer ||
                      (a->mods[i - 1].layer == a->mods[i].layer &&
                       a->mods[i - 1].proj < a->mods[i].proj));
    }
    ck_assert_double_eq_tol(info_number(a, "scaling"), want[_i].scaling, 1e-6);
    ck_assert_uint_eq((uint64_t)info_number(a, "modules"), want[_i].modules);
    snprintf(adir, sizeof adir, "%.64s/adapter/adapter_model.safetensors", dir);
    assert_matches_file(a, adir);
    lora_adapter_free(a);
    lora_model_free(m);
}
END_TEST

/* load -> save -> reload: the saved tensors hold the file's bytes, the config reads back. */
START_TEST(round_trip_keeps_bytes)
{
    char dir[256], src[256];
    snprintf(dir, sizeof dir, "tests/fixtures/%.32s", fixtures[_i]);
    snprintf(src, sizeof src, "%.64s/adapter", dir);
    lora_model *m;
    ck_assert_int_eq(lora_model_load(dir, "{\"threads\": 1}", &m), LORA_OK);
    lora_adapter *a, *b;
    ck_assert_int_eq(lora_adapter_load(m, src, &a), LORA_OK);
    char *out = strdup(path_in(tmp, "saved"));
    ck_assert_msg(lora_adapter_save(a, out) == LORA_OK, "%s", lora_last_error());
    /* saving over an existing folder works too */
    ck_assert_msg(lora_adapter_save(a, out) == LORA_OK, "%s", lora_last_error());
    ck_assert_msg(lora_adapter_load(m, out, &b) == LORA_OK, "%s", lora_last_error());
    ck_assert_uint_eq(a->n_mods, b->n_mods);
    ck_assert_str_eq(a->info_json, b->info_json);
    ck_assert_str_eq(a->config_json, b->config_json);
    for (size_t i = 0; i < a->n_mods; i++) {
        ck_assert_float_eq(a->mods[i].scaling, b->mods[i].scaling);
        ck_assert(memcmp(a->mods[i].A, b->mods[i].A,
                         (size_t)(a->mods[i].r * a->mods[i].in) * sizeof(float)) == 0);
        ck_assert(memcmp(a->mods[i].B, b->mods[i].B,
                         (size_t)(a->mods[i].r * a->mods[i].out) * sizeof(float)) == 0);
    }
    /* F32 sources: the saved tensors are the original bytes, F32, with format "pt" */
    lora_st_file *f0, *f1;
    char p0[300];
    snprintf(p0, sizeof p0, "%.128s/adapter_model.safetensors", src);
    ck_assert_int_eq(lora__st_open(p0, &f0), LORA_OK);
    ck_assert_int_eq(lora__st_open(path_in(out, "adapter_model.safetensors"), &f1), LORA_OK);
    ck_assert_uint_eq(lora__st_count(f0), lora__st_count(f1));
    ck_assert_str_eq(lora__st_metadata(f1, "format"), "pt");
    for (size_t i = 0; i < lora__st_count(f0); i++) {
        const lora_st_tensor *t0 = lora__st_at(f0, i);
        const lora_st_tensor *t1 = lora__st_find(f1, t0->name);
        ck_assert_msg(t1 != NULL, "%s not saved", t0->name);
        ck_assert_int_eq(t1->dtype, LORA_ST_F32);
        ck_assert_int_eq(t0->dtype, LORA_ST_F32);
        ck_assert_uint_eq(t0->nbytes, t1->nbytes);
        ck_assert(memcmp(t0->data, t1->data, t0->nbytes) == 0);
        /* name order, as PEFT writes */
        if (i)
            ck_assert(strcmp(lora__st_at(f1, i - 1)->name, lora__st_at(f1, i)->name) < 0);
    }
    lora__st_close(f0);
    lora__st_close(f1);
    /* the saved config is PEFT's */
    size_t n;
    uint8_t *text = tu_st_read_file(path_in(out, "adapter_config.json"), &n);
    json_t *cfg = json_loadb((const char *)text, n, 0, NULL);
    free(text);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "peft_type")), "LORA");
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "task_type")), "CAUSAL_LM");
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "bias")), "none");
    ck_assert(json_is_true(json_object_get(cfg, "inference_mode")));
    ck_assert(json_is_false(json_object_get(cfg, "use_dora")));
    ck_assert(json_is_null(json_object_get(cfg, "modules_to_save")));
    ck_assert(json_is_object(json_object_get(cfg, "rank_pattern")));
    ck_assert_int_eq(json_integer_value(json_object_get(cfg, "r")), a->r);
    ck_assert(json_is_boolean(json_object_get(cfg, "use_rslora")));
    json_decref(cfg);
    free(out);
    lora_adapter_free(a);
    lora_adapter_free(b);
    lora_model_free(m);
}
END_TEST

/* ---- creation and initialisation --------------------------------------------------------- */

/* mean of x / scale, and of (x / scale)^2 */
static void moments(const float *x, size_t n, double scale, double *mean, double *sq)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i] / scale;
        s2 += (x[i] / scale) * (x[i] / scale);
    }
    *mean = s / (double)n;
    *sq = s2 / (double)n;
}

static int all_zero(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f)
            return 0;
    return 1;
}

/* Over every module: A / bound is uniform on [-1, 1] (mean 0, mean square 1/3). */
static void assert_kaiming_a(const lora_adapter *a)
{
    double s = 0, s2 = 0;
    size_t total = 0;
    for (size_t i = 0; i < a->n_mods; i++) {
        const lora_adapter_module *m = &a->mods[i];
        size_t n = (size_t)(m->r * m->in);
        float bound = (float)(1.0 / sqrt((double)m->in));
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(fabsf(m->A[j]) <= bound, "A %g outside %g", m->A[j], bound);
        double mean, sq;
        moments(m->A, n, bound, &mean, &sq);
        s += mean * (double)n;
        s2 += sq * (double)n;
        total += n;
    }
    ck_assert_double_lt(fabs(s / (double)total), 0.03);
    ck_assert_double_eq_tol(s2 / (double)total, 1.0 / 3.0, 0.02);
}

START_TEST(init_true_kaiming_a_zero_b)
{
    lora_adapter *a = create_ok("{\"r\": 4, \"target_modules\": \"all-linear\"}", 42);
    ck_assert_uint_eq(a->n_mods, 14);
    assert_kaiming_a(a);
    for (size_t i = 0; i < a->n_mods; i++)
        ck_assert(all_zero(a->mods[i].B, (size_t)(a->mods[i].out * a->mods[i].r)));
    lora_adapter_free(a);
    /* init_lora_weights true spelled out gives the same bytes */
    lora_adapter *b = create_ok("{\"r\": 4, \"target_modules\": \"all-linear\","
                                " \"init_lora_weights\": true}", 42);
    a = create_ok("{\"r\": 4, \"target_modules\": \"all-linear\"}", 42);
    ck_assert_uint_eq(a->arena_floats, b->arena_floats);
    ck_assert(memcmp(a->arena, b->arena, a->arena_floats * sizeof(float)) == 0);
    lora_adapter_free(a);
    lora_adapter_free(b);
}
END_TEST

START_TEST(init_gaussian_std_one_over_r)
{
    lora_adapter *a = create_ok("{\"r\": 8, \"target_modules\": \"all-linear\","
                                " \"init_lora_weights\": \"gaussian\"}", 3);
    double s = 0, s2 = 0;
    size_t total = 0;
    for (size_t i = 0; i < a->n_mods; i++) {
        const lora_adapter_module *m = &a->mods[i];
        size_t n = (size_t)(m->r * m->in);
        double mean, sq;
        moments(m->A, n, 1.0 / (double)m->r, &mean, &sq);
        s += mean * (double)n;
        s2 += sq * (double)n;
        total += n;
        ck_assert(all_zero(m->B, (size_t)(m->out * m->r)));
    }
    /* A * r is standard normal: mean 0, variance 1 (8704 samples) */
    ck_assert_double_lt(fabs(s / (double)total), 0.05);
    ck_assert_double_eq_tol(sqrt(s2 / (double)total), 1.0, 0.04);
    lora_adapter_free(a);
}
END_TEST

START_TEST(init_false_b_uniform)
{
    lora_adapter *a = create_ok("{\"r\": 4, \"target_modules\": \"all-linear\","
                                " \"init_lora_weights\": false}", 5);
    assert_kaiming_a(a);
    double s2 = 0;
    size_t total = 0;
    for (size_t i = 0; i < a->n_mods; i++) {
        const lora_adapter_module *m = &a->mods[i];
        size_t n = (size_t)(m->out * m->r);
        float bound = (float)(1.0 / sqrt((double)m->r));
        ck_assert(!all_zero(m->B, n));
        for (size_t j = 0; j < n; j++)
            ck_assert(fabsf(m->B[j]) <= bound);
        double mean, sq;
        moments(m->B, n, bound, &mean, &sq);
        s2 += sq * (double)n;
        total += n;
    }
    ck_assert_double_eq_tol(s2 / (double)total, 1.0 / 3.0, 0.03);
    lora_adapter_free(a);
}
END_TEST

START_TEST(init_is_deterministic_per_seed)
{
    static const char *const inits[] = {"true", "false", "\"gaussian\""};
    char json[128];
    snprintf(json, sizeof json, "{\"target_modules\": \"all-linear\", \"init_lora_weights\": %s}",
             inits[_i]);
    lora_adapter *a = create_ok(json, 11), *b = create_ok(json, 11), *c = create_ok(json, 12);
    ck_assert(memcmp(a->arena, b->arena, a->arena_floats * sizeof(float)) == 0);
    ck_assert(memcmp(a->arena, c->arena, a->arena_floats * sizeof(float)) != 0);
    /* and the saved files are identical */
    char *da = strdup(path_in(tmp, "a")), *db = strdup(path_in(tmp, "b"));
    ck_assert_int_eq(lora_adapter_save(a, da), LORA_OK);
    ck_assert_int_eq(lora_adapter_save(b, db), LORA_OK);
    size_t na, nb;
    uint8_t *fa = tu_st_read_file(path_in(da, "adapter_model.safetensors"), &na);
    uint8_t *fb = tu_st_read_file(path_in(db, "adapter_model.safetensors"), &nb);
    ck_assert(fa && fb && na == nb && memcmp(fa, fb, na) == 0);
    free(fa);
    free(fb);
    fa = tu_st_read_file(path_in(da, "adapter_config.json"), &na);
    fb = tu_st_read_file(path_in(db, "adapter_config.json"), &nb);
    ck_assert(fa && fb && na == nb && memcmp(fa, fb, na) == 0);
    free(fa);
    free(fb);
    free(da);
    free(db);
    lora_adapter_free(a);
    lora_adapter_free(b);
    lora_adapter_free(c);
}
END_TEST

/* ---- config semantics ------------------------------------------------------------------------ */

START_TEST(target_module_resolution)
{
    static const struct { const char *json; uint64_t per_layer; const char *list; } cases[] = {
        {"{}", 2, "[\"q_proj\",\"v_proj\"]"},
        {"{\"target_modules\": null}", 2, "[\"q_proj\",\"v_proj\"]"},
        {"{\"target_modules\": \"all-linear\"}", 7,
         "[\"down_proj\",\"gate_proj\",\"k_proj\",\"o_proj\",\"q_proj\",\"up_proj\",\"v_proj\"]"},
        {"{\"target_modules\": [\"attn\"]}", 4,
         "[\"k_proj\",\"o_proj\",\"q_proj\",\"v_proj\"]"},
        {"{\"target_modules\": [\"ffn\"]}", 3, "[\"down_proj\",\"gate_proj\",\"up_proj\"]"},
        {"{\"target_modules\": [\"attn\", \"ffn\"]}", 7,
         "[\"down_proj\",\"gate_proj\",\"k_proj\",\"o_proj\",\"q_proj\",\"up_proj\",\"v_proj\"]"},
        {"{\"target_modules\": [\"down_proj\", \"q_proj\", \"q_proj\"]}", 2,
         "[\"down_proj\",\"q_proj\"]"},
        {"{\"target_modules\": [\"ffn\", \"o_proj\"]}", 4,
         "[\"down_proj\",\"gate_proj\",\"o_proj\",\"up_proj\"]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lora_adapter *a = create_ok(cases[i].json, 1);
        ck_assert_uint_eq(a->n_mods, 2 * cases[i].per_layer);
        char want[256];
        snprintf(want, sizeof want, "\"target_modules\":%s", cases[i].list);
        ck_assert_msg(strstr(lora_adapter_info_json(a), want), "%s: %s", cases[i].json,
                      lora_adapter_info_json(a));
        lora_adapter_free(a);
    }
}
END_TEST

START_TEST(shapes_follow_the_model)
{
    /* tiny-qwen3: hidden 64, 4 heads of 24 (q width 96), 2 kv heads (48), intermediate 128 */
    lora_model *m;
    ck_assert_int_eq(lora_model_load("tests/fixtures/tiny-qwen3", NULL, &m), LORA_OK);
    lora_adapter *a;
    ck_assert_int_eq(lora_adapter_create(m, "{\"r\": 2, \"target_modules\": \"all-linear\"}",
                                         0, &a), LORA_OK);
    static const int64_t shapes[LORA_PROJ_COUNT][2] = {
        {96, 64}, {48, 64}, {48, 64}, {64, 96}, {128, 64}, {128, 64}, {64, 128}};
    uint64_t trainable = 0;
    for (int p = 0; p < LORA_PROJ_COUNT; p++) {
        lora_adapter_module *mod = lora__adapter_module(a, 1, (lora_proj)p);
        ck_assert_ptr_nonnull(mod);
        ck_assert_int_eq(mod->out, shapes[p][0]);
        ck_assert_int_eq(mod->in, shapes[p][1]);
        trainable += (uint64_t)(2 * (shapes[p][0] + shapes[p][1]));
    }
    ck_assert_uint_eq((uint64_t)info_number(a, "trainable_parameters"), 2 * trainable);
    ck_assert_uint_eq((uint64_t)info_number(a, "total_parameters"),
                      lora_model_num_parameters(m) + 2 * trainable);
    ck_assert_double_eq_tol(info_number(a, "trainable_ratio"),
                            100.0 * (double)(2 * trainable) /
                                (double)(lora_model_num_parameters(m) + 2 * trainable), 1e-9);
    lora_model_free(m);
    lora_adapter_free(a);
    /* tiny-qwen2, r 4 on attn: 2 layers * 4 * (2 * (64 + 64) + 2 * (64 + 32)), as lora info
     * --lora-rank 4 --target-modules attn prints it */
    a = create_ok("{\"r\": 4, \"target_modules\": [\"attn\"]}", 0);
    ck_assert_uint_eq((uint64_t)info_number(a, "trainable_parameters"), 3584);
    ck_assert_uint_eq((uint64_t)info_number(a, "total_parameters"), 114752);
    char ratio[32];
    snprintf(ratio, sizeof ratio, "%.4f", info_number(a, "trainable_ratio"));
    ck_assert_str_eq(ratio, "3.1233");
    lora_adapter_free(a);
}
END_TEST

/* The arena holds each layer's A matrices back to back, then its Bs: q/k/v (one input, one
 * rank) form one (3r, in) matrix, gate/up one (2r, in), and with k not adapted q and v still
 * do (a GPU's grouped LoRA backward relies on it); every tensor stays 64-byte aligned. */
START_TEST(layer_a_matrices_back_to_back)
{
    const char *cfgs[] = {"{\"r\": 4, \"target_modules\": \"all-linear\"}",
                          "{\"r\": 4, \"target_modules\": [\"q_proj\", \"v_proj\"]}"};
    for (int c = 0; c < 2; c++) {
        lora_adapter *a = create_ok(cfgs[c], 0);
        const lora_adapter_module *prev = NULL;
        for (size_t i = 0; i < a->n_mods; i++) {
            const lora_adapter_module *m = &a->mods[i];
            ck_assert_uint_eq((uintptr_t)m->A % 64, 0);
            ck_assert_uint_eq((uintptr_t)m->B % 64, 0);
            if (prev && prev->layer == m->layer)
                ck_assert_msg(m->A == prev->A + prev->r * prev->in,
                              "%s: layer %lld: module %zu's A does not follow the last one's",
                              cfgs[c], (long long)m->layer, i);
            prev = m;
        }
        /* the Bs after the layer's As: the first B past the last A */
        const lora_adapter_module *q = lora__adapter_module(a, 0, LORA_PROJ_Q);
        const lora_adapter_module *v = lora__adapter_module(a, 0, LORA_PROJ_V);
        ck_assert_ptr_nonnull(q);
        ck_assert_ptr_nonnull(v);
        ck_assert(q->B > v->A);
        lora_adapter_free(a);
    }
}
END_TEST

START_TEST(rank_and_alpha_patterns)
{
    lora_adapter *a = create_ok(
        "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": \"all-linear\","
        " \"rank_pattern\": {\"q_proj\": 16, \"model.layers.1.self_attn.q_proj\": 2,"
        "                    \"layers.0.mlp.down_proj\": 6, \"mlp.up_proj\": 3},"
        " \"alpha_pattern\": {\"v_proj\": 32, \"1.self_attn.v_proj\": 12.5}}", 9);
    /* module name: every layer; the longest key wins over it */
    ck_assert_int_eq(lora__adapter_module(a, 0, LORA_PROJ_Q)->r, 16);
    ck_assert_int_eq(lora__adapter_module(a, 1, LORA_PROJ_Q)->r, 2);
    ck_assert_int_eq(lora__adapter_module(a, 0, LORA_PROJ_DOWN)->r, 6);
    ck_assert_int_eq(lora__adapter_module(a, 1, LORA_PROJ_DOWN)->r, 4);
    ck_assert_int_eq(lora__adapter_module(a, 0, LORA_PROJ_UP)->r, 3);
    ck_assert_int_eq(lora__adapter_module(a, 1, LORA_PROJ_K)->r, 4);
    /* scaling = alpha / r per module */
    ck_assert_float_eq(lora__adapter_module(a, 0, LORA_PROJ_Q)->scaling, 0.5f);
    ck_assert_float_eq(lora__adapter_module(a, 1, LORA_PROJ_Q)->scaling, 4.0f);
    ck_assert_float_eq(lora__adapter_module(a, 0, LORA_PROJ_V)->scaling, 8.0f);
    ck_assert_float_eq(lora__adapter_module(a, 1, LORA_PROJ_V)->scaling, 12.5f / 4.0f);
    ck_assert_float_eq(lora__adapter_module(a, 0, LORA_PROJ_K)->scaling, 2.0f);
    /* "scaling" in the report is the default r's */
    ck_assert_double_eq_tol(info_number(a, "scaling"), 2.0, 1e-9);
    /* A (r, in) with each module's own r, within its bound */
    lora_adapter_module *q0 = lora__adapter_module(a, 0, LORA_PROJ_Q);
    ck_assert(!all_zero(q0->A, 16 * 64));
    /* save and reload keep the patterns */
    char *dir = path_in(tmp, "patterns");
    ck_assert_int_eq(lora_adapter_save(a, dir), LORA_OK);
    lora_adapter *b;
    ck_assert_msg(lora_adapter_load(model, dir, &b) == LORA_OK, "%s", lora_last_error());
    for (size_t i = 0; i < a->n_mods; i++) {
        ck_assert_int_eq(a->mods[i].r, b->mods[i].r);
        ck_assert_float_eq(a->mods[i].scaling, b->mods[i].scaling);
    }
    ck_assert(memcmp(a->arena, b->arena, a->arena_floats * sizeof(float)) == 0);
    lora_adapter_free(b);
    lora_adapter_free(a);
    /* use_rslora: alpha / sqrt(r) per module */
    a = create_ok("{\"r\": 4, \"lora_alpha\": 8, \"use_rslora\": true,"
                  " \"rank_pattern\": {\"v_proj\": 16}}", 1);
    ck_assert_float_eq(lora__adapter_module(a, 0, LORA_PROJ_Q)->scaling, 4.0f);
    ck_assert_float_eq(lora__adapter_module(a, 0, LORA_PROJ_V)->scaling, 2.0f);
    ck_assert_double_eq_tol(info_number(a, "scaling"), 4.0, 1e-9);
    lora_adapter_free(a);
}
END_TEST

START_TEST(layers_to_transform)
{
    lora_adapter *a = create_ok("{\"target_modules\": [\"attn\"], \"layers_to_transform\": [1]}",
                                1);
    ck_assert_uint_eq(a->n_mods, 4);
    for (int p = 0; p < LORA_PROJ_COUNT; p++) {
        ck_assert_ptr_null(lora__adapter_module(a, 0, (lora_proj)p));
        if (p <= LORA_PROJ_O)
            ck_assert_ptr_nonnull(lora__adapter_module(a, 1, (lora_proj)p));
    }
    json_t *cfg = json_loads(a->config_json, 0, NULL);
    json_t *l = json_object_get(cfg, "layers_to_transform");
    ck_assert(json_is_array(l) && json_array_size(l) == 1 &&
              json_integer_value(json_array_get(l, 0)) == 1);
    json_decref(cfg);
    lora_adapter_free(a);
    /* an integer means that one layer; duplicates are harmless */
    a = create_ok("{\"layers_to_transform\": 0}", 1);
    ck_assert_uint_eq(a->n_mods, 2);
    ck_assert_ptr_nonnull(lora__adapter_module(a, 0, LORA_PROJ_Q));
    lora_adapter_free(a);
    a = create_ok("{\"layers_to_transform\": [1, 0, 1], \"layers_pattern\": \"layers\"}", 1);
    ck_assert_uint_eq(a->n_mods, 4);
    lora_adapter_free(a);
    a = create_ok("{\"layers_to_transform\": null}", 1);
    ck_assert_uint_eq(a->n_mods, 4);
    ck_assert(strstr(a->config_json, "\"layers_to_transform\": null"));
    lora_adapter_free(a);
}
END_TEST

/* What PEFT 0.18 writes: every bookkeeping key at its inert value. */
START_TEST(peft_018_config_accepted)
{
    static const char cfg[] =
        "{\"alora_invocation_tokens\": null, \"alpha_pattern\": {}, \"arrow_config\": null,"
        " \"auto_mapping\": null, \"base_model_name_or_path\": \"Qwen/Qwen2.5-0.5B\","
        " \"bias\": \"none\", \"corda_config\": null, \"ensure_weight_tying\": false,"
        " \"eva_config\": null, \"exclude_modules\": null, \"fan_in_fan_out\": false,"
        " \"inference_mode\": true, \"init_lora_weights\": true, \"layer_replication\": null,"
        " \"layers_pattern\": null, \"layers_to_transform\": null, \"loftq_config\": {},"
        " \"lora_alpha\": 32, \"lora_bias\": false, \"lora_dropout\": 0.05,"
        " \"megatron_config\": null, \"megatron_core\": \"megatron.core\","
        " \"modules_to_save\": null, \"peft_type\": \"LORA\", \"peft_version\": \"0.18.0\","
        " \"qalora_group_size\": 16, \"r\": 16, \"rank_pattern\": {}, \"revision\": null,"
        " \"target_modules\": [\"o_proj\", \"v_proj\", \"k_proj\", \"q_proj\"],"
        " \"target_parameters\": null, \"task_type\": \"CAUSAL_LM\","
        " \"trainable_token_indices\": null, \"use_dora\": false, \"use_qalora\": false,"
        " \"use_rslora\": false, \"runtime_config\": {\"ephemeral_gpu_offload\": false}}";
    lora_adapter *a = create_ok(cfg, 1);
    ck_assert_uint_eq(a->n_mods, 8);
    ck_assert_float_eq(a->mods[0].scaling, 2.0f);
    ck_assert_double_eq(a->lora_dropout, 0.05);
    lora_adapter_free(a);
}
END_TEST

/* What PEFT 0.21.2 writes (its save_pretrained, as tests/parity runs it): five keys more. */
START_TEST(peft_021_config_accepted)
{
    static const char cfg[] =
        "{\"alora_invocation_tokens\": null, \"alpha_pattern\": {}, \"arrow_config\": null,"
        " \"auto_mapping\": null, \"base_model_name_or_path\": \"/tmp/base\","
        " \"bias\": \"none\", \"corda_config\": null, \"ensure_weight_tying\": false,"
        " \"eva_config\": null, \"exclude_modules\": null, \"fan_in_fan_out\": false,"
        " \"inference_mode\": true, \"init_lora_weights\": true, \"kasa_config\": null,"
        " \"layer_replication\": null, \"layers_pattern\": null,"
        " \"layers_to_transform\": null, \"loftq_config\": {}, \"lora_alpha\": 8,"
        " \"lora_bias\": false, \"lora_dropout\": 0.0, \"lora_ga_config\": null,"
        " \"megatron_config\": null, \"megatron_core\": \"megatron.core\","
        " \"modules_to_save\": null, \"monteclora_config\": null, \"peft_type\": \"LORA\","
        " \"peft_version\": \"0.21.2\", \"qalora_group_size\": 16, \"r\": 4,"
        " \"rank_pattern\": {}, \"revision\": null, \"target_modules\": [\"v_proj\", \"q_proj\"],"
        " \"target_parameters\": null, \"task_type\": \"CAUSAL_LM\","
        " \"trainable_token_indices\": null, \"use_bdlora\": null, \"use_dora\": false,"
        " \"use_qalora\": false, \"use_rslora\": false, \"velora_config\": null}";
    lora_adapter *a = create_ok(cfg, 1);
    ck_assert_uint_eq(a->n_mods, 4);
    ck_assert_float_eq(a->mods[0].scaling, 2.0f);
    lora_adapter_free(a);
}
END_TEST

START_TEST(adapter_outlives_model)
{
    lora_adapter *a = create_ok("{\"target_modules\": \"all-linear\"}", 2);
    lora_model_free(model);
    model = NULL;
    ck_assert_ptr_nonnull(lora_adapter_info_json(a));
    ck_assert_int_eq(a->model->cfg.n_layers, 2);
    ck_assert_int_eq(lora_adapter_save(a, path_in(tmp, "orphan")), LORA_OK);
    lora_adapter_free(a);
    /* and the other order, with a loaded adapter */
    lora_model *m;
    ck_assert_int_eq(lora_model_load(QWEN2, NULL, &m), LORA_OK);
    ck_assert_int_eq(lora_adapter_load(m, QWEN2 "/adapter", &a), LORA_OK);
    lora_model_free(m);
    ck_assert_float_eq(a->mods[0].scaling, 2.0f);
    lora_adapter_free(a);
}
END_TEST

/* ---- refusals ------------------------------------------------------------------------------- */

static const struct {
    const char *json;
    lora_status status;
    const char *needle;
} refused[] = {
    {"{\"use_dora\": true}", LORA_ERR_UNSUPPORTED, "use_dora"},
    {"{\"modules_to_save\": [\"lm_head\"]}", LORA_ERR_UNSUPPORTED, "modules_to_save"},
    {"{\"fan_in_fan_out\": true}", LORA_ERR_UNSUPPORTED, "fan_in_fan_out"},
    {"{\"bias\": \"all\"}", LORA_ERR_UNSUPPORTED, "bias"},
    {"{\"bias\": \"lora_only\"}", LORA_ERR_UNSUPPORTED, "bias"},
    {"{\"init_lora_weights\": \"pissa\"}", LORA_ERR_UNSUPPORTED, "pissa"},
    {"{\"init_lora_weights\": \"olora\"}", LORA_ERR_UNSUPPORTED, "olora"},
    {"{\"init_lora_weights\": \"loftq\"}", LORA_ERR_UNSUPPORTED, "loftq"},
    {"{\"init_lora_weights\": 1}", LORA_ERR_CONFIG, "init_lora_weights"},
    {"{\"layer_replication\": [[0, 1]]}", LORA_ERR_UNSUPPORTED, "layer_replication"},
    {"{\"lora_bias\": true}", LORA_ERR_UNSUPPORTED, "lora_bias"},
    {"{\"megatron_config\": {}}", LORA_ERR_UNSUPPORTED, "megatron_config"},
    {"{\"eva_config\": {\"rho\": 2}}", LORA_ERR_UNSUPPORTED, "eva_config"},
    {"{\"corda_config\": {}}", LORA_ERR_UNSUPPORTED, "corda_config"},
    {"{\"loftq_config\": {\"loftq_bits\": 4}}", LORA_ERR_UNSUPPORTED, "loftq_config"},
    {"{\"exclude_modules\": [\"q_proj\"]}", LORA_ERR_UNSUPPORTED, "exclude_modules"},
    {"{\"trainable_token_indices\": [1, 2]}", LORA_ERR_UNSUPPORTED, "trainable_token_indices"},
    {"{\"layers_pattern\": \"h\"}", LORA_ERR_UNSUPPORTED, "layers_pattern"},
    {"{\"use_qalora\": true}", LORA_ERR_UNSUPPORTED, "use_qalora"},
    {"{\"kasa_config\": {}}", LORA_ERR_UNSUPPORTED, "KaSA"},
    {"{\"lora_ga_config\": {\"direction\": \"ArB2r\"}}", LORA_ERR_UNSUPPORTED, "lora_ga_config"},
    {"{\"monteclora_config\": {}}", LORA_ERR_UNSUPPORTED, "monteclora_config"},
    {"{\"use_bdlora\": {\"nblocks\": 2}}", LORA_ERR_UNSUPPORTED, "BD-LoRA"},
    {"{\"velora_config\": {}}", LORA_ERR_UNSUPPORTED, "velora_config"},
    {"{\"peft_type\": \"ADALORA\"}", LORA_ERR_UNSUPPORTED, "peft_type"},
    {"{\"use_dora\": \"no\"}", LORA_ERR_CONFIG, "use_dora"},
    {"{\"frobnicate\": 1}", LORA_ERR_CONFIG, "frobnicate"},
    {"{\"target_modules\": [\"q_proj\", \"lm_head\", \"qproj\"]}", LORA_ERR_CONFIG,
     "'lm_head', 'qproj'"},
    {"{\"target_modules\": \"q_proj\"}", LORA_ERR_CONFIG, "all-linear"},
    {"{\"target_modules\": []}", LORA_ERR_CONFIG, "target_modules"},
    {"{\"target_modules\": [7]}", LORA_ERR_CONFIG, "target_modules"},
    {"{\"r\": 0}", LORA_ERR_CONFIG, "'r'"},
    {"{\"r\": 65537}", LORA_ERR_CONFIG, "'r'"},
    {"{\"r\": 4.5}", LORA_ERR_CONFIG, "'r'"},
    {"{\"r\": \"8\"}", LORA_ERR_CONFIG, "'r'"},
    {"{\"lora_alpha\": 0}", LORA_ERR_CONFIG, "lora_alpha"},
    {"{\"lora_alpha\": -8}", LORA_ERR_CONFIG, "lora_alpha"},
    {"{\"lora_dropout\": 1.0}", LORA_ERR_CONFIG, "lora_dropout"},
    {"{\"lora_dropout\": -0.1}", LORA_ERR_CONFIG, "lora_dropout"},
    {"{\"use_rslora\": 1}", LORA_ERR_CONFIG, "use_rslora"},
    {"{\"layers_to_transform\": [2]}", LORA_ERR_CONFIG, "layer 2"},
    {"{\"layers_to_transform\": [-1]}", LORA_ERR_CONFIG, "layers_to_transform"},
    {"{\"layers_to_transform\": []}", LORA_ERR_CONFIG, "layers_to_transform"},
    {"{\"layers_to_transform\": [\"0\"]}", LORA_ERR_CONFIG, "layers_to_transform"},
    {"{\"rank_pattern\": {\"zz_proj\": 4}}", LORA_ERR_CONFIG, "zz_proj"},
    {"{\"rank_pattern\": {\"model.layers.5.self_attn.q_proj\": 4}}", LORA_ERR_CONFIG,
     "model.layers.5.self_attn.q_proj"},
    {"{\"rank_pattern\": {\"^model.*q_proj\": 4}}", LORA_ERR_CONFIG, "regular expressions"},
    {"{\"rank_pattern\": {\"proj\": 4}}", LORA_ERR_CONFIG, "'proj'"},
    {"{\"rank_pattern\": {\"q_proj\": 0}}", LORA_ERR_CONFIG, "rank_pattern.q_proj"},
    {"{\"rank_pattern\": [1]}", LORA_ERR_CONFIG, "rank_pattern"},
    {"{\"alpha_pattern\": {\"q_proj\": -1}}", LORA_ERR_CONFIG, "alpha_pattern.q_proj"},
    {"{\"task_type\": 3}", LORA_ERR_CONFIG, "task_type"},
    {"{\"r\": 4, \"r\": 8}", LORA_ERR_CONFIG, "duplicate"},
    {"{\"r\": 4", LORA_ERR_CONFIG, "line 1"},
    {"[1]", LORA_ERR_CONFIG, "JSON object"},
    {"", LORA_ERR_CONFIG, "lora_adapter_create"},
};

START_TEST(refusals_name_the_key)
{
    expect_create_error(refused[_i].json, refused[_i].status, refused[_i].needle);
}
END_TEST

/* The same parser behind lora_adapter_load: a refused key in adapter_config.json. */
START_TEST(refusals_in_adapter_config_json)
{
    char *cfg = qwen2_adapter_config_with("use_dora", "true");
    char *dir = adapter_copy("dora", cfg, NULL, NULL, NULL);
    free(cfg);
    expect_load_error(dir, LORA_ERR_UNSUPPORTED, "use_dora");
    ck_assert(strstr(lora_last_error(), "adapter_config.json"));
    ck_assert(strstr(lora_last_error(), "lora_adapter_load"));
    free(dir);
    cfg = qwen2_adapter_config_with("init_lora_weights", "\"olora\"");
    dir = adapter_copy("olora", cfg, NULL, NULL, NULL);
    free(cfg);
    expect_load_error(dir, LORA_ERR_UNSUPPORTED, "olora");
    free(dir);
}
END_TEST

START_TEST(bad_adapter_folders)
{
    /* not a folder, empty folder */
    expect_load_error(path_in(tmp, "nothing"), LORA_ERR_IO, "nothing");
    char *empty = strdup(path_in(tmp, "empty"));
    ck_assert_int_eq(mkdir(empty, 0777), 0);
    expect_load_error(empty, LORA_ERR_IO, "adapter_config.json");
    /* a config and no weights at all */
    copy_file(QWEN2 "/adapter/adapter_config.json", path_in(empty, "adapter_config.json"));
    expect_load_error(empty, LORA_ERR_IO, "adapter_model.safetensors");
    /* a pickled .bin only */
    write_text(path_in(empty, "adapter_model.bin"), "PK\003\004 not really a zip");
    expect_load_error(empty, LORA_ERR_UNSUPPORTED, "pickled");
    ck_assert(strstr(lora_last_error(), "safetensors"));
    free(empty);
}
END_TEST

START_TEST(malformed_adapter_config)
{
    char *dir = adapter_copy("malformed", "{\"r\": 4, \"lora_alpha\": }", NULL, NULL, NULL);
    expect_load_error(dir, LORA_ERR_FORMAT, "adapter_config.json");
    free(dir);
    dir = adapter_copy("dup", "{\"r\": 4, \"r\": 4}", NULL, NULL, NULL);
    expect_load_error(dir, LORA_ERR_FORMAT, "duplicate");
    free(dir);
    dir = adapter_copy("notobj", "[]", NULL, NULL, NULL);
    expect_load_error(dir, LORA_ERR_CONFIG, "object");
    free(dir);
}
END_TEST

#define QA0 "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
#define QB1 "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"

START_TEST(missing_tensor_named)
{
    char *dir = adapter_copy("missing", NULL, QB1, NULL, NULL);
    expect_load_error(dir, LORA_ERR_SHAPE, QB1);
    ck_assert(strstr(lora_last_error(), "missing"));
    ck_assert(strstr(lora_last_error(), "[64, 4]"));
    free(dir);
}
END_TEST

START_TEST(extra_tensor_named)
{
    static const char *const extras[] = {
        "base_model.model.lm_head.lora_A.weight",
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight",
        "base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight",
        "base_model.model.model.layers.00.self_attn.q_proj.lora_A.weight",
    };
    char name[16];
    snprintf(name, sizeof name, "extra%d", _i);
    char *dir = adapter_copy(name, NULL, NULL, extras[_i], NULL);
    expect_load_error(dir, LORA_ERR_SHAPE, extras[_i]);
    ck_assert(strstr(lora_last_error(), "unexpected"));
    if (_i == 1)
        ck_assert(strstr(lora_last_error(), "adapter name"));
    free(dir);
    /* a tensor of a module the config does not target is extra too */
    char *cfg = qwen2_adapter_config_with("target_modules", "[\"attn\"]");
    dir = adapter_copy("untargeted", cfg, NULL, NULL, NULL);
    free(cfg);
    expect_load_error(dir, LORA_ERR_SHAPE, "mlp");
    free(dir);
}
END_TEST

START_TEST(wrong_shape_names_both)
{
    /* the config says r 8, the tensors have r 4 */
    char *cfg = qwen2_adapter_config_with("r", "8");
    char *dir = adapter_copy("rank", cfg, NULL, NULL, NULL);
    free(cfg);
    expect_load_error(dir, LORA_ERR_SHAPE, QA0);
    ck_assert(strstr(lora_last_error(), "[4, 64]"));
    ck_assert(strstr(lora_last_error(), "[8, 64]"));
    free(dir);
    /* rank_pattern disagreeing with one module */
    cfg = qwen2_adapter_config_with("rank_pattern", "{\"layers.1.mlp.down_proj\": 2}");
    dir = adapter_copy("pattern", cfg, NULL, NULL, NULL);
    free(cfg);
    expect_load_error(dir, LORA_ERR_SHAPE, "layers.1.mlp.down_proj.lora_A");
    ck_assert(strstr(lora_last_error(), "[4, 160]"));
    ck_assert(strstr(lora_last_error(), "[2, 160]"));
    free(dir);
    /* an adapter of another model: tiny-qwen3's q_proj is (96, 64) */
    lora_model *m;
    ck_assert_int_eq(lora_model_load("tests/fixtures/tiny-qwen3", NULL, &m), LORA_OK);
    lora_adapter *a = (lora_adapter *)1;
    ck_assert_int_eq(lora_adapter_load(m, QWEN2 "/adapter", &a), LORA_ERR_SHAPE);
    ck_assert_ptr_null(a);
    ck_assert_msg(strstr(lora_last_error(), "[64, 4]") && strstr(lora_last_error(), "[96, 4]"),
                  "%s", lora_last_error());
    lora_model_free(m);
}
END_TEST

START_TEST(wrong_dtype_refused)
{
    char *dir = adapter_copy("dtype", NULL, NULL, NULL, QB1);
    expect_load_error(dir, LORA_ERR_UNSUPPORTED, QB1);
    ck_assert(strstr(lora_last_error(), "I32"));
    free(dir);
}
END_TEST

/* Seen while fuzzing (tests/fuzz/regressions/adapter/, over a second per input under the fuzz
 * build): a few bytes of adapter_config.json (r 65536 over all seven projections: a 587 MB
 * arena on this model) made lora_adapter_load allocate and zero the whole arena before finding
 * that the file's tensors disagree. With the address space capped 256 MB above what the
 * process maps, the load must still name the tensor. ASan reserves its shadow memory up front
 * and cannot run under such a cap, so its build checks the status only. */
START_TEST(tensors_checked_before_the_arena)
{
    char *cfg = qwen2_adapter_config_with("r", "65536");
    char *dir = adapter_copy("huge", cfg, NULL, NULL, NULL);
    free(cfg);
#ifndef __SANITIZE_ADDRESS__
    struct rlimit old, cap;
    unsigned long vm_pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(statm);
    ck_assert_int_eq(fscanf(statm, "%lu", &vm_pages), 1);
    fclose(statm);
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    cap = (struct rlimit){(rlim_t)vm_pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20),
                          old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &cap), 0);
#endif
    lora_adapter *a = (lora_adapter *)1;
    lora_status st = lora_adapter_load(model, dir, &a);
#ifndef __SANITIZE_ADDRESS__
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
#endif
    ck_assert_msg(st == LORA_ERR_SHAPE && strstr(lora_last_error(), QA0) &&
                  strstr(lora_last_error(), "[65536, 64]"), "status %s: %s",
                  lora_status_string(st), lora_last_error());
    ck_assert_ptr_null(a);
    free(dir);
}
END_TEST

START_TEST(truncated_safetensors)
{
    char *dir = adapter_copy("trunc", NULL, NULL, NULL, NULL);
    size_t n;
    uint8_t *b = tu_st_read_file(path_in(dir, "adapter_model.safetensors"), &n);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(tu_st_write_file(path_in(dir, "adapter_model.safetensors"), b, n - 7), 0);
    expect_load_error(dir, LORA_ERR_FORMAT, "adapter_model.safetensors");
    ck_assert_int_eq(tu_st_write_file(path_in(dir, "adapter_model.safetensors"), b, 5), 0);
    expect_load_error(dir, LORA_ERR_FORMAT, "adapter_model.safetensors");
    free(b);
    free(dir);
}
END_TEST

START_TEST(save_errors)
{
    lora_adapter *a = create_ok(NULL, 1);
    /* the parent folder does not exist */
    ck_assert_int_eq(lora_adapter_save(a, path_in(tmp, "no/such/dir")), LORA_ERR_IO);
    ck_assert(strstr(lora_last_error(), "no/such"));
    /* a file where the folder should be */
    write_text(path_in(tmp, "file"), "x");
    ck_assert_int_eq(lora_adapter_save(a, path_in(tmp, "file")), LORA_ERR_IO);
    ck_assert(strstr(lora_last_error(), "lora_adapter_save"));
    lora_adapter_free(a);
}
END_TEST

START_TEST(null_arguments)
{
    lora_adapter *a = (lora_adapter *)1;
    ck_assert_int_eq(lora_adapter_create(NULL, NULL, 0, &a), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(a);
    ck_assert(strstr(lora_last_error(), "model"));
    ck_assert_int_eq(lora_adapter_create(model, NULL, 0, NULL), LORA_ERR_INVALID_ARGUMENT);
    a = (lora_adapter *)1;
    ck_assert_int_eq(lora_adapter_load(model, NULL, &a), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(a);
    ck_assert_int_eq(lora_adapter_load(NULL, QWEN2 "/adapter", &a), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_adapter_load(model, QWEN2 "/adapter", NULL), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_adapter_save(NULL, tmp), LORA_ERR_INVALID_ARGUMENT);
    a = create_ok(NULL, 0);
    ck_assert_int_eq(lora_adapter_save(a, NULL), LORA_ERR_INVALID_ARGUMENT);
    lora_adapter_free(a);
    lora_adapter_free(NULL);
    ck_assert_ptr_null(lora_adapter_info_json(NULL));
    /* a success clears the message */
    a = create_ok(NULL, 0);
    ck_assert_str_eq(lora_last_error(), "");
    lora_adapter_free(a);
}
END_TEST

/* ---- limits ---------------------------------------------------------------------------------- */

START_TEST(limits_accepted)
{
    lora_config c;
    ck_assert_int_eq(lora__config_load(QWEN25_CONFIG, &c), LORA_OK);
    uint64_t modules, trainable;
    /* the largest rank: counted without allocating */
    ck_assert_msg(lora__adapter_count(&c, "{\"r\": 65536, \"target_modules\": [\"q_proj\"],"
                                      " \"layers_to_transform\": [23]}", &modules, &trainable)
                  == LORA_OK, "%s", lora_last_error());
    ck_assert_uint_eq(modules, 1);
    ck_assert_uint_eq(trainable, 65536u * 1792u);
    ck_assert_int_eq(lora__adapter_count(&c, "{\"layers_to_transform\": [24]}", &modules,
                                         &trainable), LORA_ERR_CONFIG);
    ck_assert(strstr(lora_last_error(), "0..23"));
    /* r 1, dropout just under 1, a fractional alpha that survives the round trip */
    lora_adapter *a = create_ok("{\"r\": 1, \"lora_dropout\": 0.999, \"lora_alpha\": 0.5}", 1);
    ck_assert_float_eq(a->mods[0].scaling, 0.5f);
    ck_assert_int_eq(lora_adapter_save(a, path_in(tmp, "small")), LORA_OK);
    lora_adapter *b;
    ck_assert_int_eq(lora_adapter_load(model, path_in(tmp, "small"), &b), LORA_OK);
    ck_assert_float_eq(b->mods[0].scaling, 0.5f);
    ck_assert_double_eq(b->lora_dropout, 0.999);
    ck_assert_str_eq(a->config_json, b->config_json);
    lora_adapter_free(a);
    lora_adapter_free(b);
    /* a rank larger than the projection's width is valid */
    a = create_ok("{\"r\": 100, \"target_modules\": [\"k_proj\"]}", 1);
    ck_assert_int_eq(a->mods[0].r, 100);
    ck_assert_int_eq(a->mods[0].out, 32);
    lora_adapter_free(a);
}
END_TEST

static Suite *adapter_suite(void)
{
    Suite *s = suite_create("adapter");
    TCase *core = tcase_create("core");
    tcase_set_tags(core, "core");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, count_qwen25_05b_all_linear);
    tcase_add_loop_test(core, fixture_adapters_load, 0, 4);
    tcase_add_loop_test(core, round_trip_keeps_bytes, 0, 4);
    tcase_add_test(core, init_true_kaiming_a_zero_b);
    tcase_add_test(core, init_gaussian_std_one_over_r);
    tcase_add_test(core, init_false_b_uniform);
    tcase_add_loop_test(core, init_is_deterministic_per_seed, 0, 3);
    tcase_add_test(core, target_module_resolution);
    tcase_add_test(core, shapes_follow_the_model);
    tcase_add_test(core, layer_a_matrices_back_to_back);
    tcase_add_test(core, rank_and_alpha_patterns);
    tcase_add_test(core, layers_to_transform);
    tcase_add_test(core, peft_018_config_accepted);
    tcase_add_test(core, peft_021_config_accepted);
    tcase_add_test(core, adapter_outlives_model);
    suite_add_tcase(s, core);

    TCase *misuse = tcase_create("misuse");
    tcase_set_tags(misuse, "misuse");
    tcase_add_checked_fixture(misuse, setup, teardown);
    tcase_add_loop_test(misuse, refusals_name_the_key, 0, sizeof refused / sizeof *refused);
    tcase_add_test(misuse, refusals_in_adapter_config_json);
    tcase_add_test(misuse, bad_adapter_folders);
    tcase_add_test(misuse, malformed_adapter_config);
    tcase_add_test(misuse, missing_tensor_named);
    tcase_add_loop_test(misuse, extra_tensor_named, 0, 4);
    tcase_add_test(misuse, wrong_shape_names_both);
    tcase_add_test(misuse, wrong_dtype_refused);
    tcase_add_test(misuse, truncated_safetensors);
    tcase_add_test(misuse, tensors_checked_before_the_arena);
    tcase_add_test(misuse, save_errors);
    tcase_add_test(misuse, null_arguments);
    suite_add_tcase(s, misuse);

    TCase *limits = tcase_create("limits");
    tcase_set_tags(limits, "limits");
    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_add_test(limits, limits_accepted);
    suite_add_tcase(s, limits);
    return s;
}

int main(void) { return tu_run_suite(adapter_suite()); }
