/* lora eval --answers: accuracy of greedy answers and pass@k over sampled rollouts, on a JSONL
 * of {"question", "answer"} lines, each question asked as one user message. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "eval.h"
#include "gen.h"

void eval_qa_free(eval_qa *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->q[i]), free(d->a[i]);
    free(d->q), free(d->a);
}

int eval_read_qa(const char *cmd, const char *path, eval_qa *d)
{
    FILE *f = fopen(path, "r");
    if (!f) return cli_fail(cmd, CLI_RUNTIME, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0, lineno = 0, room = 0;
    int rc = CLI_OK;
    while (rc == CLI_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        json_t *q = json_object_get(o, "question"), *a = json_object_get(o, "answer");
        if (!json_is_string(q) || !(json_is_string(a) || json_is_number(a))) {
            rc = cli_fail(cmd, CLI_RUNTIME, "%s:%zu: %s", path, lineno,
                          o ? "needs a \"question\" string and an \"answer\"" : err.text);
        } else {
            if (d->n == room) {
                room = room ? 2 * room : 64;
                char **nq = realloc(d->q, room * sizeof *nq);
                if (nq) d->q = nq;
                char **na = realloc(d->a, room * sizeof *na);
                if (na) d->a = na;
                if (!nq || !na) rc = cli_fail(cmd, CLI_RUNTIME, "out of memory");
            }
            if (rc == CLI_OK) {
                d->q[d->n] = strdup(json_string_value(q));
                d->a[d->n] = json_is_string(a) ? strdup(json_string_value(a))
                                               : json_dumps(a, JSON_ENCODE_ANY);
                d->n++;
            }
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (rc == CLI_OK && d->n == 0) rc = cli_fail(cmd, CLI_RUNTIME, "%s: no questions", path);
    return rc;
}

/* a and b equal once the whitespace around each is set aside */
static int same_trimmed(const char *a, const char *b)
{
    static const char ws[] = " \t\r\n";
    a += strspn(a, ws);
    b += strspn(b, ws);
    size_t na = strlen(a), nb = strlen(b);
    while (na && strchr(ws, a[na - 1])) na--;
    while (nb && strchr(ws, b[nb - 1])) nb--;
    return na == nb && memcmp(a, b, na) == 0;
}

int eval_ask(const char *cmd, cli_stack *s, lora_sampler *smp, size_t max_new, const char *q,
             const char *ref, int thinking, int exact, char **reply, int *correct)
{
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", q);
    char *prompt = NULL, *ans = NULL;
    int rc = cli_render(cmd, s->tok, msgs, thinking, &prompt);
    json_decref(msgs);
    if (rc == CLI_OK) rc = cli_generate_text(cmd, s, smp, max_new, prompt, NULL, reply);
    lora_string_free(prompt);
    lora_status st = LORA_OK;
    char *want = NULL;
    if (rc == CLI_OK && exact) {
        *correct = same_trimmed(*reply, ref);
        return CLI_OK;
    }
    if (rc == CLI_OK) st = lora_answer_extract(*reply, strlen(*reply), &ans);
    /* a reference may be a worked solution (GSM8K's "... #### 72"): its answer counts */
    if (rc == CLI_OK && st == LORA_OK) st = lora_answer_extract(ref, strlen(ref), &want);
    if (rc == CLI_OK && st == LORA_OK) st = lora_answer_match(ans, want ? want : ref, correct);
    lora_string_free(ans);
    lora_string_free(want);
    return rc != CLI_OK ? rc : st != LORA_OK ? cli_lib_fail(cmd, st) : CLI_OK;
}

static int make_sampler(const char *cfg, lora_sampler **out)
{
    lora_status st = lora_sampler_create(cfg, out);
    return st == LORA_OK ? CLI_OK : cli_lib_fail("eval", st);
}

int eval_answers(cli_stack *s, const eval_answer_opts *o)
{
    eval_qa d = {NULL, NULL, 0};
    int rc = eval_read_qa("eval", o->data, &d);
    uint8_t *outcomes = rc == CLI_OK && o->rollouts ? calloc(d.n * o->rollouts, 1) : NULL;
    if (rc == CLI_OK && o->rollouts && !outcomes) rc = cli_fail("eval", CLI_RUNTIME, "out of memory");
    char cfg[1024];
    lora_sampler *greedy = NULL, *sampled = NULL;
    snprintf(cfg, sizeof cfg, "{\"max_new_tokens\": %zu%s}", o->max_new, o->eos_json);
    if (rc == CLI_OK) rc = make_sampler(cfg, &greedy);
    snprintf(cfg, sizeof cfg, "{\"max_new_tokens\": %zu, \"do_sample\": true, \"temperature\": "
             "%g, \"top_p\": %g, \"seed\": %llu%s}", o->max_new, o->temperature, o->top_p,
             (unsigned long long)o->seed, o->eos_json);
    if (rc == CLI_OK && o->rollouts) rc = make_sampler(cfg, &sampled);
    size_t right = 0;
    for (size_t i = 0; rc == CLI_OK && i < d.n; i++) {
        char *reply = NULL;
        int ok = 0;
        rc = eval_ask("eval", s, greedy, o->max_new, d.q[i], d.a[i], o->thinking, o->exact, &reply,
                         &ok);
        right += (size_t)ok;
        if (rc == CLI_OK && i < o->show && !o->json)
            printf("Q: %s\nA: %s\n   [%s; expected %s]\n", d.q[i], reply,
                   ok ? "correct" : "wrong", d.a[i]);
        free(reply);
        for (size_t k = 0; rc == CLI_OK && k < o->rollouts; k++) {
            reply = NULL;
            rc = eval_ask("eval", s, sampled, o->max_new, d.q[i], d.a[i], o->thinking, o->exact, &reply,
                         &ok);
            outcomes[i * o->rollouts + k] = (uint8_t)ok;
            free(reply);
        }
    }
    char *table = NULL, *table_json = NULL;
    if (rc == CLI_OK && o->rollouts) {
        lora_status st = lora_pass_at_k_table(outcomes, d.n, o->rollouts, &table_json, &table);
        if (st != LORA_OK) rc = cli_lib_fail("eval", st);
    }
    if (rc == CLI_OK && o->json) {
        printf("{\"questions\": %zu, \"greedy_correct\": %zu, \"accuracy\": %.6f", d.n, right,
               (double)right / (double)d.n);
        if (table_json) printf(", \"rollouts\": %s", table_json);
        printf("}\n");
    } else if (rc == CLI_OK) {
        printf("questions: %zu\ngreedy accuracy: %.4f (%zu correct)\n", d.n,
               (double)right / (double)d.n, right);
        if (table)
            printf("%zu rollouts per question at temperature %g, top-p %g:\n%s", o->rollouts,
                   o->temperature, o->top_p, table);
    }
    lora_string_free(table);
    lora_string_free(table_json);
    lora_sampler_free(greedy);
    lora_sampler_free(sampled);
    free(outcomes);
    eval_qa_free(&d);
    return rc;
}
