/* The public training handle's state, shared by trainer.c and checkpoint.c. */
#ifndef LORA_TRAIN_TRAINER_H
#define LORA_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "model/session.h"
#include "train/optim.h"

#define NAME_CAP 128 /* a parameter's name: a PEFT tensor name, maybe an adapter index */

struct lora_optimizer {
    lora_session *s;                       /* retained */
    bool full;                             /* full fine-tuning, else the adapters */
    bool master;                           /* holds a reference to the model's masters */
    lora_adapter *adapters[LORA_MAX_ADAPTERS]; /* retained; what the session had at creation */
    size_t n_adapters;
    lora_grads grads;                      /* arenas parallel to the trained weights */
    size_t grad_floats[LORA_MAX_ADAPTERS + 1];
    lora_optim *optim;
    int64_t accum;                         /* micro-batches per update */
    int64_t micro;                         /* micro-batches since the last update */
    bool recompute;
    uint64_t tokens;
    uint64_t dropout_seed;                 /* "seed" */
    uint64_t micro_total;                  /* micro-batches trained: the dropout stream */
    bool dropout;                          /* some adapter has lora_dropout > 0 */
    double last_loss;
    lora_optim_report last;                /* of the last update (step 0: none yet) */
    char *names;                           /* storage for parameter names */
    char *stats;                           /* lora_optimizer_stats_json */
};

#endif
