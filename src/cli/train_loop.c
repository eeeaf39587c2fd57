/* The loop of lora train: micro-batches from the dataset, an update every --grad-accum of them,
 * a log line and a progress step per update, evaluation per epoch, checkpoints. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "files.h"
#include "progress.h"
#include "train.h"

static volatile sig_atomic_t interrupted;

/* The first Ctrl-C asks for a checkpoint at the next update boundary; a second one ends the
 * process at once. */
static void on_sigint(int sig)
{
    if (interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    interrupted = 1;
}

uint64_t train_micro_per_epoch(const train_run *r)
{
    return (lora_dataset_size(r->train) + r->batch - 1) / r->batch;
}

/* A number from a JSON object string owned by the library; def when absent or null. */
static double stat(const char *json, const char *key, double def)
{
    json_t *o = json_loads(json ? json : "{}", 0, NULL);
    json_t *v = json_object_get(o, key);
    double x = json_is_number(v) ? json_number_value(v) : json_is_true(v) ? 1 : def;
    json_decref(o);
    return x;
}

double train_eval_loss(train_run *r, lora_status *st, uint64_t *tokens)
{
    size_t rows = lora_dataset_size(r->eval);
    size_t cap = (size_t)stat(lora_dataset_stats_json(r->eval), "max_length", 0);
    int32_t *ids = malloc(cap * sizeof *ids), *labels = malloc(cap * sizeof *labels);
    double sum = 0;
    uint64_t counted_all = 0;
    *st = ids && labels ? LORA_OK : LORA_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; *st == LORA_OK && i < rows; i++) {
        size_t n, counted = 0;
        float loss = 0;
        *st = lora_dataset_row(r->eval, i, ids, labels, NULL, cap, &n);
        if (*st == LORA_OK) *st = lora_session_loss(r->session, ids, labels, 1, n, &loss, &counted);
        sum += (double)loss * (double)counted;
        counted_all += counted;
    }
    free(ids);
    free(labels);
    *tokens = counted_all;
    return *st == LORA_OK && counted_all ? sum / (double)counted_all : NAN;
}

static int checkpoint(train_run *r, const char *why)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoint", r->out);
    lora_status st = lora_optimizer_save_checkpoint(r->opt, dir, lora_dataset_position(r->train));
    if (st != LORA_OK) return cli_lib_fail("train", st);
    fprintf(r->log, "{\"checkpoint\": \"%s\", \"step\": %.0f, \"reason\": \"%s\"}\n", dir,
            stat(lora_optimizer_stats_json(r->opt), "step", 0), why);
    fflush(r->log);
    return CLI_OK;
}

static int save_final(train_run *r)
{
    lora_status st = r->full ? lora_model_save(r->model, r->out, "f32")
                             : lora_adapter_save(r->adapter, r->out);
    if (st != LORA_OK) return cli_lib_fail("train", st);
    return CLI_OK;
}

/* One evaluation at the end of an epoch: printed, logged. */
static int evaluate(train_run *r, cli_progress *p, uint64_t epoch)
{
    lora_status st;
    uint64_t tokens;
    double loss = train_eval_loss(r, &st, &tokens);
    if (st != LORA_OK) return cli_lib_fail("train", st);
    double step = stat(lora_optimizer_stats_json(r->opt), "step", 0);
    cli_progress_note(p, "epoch %llu: eval_loss %.4f perplexity %.3f (%llu tokens)",
                      (unsigned long long)epoch, loss, exp(loss), (unsigned long long)tokens);
    fprintf(r->log, "{\"epoch\": %llu, \"step\": %.0f, \"eval_loss\": %.6f, \"eval_ppl\": %.6f, "
            "\"eval_tokens\": %llu}\n", (unsigned long long)epoch, step, loss, exp(loss),
            (unsigned long long)tokens);
    fflush(r->log);
    return CLI_OK;
}

int train_loop(train_run *r)
{
    uint64_t mpe = train_micro_per_epoch(r), rows = lora_dataset_size(r->train);
    uint64_t updates = r->epochs * mpe / r->accum;
    uint64_t pos = lora_dataset_position(r->train);
    uint64_t micro = pos / rows * mpe + (pos % rows + r->batch - 1) / r->batch;
    size_t max_len = (size_t)stat(lora_dataset_stats_json(r->train), "max_length", 0);
    size_t cap = (size_t)r->batch * max_len;
    int32_t *ids = malloc(cap * sizeof *ids), *labels = malloc(cap * sizeof *labels);
    int32_t *posid = malloc(cap * sizeof *posid);
    if (!ids || !labels || !posid) {
        free(ids), free(labels), free(posid);
        return cli_fail("train", CLI_RUNTIME, "out of memory for %zu-token batches", cap);
    }
    cli_progress p;
    cli_progress_start(&p, stdout, updates);
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old);
    interrupted = 0;

    int rc = CLI_OK;
    double loss_sum = 0, t_mark = cli_now(), t0 = t_mark;
    uint64_t n_loss = 0, tokens_mark = 0;
    while (rc == CLI_OK && micro < updates * r->accum) {
        size_t seq, n_rows;
        float loss;
        lora_status st = lora_dataset_next_batch(r->train, r->batch, ids, labels, posid, cap,
                                                 &seq, &n_rows);
        if (st == LORA_OK)
            st = lora_train_step_packed(r->opt, ids, labels, posid, n_rows, seq, &loss);
        if (st != LORA_OK) {
            rc = cli_lib_fail("train", st);
            break;
        }
        micro++;
        loss_sum += loss;
        n_loss++;
        tokens_mark += n_rows * seq;
        const char *stats = lora_optimizer_stats_json(r->opt);
        if (stat(stats, "micro_step", 0) == 0) {
            double now = cli_now(), tok_s = (double)tokens_mark / (now - t_mark);
            double step = stat(stats, "step", 0), lr = stat(stats, "last_lr", 0);
            fprintf(r->log, "{\"step\": %.0f, \"epoch\": %.4f, \"loss\": %.6f, \"lr\": %.6g, "
                    "\"grad_norm\": %.6g, \"skipped\": %s, \"tokens_per_s\": %.1f, "
                    "\"elapsed_s\": %.2f}\n", step, (double)micro / (double)mpe,
                    loss_sum / (double)n_loss, lr, stat(stats, "grad_norm", NAN),
                    stat(stats, "skipped", 0) ? "true" : "false", tok_s, now - t0);
            fflush(r->log);
            cli_progress_step(&p, (uint64_t)step, loss_sum / (double)n_loss, lr, tok_s);
            loss_sum = 0, n_loss = 0, tokens_mark = 0, t_mark = now;
            if (r->save_every && (uint64_t)step % r->save_every == 0)
                rc = checkpoint(r, "save_every");
            if (rc == CLI_OK && interrupted) {
                rc = checkpoint(r, "interrupted");
                if (rc == CLI_OK) {
                    cli_progress_note(&p, "interrupted: checkpoint saved to %s/checkpoint; "
                                      "continue with --resume %s/checkpoint", r->out, r->out);
                    rc = 130;
                }
            }
        }
        if (rc == CLI_OK && micro % mpe == 0 && r->eval)
            rc = evaluate(r, &p, micro / mpe);
    }
    /* the updates can end a few micro-batches before the epoch does: evaluate the result */
    if (rc == CLI_OK && micro % mpe != 0 && r->eval)
        rc = evaluate(r, &p, r->epochs);
    cli_progress_end(&p);
    sigaction(SIGINT, &old, NULL);
    free(ids), free(labels), free(posid);
    if (rc == CLI_OK) rc = save_final(r);
    if ((rc == CLI_OK || rc == 130) && train_plot(r->out) != 0)
        rc = cli_fail("train", CLI_RUNTIME, "%s/loss.svg: %s", r->out, strerror(errno));
    return rc;
}
