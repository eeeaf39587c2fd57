/* lora eval's answer-checking mode (eval_answers.c). */
#ifndef LORA_CLI_EVAL_H
#define LORA_CLI_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "stack.h"

typedef struct eval_answer_opts {
    const char *data;       /* JSONL of {"question", "answer"} */
    size_t max_new;         /* tokens per reply */
    size_t rollouts;        /* sampled replies per question for pass@k (0: greedy only) */
    double temperature, top_p;
    uint64_t seed;
    size_t show;            /* print the first questions with their replies */
    int thinking;           /* -1 default, 0 off */
    int json;
    const char *eos_json;   /* ", \"eos_token_id\": ..." or "" */
    int exact;              /* whole replies compared, not extracted answers */
} eval_answer_opts;

int eval_answers(cli_stack *s, const eval_answer_opts *o);

/* Questions and reference answers of a {"question", "answer"} JSONL file. */
typedef struct eval_qa {
    char **q, **a;
    size_t n;
} eval_qa;

/* Reads the questions; a bad line is an error naming FILE:LINE. Messages start with cmd.
 * Returns the exit status. */
int eval_read_qa(const char *cmd, const char *path, eval_qa *d);
void eval_qa_free(eval_qa *d);

/* Asks question q as one user message; *reply (to free) is the reply and *correct whether its
 * extracted answer matches ref's (ref itself when it holds none to extract), or with exact
 * whether the reply equals ref, surrounding whitespace aside. Returns the exit status. */
int eval_ask(const char *cmd, cli_stack *s, lora_sampler *smp, size_t max_new, const char *q, const char *ref,
             int thinking, int exact, char **reply, int *correct);

#endif
