/* lora bench -- decoding speed: batch 1, greedy, after a 16-token prompt. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "bench.h"

#define PROMPT_LEN 16

static const char help[] =
    "usage: lora bench --model DIR --mode decode|train [options]\n"
    "\n"
    "decode: loads the model, appends a 16-token prompt of fixed pseudo-random ids, then\n"
    "greedily generates --new tokens (no end-of-sequence stop) after one untimed warm-up run.\n"
    "Prints prefill_ms= (prompt plus first token) and decode_tokens_per_s= (the tokens after\n"
    "the first, one model step each).\n"
    "train: LoRA of rank --rank (default 16, alpha 2r) on all seven projections, AdamW, random\n"
    "tokens; one untimed warm-up step, then --steps timed steps of --batch x --seq tokens.\n"
    "Prints step_ms=, peak_rss_mib=, on a GPU peak_device_mib= (what liblora held there at\n"
    "most during the timed steps), and train_tokens_per_s=.\n"
    "\n"
    "  --model DIR            checkpoint folder (required)\n"
    "  --mode decode|train    what to measure (required)\n"
    "  --new N                tokens to generate, >= 2 (default 128)\n"
    "  --threads N            worker threads (default: all online CPUs)\n"
    "  --device D             cpu (default), auto, cuda or cuda:N\n"
    "  --rank R               decode: with an unmerged random LoRA adapter of rank R on all\n"
    "                         seven projections; train: the adapter's rank (default 16)\n"
    "  --seq N, --batch N, --steps N   train mode only (defaults 256, 4, 5)\n";

typedef struct timing {
    double start, first, last;
    size_t seen;
} timing;

static int on_token(int32_t token, void *user)
{
    timing *t = user;
    double now = cli_now();
    if (t->seen++ == 0) t->first = now;
    t->last = now;
    return 0;
}

/* Fixed pseudo-random prompt ids in 0..vocab-1 (splitmix64, fixed seed). */
static void make_prompt(int32_t *ids, size_t vocab)
{
    uint64_t x = 0x4c6f5241u;
    for (size_t i = 0; i < PROMPT_LEN; i++) {
        uint64_t z = (x += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        ids[i] = (int32_t)((z ^ (z >> 31)) % vocab);
    }
}

static int model_threads(const lora_model *model)
{
    json_t *info = json_loads(lora_model_info_json(model), 0, NULL);
    int n = (int)json_integer_value(json_object_get(info, "threads"));
    json_decref(info);
    return n;
}

static int decode(const char *dir, const char *device, uint64_t threads, uint64_t n_new,
                  uint64_t rank)
{
    json_t *opts = json_pack("{s:s}", "device", device);
    if (threads) json_object_set_new(opts, "threads", json_integer((json_int_t)threads));
    char *model_cfg = json_dumps(opts, JSON_COMPACT), cfg[64], scfg[96];
    json_decref(opts);
    lora_model *model = NULL;
    lora_session *session = NULL;
    lora_sampler *sampler = NULL;
    int32_t prompt[PROMPT_LEN], *out = malloc(n_new * sizeof *out);
    timing t = {0};
    size_t n_out = 0;
    lora_status st = out && model_cfg ? lora_model_load(dir, model_cfg, &model)
                                      : LORA_ERR_OUT_OF_MEMORY;
    free(model_cfg);
    if (st == LORA_OK) {
        snprintf(cfg, sizeof cfg, "{\"max_context\":%llu}",
                 (unsigned long long)(PROMPT_LEN + n_new));
        snprintf(scfg, sizeof scfg, "{\"do_sample\":false,\"max_new_tokens\":%llu}",
                 (unsigned long long)n_new);
        make_prompt(prompt, lora_model_vocab_size(model));
        st = lora_session_create(model, cfg, &session);
    }
    lora_adapter *adapter = NULL;
    float one = 1.0f;
    if (st == LORA_OK && rank && !(adapter = bench_adapter(model, rank))) st = LORA_ERR_CONFIG;
    if (st == LORA_OK && adapter) st = lora_session_set_adapters(session, &adapter, &one, 1);
    if (st == LORA_OK) st = lora_sampler_create(scfg, &sampler);
    if (st == LORA_OK) /* warm-up */
        st = lora_generate(session, sampler, prompt, PROMPT_LEN, out, n_new, &n_out, NULL, NULL);
    if (st == LORA_OK) {
        lora_session_reset(session);
        t.start = cli_now();
        st = lora_generate(session, sampler, prompt, PROMPT_LEN, out, n_new, &n_out, on_token,
                           &t);
    }
    int rc = CLI_OK;
    if (st != LORA_OK) {
        rc = cli_lib_fail("bench", st);
    } else if (t.seen != n_new || n_out != n_new) {
        rc = cli_fail("bench", CLI_RUNTIME, "generation stopped after %zu of %llu tokens",
                      n_out, (unsigned long long)n_new);
    } else {
        printf("model=%s parameters=%llu device=%s threads=%d prompt_tokens=%d new_tokens=%llu "
               "lora_rank=%llu\n", dir, (unsigned long long)lora_model_num_parameters(model),
               device, model_threads(model), PROMPT_LEN, (unsigned long long)n_new,
               (unsigned long long)rank);
        printf("prefill_ms=%.1f\n", 1e3 * (t.first - t.start));
        printf("decode_tokens_per_s=%.1f\n", (double)(n_new - 1) / (t.last - t.first));
    }
    lora_sampler_free(sampler);
    lora_adapter_free(adapter);
    lora_session_free(session);
    lora_model_free(model);
    free(out);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    cli_opt opts[] = {{"model", 0, NULL}, {"mode", 0, NULL},    {"new", 0, NULL},
                      {"threads", 0, NULL}, {"device", 0, NULL}, {"rank", 0, NULL},
                      {"seq", 0, NULL},   {"batch", 0, NULL},   {"steps", 0, NULL},
                      {NULL, 0, NULL}};
    int rc = cli_parse("bench", argc, argv, opts, help);
    if (rc >= 0) return rc;
    const char *model = cli_get(opts, "model"), *mode = cli_get(opts, "mode");
    const char *device = cli_get(opts, "device") ? cli_get(opts, "device") : "cpu";
    if (!model) return cli_fail("bench", CLI_USAGE, "--model is required (see lora bench --help)");
    if (!mode || (strcmp(mode, "decode") != 0 && strcmp(mode, "train") != 0))
        return cli_fail("bench", CLI_USAGE, "--mode must be decode or train");
    static const char *const counts[] = {"new", "threads", "rank", "seq", "batch", "steps"};
    uint64_t v[6] = {128, 0, 0, 0, 0, 0};
    for (int i = 0; i < 6; i++) {
        const char *s = cli_get(opts, counts[i]);
        if (s && (rc = cli_uint("bench", counts[i], s, i == 0 ? 2 : 1, 1u << 20, &v[i])) != 0)
            return rc;
    }
    if (strcmp(mode, "train") == 0)
        return bench_train(model, device, v[1], v[3] ? v[3] : 256, v[4] ? v[4] : 4,
                           v[5] ? v[5] : 5, v[2] ? v[2] : 16);
    for (int i = 3; i < 6; i++)
        if (v[i])
            return cli_fail("bench", CLI_USAGE, "--%s applies to --mode train only", counts[i]);
    return decode(model, device, v[1], v[0], v[2]);
}
