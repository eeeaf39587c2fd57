/* hotswap -- a host program that keeps one base model in memory and serves requests from
 * several threads, each request naming the LoRA adapter to answer with. Adapters are swapped
 * while requests are in flight: halfway through, every adapter is reloaded from its folder and
 * the old copy unloaded. The base weights are never touched or copied.
 *
 *   cc hotswap.c $(pkg-config --cflags --libs lora) -lpthread -o hotswap
 *   ./hotswap MODEL_DIR ADAPTER_DIR [ADAPTER_DIR ...]
 *
 * At the end every answer is checked against the same request served alone, one at a time.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lora.h>

#define THREADS 4
#define REQUESTS 24
#define MAX_ADAPTERS 8
#define NEW_TOKENS 8

/* The registry of loaded adapters: name -> handle. Index 0 is "base" (no adapter). */
static struct {
    pthread_mutex_t lock;
    lora_adapter *adapter[MAX_ADAPTERS + 1];
    const char *dir[MAX_ADAPTERS + 1];
    int n;
} reg = {PTHREAD_MUTEX_INITIALIZER, {NULL}, {"base"}, 1};

typedef struct request {
    int adapter;                 /* registry index */
    int32_t prompt[4];
    int32_t answer[NEW_TOKENS];  /* filled by a worker */
    size_t n_answer;
} request;

static request requests[REQUESTS];
static atomic_int next_request;
static lora_model *model;

static int fail(const char *what, lora_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, lora_status_string(st), lora_last_error());
    return 1;
}

/* Serves one request in session s. The adapter is attached under the registry's lock: from then
 * on the session holds its own reference, so unloading the registry's copy cannot pull it away
 * mid-request. */
static lora_status serve(lora_session *s, lora_sampler *smp, request *r)
{
    float one = 1.0f;
    pthread_mutex_lock(&reg.lock);
    lora_adapter *a = reg.adapter[r->adapter];
    lora_status st = lora_session_set_adapters(s, a ? &a : NULL, &one, a ? 1 : 0);
    pthread_mutex_unlock(&reg.lock);
    lora_session_reset(s);
    if (st == LORA_OK)
        st = lora_generate(s, smp, r->prompt, 4, r->answer, NEW_TOKENS, &r->n_answer, NULL, NULL);
    return st;
}

static void *worker(void *arg)
{
    lora_session *s = NULL;
    lora_sampler *smp = NULL;
    lora_status st = lora_session_create(model, "{\"max_context\": 64}", &s);
    if (st == LORA_OK) st = lora_sampler_create("{\"max_new_tokens\": 8}", &smp);
    for (int i; st == LORA_OK && (i = atomic_fetch_add(&next_request, 1)) < REQUESTS;)
        st = serve(s, smp, &requests[i]);
    if (st != LORA_OK) fail("worker", st);
    lora_sampler_free(smp);
    lora_session_free(s);
    *(lora_status *)arg = st;
    return NULL;
}

/* Reloads every adapter from its folder and unloads the copy that was serving. */
static lora_status reload_all(void)
{
    for (int i = 1; i < reg.n; i++) {
        lora_adapter *fresh;
        lora_status st = lora_adapter_load(model, reg.dir[i], &fresh);
        if (st != LORA_OK) return st;
        pthread_mutex_lock(&reg.lock);
        lora_adapter *old = reg.adapter[i];
        reg.adapter[i] = fresh;
        pthread_mutex_unlock(&reg.lock);
        lora_adapter_free(old); /* sessions still using it keep it alive until they detach */
    }
    return LORA_OK;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc - 2 > MAX_ADAPTERS) {
        fprintf(stderr, "usage: %s MODEL_DIR ADAPTER_DIR [ADAPTER_DIR ...] (at most %d)\n",
                argv[0], MAX_ADAPTERS);
        return 2;
    }
    lora_status st = lora_model_load(argv[1], "{\"threads\": 1}", &model);
    if (st != LORA_OK) return fail("lora_model_load", st);
    for (int i = 2; i < argc; i++, reg.n++) {
        reg.dir[reg.n] = argv[i];
        if ((st = lora_adapter_load(model, argv[i], &reg.adapter[reg.n])) != LORA_OK)
            return fail(argv[i], st);
    }
    int32_t vocab = (int32_t)lora_model_vocab_size(model);
    for (int i = 0; i < REQUESTS; i++) {
        requests[i].adapter = i % reg.n;
        for (int t = 0; t < 4; t++) requests[i].prompt[t] = (int32_t)((i * 7 + t * 13 + 1) % vocab);
    }

    pthread_t th[THREADS];
    lora_status th_st[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, worker, &th_st[i]);
    while (atomic_load(&next_request) < REQUESTS / 2) /* swap while requests are in flight */
        sched_yield();
    lora_status reload_st = reload_all();
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    int rc = reload_st != LORA_OK ? fail("reload", reload_st) : 0;
    for (int i = 0; i < THREADS; i++) rc |= th_st[i] != LORA_OK;

    /* The same requests, one at a time in one session: the answers must be identical. */
    lora_session *s = NULL;
    lora_sampler *smp = NULL;
    int same = 0;
    if (rc == 0 && (st = lora_session_create(model, "{\"max_context\": 64}", &s)) == LORA_OK &&
        (st = lora_sampler_create("{\"max_new_tokens\": 8}", &smp)) == LORA_OK) {
        for (int i = 0; i < REQUESTS && st == LORA_OK; i++) {
            request alone = requests[i];
            st = serve(s, smp, &alone);
            int eq = alone.n_answer == requests[i].n_answer &&
                     memcmp(alone.answer, requests[i].answer, alone.n_answer * sizeof(int32_t)) == 0;
            same += eq;
            printf("request %2d [%s]:", i, reg.dir[requests[i].adapter]);
            for (size_t t = 0; t < requests[i].n_answer; t++) printf(" %d", (int)requests[i].answer[t]);
            printf("%s\n", eq ? "" : "   <- differs from the request served alone");
        }
        if (st != LORA_OK) rc = fail("sequential check", st);
    }
    if (rc == 0)
        printf("%d requests on %d threads over %d adapters (reloaded mid-way): %d of %d equal the "
               "sequential answers\n", REQUESTS, THREADS, reg.n - 1, same, REQUESTS);
    lora_sampler_free(smp);
    lora_session_free(s);
    for (int i = 1; i < reg.n; i++) lora_adapter_free(reg.adapter[i]);
    lora_model_free(model);
    return rc == 0 && same == REQUESTS ? 0 : 1;
}
