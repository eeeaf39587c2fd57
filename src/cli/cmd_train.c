/* lora train -- supervised fine-tuning of a model folder on a JSONL file: LoRA (or full), the
 * reference course's recipe as options, a PEFT adapter, a metrics log and a loss plot. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "files.h"
#include "train.h"

static const char help[] =
    "usage: lora train --model DIR --data FILE.jsonl --out DIR [options]\n"
    "\n"
    "Fine-tunes the model on the JSONL file ({\"messages\": [...]}, {\"prompt\", \"completion\"}\n"
    "or {\"text\"} per line; loss on assistant tokens by default) and writes to --out a PEFT\n"
    "adapter (adapter_config.json, adapter_model.safetensors) or, with --full, a Hugging Face\n"
    "model folder; metrics.jsonl (one line per update and per evaluation, appended) and\n"
    "loss.svg. Ctrl-C saves a resumable checkpoint in OUT/checkpoint at the next update.\n"
    "\n"
    "data:\n"
    "  --model DIR             checkpoint folder with its tokenizer (required)\n"
    "  --data FILE             training JSONL (required)\n"
    "  --eval-data FILE        evaluation JSONL, evaluated after every epoch\n"
    "  --eval-split F          or hold out this fraction (or count, if >= 1) of --data\n"
    "  --out DIR               output folder, created if missing (required)\n"
    "  --max-length N          tokens per sample, longer ones truncated (default 1024)\n"
    "  --packing               lay short samples end to end (no attention across them)\n"
    "  --loss assistant|all    which tokens count (default assistant)\n"
    "  --chat-template NAME    qwen2.5, qwen3, llama3, chatml or smollm2, when the folder's\n"
    "                          template is not recognised\n"
    "adapter:\n"
    "  --lora-r N              rank (default 16)\n"
    "  --lora-alpha A          default 2r\n"
    "  --lora-dropout P        default 0.05\n"
    "  --target-modules LIST   all-linear (default), attn, ffn or q_proj,v_proj,...\n"
    "  --use-rslora            scaling alpha / sqrt(r)\n"
    "  --full                  full fine-tuning instead of LoRA\n"
    "optimization:\n"
    "  --lr LR                 AdamW learning rate (default 1e-4)\n"
    "  --weight-decay W        default 0\n"
    "  --max-grad-norm G       global-norm clipping (default 1; 0 = off)\n"
    "  --loraplus-ratio R      LoRA+: B learns R times faster (default 1)\n"
    "  --epochs N              default 3\n"
    "  --batch-size N          samples per micro-batch (default 1)\n"
    "  --grad-accum N          micro-batches per update (default 8)\n"
    "  --warmup-ratio F        default 0.03\n"
    "  --scheduler S           cosine (default), linear, constant, constant_with_warmup\n"
    "  --seed N                data order, adapter init and dropout (default 42)\n"
    "  --recompute             recompute activations in the backward (less memory)\n"
    "  --activations A         what a step keeps for the backward: auto (default: bf16 where\n"
    "                          the weights are bfloat16 on a GPU), bf16 or float32\n"
    "running:\n"
    "  --save-every N          also checkpoint every N updates into OUT/checkpoint\n"
    "  --resume DIR            continue from a checkpoint written by an earlier run\n"
    "  --threads N             worker threads (default: all online CPUs)\n"
    "  --device D              cpu (default), auto, cuda or cuda:N\n";

enum { O_MODEL, O_DATA, O_EVAL, O_SPLIT, O_OUT, O_MAXLEN, O_PACK, O_LOSS, O_TMPL, O_R, O_ALPHA,
       O_DROP, O_TARGET, O_RSLORA, O_FULL, O_LR, O_WD, O_GN, O_LP, O_EPOCHS, O_BATCH, O_ACCUM,
       O_WARM, O_SCHED, O_SEED, O_RECOMP, O_ACTS, O_SAVE, O_RESUME, O_THREADS, O_DEVICE,
       O_COUNT };

static const char *const names[O_COUNT] = {
    "model", "data", "eval-data", "eval-split", "out", "max-length", "packing", "loss",
    "chat-template", "lora-r", "lora-alpha", "lora-dropout", "target-modules", "use-rslora",
    "full", "lr", "weight-decay", "max-grad-norm", "loraplus-ratio", "epochs", "batch-size",
    "grad-accum", "warmup-ratio", "scheduler", "seed", "recompute", "activations",
    "save-every", "resume", "threads", "device"};

static int is_flag(int i) { return i == O_PACK || i == O_RSLORA || i == O_FULL || i == O_RECOMP; }

typedef struct settings {
    uint64_t max_len, r, epochs, batch, accum, seed, save_every, threads;
    double alpha, dropout, lr, wd, gn, lp, warm, split;
} settings;

static int numbers(const cli_opt *o, settings *s)
{
    const struct { int opt; uint64_t *u; double *d; uint64_t lo, hi; } map[] = {
        {O_MAXLEN, &s->max_len, NULL, 2, 1u << 20}, {O_R, &s->r, NULL, 1, 65536},
        {O_EPOCHS, &s->epochs, NULL, 1, 100000},    {O_BATCH, &s->batch, NULL, 1, 65536},
        {O_ACCUM, &s->accum, NULL, 1, 1000000},     {O_SEED, &s->seed, NULL, 0, INT64_MAX},
        {O_SAVE, &s->save_every, NULL, 1, UINT32_MAX}, {O_THREADS, &s->threads, NULL, 1, 1024},
        {O_ALPHA, NULL, &s->alpha, 0, 0},  {O_DROP, NULL, &s->dropout, 0, 0},
        {O_LR, NULL, &s->lr, 0, 0},        {O_WD, NULL, &s->wd, 0, 0},
        {O_GN, NULL, &s->gn, 0, 0},        {O_LP, NULL, &s->lp, 0, 0},
        {O_WARM, NULL, &s->warm, 0, 0},    {O_SPLIT, NULL, &s->split, 0, 0}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *v = o[map[i].opt].value;
        if (!v) continue;
        int rc = map[i].u ? cli_uint("train", names[map[i].opt], v, map[i].lo, map[i].hi, map[i].u)
                          : cli_double("train", names[map[i].opt], v, map[i].d);
        if (rc) return rc;
    }
    if (o[O_SPLIT].value && (s->split <= 0 || o[O_EVAL].value))
        return cli_fail("train", CLI_USAGE, o[O_EVAL].value
                        ? "--eval-split and --eval-data exclude each other"
                        : "--eval-split must be a fraction in (0, 1) or a count >= 1");
    return 0;
}

/* JSON text of an object built by the caller; NULL (and a message) when out of memory. */
static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) cli_fail("train", CLI_RUNTIME, "out of memory");
    return s;
}

static char *adapter_config(const cli_opt *o, const settings *s)
{
    json_t *c = json_object();
    json_object_set_new(c, "r", json_integer((json_int_t)s->r));
    json_object_set_new(c, "lora_alpha", json_real(o[O_ALPHA].value ? s->alpha : 2.0 * (double)s->r));
    json_object_set_new(c, "lora_dropout", json_real(s->dropout));
    json_object_set_new(c, "use_rslora", json_boolean(o[O_RSLORA].value != NULL));
    const char *t = o[O_TARGET].value ? o[O_TARGET].value : "all-linear";
    if (strcmp(t, "all-linear") == 0) {
        json_object_set_new(c, "target_modules", json_string(t));
    } else {
        json_t *list = json_array();
        for (const char *p = t; *p;) {
            size_t n = strcspn(p, ",");
            json_array_append_new(list, json_stringn(p, n));
            p += n + (p[n] == ',');
        }
        json_object_set_new(c, "target_modules", list);
    }
    return dump(c);
}

static char *optimizer_config(const cli_opt *o, const settings *s, uint64_t updates)
{
    json_t *c = json_object();
    if (o[O_FULL].value) json_object_set_new(c, "train", json_string("full"));
    json_object_set_new(c, "lr", json_real(s->lr));
    json_object_set_new(c, "weight_decay", json_real(s->wd));
    json_object_set_new(c, "max_grad_norm", json_real(s->gn));
    json_object_set_new(c, "loraplus_lr_ratio", json_real(s->lp));
    json_object_set_new(c, "lr_scheduler_type",
                        json_string(o[O_SCHED].value ? o[O_SCHED].value : "cosine"));
    json_object_set_new(c, "warmup_ratio", json_real(s->warm));
    json_object_set_new(c, "num_training_steps", json_integer((json_int_t)updates));
    json_object_set_new(c, "gradient_accumulation_steps", json_integer((json_int_t)s->accum));
    json_object_set_new(c, "recompute", json_boolean(o[O_RECOMP].value != NULL));
    json_object_set_new(c, "seed", json_integer((json_int_t)s->seed));
    return dump(c);
}

static char *dataset_config(const cli_opt *o, const settings *s, int train)
{
    json_t *c = json_object();
    json_object_set_new(c, "max_length", json_integer((json_int_t)s->max_len));
    json_object_set_new(c, "packing", json_boolean(train && o[O_PACK].value));
    json_object_set_new(c, "shuffle", json_boolean(train));
    json_object_set_new(c, "seed", json_integer((json_int_t)s->seed));
    if (o[O_LOSS].value) json_object_set_new(c, "loss", json_string(o[O_LOSS].value));
    return dump(c);
}

/* Loads the datasets: --data, and --eval-data or a split of --data. */
static lora_status load_data(train_run *r, const cli_opt *o, const settings *s)
{
    char *tc = dataset_config(o, s, 1), *ec = dataset_config(o, s, 0);
    lora_status st = tc && ec ? LORA_OK : LORA_ERR_OUT_OF_MEMORY;
    if (st == LORA_OK && o[O_EVAL].value) {
        st = lora_dataset_load(r->tok, o[O_DATA].value, tc, &r->train);
        if (st == LORA_OK) st = lora_dataset_load(r->tok, o[O_EVAL].value, ec, &r->eval);
    } else if (st == LORA_OK && o[O_SPLIT].value) {
        lora_dataset *all = NULL;
        st = lora_dataset_load(r->tok, o[O_DATA].value, tc, &all);
        if (st == LORA_OK) st = lora_dataset_split(all, s->split, s->seed, &r->train, &r->eval);
        lora_dataset_free(all);
    } else if (st == LORA_OK) {
        st = lora_dataset_load(r->tok, o[O_DATA].value, tc, &r->train);
    }
    free(tc);
    free(ec);
    return st;
}

static int setup(train_run *r, const cli_opt *o, const settings *s)
{
    json_t *mc = json_object();
    json_object_set_new(mc, "device", json_string(o[O_DEVICE].value ? o[O_DEVICE].value : "cpu"));
    if (s->threads) json_object_set_new(mc, "threads", json_integer((json_int_t)s->threads));
    char *mcs = dump(mc), *acs = NULL, *ocs = NULL;
    if (!mcs) return CLI_RUNTIME;
    lora_status st = lora_model_load(o[O_MODEL].value, mcs, &r->model);
    free(mcs);
    if (st == LORA_OK) st = lora_model_tokenizer(r->model, &r->tok);
    if (st == LORA_OK) st = load_data(r, o, s);
    json_t *sc = json_object();
    if (o[O_ACTS].value)
        json_object_set_new(sc, "train_activations", json_string(o[O_ACTS].value));
    char *scs = dump(sc);
    if (!scs) return CLI_RUNTIME;
    if (st == LORA_OK) st = lora_session_create(r->model, scs, &r->session);
    free(scs);
    if (st == LORA_OK && !r->full) {
        if (!(acs = adapter_config(o, s))) return CLI_RUNTIME;
        st = lora_adapter_create(r->model, acs, s->seed, &r->adapter);
        float one = 1.0f;
        if (st == LORA_OK) st = lora_session_set_adapters(r->session, &r->adapter, &one, 1);
    }
    uint64_t updates = r->epochs * (st == LORA_OK ? train_micro_per_epoch(r) : 1) / r->accum;
    if (st == LORA_OK && updates == 0) {
        free(acs);
        return cli_fail("train", CLI_USAGE, "%zu rows in batches of %llu give fewer micro-batches "
                        "than one update of --grad-accum %llu", lora_dataset_size(r->train),
                        (unsigned long long)r->batch, (unsigned long long)r->accum);
    }
    if (st == LORA_OK && !(ocs = optimizer_config(o, s, updates))) st = LORA_ERR_OUT_OF_MEMORY;
    if (st == LORA_OK) st = lora_optimizer_create(r->session, ocs, &r->opt);
    if (st == LORA_OK && r->resume) {
        uint64_t pos = 0;
        st = lora_optimizer_load_checkpoint(r->opt, r->resume, &pos);
        if (st == LORA_OK) st = lora_dataset_seek(r->train, pos);
    }
    free(acs);
    free(ocs);
    return st == LORA_OK ? CLI_OK : cli_lib_fail("train", st);
}

static void describe(const train_run *r)
{
    printf("data: %s\n", lora_dataset_stats_json(r->train));
    if (r->eval) printf("eval: %s\n", lora_dataset_stats_json(r->eval));
    if (r->adapter) {
        json_t *info = json_loads(lora_adapter_info_json(r->adapter), 0, NULL);
        char b1[32], b2[32];
        printf("trainable params: %s || all params: %s || trainable%%: %.4f\n",
               cli_thousands((uint64_t)json_integer_value(json_object_get(info, "trainable_parameters")), b1),
               cli_thousands((uint64_t)json_integer_value(json_object_get(info, "total_parameters")), b2),
               json_number_value(json_object_get(info, "trainable_ratio")));
        json_decref(info);
    } else {
        char b[32];
        printf("full fine-tuning: %s parameters\n",
               cli_thousands(lora_model_num_parameters(r->model), b));
    }
    fflush(stdout);
}

int cmd_train(int argc, char **argv)
{
    cli_opt o[O_COUNT + 1];
    for (int i = 0; i < O_COUNT; i++) o[i] = (cli_opt){names[i], is_flag(i), NULL};
    o[O_COUNT] = (cli_opt){NULL, 0, NULL};
    int rc = cli_parse("train", argc, argv, o, help);
    if (rc >= 0) return rc;
    for (int req = 0; req < 3; req++) {
        int i = (int[]){O_MODEL, O_DATA, O_OUT}[req];
        if (!o[i].value)
            return cli_fail("train", CLI_USAGE, "--%s is required (see lora train --help)", names[i]);
    }
    settings s = {1024, 16, 3, 1, 8, 42, 0, 0, 32, 0.05, 1e-4, 0, 1.0, 1, 0.03, 0};
    if ((rc = numbers(o, &s)) != 0) return rc;
    const char *loss = o[O_LOSS].value;
    if (loss && strcmp(loss, "assistant") != 0 && strcmp(loss, "all") != 0)
        return cli_fail("train", CLI_USAGE, "--loss must be assistant or all, not '%s'", loss);
    train_run r = {o[O_OUT].value, o[O_RESUME].value, s.epochs, s.batch, s.accum, s.save_every,
                   o[O_FULL].value != NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    if (mkdir(r.out, 0755) != 0 && errno != EEXIST)
        return cli_fail("train", CLI_RUNTIME, "%s: %s", r.out, strerror(errno));
    if ((rc = setup(&r, o, &s)) == CLI_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/metrics.jsonl", r.out);
        if (!r.resume) remove(path); /* a fresh run starts a fresh log */
        if (!(r.log = fopen(path, "a")))
            rc = cli_fail("train", CLI_RUNTIME, "%s: %s", path, strerror(errno));
    }
    if (rc == CLI_OK) {
        describe(&r);
        rc = train_loop(&r);
        if (rc == CLI_OK && r.full)
            for (const char *const *f = (const char *const[]){"tokenizer.json",
                     "tokenizer_config.json", "generation_config.json", NULL}; *f && rc == CLI_OK; f++)
                if (cli_copy_if_present(o[O_MODEL].value, r.out, *f) != 0)
                    rc = cli_fail("train", CLI_RUNTIME, "%s: %s", *f, strerror(errno));
        if (rc == CLI_OK) printf("wrote %s (%s, metrics.jsonl, loss.svg)\n", r.out,
                                 r.full ? "config.json, model.safetensors" : "PEFT adapter");
    }
    if (r.log) fclose(r.log);
    lora_optimizer_free(r.opt);
    lora_dataset_free(r.train);
    lora_dataset_free(r.eval);
    lora_adapter_free(r.adapter);
    lora_session_free(r.session);
    lora_tokenizer_free(r.tok);
    lora_model_free(r.model);
    return rc;
}
