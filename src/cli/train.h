/* lora train: the options a run was given, the loop that runs it, and its log and plot. */
#ifndef LORA_CLI_TRAIN_H
#define LORA_CLI_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "lora.h"

typedef struct train_run {
    /* from the command line */
    const char *out;          /* output folder */
    const char *resume;       /* checkpoint folder or NULL */
    uint64_t epochs, batch, accum, save_every;
    int full;                 /* full fine-tuning */
    /* handles */
    lora_model *model;
    lora_session *session;
    lora_adapter *adapter;    /* NULL with full */
    lora_optimizer *opt;
    lora_dataset *train, *eval; /* eval may be NULL */
    lora_tokenizer *tok;
    FILE *log;                /* metrics.jsonl, appended */
} train_run;

/* Micro-batches per epoch. */
uint64_t train_micro_per_epoch(const train_run *r);

/* Runs from the dataset's current position to the last epoch's end: steps, progress, the
 * per-update log lines, evaluation after every epoch, checkpoints every save_every updates and
 * on Ctrl-C, the final adapter (or model) and the loss plot. Returns the exit status. */
int train_loop(train_run *r);

/* Mean eval loss over the whole eval dataset (one pass, file order); NAN with *st set on error. */
double train_eval_loss(train_run *r, lora_status *st, uint64_t *tokens);

/* Writes out/loss.svg from the run's metrics.jsonl (every run appended to it, so a resumed
 * run's curve includes the first part). Returns 0 or -1 with errno set. */
int train_plot(const char *out_dir);

#endif
