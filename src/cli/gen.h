/* Text generation shared by lora generate and lora chat: sampler options, eos ids from the
 * model folder, prompt rendering and streamed decoding. */
#ifndef LORA_CLI_GEN_H
#define LORA_CLI_GEN_H

#include <jansson.h>
#include <stdio.h>

#include "args.h"
#include "stack.h"

/* The sampler options every generating command accepts (entries of a cli_opt table). */
#define CLI_SAMPLER_OPTS                                                                  \
    {"max-new-tokens", 0, NULL}, {"do-sample", 1, NULL}, {"temperature", 0, NULL},       \
    {"top-k", 0, NULL}, {"top-p", 0, NULL}, {"min-p", 0, NULL},                          \
    {"repetition-penalty", 0, NULL}, {"seed", 0, NULL}

#define CLI_SAMPLER_HELP                                                                  \
    "  --max-new-tokens N        tokens to generate (default 256)\n"                      \
    "  --do-sample               sample instead of greedy decoding\n"                     \
    "  --temperature T           > 0, default 1.0; 0 means greedy\n"                      \
    "  --top-k K                 keep the K most likely tokens (0: off)\n"                \
    "  --top-p P                 nucleus sampling, (0, 1]\n"                              \
    "  --min-p M                 drop tokens with p < M * max p, [0, 1]\n"                \
    "  --repetition-penalty R    Hugging Face repetition penalty (> 0, 1: off)\n"         \
    "  --seed S                  sampling seed (default 0)\n"                             \
    "Sampling options use Hugging Face GenerationConfig semantics.\n"

/* The end-of-generation ids: the model folder's generation_config.json eos_token_id (an id or
 * a list), else the tokenizer's eos token; NULL when neither has one. A new reference. */
json_t *cli_eos_ids(const char *model_dir, const lora_tokenizer *tok);

/* The sampler configuration from the options; with a model folder, eos_token_id comes from
 * its generation_config.json, else from the tokenizer (tok may be NULL). Returns CLI_OK and
 * a json_dumps string to free, or an exit status after one error line. */
int cli_sampler_json(const char *cmd, const cli_opt *opts, const char *model_dir,
                     const lora_tokenizer *tok, char **out);

/* Generates up to max_new tokens (the sampler's max_new_tokens) after the text prompt
 * (special-token text in it is matched), streaming the decoded reply to out (may be NULL) as
 * it comes; *reply (may be NULL) gets the whole reply, to free.
 * The session's cache is reset first. Returns CLI_OK or an exit status after a message. */
int cli_generate_text(const char *cmd, cli_stack *s, lora_sampler *smp, size_t max_new,
                      const char *prompt, FILE *out, char **reply);

/* Renders messages (a JSON array) with the chat template and the generation prompt;
 * thinking: -1 default, 0 off, 1 on. *text to lora_string_free. */
int cli_render(const char *cmd, const lora_tokenizer *tok, const json_t *messages, int thinking,
               char **text);

#endif
