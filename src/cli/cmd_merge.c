/* lora merge -- folds a PEFT adapter into a model and writes the result as a Hugging Face
 * folder, tokenizer files included. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "files.h"

static const char help[] =
    "usage: lora merge --model DIR --adapter DIR --out DIR [--scale S] [--dtype f32|bf16]\n"
    "                  [--threads N]\n"
    "\n"
    "Loads the model and the PEFT adapter, folds the adapter into the weights\n"
    "(W += scale * lora_alpha / r * B A), checks the merged model against the unmerged one on\n"
    "a probe sequence, and writes config.json and model.safetensors to --out, with the model\n"
    "folder's tokenizer and generation files copied beside them. The result loads in liblora\n"
    "and in transformers like any checkpoint.\n"
    "\n"
    "  --model DIR     base checkpoint folder (required)\n"
    "  --adapter DIR   PEFT adapter folder (required)\n"
    "  --out DIR       destination folder, created if missing (required)\n"
    "  --scale S       adapter scale (default 1)\n"
    "  --dtype T       f32 (default) or bf16\n"
    "  --threads N     worker threads (default: all online CPUs)\n";

/* Files a Hugging Face folder carries besides the weights; copied when present. */
static const char *const side_files[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
    "vocab.json", "merges.txt", NULL};

int cmd_merge(int argc, char **argv)
{
    cli_opt opts[] = {{"model", 0, NULL}, {"adapter", 0, NULL}, {"out", 0, NULL},
                      {"scale", 0, NULL}, {"dtype", 0, NULL}, {"threads", 0, NULL},
                      {NULL, 0, NULL}};
    int rc = cli_parse("merge", argc, argv, opts, help);
    if (rc >= 0) return rc;
    const char *model_dir = cli_get(opts, "model"), *adapter_dir = cli_get(opts, "adapter");
    const char *out = cli_get(opts, "out"), *dtype = cli_get(opts, "dtype");
    if (!model_dir || !adapter_dir || !out)
        return cli_fail("merge", CLI_USAGE, "--%s is required (see lora merge --help)",
                        !model_dir ? "model" : !adapter_dir ? "adapter" : "out");
    double scale = 1.0;
    if (cli_get(opts, "scale") && (rc = cli_double("merge", "scale", cli_get(opts, "scale"),
                                                   &scale)) != 0)
        return rc;
    if (!dtype) dtype = "f32";
    if (strcmp(dtype, "f32") != 0 && strcmp(dtype, "bf16") != 0)
        return cli_fail("merge", CLI_USAGE, "--dtype must be f32 or bf16, not '%s'", dtype);
    char model_cfg[64] = "";
    if (cli_get(opts, "threads")) {
        uint64_t n;
        if ((rc = cli_uint("merge", "threads", cli_get(opts, "threads"), 1, 64, &n)) != 0)
            return rc;
        snprintf(model_cfg, sizeof model_cfg, "{\"threads\": %llu}", (unsigned long long)n);
    }

    lora_model *m = NULL;
    lora_adapter *a = NULL;
    lora_status st = lora_model_load(model_dir, model_cfg[0] ? model_cfg : NULL, &m);
    if (st == LORA_OK) st = lora_adapter_load(m, adapter_dir, &a);
    /* a probe of a few ids spread over the vocabulary */
    int32_t probe[16];
    size_t vocab = m ? lora_model_vocab_size(m) : 1;
    for (size_t i = 0; i < 16; i++) probe[i] = (int32_t)((i * 7919 + 11) % vocab);
    float change = 0.0f;
    if (st == LORA_OK) st = lora_model_merge(m, a, (float)scale, probe, 16, &change);
    if (st == LORA_OK) st = lora_model_save(m, out, dtype);
    if (st != LORA_OK) {
        rc = cli_lib_fail("merge", st);
    } else {
        rc = CLI_OK;
        for (int i = 0; side_files[i] && rc == CLI_OK; i++)
            if (cli_copy_if_present(model_dir, out, side_files[i]) != 0)
                rc = cli_fail("merge", CLI_RUNTIME, "copying %s to %s: %s", side_files[i], out,
                              strerror(errno));
        if (rc == CLI_OK)
            printf("merged %s into %s at scale %g; wrote %s (%s); max logit change on a "
                   "16-token probe: %.3g\n", adapter_dir, model_dir, scale, out, dtype,
                   (double)change);
    }
    lora_adapter_free(a);
    lora_model_free(m);
    return rc;
}
