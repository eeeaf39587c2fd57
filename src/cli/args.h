/* The lora command line: a small option parser shared by every subcommand, error printing, and
 * the subcommands' entry points. Uses only the public API (include/lora.h). */
#ifndef LORA_CLI_ARGS_H
#define LORA_CLI_ARGS_H

#include <stdint.h>

#include "lora.h"

/* Exit statuses of every subcommand. */
enum { CLI_OK = 0, CLI_RUNTIME = 1, CLI_USAGE = 2 };

/* One option a subcommand accepts: "--name VALUE", "--name=VALUE", or a flag "--name".
 * cli_parse() sets value to the argument (the last one wins), or to "" for a given flag;
 * it stays NULL when the option is absent. */
typedef struct cli_opt {
    const char *name;   /* without the leading "--"; NULL ends the table */
    int is_flag;        /* 1: takes no value */
    const char *value;
} cli_opt;

/* Parses argv[0..argc) (the words after the subcommand) against opts. "--help" anywhere prints
 * help to stdout. Returns -1 to go on; otherwise the exit status (CLI_OK after --help,
 * CLI_USAGE after printing one error line). */
int cli_parse(const char *cmd, int argc, char **argv, cli_opt *opts, const char *help);

/* The value of an option (NULL if absent). The name must be in the table. */
const char *cli_get(const cli_opt *opts, const char *name);

/* Every value of an option that takes one and may be repeated (--adapter A --adapter B), in
 * order, for words that cli_parse() accepted. Returns how many were found, at most max. */
int cli_get_all(int argc, char **argv, const char *name, const char **out, int max);

/* Prints "lora CMD: message" on stderr as one line and returns status. */
int cli_fail(const char *cmd, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "lora CMD: <lora_last_error()>" (or the status name if the message is empty) and
 * returns CLI_RUNTIME. */
int cli_lib_fail(const char *cmd, lora_status st);

/* Parses an unsigned integer in [min, max]: returns 0, or prints a usage error naming --opt
 * and returns CLI_USAGE. */
int cli_uint(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max,
             uint64_t *out);

/* Parses a finite number: returns 0, or prints a usage error and returns CLI_USAGE. */
int cli_double(const char *cmd, const char *opt, const char *s, double *out);

/* 494032768 -> "494,032,768" in buf, which it returns. */
const char *cli_thousands(uint64_t n, char buf[32]);

/* Monotonic seconds, for rates and timings. */
double cli_now(void);

/* Reads a whole file into a NUL-terminated buffer to free(); NULL with errno set on failure. */
char *cli_read_file(const char *path);

/* Subcommands: argv holds the words after the subcommand name. Each returns its exit status. */
int cmd_info(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_selftrain(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

#endif
