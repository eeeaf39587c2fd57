/* lora generate -- streams a continuation of a text prompt, a conversation or token ids. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "gen.h"
#include "stack.h"

static const char help[] =
    "usage: lora generate --model DIR (--prompt TEXT | --messages FILE | --prompt-ids LIST)\n"
    "                     [--adapter DIR[:SCALE] ...] [options]\n"
    "\n"
    "Generates a continuation and prints it as it comes. --prompt is one user message, rendered\n"
    "with the model's chat template and the assistant's generation prompt (--raw: the text\n"
    "as it is); --messages is a JSON file holding an array of {\"role\", \"content\"}\n"
    "messages. --prompt-ids takes token ids and prints token ids.\n"
    "\n"
    "  --model DIR               checkpoint folder (required)\n"
    "  --prompt TEXT             a user message\n"
    "  --messages FILE           a conversation (JSON array of messages)\n"
    "  --prompt-ids LIST         comma-separated token ids\n"
    "  --system TEXT             a system message before --prompt\n"
    "  --raw                     no chat template: the --prompt text is the model's input\n"
    "  --no-thinking             Qwen3: an empty think block (enable_thinking=false)\n"
    "  --adapter DIR[:SCALE]     a PEFT adapter, attached unmerged (repeatable; scale 1)\n"
    CLI_SAMPLER_HELP
    "  --threads N               worker threads (default: all online CPUs)\n"
    "  --device D                cpu (default), auto, cuda or cuda:N\n";

/* "1, 2,3" -> ids; returns 0 or CLI_USAGE after a message. */
static int parse_ids(const char *s, int32_t **ids_out, size_t *n_out)
{
    size_t n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) return cli_fail("generate", CLI_RUNTIME, "out of memory");
    const char *p = s;
    for (size_t i = 0; i < n; i++) {
        char *end;
        long long v = strtoll(p, &end, 10);
        while (*end == ' ') end++;
        if (end == p || v < 0 || v > INT32_MAX || (*end != ',' && *end != '\0')) {
            free(ids);
            return cli_fail("generate", CLI_USAGE,
                            "--prompt-ids must be comma-separated token ids, not '%s'", s);
        }
        ids[i] = (int32_t)v;
        p = end + 1;
    }
    *ids_out = ids;
    *n_out = n;
    return 0;
}

static int print_token(int32_t token, void *user)
{
    int *first = user;
    printf(*first ? "%d" : " %d", (int)token);
    *first = 0;
    fflush(stdout);
    return 0;
}

/* --prompt-ids: token ids in, token ids out. */
static int run_ids(cli_stack *s, lora_sampler *smp, const char *ids_s, uint64_t max_new)
{
    int32_t *prompt = NULL, *out = malloc((max_new ? max_new : 1) * sizeof *out);
    size_t n_prompt = 0, n_out = 0;
    int first = 1;
    int rc = out ? parse_ids(ids_s, &prompt, &n_prompt)
                 : cli_fail("generate", CLI_RUNTIME, "out of memory");
    if (rc == 0) {
        lora_status st = lora_generate(s->session, smp, prompt, n_prompt, out, max_new, &n_out,
                                       print_token, &first);
        if (!first || st == LORA_OK) {
            putchar('\n');
            fflush(stdout);
        }
        rc = st == LORA_OK ? CLI_OK : cli_lib_fail("generate", st);
    }
    free(prompt);
    free(out);
    return rc;
}

/* The model's input text for --prompt or --messages. */
static int prompt_text(const cli_opt *opts, const lora_tokenizer *tok, char **text)
{
    const char *prompt = cli_get(opts, "prompt"), *file = cli_get(opts, "messages");
    const char *sys = cli_get(opts, "system");
    int thinking = cli_get(opts, "no-thinking") ? 0 : -1;
    if (prompt && cli_get(opts, "raw")) {
        if (sys) return cli_fail("generate", CLI_USAGE, "--system needs the chat template (no --raw)");
        *text = strdup(prompt);
        return *text ? CLI_OK : cli_fail("generate", CLI_RUNTIME, "out of memory");
    }
    json_t *msgs;
    if (file) {
        json_error_t err;
        msgs = json_load_file(file, JSON_REJECT_DUPLICATES, &err);
        if (!msgs)
            return cli_fail("generate", CLI_RUNTIME, "%s:%d: %s", file, err.line, err.text);
    } else {
        msgs = json_array();
        if (sys) json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", sys));
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", prompt));
    }
    char *t = NULL;
    int rc = cli_render("generate", tok, msgs, thinking, &t);
    json_decref(msgs);
    if (rc == CLI_OK) {
        *text = strdup(t);
        lora_string_free(t);
        if (!*text) rc = cli_fail("generate", CLI_RUNTIME, "out of memory");
    }
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    cli_opt opts[] = {
        {"model", 0, NULL},      {"prompt", 0, NULL},     {"messages", 0, NULL},
        {"prompt-ids", 0, NULL}, {"system", 0, NULL},     {"raw", 1, NULL},
        {"no-thinking", 1, NULL}, {"adapter", 0, NULL},   CLI_SAMPLER_OPTS,
        {"threads", 0, NULL},    {"device", 0, NULL},     {NULL, 0, NULL}};
    int rc = cli_parse("generate", argc, argv, opts, help);
    if (rc >= 0) return rc;
    const char *model = cli_get(opts, "model"), *ids_s = cli_get(opts, "prompt-ids");
    if (!model)
        return cli_fail("generate", CLI_USAGE, "--model is required (see lora generate --help)");
    int inputs = !!cli_get(opts, "prompt") + !!cli_get(opts, "messages") + !!ids_s;
    if (inputs != 1)
        return cli_fail("generate", CLI_USAGE, "give exactly one of --prompt, --messages and "
                        "--prompt-ids (see lora generate --help)");
    uint64_t max_new = 256, threads = 0;
    const char *s;
    if ((s = cli_get(opts, "max-new-tokens")) &&
        (rc = cli_uint("generate", "max-new-tokens", s, 0, 1u << 24, &max_new)) != 0)
        return rc;
    if ((s = cli_get(opts, "threads")) &&
        (rc = cli_uint("generate", "threads", s, 1, 1024, &threads)) != 0)
        return rc;
    /* options are checked before the model is loaded */
    char *scfg = NULL;
    if ((rc = cli_sampler_json("generate", opts, NULL, NULL, &scfg)) != CLI_OK) return rc;
    free(scfg);
    const char *specs[CLI_MAX_ADAPTERS + 1];
    int n_specs = cli_get_all(argc, argv, "adapter", specs, CLI_MAX_ADAPTERS + 1);
    cli_stack st;
    rc = cli_stack_open("generate", &st, model, (s = cli_get(opts, "device")) ? s : "cpu",
                        threads, specs, n_specs, !ids_s);
    if (rc != CLI_OK) return rc;
    lora_sampler *smp = NULL;
    char *text = NULL;
    if ((rc = cli_sampler_json("generate", opts, model, st.tok, &scfg)) == CLI_OK) {
        lora_status ls = lora_sampler_create(scfg, &smp);
        if (ls != LORA_OK) rc = cli_lib_fail("generate", ls);
    }
    if (rc == CLI_OK && ids_s) {
        rc = run_ids(&st, smp, ids_s, max_new);
    } else if (rc == CLI_OK && (rc = prompt_text(opts, st.tok, &text)) == CLI_OK) {
        rc = cli_generate_text("generate", &st, smp, max_new, text, stdout, NULL);
        putchar('\n');
    }
    free(text);
    free(scfg);
    lora_sampler_free(smp);
    cli_stack_close(&st);
    return rc;
}
