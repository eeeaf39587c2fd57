/* lora init -- writes a randomly initialised checkpoint folder from a config.json. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

static const char help[] =
    "usage: lora init --config FILE --out DIR [--seed N] [--dtype f32|bf16]\n"
    "\n"
    "Writes a randomly initialised checkpoint in Hugging Face layout (config.json and\n"
    "model.safetensors) with Hugging Face's initialisation: normal(0, initializer_range)\n"
    "weights, zero biases, unit norms. The same config and seed give the same bytes.\n"
    "\n"
    "  --config FILE   a Hugging Face config.json (required)\n"
    "  --out DIR       destination folder, created if missing (required)\n"
    "  --seed N        random seed (default 0)\n"
    "  --dtype T       f32 (default) or bf16\n";

int cmd_init(int argc, char **argv)
{
    cli_opt opts[] = {{"config", 0, NULL}, {"out", 0, NULL}, {"seed", 0, NULL},
                      {"dtype", 0, NULL}, {NULL, 0, NULL}};
    int rc = cli_parse("init", argc, argv, opts, help);
    if (rc >= 0) return rc;
    const char *config = cli_get(opts, "config"), *out = cli_get(opts, "out");
    const char *seed_s = cli_get(opts, "seed"), *dtype = cli_get(opts, "dtype");
    if (!config) return cli_fail("init", CLI_USAGE, "--config is required (see lora init --help)");
    if (!out) return cli_fail("init", CLI_USAGE, "--out is required (see lora init --help)");
    uint64_t seed = 0;
    if (seed_s && (rc = cli_uint("init", "seed", seed_s, 0, UINT64_MAX, &seed)) != 0) return rc;
    if (!dtype) dtype = "f32";
    if (strcmp(dtype, "f32") != 0 && strcmp(dtype, "bf16") != 0)
        return cli_fail("init", CLI_USAGE, "--dtype must be f32 or bf16, not '%s'", dtype);

    char *text = cli_read_file(config);
    if (!text) return cli_fail("init", CLI_RUNTIME, "%s: %s", config, strerror(errno));
    lora_status st = lora_model_init_checkpoint(text, out, seed, dtype);
    free(text);
    if (st != LORA_OK) return cli_lib_fail("init", st);
    printf("wrote %s/config.json and %s/model.safetensors (%s, seed %llu)\n", out, out, dtype,
           (unsigned long long)seed);
    return CLI_OK;
}
