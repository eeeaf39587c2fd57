/* lora info -- describes a checkpoint folder (a config.json, a GGUF file) without loading its
 * weights. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

static const char help[] =
    "usage: lora info --model DIR [--json] [--lora-rank R] [--target-modules LIST]\n"
    "                 [--lora-alpha A]\n"
    "\n"
    "Describes a Hugging Face checkpoint without loading its weights: architecture, dimensions,\n"
    "dtype, parameter count and memory. DIR is a checkpoint folder (config.json, optionally\n"
    "model.safetensors or a sharded index), the path of a config.json, or a GGUF file.\n"
    "With any --lora-* option it also reports what a LoRA adapter would add, as PEFT's\n"
    "print_trainable_parameters() does.\n"
    "\n"
    "  --model DIR            checkpoint folder, config.json or GGUF file (required)\n"
    "  --json                 print the library's JSON description instead (with a \"lora\"\n"
    "                         object when --lora-* options are given)\n"
    "  --lora-rank R          LoRA rank, 1..65536 (default 8)\n"
    "  --target-modules LIST  comma-separated q_proj, k_proj, v_proj, o_proj, gate_proj,\n"
    "                         up_proj, down_proj, the groups attn and ffn, or all-linear\n"
    "                         (default q_proj,v_proj, PEFT's default for these models)\n"
    "  --lora-alpha A         lora_alpha, > 0 (default 8); scaling = A / R\n";

/* The LoRA report: what an adapter of rank r on the target projections would add. */
typedef struct lora_plan {
    uint64_t r;
    double alpha;
    unsigned targets; /* bit p: projection p, in the order of proj_names */
} lora_plan;

static const char *const proj_names[7] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
};
/* indices of proj_names in sorted name order, as PEFT saves target_modules */
static const int sorted_projs[7] = {6, 4, 1, 3, 0, 5, 2};

static int parse_targets(const char *list, unsigned *out)
{
    char *copy = strdup(list);
    if (!copy) return cli_fail("info", CLI_RUNTIME, "out of memory");
    unsigned bits = 0;
    int rc = CLI_OK;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok && rc == CLI_OK;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ') *--end = '\0';
        unsigned b = 0;
        if (strcmp(tok, "attn") == 0) b = 0x0f;
        else if (strcmp(tok, "ffn") == 0) b = 0x70;
        else if (strcmp(tok, "all-linear") == 0) b = 0x7f;
        for (int p = 0; p < 7 && !b; p++)
            if (strcmp(tok, proj_names[p]) == 0) b = 1u << p;
        if (!b)
            rc = cli_fail("info", CLI_USAGE,
                          "--target-modules: unknown module '%s' (known: q_proj, k_proj, v_proj, "
                          "o_proj, gate_proj, up_proj, down_proj, attn, ffn, all-linear)", tok);
        bits |= b;
    }
    free(copy);
    if (rc == CLI_OK && !bits)
        rc = cli_fail("info", CLI_USAGE, "--target-modules names no module");
    *out = bits;
    return rc;
}

static int64_t get_int(const json_t *d, const char *key)
{
    const json_t *v = json_object_get(d, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* Modules and r * (in + out) summed over them, from the described dimensions. */
static int lora_counts(const json_t *d, const lora_plan *plan, uint64_t *modules,
                       uint64_t *trainable)
{
    int64_t hidden = get_int(d, "hidden_size"), inter = get_int(d, "intermediate_size");
    int64_t layers = get_int(d, "num_hidden_layers"), heads = get_int(d, "num_attention_heads");
    int64_t kv = get_int(d, "num_key_value_heads"), head_dim = get_int(d, "head_dim");
    if (hidden < 1 || inter < 1 || layers < 1 || heads < 1 || kv < 1 || head_dim < 1)
        return cli_fail("info", CLI_RUNTIME, "the description lacks the model's dimensions");
    /* (out, in) of q, k, v, o, gate, up, down */
    const int64_t shapes[7][2] = {
        {heads * head_dim, hidden}, {kv * head_dim, hidden}, {kv * head_dim, hidden},
        {hidden, heads * head_dim}, {inter, hidden}, {inter, hidden}, {hidden, inter},
    };
    uint64_t n = 0, t = 0;
    for (int p = 0; p < 7; p++)
        if (plan->targets & (1u << p)) {
            n += (uint64_t)layers;
            t += (uint64_t)layers * plan->r * (uint64_t)(shapes[p][0] + shapes[p][1]);
        }
    *modules = n;
    *trainable = t;
    return CLI_OK;
}

/* The "lora" object of --json, with lora_adapter_info_json's keys. */
static json_t *lora_json(const json_t *d, const lora_plan *plan)
{
    uint64_t modules, trainable;
    if (lora_counts(d, plan, &modules, &trainable) != CLI_OK) return NULL;
    uint64_t total = (uint64_t)get_int(d, "num_parameters") + trainable;
    json_t *o = json_object(), *names = json_array();
    for (int i = 0; i < 7; i++)
        if (plan->targets & (1u << sorted_projs[i]))
            json_array_append_new(names, json_string(proj_names[sorted_projs[i]]));
    json_object_set_new(o, "modules", json_integer((json_int_t)modules));
    json_object_set_new(o, "trainable_parameters", json_integer((json_int_t)trainable));
    json_object_set_new(o, "total_parameters", json_integer((json_int_t)total));
    json_object_set_new(o, "trainable_ratio", json_real(100.0 * (double)trainable / (double)total));
    json_object_set_new(o, "r", json_integer((json_int_t)plan->r));
    json_object_set_new(o, "lora_alpha", plan->alpha == floor(plan->alpha) && plan->alpha < 1e15
                                             ? json_integer((json_int_t)plan->alpha)
                                             : json_real(plan->alpha));
    json_object_set_new(o, "scaling", json_real(plan->alpha / (double)plan->r));
    json_object_set_new(o, "target_modules", names);
    return o;
}

/* Config keys printed as "key: value", in this order, when the description has them. */
static const char *const plain_keys[] = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
    "rope_theta", "rms_norm_eps", "tie_word_embeddings", "attention_bias", "qk_norm",
};

static void print_value(const json_t *v)
{
    if (json_is_integer(v)) {
        printf("%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        printf(d == floor(d) && fabs(d) < 1e15 ? "%.1f" : "%g", d);
    } else if (json_is_boolean(v)) {
        fputs(json_is_true(v) ? "true" : "false", stdout);
    } else if (json_is_string(v)) {
        fputs(json_string_value(v), stdout);
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fputs(s ? s : "?", stdout);
        free(s);
    }
}

/* 1976131072 -> "1.8 GiB" */
static const char *human(uint64_t n, char buf[32])
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (n < 1024) {
        snprintf(buf, 32, "%" PRIu64 " B", n);
        return buf;
    }
    double v = (double)n / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) v /= 1024, u++;
    snprintf(buf, 32, "%.1f %s", v, units[u]);
    return buf;
}

/* Bytes per element of a safetensors or torch dtype name; 0 if unknown. */
static uint64_t dtype_size(const char *name)
{
    static const struct { const char *name; uint64_t size; } sizes[] = {
        {"F32", 4}, {"float32", 4}, {"BF16", 2}, {"bfloat16", 2}, {"F16", 2}, {"float16", 2},
    };
    for (size_t i = 0; name && i < sizeof sizes / sizeof sizes[0]; i++)
        if (strcmp(name, sizes[i].name) == 0) return sizes[i].size;
    return 0;
}

static int print_description(const char *json, const lora_plan *plan)
{
    json_t *d = json_loads(json, 0, NULL);
    json_t *params = json_object_get(d, "num_parameters");
    json_t *stored = json_object_get(d, "stored_bytes");
    json_t *in_mem = json_object_get(d, "weight_bytes");
    if (!json_is_integer(params) || !json_is_integer(stored) || !json_is_integer(in_mem)) {
        json_decref(d);
        return cli_fail("info", CLI_RUNTIME, "unexpected description from the library: %s",
                        json);
    }
    const char *dtype = json_string_value(json_object_get(d, "stored_dtype"));
    printf("architecture: ");
    print_value(json_object_get(d, "model_type"));
    putchar('\n');
    for (size_t i = 0; i < sizeof plain_keys / sizeof plain_keys[0]; i++) {
        json_t *v = json_object_get(d, plain_keys[i]);
        if (!v) continue;
        printf("%s: ", plain_keys[i]);
        print_value(v);
        putchar('\n');
    }
    printf("dtype: %s\n", dtype && dtype[0] ? dtype : "unknown (no weights, no torch_dtype)");
    uint64_t n_params = (uint64_t)json_integer_value(params);
    uint64_t n_stored = (uint64_t)json_integer_value(stored);
    uint64_t n_mem = (uint64_t)json_integer_value(in_mem);
    char b1[32], b2[32], b3[32], b4[32];
    printf("parameters: %s\n", cli_thousands(n_params, b1));
    if (json_is_false(json_object_get(d, "has_weights"))) {
        /* No weight files: say what a checkpoint in torch_dtype would take. */
        n_stored = n_params * dtype_size(dtype);
        printf("memory: no weight files present; ");
        if (n_stored)
            printf("%s (%s bytes) as %s, ", human(n_stored, b1), cli_thousands(n_stored, b2), dtype);
    } else {
        printf("memory: %s stored (%s bytes), ", human(n_stored, b1), cli_thousands(n_stored, b2));
    }
    printf("%s as float32 in memory (%s bytes)\n", human(n_mem, b3), cli_thousands(n_mem, b4));
    int rc = CLI_OK;
    uint64_t modules, trainable;
    if (plan && (rc = lora_counts(d, plan, &modules, &trainable)) == CLI_OK) {
        uint64_t total = n_params + trainable;
        printf("lora: r %" PRIu64 ", lora_alpha %g, scaling %g, target_modules", plan->r,
               plan->alpha, plan->alpha / (double)plan->r);
        for (int i = 0, first = 1; i < 7; i++)
            if (plan->targets & (1u << sorted_projs[i])) {
                printf("%s%s", first ? " " : ",", proj_names[sorted_projs[i]]);
                first = 0;
            }
        printf("\nadapted modules: %" PRIu64 "\n", modules);
        printf("trainable params: %s || all params: %s || trainable%%: %.4f\n",
               cli_thousands(trainable, b1), cli_thousands(total, b2),
               100.0 * (double)trainable / (double)total);
    }
    json_decref(d);
    return rc;
}

/* The --lora-* options; *plan_out is NULL when none is given. */
static int parse_plan(const cli_opt *opts, lora_plan *plan, const lora_plan **plan_out)
{
    const char *rank = cli_get(opts, "lora-rank"), *targets = cli_get(opts, "target-modules");
    const char *alpha = cli_get(opts, "lora-alpha");
    *plan_out = NULL;
    if (!rank && !targets && !alpha) return CLI_OK;
    plan->r = 8;
    plan->alpha = 8;
    plan->targets = 0x05; /* q_proj, v_proj */
    int rc;
    if (rank && (rc = cli_uint("info", "lora-rank", rank, 1, 65536, &plan->r))) return rc;
    if (alpha && (rc = cli_double("info", "lora-alpha", alpha, &plan->alpha))) return rc;
    if (!(plan->alpha > 0))
        return cli_fail("info", CLI_USAGE, "--lora-alpha must be > 0, not '%s'", alpha);
    if (targets && (rc = parse_targets(targets, &plan->targets))) return rc;
    *plan_out = plan;
    return CLI_OK;
}

static int print_json(const char *json, const lora_plan *plan)
{
    if (!plan) {
        puts(json);
        return CLI_OK;
    }
    json_t *d = json_loads(json, 0, NULL);
    json_t *l = d ? lora_json(d, plan) : NULL;
    if (!l) {
        json_decref(d);
        return d ? CLI_RUNTIME
                 : cli_fail("info", CLI_RUNTIME, "unexpected description from the library");
    }
    json_object_set_new(d, "lora", l);
    char *text = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(d);
    if (!text) return cli_fail("info", CLI_RUNTIME, "out of memory");
    puts(text);
    free(text);
    return CLI_OK;
}

int cmd_info(int argc, char **argv)
{
    cli_opt opts[] = {{"model", 0, NULL},          {"json", 1, NULL},
                      {"lora-rank", 0, NULL},      {"target-modules", 0, NULL},
                      {"lora-alpha", 0, NULL},     {NULL, 0, NULL}};
    int rc = cli_parse("info", argc, argv, opts, help);
    if (rc >= 0) return rc;
    const char *model = cli_get(opts, "model");
    if (!model) return cli_fail("info", CLI_USAGE, "--model is required (see lora info --help)");
    lora_plan plan_buf;
    const lora_plan *plan;
    if ((rc = parse_plan(opts, &plan_buf, &plan))) return rc;

    char *json = NULL;
    lora_status st = lora_model_describe(model, &json);
    if (st != LORA_OK) return cli_lib_fail("info", st);
    if (cli_get(opts, "json"))
        rc = print_json(json, plan);
    else
        rc = print_description(json, plan);
    lora_string_free(json);
    return rc;
}
