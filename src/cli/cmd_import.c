/* lora import -- converts a GGUF file (llama.cpp's format) into a Hugging Face folder. */
#include <stdio.h>
#include <string.h>

#include "args.h"

static const char help[] =
    "usage: lora import --gguf FILE --out DIR [--dtype f32|bf16]\n"
    "\n"
    "Converts a Llama, Qwen2 or Qwen3 GGUF file into a Hugging Face folder: config.json,\n"
    "model.safetensors (dequantized), tokenizer.json, tokenizer_config.json (with the chat\n"
    "template) and generation_config.json, each written atomically. Supported tensor types:\n"
    "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; others are\n"
    "refused by name. lora generate/chat/train also take a .gguf path directly.\n"
    "\n"
    "  --gguf FILE   the GGUF file (required)\n"
    "  --out DIR     destination folder, created if missing (required)\n"
    "  --dtype T     dtype of model.safetensors: f32 (default) or bf16\n";

int cmd_import(int argc, char **argv)
{
    cli_opt opts[] = {{"gguf", 0, NULL}, {"out", 0, NULL}, {"dtype", 0, NULL}, {NULL, 0, NULL}};
    int rc = cli_parse("import", argc, argv, opts, help);
    if (rc >= 0) return rc;
    const char *gguf = cli_get(opts, "gguf"), *out = cli_get(opts, "out");
    const char *dtype = cli_get(opts, "dtype");
    if (!gguf) return cli_fail("import", CLI_USAGE, "--gguf is required (see lora import --help)");
    if (!out) return cli_fail("import", CLI_USAGE, "--out is required (see lora import --help)");
    if (!dtype) dtype = "f32";
    if (strcmp(dtype, "f32") != 0 && strcmp(dtype, "bf16") != 0)
        return cli_fail("import", CLI_USAGE, "--dtype must be f32 or bf16, not '%s'", dtype);
    char options[32];
    snprintf(options, sizeof options, "{\"dtype\": \"%s\"}", dtype);
    lora_status st = lora_gguf_import(gguf, out, options);
    if (st != LORA_OK) return cli_lib_fail("import", st);
    printf("wrote %s (config.json, model.safetensors %s, tokenizer.json, tokenizer_config.json, "
           "generation_config.json)\n", out, dtype);
    return CLI_OK;
}
