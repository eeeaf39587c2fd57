/* selftrain -- rejection-sampling self-training with the C API: the model answers questions
 * whose answers can be checked, the correct answers become its training data, and a LoRA
 * adapter learns from them, iteration after iteration.
 *
 *   cc selftrain.c $(pkg-config --cflags --libs lora) -o selftrain
 *   ./selftrain MODEL_DIR QUESTIONS.jsonl OUT_DIR [ITERATIONS [ROLLOUTS]]
 *
 * QUESTIONS.jsonl: {"question": "What is 2 + 3?", "answer": "5"} per line; the first half
 * trains, the second half evaluates. An answer is the reply's last \boxed{...} (else its last
 * number). `lora selftrain` is the same loop with more options.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lora.h>

#define MAX_Q 512
#define MAX_NEW 64

static char *questions[MAX_Q], *answers[MAX_Q];

static int fail(const char *what, lora_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, lora_status_string(st), lora_last_error());
    return 1;
}

/* The value of "key": "..." in a JSON line (the questions file is simple: no escapes). */
static char *field(const char *line, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(line, pat), *e = p ? strchr(p + strlen(pat), '"') : NULL;
    if (!e) return NULL;
    p += strlen(pat);
    char *v = malloc((size_t)(e - p) + 1);
    memcpy(v, p, (size_t)(e - p));
    v[e - p] = '\0';
    return v;
}

/* s as a JSON string literal */
static void put_json(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* One reply to question i; returns 1 when its answer is right, 0 when not, -1 on error. */
static int ask(lora_session *s, lora_sampler *smp, lora_tokenizer *tok, int i, char **reply)
{
    char msgs[1024], *prompt = NULL, *found = NULL;
    int32_t ids[512], out[MAX_NEW];
    size_t n = 0, n_out = 0, len = 0;
    int match = 0;
    snprintf(msgs, sizeof msgs, "[{\"role\": \"user\", \"content\": \"%s\"}]", questions[i]);
    lora_status st = lora_chat_render(tok, msgs, "{\"add_generation_prompt\": true}", &prompt);
    if (st == LORA_OK) st = lora_tokenizer_encode(tok, prompt, strlen(prompt), 0, ids, 512, &n);
    lora_session_reset(s);
    if (st == LORA_OK) st = lora_generate(s, smp, ids, n, out, MAX_NEW, &n_out, NULL, NULL);
    if (st == LORA_OK) st = lora_tokenizer_decode(tok, out, n_out, LORA_DECODE_SKIP_SPECIAL, reply, &len);
    if (st == LORA_OK) st = lora_answer_extract(*reply, len, &found);
    if (st == LORA_OK) st = lora_answer_match(found, answers[i], &match);
    lora_string_free(prompt);
    lora_string_free(found);
    return st == LORA_OK ? match : (fail("ask", st), -1);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR QUESTIONS.jsonl OUT_DIR [ITERATIONS [ROLLOUTS]]\n",
                argv[0]);
        return 2;
    }
    int iterations = argc > 4 ? atoi(argv[4]) : 3, rollouts = argc > 5 ? atoi(argv[5]) : 4;
    FILE *f = fopen(argv[2], "r");
    if (!f) return perror(argv[2]), 1;
    char line[2048];
    int n_q = 0;
    while (n_q < MAX_Q && fgets(line, sizeof line, f))
        if ((questions[n_q] = field(line, "question")) && (answers[n_q] = field(line, "answer")))
            n_q++;
    fclose(f);
    int n_train = n_q / 2;
    mkdir(argv[3], 0755);

    lora_model *model = NULL;
    lora_tokenizer *tok = NULL;
    lora_session *s = NULL;
    lora_adapter *adapter = NULL;
    lora_sampler *sampled = NULL, *greedy = NULL;
    float one = 1.0f;
    lora_status st;
    int32_t eos = -1;
    if ((st = lora_model_load(argv[1], NULL, &model)) != LORA_OK ||
        (st = lora_model_tokenizer(model, &tok)) != LORA_OK ||
        (st = lora_session_create(model, NULL, &s)) != LORA_OK ||
        (st = lora_adapter_create(model, "{\"r\": 16, \"lora_alpha\": 32, \"target_modules\": "
                                  "\"all-linear\"}", 1, &adapter)) != LORA_OK ||
        (st = lora_session_set_adapters(s, &adapter, &one, 1)) != LORA_OK)
        return fail("setup", st);
    lora_tokenizer_token_id(tok, "<|im_end|>", &eos);
    char cfg[200];
    snprintf(cfg, sizeof cfg, "{\"do_sample\": true, \"temperature\": 0.8, \"max_new_tokens\": %d, "
             "\"eos_token_id\": %d}", MAX_NEW, (int)eos);
    if ((st = lora_sampler_create(cfg, &sampled)) != LORA_OK) return fail("sampler", st);
    snprintf(cfg, sizeof cfg, "{\"max_new_tokens\": %d, \"eos_token_id\": %d}", MAX_NEW, (int)eos);
    if ((st = lora_sampler_create(cfg, &greedy)) != LORA_OK) return fail("sampler", st);

    printf("iteration  kept  held-out accuracy\n");
    int rc = 0;
    for (int it = 0; rc == 0 && it <= iterations; it++) {
        int kept = 0, right = 0;
        char path[4096];
        snprintf(path, sizeof path, "%s/iter_%d.jsonl", argv[3], it);
        /* 1. rollouts on the training half; the correct ones are kept as conversations */
        FILE *data = it ? fopen(path, "w") : NULL;
        for (int i = 0; data && rc == 0 && i < n_train; i++)
            for (int k = 0; rc == 0 && k < rollouts; k++) {
                char *reply = NULL;
                int ok = ask(s, sampled, tok, i, &reply);
                if (ok < 0) rc = 1;
                else if (ok) {
                    kept++;
                    fprintf(data, "{\"messages\": [{\"role\": \"user\", \"content\": ");
                    put_json(data, questions[i]);
                    fprintf(data, "}, {\"role\": \"assistant\", \"content\": ");
                    put_json(data, reply);
                    fprintf(data, "}]}\n");
                }
                lora_string_free(reply);
            }
        if (data) fclose(data);
        /* 2. one epoch of training on them */
        lora_dataset *ds = NULL;
        lora_optimizer *opt = NULL;
        static int32_t ids[8 * 256], labels[8 * 256], pos[8 * 256];
        if (rc == 0 && kept) {
            if ((st = lora_dataset_load(tok, path, "{\"max_length\": 256}", &ds)) != LORA_OK ||
                (st = lora_optimizer_create(s, "{\"lr\": 1e-3, \"weight_decay\": 0.0}", &opt)) !=
                    LORA_OK)
                rc = fail("training setup", st);
            for (size_t b = 0; rc == 0 && b < (lora_dataset_size(ds) + 7) / 8; b++) {
                size_t seq, rows;
                if ((st = lora_dataset_next_batch(ds, 8, ids, labels, pos, 8 * 256, &seq, &rows)) ||
                    (st = lora_train_step_packed(opt, ids, labels, pos, rows, seq, NULL)))
                    rc = fail("training", st);
            }
        }
        lora_optimizer_free(opt);
        lora_dataset_free(ds);
        /* 3. greedy accuracy on the held-out half */
        for (int i = n_train; rc == 0 && i < n_q; i++) {
            char *reply = NULL;
            int ok = ask(s, greedy, tok, i, &reply);
            rc = ok < 0;
            right += ok > 0;
            lora_string_free(reply);
        }
        if (rc == 0) printf("%9d  %4d  %.3f\n", it, kept, (double)right / (n_q - n_train));
    }
    snprintf(line, sizeof line, "%s/adapter", argv[3]);
    if (rc == 0 && (st = lora_adapter_save(adapter, line)) != LORA_OK) rc = fail("save", st);
    lora_sampler_free(sampled);
    lora_sampler_free(greedy);
    lora_adapter_free(adapter);
    lora_session_free(s);
    lora_tokenizer_free(tok);
    lora_model_free(model);
    for (int i = 0; i < n_q; i++) free(questions[i]), free(answers[i]);
    return rc;
}
