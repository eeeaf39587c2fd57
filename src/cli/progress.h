/* A training progress display: a bar with ETA that redraws in place on a terminal, plain
 * periodic lines otherwise (logs, pipes, CI). */
#ifndef LORA_CLI_PROGRESS_H
#define LORA_CLI_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct cli_progress {
    FILE *out;
    int tty;            /* redraw one line with \r */
    uint64_t total;     /* steps expected; 0 = unknown */
    uint64_t every;     /* plain mode: a line every this many steps */
    double t_start;     /* seconds, monotonic */
    int drawn;          /* a bar is on the current line */
} cli_progress;

void cli_progress_start(cli_progress *p, FILE *out, uint64_t total);
/* After update `step` (1-based): loss, learning rate, tokens per second. */
void cli_progress_step(cli_progress *p, uint64_t step, double loss, double lr, double tok_s);
/* Prints a whole line (an epoch's evaluation, a checkpoint) without breaking the bar. */
void cli_progress_note(cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the bar's line. */
void cli_progress_end(cli_progress *p);

#endif
