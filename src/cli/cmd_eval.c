/* lora eval -- loss and perplexity of a model (with adapters) on a JSONL dataset. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "stack.h"

static const char help[] =
    "usage: lora eval --model DIR --data FILE.jsonl [--adapter DIR[:SCALE] ...] [options]\n"
    "\n"
    "Computes the loss over the dataset's counted tokens (assistant tokens by default, as\n"
    "lora train counts them), the perplexity exp(loss), and the token counts.\n"
    "\n"
    "  --model DIR               checkpoint folder with its tokenizer (required)\n"
    "  --data FILE               JSONL as for lora train (required)\n"
    "  --adapter DIR[:SCALE]     a PEFT adapter, attached unmerged (repeatable; scale 1)\n"
    "  --max-length N            tokens per sample (default 1024)\n"
    "  --loss assistant|all      which tokens count (default assistant)\n"
    "  --json                    one JSON object instead of lines\n"
    "  --threads N               worker threads (default: all online CPUs)\n"
    "  --device D                cpu (default), auto, cuda or cuda:N\n";

static int evaluate(cli_stack *s, lora_dataset *ds, size_t cap, int as_json)
{
    int32_t *ids = malloc(cap * sizeof *ids), *labels = malloc(cap * sizeof *labels);
    lora_status st = ids && labels ? LORA_OK : LORA_ERR_OUT_OF_MEMORY;
    double sum = 0;
    size_t tokens = 0, counted_all = 0, rows = lora_dataset_size(ds);
    for (size_t i = 0; st == LORA_OK && i < rows; i++) {
        size_t n, counted = 0;
        float loss = 0;
        st = lora_dataset_row(ds, i, ids, labels, NULL, cap, &n);
        if (st == LORA_OK) st = lora_session_loss(s->session, ids, labels, 1, n, &loss, &counted);
        sum += (double)loss * (double)counted;
        counted_all += counted;
        tokens += n;
    }
    free(ids);
    free(labels);
    if (st != LORA_OK) return cli_lib_fail("eval", st);
    if (!counted_all) return cli_fail("eval", CLI_RUNTIME, "no token counts in the loss");
    double loss = sum / (double)counted_all;
    if (as_json)
        printf("{\"loss\": %.6f, \"perplexity\": %.6f, \"samples\": %zu, \"tokens\": %zu, "
               "\"loss_tokens\": %zu}\n", loss, exp(loss), rows, tokens, counted_all);
    else
        printf("loss: %.6f\nperplexity: %.4f\nsamples: %zu\ntokens: %zu\nloss tokens: %zu\n",
               loss, exp(loss), rows, tokens, counted_all);
    return CLI_OK;
}

int cmd_eval(int argc, char **argv)
{
    cli_opt opts[] = {{"model", 0, NULL},   {"data", 0, NULL},    {"adapter", 0, NULL},
                      {"max-length", 0, NULL}, {"loss", 0, NULL}, {"json", 1, NULL},
                      {"threads", 0, NULL}, {"device", 0, NULL},  {NULL, 0, NULL}};
    int rc = cli_parse("eval", argc, argv, opts, help);
    if (rc >= 0) return rc;
    const char *model = cli_get(opts, "model"), *data = cli_get(opts, "data"), *s;
    if (!model || !data)
        return cli_fail("eval", CLI_USAGE, "--%s is required (see lora eval --help)",
                        model ? "data" : "model");
    uint64_t max_len = 1024, threads = 0;
    if ((s = cli_get(opts, "max-length")) && (rc = cli_uint("eval", "max-length", s, 2, 1u << 20, &max_len)))
        return rc;
    if ((s = cli_get(opts, "threads")) && (rc = cli_uint("eval", "threads", s, 1, 1024, &threads)))
        return rc;
    const char *loss = cli_get(opts, "loss");
    if (loss && strcmp(loss, "assistant") != 0 && strcmp(loss, "all") != 0)
        return cli_fail("eval", CLI_USAGE, "--loss must be assistant or all, not '%s'", loss);
    const char *specs[CLI_MAX_ADAPTERS + 1];
    int n_specs = cli_get_all(argc, argv, "adapter", specs, CLI_MAX_ADAPTERS + 1);
    cli_stack st;
    rc = cli_stack_open("eval", &st, model, (s = cli_get(opts, "device")) ? s : "cpu", threads,
                        specs, n_specs, 1);
    if (rc != CLI_OK) return rc;
    char cfg[128];
    snprintf(cfg, sizeof cfg, "{\"max_length\": %llu, \"shuffle\": false, \"loss\": \"%s\"}",
             (unsigned long long)max_len, loss ? loss : "assistant");
    lora_dataset *ds = NULL;
    lora_status ls = lora_dataset_load(st.tok, data, cfg, &ds);
    rc = ls == LORA_OK ? evaluate(&st, ds, (size_t)max_len, cli_get(opts, "json") != NULL)
                       : cli_lib_fail("eval", ls);
    lora_dataset_free(ds);
    cli_stack_close(&st);
    return rc;
}
