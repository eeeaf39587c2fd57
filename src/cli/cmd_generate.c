/* lora generate -- streams generated token ids for a prompt of token ids. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

static const char help[] =
    "usage: lora generate --model DIR --prompt-ids \"1,2,3\" [options]\n"
    "\n"
    "Generates token ids after a prompt of token ids and prints each one as soon as it is\n"
    "chosen, separated by spaces. Text prompts need the tokenizer, which comes in a later\n"
    "version; until then prompts and outputs are token ids.\n"
    "\n"
    "  --model DIR               checkpoint folder (required)\n"
    "  --prompt-ids LIST         comma-separated token ids (required)\n"
    "  --max-new-tokens N        tokens to generate (default 256)\n"
    "  --do-sample               sample instead of greedy decoding\n"
    "  --temperature T           > 0, default 1.0; 0 means greedy\n"
    "  --top-k K                 keep the K most likely tokens (0: off)\n"
    "  --top-p P                 nucleus sampling, (0, 1]\n"
    "  --min-p M                 drop tokens with p < M * max p, [0, 1]\n"
    "  --repetition-penalty R    Hugging Face repetition penalty (> 0, 1: off)\n"
    "  --seed S                  sampling seed (default 0)\n"
    "  --threads N               worker threads (default: all online CPUs)\n"
    "  --device D                cpu (default), auto, cuda or cuda:N\n"
    "Sampling options use Hugging Face GenerationConfig semantics.\n";

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

/* Adds the sampler options that were given to cfg; returns 0 or CLI_USAGE. */
static int sampler_config(const cli_opt *opts, json_t *cfg, uint64_t max_new)
{
    static const struct { const char *opt, *key; int integer; } map[] = {
        {"temperature", "temperature", 0},    {"top-k", "top_k", 1},
        {"top-p", "top_p", 0},                {"min-p", "min_p", 0},
        {"repetition-penalty", "repetition_penalty", 0}, {"seed", "seed", 1},
    };
    json_object_set_new(cfg, "max_new_tokens", json_integer((json_int_t)max_new));
    json_object_set_new(cfg, "do_sample", json_boolean(cli_get(opts, "do-sample") != NULL));
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *s = cli_get(opts, map[i].opt);
        if (!s) continue;
        uint64_t u;
        double d;
        int rc = map[i].integer ? cli_uint("generate", map[i].opt, s, 0, INT64_MAX, &u)
                                : cli_double("generate", map[i].opt, s, &d);
        if (rc) return rc;
        json_object_set_new(cfg, map[i].key,
                            map[i].integer ? json_integer((json_int_t)u) : json_real(d));
    }
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

static int run(const cli_opt *opts, const int32_t *prompt, size_t n_prompt, uint64_t max_new,
               const char *model_cfg, const char *sampler_cfg)
{
    lora_model *model = NULL;
    lora_session *session = NULL;
    lora_sampler *sampler = NULL;
    int32_t *out = malloc((max_new ? max_new : 1) * sizeof *out);
    if (!out) return cli_fail("generate", CLI_RUNTIME, "out of memory");
    size_t n_out = 0;
    int first = 1;
    lora_status st = lora_model_load(cli_get(opts, "model"), model_cfg, &model);
    if (st == LORA_OK) st = lora_session_create(model, NULL, &session);
    if (st == LORA_OK) st = lora_sampler_create(sampler_cfg, &sampler);
    if (st == LORA_OK)
        st = lora_generate(session, sampler, prompt, n_prompt, out, max_new, &n_out,
                           print_token, &first);
    if (!first || st == LORA_OK) {
        putchar('\n');
        fflush(stdout);
    }
    int rc = st == LORA_OK ? CLI_OK : cli_lib_fail("generate", st);
    lora_sampler_free(sampler);
    lora_session_free(session);
    lora_model_free(model);
    free(out);
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    cli_opt opts[] = {
        {"model", 0, NULL},       {"prompt-ids", 0, NULL}, {"max-new-tokens", 0, NULL},
        {"do-sample", 1, NULL},   {"temperature", 0, NULL}, {"top-k", 0, NULL},
        {"top-p", 0, NULL},       {"min-p", 0, NULL},       {"repetition-penalty", 0, NULL},
        {"seed", 0, NULL},        {"threads", 0, NULL},     {"device", 0, NULL},
        {NULL, 0, NULL}};
    int rc = cli_parse("generate", argc, argv, opts, help);
    if (rc >= 0) return rc;
    if (!cli_get(opts, "model"))
        return cli_fail("generate", CLI_USAGE, "--model is required (see lora generate --help)");
    const char *ids_s = cli_get(opts, "prompt-ids");
    if (!ids_s)
        return cli_fail("generate", CLI_USAGE,
                        "--prompt-ids is required (see lora generate --help)");
    uint64_t max_new = 256, threads = 0;
    const char *s;
    if ((s = cli_get(opts, "max-new-tokens")) &&
        (rc = cli_uint("generate", "max-new-tokens", s, 0, 1u << 24, &max_new)) != 0)
        return rc;
    if ((s = cli_get(opts, "threads")) &&
        (rc = cli_uint("generate", "threads", s, 1, 1024, &threads)) != 0)
        return rc;

    json_t *scfg = json_object(), *mcfg = json_object();
    char *scfg_s = NULL, *mcfg_s = NULL;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    if ((rc = sampler_config(opts, scfg, max_new)) == 0 &&
        (rc = parse_ids(ids_s, &prompt, &n_prompt)) == 0) {
        json_object_set_new(mcfg, "device", json_string((s = cli_get(opts, "device")) ? s : "cpu"));
        if (threads) json_object_set_new(mcfg, "threads", json_integer((json_int_t)threads));
        scfg_s = json_dumps(scfg, JSON_COMPACT);
        mcfg_s = json_dumps(mcfg, JSON_COMPACT);
        rc = scfg_s && mcfg_s ? run(opts, prompt, n_prompt, max_new, mcfg_s, scfg_s)
                              : cli_fail("generate", CLI_RUNTIME, "out of memory");
    }
    free(prompt);
    free(scfg_s);
    free(mcfg_s);
    json_decref(scfg);
    json_decref(mcfg);
    return rc;
}
