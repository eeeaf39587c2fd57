/* lora selftrain -- rejection-sampling self-training (the course material's loop): sample
 * rollouts for the training questions, keep the ones whose answer checks out, train the LoRA
 * adapter on them, re-evaluate; repeat. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "eval.h"
#include "gen.h"
#include "stack.h"

static const char help[] =
    "usage: lora selftrain --model DIR --questions FILE.jsonl --eval FILE.jsonl --out DIR\n"
    "                      [options]\n"
    "\n"
    "Each iteration samples --rollouts replies per training question with the current adapter,\n"
    "keeps the distinct replies whose answer (last \\boxed{}, else last number) matches, writes\n"
    "them to OUT/iter_N.jsonl as conversations, trains the adapter on them for --epochs, and\n"
    "evaluates pass@1, pass@4 and pass@8 on --eval with 8 rollouts per question. The adapter\n"
    "starts from --adapter DIR (a PEFT folder, e.g. an SFT adapter) or fresh (B = 0), and is\n"
    "saved to OUT/adapter after every iteration.\n"
    "\n"
    "  --model DIR             checkpoint folder with its tokenizer (required)\n"
    "  --questions FILE        {\"question\", \"answer\"} lines to self-train on (required)\n"
    "  --eval FILE             {\"question\", \"answer\"} lines to evaluate on (required)\n"
    "  --out DIR               output folder (required)\n"
    "  --adapter DIR           the adapter to start from (default: a fresh r 16 all-linear one)\n"
    "  --iterations N          default 3\n"
    "  --rollouts N            per training question (default 8)\n"
    "  --temperature T         sampling temperature (default 0.8)\n"
    "  --epochs N              training epochs per iteration (default 1)\n"
    "  --lr LR                 AdamW learning rate (default 1e-3)\n"
    "  --max-new-tokens N      per reply (default 64)\n"
    "  --seed N                default 0\n"
    "  --threads N             worker threads (default: all online CPUs)\n";

typedef struct st_opts {
    const char *model, *questions, *eval, *out, *adapter;
    uint64_t iterations, rollouts, epochs, max_new, seed, threads;
    double temperature, lr;
} st_opts;

static int sampler(const char *cmd, const st_opts *o, const char *eos, uint64_t seed,
                   lora_sampler **out)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"do_sample\": true, \"temperature\": %g, \"seed\": %llu, "
             "\"max_new_tokens\": %llu%s}", o->temperature, (unsigned long long)seed,
             (unsigned long long)o->max_new, eos);
    lora_status st = lora_sampler_create(cfg, out);
    return st == LORA_OK ? CLI_OK : cli_lib_fail(cmd, st);
}

/* Samples rollouts for every training question; writes the distinct correct ones as
 * conversations to path. *kept gets their number. */
static int collect(cli_stack *s, const st_opts *o, lora_sampler *smp, const eval_qa *qs,
                   const char *path, size_t *kept)
{
    FILE *f = fopen(path, "w");
    if (!f) return cli_fail("selftrain", CLI_RUNTIME, "%s: cannot write", path);
    int rc = CLI_OK;
    *kept = 0;
    for (size_t i = 0; rc == CLI_OK && i < qs->n; i++) {
        char **seen = calloc(o->rollouts, sizeof *seen);
        size_t n_seen = 0;
        if (!seen) rc = cli_fail("selftrain", CLI_RUNTIME, "out of memory");
        for (size_t k = 0; rc == CLI_OK && k < o->rollouts; k++) {
            char *reply = NULL;
            int ok = 0;
            rc = eval_ask("selftrain", s, smp, o->max_new, qs->q[i], qs->a[i], -1, 0, &reply, &ok);
            int dup = 0;
            for (size_t j = 0; ok && j < n_seen; j++) dup |= strcmp(seen[j], reply) == 0;
            if (rc == CLI_OK && ok && !dup && seen) {
                json_t *row = json_pack("{s:[{s:s,s:s},{s:s,s:s}]}", "messages", "role", "user",
                                        "content", qs->q[i], "role", "assistant", "content",
                                        reply);
                char *line = json_dumps(row, JSON_COMPACT);
                fprintf(f, "%s\n", line);
                free(line);
                json_decref(row);
                seen[n_seen++] = reply;
                (*kept)++;
            } else {
                free(reply);
            }
        }
        for (size_t j = 0; j < n_seen; j++) free(seen[j]);
        free(seen);
    }
    if (fclose(f) != 0 && rc == CLI_OK) rc = cli_fail("selftrain", CLI_RUNTIME, "%s: write failed", path);
    return rc;
}

/* epochs over the kept conversations; *loss gets the last epoch's mean micro-batch loss. */
static int train(cli_stack *s, const st_opts *o, const char *path, double *loss)
{
    lora_dataset *ds = NULL;
    lora_optimizer *opt = NULL;
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"max_length\": 512, \"seed\": %llu}", (unsigned long long)o->seed);
    lora_status st = lora_dataset_load(s->tok, path, cfg, &ds);
    size_t per_epoch = st == LORA_OK ? (lora_dataset_size(ds) + 7) / 8 : 0;
    snprintf(cfg, sizeof cfg, "{\"lr\": %g, \"weight_decay\": 0.0, \"lr_scheduler_type\": "
             "\"constant\", \"max_grad_norm\": 1.0, \"seed\": %llu}", o->lr,
             (unsigned long long)o->seed);
    if (st == LORA_OK) st = lora_optimizer_create(s->session, cfg, &opt);
    static int32_t ids[8 * 512], labels[8 * 512], pos[8 * 512];
    double sum = 0;
    for (uint64_t e = 0; st == LORA_OK && e < o->epochs; e++) {
        sum = 0;
        for (size_t b = 0; st == LORA_OK && b < per_epoch; b++) {
            size_t seq, rows;
            float l = 0;
            st = lora_dataset_next_batch(ds, 8, ids, labels, pos, 8 * 512, &seq, &rows);
            if (st == LORA_OK) st = lora_train_step_packed(opt, ids, labels, pos, rows, seq, &l);
            sum += l;
        }
    }
    *loss = per_epoch ? sum / (double)per_epoch : NAN;
    lora_optimizer_free(opt);
    lora_dataset_free(ds);
    return st == LORA_OK ? CLI_OK : cli_lib_fail("selftrain", st);
}

/* pass@1, pass@4, pass@8 on the eval questions with 8 rollouts each. */
static int evaluate(cli_stack *s, const st_opts *o, lora_sampler *smp, const eval_qa *qs,
                    double pass[3])
{
    uint8_t *outcomes = calloc(qs->n * 8, 1);
    if (!outcomes) return cli_fail("selftrain", CLI_RUNTIME, "out of memory");
    int rc = CLI_OK;
    for (size_t i = 0; rc == CLI_OK && i < qs->n; i++)
        for (size_t k = 0; rc == CLI_OK && k < 8; k++) {
            char *reply = NULL;
            int ok = 0;
            rc = eval_ask("selftrain", s, smp, o->max_new, qs->q[i], qs->a[i], -1, 0, &reply, &ok);
            outcomes[i * 8 + k] = (uint8_t)ok;
            free(reply);
        }
    const size_t ks[3] = {1, 4, 8};
    for (int j = 0; rc == CLI_OK && j < 3; j++) {
        double sum = 0, p;
        for (size_t i = 0; i < qs->n; i++) {
            size_t c = 0;
            for (size_t k = 0; k < 8; k++) c += outcomes[i * 8 + k];
            lora_pass_at_k(8, c, ks[j], &p);
            sum += p;
        }
        pass[j] = sum / (double)qs->n;
    }
    free(outcomes);
    return rc;
}

static int run(const st_opts *o)
{
    eval_qa train_q = {0}, eval_q = {0};
    int rc = eval_read_qa("selftrain", o->questions, &train_q);
    if (rc == CLI_OK) rc = eval_read_qa("selftrain", o->eval, &eval_q);
    cli_stack s;
    const char *spec = o->adapter;
    if (rc == CLI_OK) rc = cli_stack_open("selftrain", &s, o->model, "cpu", o->threads, &spec,
                                          o->adapter ? 1 : 0, 1);
    if (rc != CLI_OK) {
        eval_qa_free(&train_q), eval_qa_free(&eval_q);
        return rc;
    }
    lora_status st = LORA_OK;
    float one = 1.0f;
    if (!o->adapter) {
        st = lora_adapter_create(s.model, "{\"r\": 16, \"lora_alpha\": 32, \"target_modules\": "
                                 "\"all-linear\"}", o->seed, &s.adapters[0]);
        if (st == LORA_OK) {
            s.n_adapters = 1;
            st = lora_session_set_adapters(s.session, s.adapters, &one, 1);
        }
        if (st != LORA_OK) rc = cli_lib_fail("selftrain", st);
    }
    json_t *eos = cli_eos_ids(o->model, s.tok);
    char *eos_s = eos ? json_dumps(eos, JSON_ENCODE_ANY) : NULL, eos_json[512] = "";
    if (eos_s) snprintf(eos_json, sizeof eos_json, ", \"eos_token_id\": %s", eos_s);
    free(eos_s);
    json_decref(eos);
    lora_sampler *smp = NULL;
    if (rc == CLI_OK) rc = sampler("selftrain", o, eos_json, o->seed, &smp);
    double pass[3];
    if (rc == CLI_OK) rc = evaluate(&s, o, smp, &eval_q, pass);
    if (rc == CLI_OK)
        printf("iteration  correct  pass@1  pass@4  pass@8  train_loss\n"
               "%9d  %7s  %6.3f  %6.3f  %6.3f  %10s\n", 0, "-", pass[0], pass[1], pass[2], "-");
    for (uint64_t it = 1; rc == CLI_OK && it <= o->iterations; it++) {
        char path[4096];
        size_t kept = 0;
        double loss = NAN;
        snprintf(path, sizeof path, "%s/iter_%llu.jsonl", o->out, (unsigned long long)it);
        rc = collect(&s, o, smp, &train_q, path, &kept);
        if (rc == CLI_OK && kept) rc = train(&s, o, path, &loss);
        if (rc == CLI_OK) rc = evaluate(&s, o, smp, &eval_q, pass);
        snprintf(path, sizeof path, "%s/adapter", o->out);
        if (rc == CLI_OK && (st = lora_adapter_save(s.adapters[0], path)) != LORA_OK)
            rc = cli_lib_fail("selftrain", st);
        if (rc == CLI_OK) {
            printf("%9llu  %7zu  %6.3f  %6.3f  %6.3f  %10.4f\n", (unsigned long long)it, kept,
                   pass[0], pass[1], pass[2], loss);
            fflush(stdout);
        }
    }
    lora_sampler_free(smp);
    cli_stack_close(&s);
    eval_qa_free(&train_q);
    eval_qa_free(&eval_q);
    return rc;
}

int cmd_selftrain(int argc, char **argv)
{
    cli_opt opts[] = {{"model", 0, NULL},      {"questions", 0, NULL}, {"eval", 0, NULL},
                      {"out", 0, NULL},        {"adapter", 0, NULL},   {"iterations", 0, NULL},
                      {"rollouts", 0, NULL},   {"temperature", 0, NULL}, {"epochs", 0, NULL},
                      {"lr", 0, NULL},         {"max-new-tokens", 0, NULL}, {"seed", 0, NULL},
                      {"threads", 0, NULL},    {NULL, 0, NULL}};
    int rc = cli_parse("selftrain", argc, argv, opts, help);
    if (rc >= 0) return rc;
    st_opts o = {cli_get(opts, "model"), cli_get(opts, "questions"), cli_get(opts, "eval"),
                 cli_get(opts, "out"), cli_get(opts, "adapter"), 3, 8, 1, 64, 0, 0, 0.8, 1e-3};
    const char *req[4] = {"model", "questions", "eval", "out"};
    for (int i = 0; i < 4; i++)
        if (!cli_get(opts, req[i]))
            return cli_fail("selftrain", CLI_USAGE, "--%s is required (see lora selftrain --help)",
                            req[i]);
    const struct { const char *name; uint64_t *v, lo, hi; } u[] = {
        {"iterations", &o.iterations, 1, 1000}, {"rollouts", &o.rollouts, 1, 1024},
        {"epochs", &o.epochs, 1, 1000},         {"max-new-tokens", &o.max_new, 1, 1u << 16},
        {"seed", &o.seed, 0, INT64_MAX},        {"threads", &o.threads, 1, 1024}};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        const char *s = cli_get(opts, u[i].name);
        if (s && (rc = cli_uint("selftrain", u[i].name, s, u[i].lo, u[i].hi, u[i].v))) return rc;
    }
    const char *s;
    if ((s = cli_get(opts, "temperature")) && (rc = cli_double("selftrain", "temperature", s, &o.temperature)))
        return rc;
    if ((s = cli_get(opts, "lr")) && (rc = cli_double("selftrain", "lr", s, &o.lr))) return rc;
    if (mkdir(o.out, 0755) != 0 && errno != EEXIST)
        return cli_fail("selftrain", CLI_RUNTIME, "%s: %s", o.out, strerror(errno));
    return run(&o);
}
