/* One leg of the cross-process resume test (tests/run_resume.sh):
 *   resume_run MODEL OUT straight N          N steps from the start, then the adapter to OUT
 *   resume_run MODEL CKPT first K            K steps from the start, then a checkpoint
 *   resume_run MODEL CKPT rest K N OUT       load the checkpoint, steps K..N-1, the adapter to OUT
 * Every run builds its handles afresh, so the last leg is a new process that has only the
 * checkpoint. The adapter is written as raw float32 bytes of its PEFT safetensors save. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"

#define T 12

static const char adapter_cfg[] = "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": "
                                  "\"all-linear\", \"lora_dropout\": 0.1}";
static const char opt_cfg[] = "{\"lr\": 0.01, \"lr_scheduler_type\": \"cosine\", "
                              "\"warmup_steps\": 2, \"num_training_steps\": 8, "
                              "\"max_grad_norm\": 1.0, \"loraplus_lr_ratio\": 4, "
                              "\"gradient_accumulation_steps\": 2, \"seed\": 3}";

static int die(const char *what)
{
    fprintf(stderr, "resume_run: %s: %s\n", what, lora_last_error());
    return 1;
}

/* Step s's two micro-batches, a pure function of s (the data position). */
static int run_steps(lora_optimizer *o, int from, int to, int32_t vocab)
{
    for (int s = from; s < to; s++)
        for (int micro = 0; micro < 2; micro++) {
            int32_t ids[T];
            for (int t = 0; t < T; t++)
                ids[t] = (int32_t)((s * 131 + micro * 71 + t * 37 + (t * t) % 5) % vocab);
            if (lora_train_step(o, ids, ids, 1, T, NULL) != LORA_OK)
                return die("lora_train_step");
        }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5)
        return fprintf(stderr, "usage: see the comment in tests/resume/resume_run.c\n"), 2;
    const char *model_dir = argv[1], *path = argv[2], *mode = argv[3];
    lora_model *m;
    lora_session *s;
    lora_adapter *a;
    lora_optimizer *o;
    if (lora_model_load(model_dir, "{\"threads\": 2}", &m) != LORA_OK)
        return die("lora_model_load");
    if (lora_session_create(m, NULL, &s) != LORA_OK ||
        lora_adapter_create(m, adapter_cfg, strcmp(mode, "rest") ? 9 : 777, &a) != LORA_OK)
        return die("setup");
    float one = 1.0f;
    if (lora_session_set_adapters(s, &a, &one, 1) != LORA_OK ||
        lora_optimizer_create(s, opt_cfg, &o) != LORA_OK)
        return die("optimizer");
    int32_t vocab = (int32_t)lora_model_vocab_size(m);
    int rc = 0;
    const char *out = NULL;
    if (strcmp(mode, "straight") == 0) {
        rc = run_steps(o, 0, atoi(argv[4]), vocab);
        out = path;
    } else if (strcmp(mode, "first") == 0) {
        int k = atoi(argv[4]);
        rc = run_steps(o, 0, k, vocab);
        if (!rc && lora_optimizer_save_checkpoint(o, path, (uint64_t)k) != LORA_OK)
            rc = die("lora_optimizer_save_checkpoint");
    } else if (strcmp(mode, "rest") == 0 && argc == 7) {
        uint64_t pos;
        if (lora_optimizer_load_checkpoint(o, path, &pos) != LORA_OK)
            rc = die("lora_optimizer_load_checkpoint");
        else if (pos != (uint64_t)atoi(argv[4]))
            rc = (fprintf(stderr, "resume_run: data position %llu\n", (unsigned long long)pos), 1);
        else
            rc = run_steps(o, (int)pos, atoi(argv[5]), vocab);
        out = argv[6];
    } else
        rc = (fprintf(stderr, "resume_run: bad mode %s\n", mode), 2);
    if (!rc && out && lora_adapter_save(a, out) != LORA_OK)
        rc = die("lora_adapter_save");
    lora_optimizer_free(o);
    lora_adapter_free(a);
    lora_session_free(s);
    lora_model_free(m);
    return rc;
}
