/* lora -- the liblora command line: dispatches to one subcommand per file (cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "args.h"

static const char usage[] =
    "usage: lora <command> [options]\n"
    "\n"
    "commands:\n"
    "  info       describe a checkpoint folder (or a config.json, a GGUF file) without loading\n"
    "             its weights\n"
    "  init       write a randomly initialised checkpoint from a config.json\n"
    "  import     convert a GGUF file (llama.cpp) into a Hugging Face folder\n"
    "  generate   generate text (or token ids) from a prompt\n"
    "  chat       an interactive conversation, switching adapters at runtime\n"
    "  train      fine-tune a model (LoRA or full) on a JSONL file\n"
    "  eval       loss and perplexity on a JSONL dataset; answer accuracy and pass@k\n"
    "  selftrain  rejection-sampling self-training on questions with checkable answers\n"
    "  merge      fold a PEFT adapter into a model and write a Hugging Face folder\n"
    "  tokenize   text to token ids; check a tokenizer against a golden file\n"
    "  bench      measure decoding and training speed\n"
    "  version    print the version\n"
    "\n"
    "Run 'lora <command> --help' for a command's options.\n"
    "Exit status: 0 success, 1 runtime error, 2 usage error.\n";

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"info", cmd_info},
    {"init", cmd_init},
    {"import", cmd_import},
    {"generate", cmd_generate},
    {"chat", cmd_chat},
    {"eval", cmd_eval},
    {"selftrain", cmd_selftrain},
    {"train", cmd_train},
    {"merge", cmd_merge},
    {"tokenize", cmd_tokenize},
    {"bench", cmd_bench},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("lora %s (liblora %s, ABI %d)\n", LORA_VERSION_STRING, lora_version_string(),
               lora_abi_version());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    return cli_fail(NULL, CLI_USAGE, "unknown command '%s' (see lora --help)", cmd);
}
