/* lora info -- describes a checkpoint folder (or a config.json) without loading its weights. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

static const char help[] =
    "usage: lora info --model DIR [--json]\n"
    "\n"
    "Describes a Hugging Face checkpoint without loading its weights: architecture, dimensions,\n"
    "dtype, parameter count and memory. DIR is a checkpoint folder (config.json, optionally\n"
    "model.safetensors or a sharded index) or the path of a config.json.\n"
    "\n"
    "  --model DIR   checkpoint folder or config.json (required)\n"
    "  --json        print the library's JSON description instead\n";

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

/* 494032768 -> "494,032,768" */
static const char *thousands(uint64_t n, char buf[32])
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%" PRIu64, n), j = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[j++] = ',';
        buf[j++] = digits[i];
    }
    buf[j] = '\0';
    return buf;
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

static int print_description(const char *json)
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
    printf("parameters: %s\n", thousands(n_params, b1));
    if (json_is_false(json_object_get(d, "has_weights"))) {
        /* No weight files: say what a checkpoint in torch_dtype would take. */
        n_stored = n_params * dtype_size(dtype);
        printf("memory: no weight files present; ");
        if (n_stored)
            printf("%s (%s bytes) as %s, ", human(n_stored, b1), thousands(n_stored, b2), dtype);
    } else {
        printf("memory: %s stored (%s bytes), ", human(n_stored, b1), thousands(n_stored, b2));
    }
    printf("%s as float32 in memory (%s bytes)\n", human(n_mem, b3), thousands(n_mem, b4));
    json_decref(d);
    return CLI_OK;
}

int cmd_info(int argc, char **argv)
{
    cli_opt opts[] = {{"model", 0, NULL}, {"json", 1, NULL}, {NULL, 0, NULL}};
    int rc = cli_parse("info", argc, argv, opts, help);
    if (rc >= 0) return rc;
    const char *model = cli_get(opts, "model");
    if (!model) return cli_fail("info", CLI_USAGE, "--model is required (see lora info --help)");

    char *json = NULL;
    lora_status st = lora_model_describe(model, &json);
    if (st != LORA_OK) return cli_lib_fail("info", st);
    if (cli_get(opts, "json")) {
        puts(json);
        rc = CLI_OK;
    } else {
        rc = print_description(json);
    }
    lora_string_free(json);
    return rc;
}
