/* lora eval -- loss and perplexity of a model (with adapters) on a JSONL dataset. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "eval.h"
#include "gen.h"
#include "stack.h"

static const char help[] =
    "usage: lora eval --model DIR --data FILE.jsonl [--adapter DIR[:SCALE] ...] [options]\n"
    "       lora eval --model DIR --answers FILE.jsonl [--rollouts N] [options]\n"
    "\n"
    "With --data: the loss over the dataset's counted tokens (assistant tokens by default, as\n"
    "lora train counts them), the perplexity exp(loss), and the token counts.\n"
    "With --answers: each {\"question\", \"answer\"} line is asked as a user message; the\n"
    "answer is the reply's last \\boxed{} (else a GSM8K \"####\" line, else its last\n"
    "number), compared after normalisation with the reference's (--match exact: the whole\n"
    "reply, surrounding whitespace aside, must equal the reference). Prints the greedy accuracy\n"
    "and, with --rollouts N, pass@k and avg@k for k = 1..N over N sampled replies per\n"
    "question.\n"
    "\n"
    "  --model DIR               checkpoint folder with its tokenizer (required)\n"
    "  --data FILE               JSONL as for lora train\n"
    "  --adapter DIR[:SCALE]     a PEFT adapter, attached unmerged (repeatable; scale 1)\n"
    "  --max-length N            tokens per sample (default 1024)\n"
    "  --loss assistant|all      which tokens count (default assistant)\n"
    "  --json                    one JSON object instead of lines\n"
    "answers:\n"
    "  --answers FILE            JSONL of {\"question\", \"answer\"}\n"
    "  --rollouts N              sampled replies per question for pass@k (default 0)\n"
    "  --temperature T           of the rollouts (default 0.7)\n"
    "  --top-p P                 of the rollouts (default 1)\n"
    "  --seed S                  of the rollouts (default 0)\n"
    "  --max-new-tokens N        per reply (default 64)\n"
    "  --match answer|exact      compare extracted answers (default) or whole replies\n"
    "  --show N                  print the first N questions with the greedy replies\n"
    "  --no-thinking             Qwen3: an empty think block\n"
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

/* --answers: options, the stack, then eval_answers(). */
static int run_answers(const cli_opt *opts, int argc, char **argv)
{
    eval_answer_opts o = {cli_get(opts, "answers"), 64, 0, 0.7, 1.0, 0, 0,
                          cli_get(opts, "no-thinking") ? 0 : -1, cli_get(opts, "json") != NULL, "",
                          0};
    uint64_t u, threads = 0;
    const char *s;
    int rc = 0;
    if ((s = cli_get(opts, "max-new-tokens")) && !(rc = cli_uint("eval", "max-new-tokens", s, 1, 1u << 20, &u)))
        o.max_new = (size_t)u;
    if (!rc && (s = cli_get(opts, "rollouts")) && !(rc = cli_uint("eval", "rollouts", s, 0, 1024, &u)))
        o.rollouts = (size_t)u;
    if (!rc && (s = cli_get(opts, "show")) && !(rc = cli_uint("eval", "show", s, 0, SIZE_MAX, &u)))
        o.show = (size_t)u;
    if (!rc && (s = cli_get(opts, "seed"))) rc = cli_uint("eval", "seed", s, 0, UINT64_MAX, &o.seed);
    if (!rc && (s = cli_get(opts, "temperature"))) rc = cli_double("eval", "temperature", s, &o.temperature);
    if (!rc && (s = cli_get(opts, "top-p"))) rc = cli_double("eval", "top-p", s, &o.top_p);
    if (!rc && (s = cli_get(opts, "threads"))) rc = cli_uint("eval", "threads", s, 1, 1024, &threads);
    if (!rc && (s = cli_get(opts, "match"))) {
        if (strcmp(s, "exact") == 0) o.exact = 1;
        else if (strcmp(s, "answer") != 0)
            rc = cli_fail("eval", CLI_USAGE, "--match must be answer or exact, not '%s'", s);
    }
    if (rc) return rc;
    const char *specs[CLI_MAX_ADAPTERS + 1];
    int n_specs = cli_get_all(argc, argv, "adapter", specs, CLI_MAX_ADAPTERS + 1);
    cli_stack st;
    const char *model = cli_get(opts, "model");
    rc = cli_stack_open("eval", &st, model, (s = cli_get(opts, "device")) ? s : "cpu", threads,
                        specs, n_specs, 1);
    if (rc != CLI_OK) return rc;
    json_t *eos = cli_eos_ids(model, st.tok);
    char *eos_s = eos ? json_dumps(eos, JSON_ENCODE_ANY) : NULL, eos_json[512] = "";
    if (eos_s) snprintf(eos_json, sizeof eos_json, ", \"eos_token_id\": %s", eos_s);
    free(eos_s);
    json_decref(eos);
    o.eos_json = eos_json;
    rc = eval_answers(&st, &o);
    cli_stack_close(&st);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    cli_opt opts[] = {{"model", 0, NULL},   {"data", 0, NULL},    {"adapter", 0, NULL},
                      {"max-length", 0, NULL}, {"loss", 0, NULL}, {"json", 1, NULL},
                      {"answers", 0, NULL}, {"rollouts", 0, NULL}, {"temperature", 0, NULL},
                      {"top-p", 0, NULL},   {"seed", 0, NULL},    {"max-new-tokens", 0, NULL},
                      {"show", 0, NULL},    {"no-thinking", 1, NULL}, {"match", 0, NULL},
                      {"threads", 0, NULL}, {"device", 0, NULL},  {NULL, 0, NULL}};
    int rc = cli_parse("eval", argc, argv, opts, help);
    if (rc >= 0) return rc;
    const char *model = cli_get(opts, "model"), *data = cli_get(opts, "data"), *s;
    const char *answers = cli_get(opts, "answers");
    if (!model)
        return cli_fail("eval", CLI_USAGE, "--model is required (see lora eval --help)");
    if (!data == !answers)
        return cli_fail("eval", CLI_USAGE, "give one of --data and --answers (see lora eval --help)");
    if (answers && (cli_get(opts, "max-length") || cli_get(opts, "loss")))
        return cli_fail("eval", CLI_USAGE, "--%s applies to --data, not --answers",
                        cli_get(opts, "loss") ? "loss" : "max-length");
    if (!answers && (cli_get(opts, "rollouts") || cli_get(opts, "show") || cli_get(opts, "match")))
        return cli_fail("eval", CLI_USAGE, "--%s applies to --answers, not --data",
                        cli_get(opts, "show") ? "show" : cli_get(opts, "match") ? "match" : "rollouts");
    if (answers) return run_answers(opts, argc, argv);
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
