/* lora bench --mode train: LoRA training speed on random tokens. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "args.h"
#include "bench.h"

double bench_peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

lora_adapter *bench_adapter(lora_model *model, uint64_t rank)
{
    char cfg[160];
    snprintf(cfg, sizeof cfg,
             "{\"r\": %llu, \"lora_alpha\": %llu, \"target_modules\": \"all-linear\", "
             "\"init_lora_weights\": false}",
             (unsigned long long)rank, 2 * (unsigned long long)rank);
    lora_adapter *a = NULL;
    return lora_adapter_create(model, cfg, 1, &a) == LORA_OK ? a : NULL;
}

/* The model's GPU ("cuda:N") into gpu, or "" for a model on the CPU. */
static void model_gpu(const lora_model *model, char *gpu, size_t cap)
{
    json_t *info = json_loads(lora_model_info_json(model), 0, NULL);
    const char *dev = json_string_value(json_object_get(info, "device"));
    snprintf(gpu, cap, "%s", dev && strncmp(dev, "cuda", 4) == 0 ? dev : "");
    json_decref(info);
}

/* Random ids (splitmix64, fixed seed): speed does not depend on the values. */
static void random_ids(int32_t *ids, size_t n, size_t vocab)
{
    uint64_t x = 0x7261696eu;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (x += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        ids[i] = (int32_t)((z ^ (z >> 31)) % vocab);
    }
}

int bench_train(const char *dir, const char *device, uint64_t threads, uint64_t seq,
                uint64_t batch, uint64_t steps, uint64_t rank)
{
    char cfg[128];
    if (threads)
        snprintf(cfg, sizeof cfg, "{\"device\":\"%s\",\"threads\":%llu}", device,
                 (unsigned long long)threads);
    else
        snprintf(cfg, sizeof cfg, "{\"device\":\"%s\"}", device);
    lora_model *model = NULL;
    lora_session *session = NULL;
    lora_adapter *adapter = NULL;
    lora_optimizer *opt = NULL;
    size_t n = (size_t)(seq * batch);
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids)
        return cli_fail("bench", CLI_RUNTIME, "out of memory");
    float one = 1.0f, loss = 0.0f;
    lora_status st = lora_model_load(dir, cfg, &model);
    if (!st)
        st = lora_session_create(model, NULL, &session);
    if (!st && !(adapter = bench_adapter(model, rank)))
        st = LORA_ERR_CONFIG;
    if (!st)
        st = lora_session_set_adapters(session, &adapter, &one, 1);
    if (!st)
        st = lora_optimizer_create(session, "{\"lr\": 1e-4}", &opt);
    double t0 = 0, t1 = 0;
    char gpu[40] = "";
    if (!st) {
        random_ids(ids, n, lora_model_vocab_size(model));
        st = lora_train_step(opt, ids, ids, batch, seq, &loss); /* warm-up */
        model_gpu(model, gpu, sizeof gpu);
        if (gpu[0]) /* the peak of the timed steps */
            (void)lora_device_memory(gpu, NULL, NULL, 1);
        t0 = cli_now();
        for (uint64_t i = 0; !st && i < steps; i++)
            st = lora_train_step(opt, ids, ids, batch, seq, &loss);
        t1 = cli_now();
    }
    int rc = CLI_OK;
    if (st)
        rc = cli_lib_fail("bench", st);
    else {
        printf("model=%s parameters=%llu device=%s seq=%llu batch=%llu steps=%llu rank=%llu "
               "loss=%.4f\n", dir, (unsigned long long)lora_model_num_parameters(model), device,
               (unsigned long long)seq, (unsigned long long)batch, (unsigned long long)steps,
               (unsigned long long)rank, loss);
        printf("step_ms=%.1f peak_rss_mib=%.1f\n", 1e3 * (t1 - t0) / (double)steps,
               bench_peak_rss_mib());
        uint64_t peak;
        if (gpu[0] && lora_device_memory(gpu, NULL, &peak, 0) == LORA_OK)
            printf("peak_device_mib=%.1f\n", (double)peak / (1024.0 * 1024.0));
        printf("train_tokens_per_s=%.1f\n", (double)(n * steps) / (t1 - t0));
    }
    lora_optimizer_free(opt);
    lora_adapter_free(adapter);
    lora_session_free(session);
    lora_model_free(model);
    free(ids);
    return rc;
}
