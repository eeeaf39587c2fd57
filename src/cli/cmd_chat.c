/* lora chat -- an interactive conversation with a model, switching adapters at runtime. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "gen.h"
#include "stack.h"

static const char help[] =
    "usage: lora chat --model DIR [--adapter DIR[:SCALE] ...] [--system TEXT] [options]\n"
    "\n"
    "Reads one user message per line from standard input and streams the model's replies,\n"
    "keeping the conversation's history. Every --adapter is loaded once; all are attached at\n"
    "the start (their deltas summed) and the base model stays untouched. Commands:\n"
    "  /adapter NAME    use one adapter alone: its number (1, 2, ...) or its --adapter text;\n"
    "                   'all' attaches all again, 'none' none\n"
    "  /adapters        lists the adapters\n"
    "  /system TEXT     sets the system message (an empty TEXT removes it)\n"
    "  /raw TEXT        continues TEXT as it is, without the chat template or the history\n"
    "  /reset           forgets the history\n"
    "  /quit, /exit     ends (so does the end of input)\n"
    "\n"
    "  --model DIR               checkpoint folder with its tokenizer (required)\n"
    "  --adapter DIR[:SCALE]     a PEFT adapter (repeatable; scale 1)\n"
    "  --system TEXT             the first system message\n"
    "  --no-thinking             Qwen3: an empty think block (enable_thinking=false)\n"
    CLI_SAMPLER_HELP
    "  --threads N               worker threads (default: all online CPUs)\n"
    "  --device D                cpu (default), auto, cuda or cuda:N\n";

typedef struct chat {
    cli_stack st;
    lora_sampler *smp;
    uint64_t max_new;
    json_t *history; /* user and assistant turns */
    char *system;
    int thinking;
    int tty;
} chat;

static void list_adapters(const chat *c)
{
    for (int i = 0; i < c->st.n_adapters; i++) printf("  %d  %s\n", i + 1, c->st.dirs[i]);
    if (!c->st.n_adapters) printf("  (no --adapter given)\n");
}

static int switch_adapter(chat *c, const char *name)
{
    int pick = -2;
    if (strcmp(name, "none") == 0) pick = -1;
    else if (strcmp(name, "all") == 0) pick = c->st.n_adapters;
    for (int i = 0; pick == -2 && i < c->st.n_adapters; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i + 1);
        if (strcmp(name, num) == 0 || strcmp(name, c->st.dirs[i]) == 0) pick = i;
    }
    if (pick == -2) {
        printf("no adapter '%s'; /adapters lists them\n", name);
        return CLI_OK;
    }
    lora_status ls = LORA_OK;
    int rc = CLI_OK;
    if (pick == c->st.n_adapters)
        ls = lora_session_set_adapters(c->st.session, c->st.adapters, c->st.scales,
                                       (size_t)c->st.n_adapters);
    else
        rc = cli_stack_use("chat", &c->st, pick);
    if (ls != LORA_OK) rc = cli_lib_fail("chat", ls);
    if (rc == CLI_OK) printf("adapter: %s\n", name);
    return rc;
}

static int turn(chat *c, const char *line)
{
    json_t *msgs = json_array();
    if (c->system) json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", c->system));
    json_array_extend(msgs, c->history);
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", line));
    char *prompt = NULL, *reply = NULL;
    int rc = cli_render("chat", c->st.tok, msgs, c->thinking, &prompt);
    json_decref(msgs);
    if (rc == CLI_OK)
        rc = cli_generate_text("chat", &c->st, c->smp, c->max_new, prompt, stdout, &reply);
    lora_string_free(prompt);
    if (rc == CLI_OK) {
        putchar('\n');
        fflush(stdout);
        json_array_append_new(c->history, json_pack("{s:s,s:s}", "role", "user", "content", line));
        json_array_append_new(c->history,
                              json_pack("{s:s,s:s}", "role", "assistant", "content", reply));
    }
    free(reply);
    return rc;
}

static int command(chat *c, const char *line, int *quit)
{
    if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0) return *quit = 1, CLI_OK;
    if (strcmp(line, "/reset") == 0) {
        json_array_clear(c->history);
        printf("history cleared\n");
        return CLI_OK;
    }
    if (strcmp(line, "/adapters") == 0) return list_adapters(c), CLI_OK;
    if (strcmp(line, "/raw") == 0 || (strncmp(line, "/raw ", 5) == 0 && !line[5])) {
        printf("/raw needs the text to continue\n");
        return CLI_OK;
    }
    if (strncmp(line, "/raw ", 5) == 0) {
        int rc = cli_generate_text("chat", &c->st, c->smp, c->max_new, line + 5, stdout, NULL);
        if (rc == CLI_OK) putchar('\n');
        return rc;
    }
    if (strncmp(line, "/adapter ", 9) == 0) return switch_adapter(c, line + 9);
    if (strncmp(line, "/system", 7) == 0 && (line[7] == ' ' || line[7] == '\0')) {
        free(c->system);
        c->system = line[7] && line[8] ? strdup(line + 8) : NULL;
        printf(c->system ? "system message set\n" : "system message removed\n");
        return CLI_OK;
    }
    printf("unknown command %s (try /adapter NAME, /adapters, /system TEXT, /raw TEXT, /reset, "
           "/quit)\n", line);
    return CLI_OK;
}

static int loop(chat *c)
{
    char *line = NULL;
    size_t cap = 0;
    int rc = CLI_OK, quit = 0;
    while (rc == CLI_OK && !quit) {
        if (c->tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        rc = line[0] == '/' ? command(c, line, &quit) : turn(c, line);
    }
    free(line);
    return rc;
}

int cmd_chat(int argc, char **argv)
{
    cli_opt opts[] = {{"model", 0, NULL},       {"adapter", 0, NULL}, {"system", 0, NULL},
                      {"no-thinking", 1, NULL}, CLI_SAMPLER_OPTS,     {"threads", 0, NULL},
                      {"device", 0, NULL},      {NULL, 0, NULL}};
    int rc = cli_parse("chat", argc, argv, opts, help);
    if (rc >= 0) return rc;
    const char *model = cli_get(opts, "model"), *s;
    if (!model) return cli_fail("chat", CLI_USAGE, "--model is required (see lora chat --help)");
    chat c = {.max_new = 256, .thinking = cli_get(opts, "no-thinking") ? 0 : -1,
              .tty = isatty(STDIN_FILENO)};
    uint64_t threads = 0;
    if ((s = cli_get(opts, "max-new-tokens")) &&
        (rc = cli_uint("chat", "max-new-tokens", s, 1, 1u << 24, &c.max_new)) != 0)
        return rc;
    if ((s = cli_get(opts, "threads")) && (rc = cli_uint("chat", "threads", s, 1, 1024, &threads)))
        return rc;
    char *scfg = NULL;
    if ((rc = cli_sampler_json("chat", opts, NULL, NULL, &scfg)) != CLI_OK) return rc;
    free(scfg);
    const char *specs[CLI_MAX_ADAPTERS + 1];
    int n_specs = cli_get_all(argc, argv, "adapter", specs, CLI_MAX_ADAPTERS + 1);
    rc = cli_stack_open("chat", &c.st, model, (s = cli_get(opts, "device")) ? s : "cpu", threads,
                        specs, n_specs, 1);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_sampler_json("chat", opts, model, c.st.tok, &scfg)) == CLI_OK) {
        lora_status ls = lora_sampler_create(scfg, &c.smp);
        if (ls != LORA_OK) rc = cli_lib_fail("chat", ls);
    }
    free(scfg);
    c.history = json_array();
    if ((s = cli_get(opts, "system")) && *s) c.system = strdup(s);
    if (rc == CLI_OK) rc = loop(&c);
    json_decref(c.history);
    free(c.system);
    lora_sampler_free(c.smp);
    cli_stack_close(&c.st);
    return rc;
}
