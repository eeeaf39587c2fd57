/* What generate, chat and eval open: a model, its tokenizer, a session and the adapters named
 * by --adapter DIR[:SCALE] (repeatable). */
#ifndef LORA_CLI_STACK_H
#define LORA_CLI_STACK_H

#include "lora.h"

#define CLI_MAX_ADAPTERS 8

typedef struct cli_stack {
    lora_model *model;
    lora_tokenizer *tok;          /* NULL unless asked for */
    lora_session *session;
    lora_adapter *adapters[CLI_MAX_ADAPTERS];
    float scales[CLI_MAX_ADAPTERS];
    const char *dirs[CLI_MAX_ADAPTERS];
    int n_adapters;
} cli_stack;

/* Opens the stack; every adapter is attached to the session with its scale. threads 0 = the
 * library's default. Returns CLI_OK or the exit status after one error line. */
int cli_stack_open(const char *cmd, cli_stack *s, const char *model_dir, const char *device,
                   uint64_t threads, const char *const *adapter_specs, int n_specs,
                   int want_tokenizer);

/* Attaches adapter i alone (i < 0: none). Returns CLI_OK or CLI_RUNTIME after a message. */
int cli_stack_use(const char *cmd, cli_stack *s, int i);

void cli_stack_close(cli_stack *s);

#endif
