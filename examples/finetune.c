/* finetune -- supervised fine-tuning with LoRA: a JSONL of conversations, rendered with the
 * model's chat template, loss on the assistant's tokens; the result is a PEFT adapter folder
 * that PEFT, vLLM and liblora load.
 *
 *   cc finetune.c $(pkg-config --cflags --libs lora) -o finetune
 *   ./finetune MODEL_DIR train.jsonl OUT_DIR [EPOCHS]
 *
 * Each line of train.jsonl: {"messages": [{"role": "user", "content": "..."},
 *                                         {"role": "assistant", "content": "..."}]}
 */
#include <stdio.h>
#include <stdlib.h>

#include <lora.h>

#define BATCH 4
#define MAX_LENGTH 512

static int fail(const char *what, lora_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, lora_status_string(st), lora_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR TRAIN.jsonl OUT_DIR [EPOCHS]\n", argv[0]);
        return 2;
    }
    int epochs = argc > 4 ? atoi(argv[4]) : 3;
    lora_model *model = NULL;
    lora_tokenizer *tok = NULL;
    lora_dataset *data = NULL;
    lora_session *session = NULL;
    lora_adapter *adapter = NULL;
    lora_optimizer *opt = NULL;
    static int32_t ids[BATCH * MAX_LENGTH], labels[BATCH * MAX_LENGTH], pos[BATCH * MAX_LENGTH];
    int rc = 0;
    lora_status st;
    float one = 1.0f;

    /* Samples longer than MAX_LENGTH tokens are truncated; short ones are packed together
     * (they never attend to each other), shuffled anew every epoch. */
    char data_cfg[128];
    snprintf(data_cfg, sizeof data_cfg, "{\"max_length\": %d, \"packing\": true, \"seed\": 1}",
             MAX_LENGTH);
    if ((st = lora_model_load(argv[1], NULL, &model)) != LORA_OK)
        return fail("lora_model_load", st);
    if ((st = lora_model_tokenizer(model, &tok)) != LORA_OK ||
        (st = lora_dataset_load(tok, argv[2], data_cfg, &data)) != LORA_OK)
        rc = fail("loading the data", st);
    /* LoRA on every linear projection, PEFT's defaults otherwise (A random, B zero). */
    else if ((st = lora_adapter_create(model, "{\"r\": 8, \"lora_alpha\": 16, \"lora_dropout\": "
                                       "0.05, \"target_modules\": \"all-linear\"}", 42,
                                       &adapter)) != LORA_OK)
        rc = fail("lora_adapter_create", st);
    else if ((st = lora_session_create(model, NULL, &session)) != LORA_OK ||
             (st = lora_session_set_adapters(session, &adapter, &one, 1)) != LORA_OK)
        rc = fail("attaching the adapter", st);
    if (rc == 0) {
        puts(lora_dataset_stats_json(data));
        puts(lora_adapter_info_json(adapter));
        size_t per_epoch = (lora_dataset_size(data) + BATCH - 1) / BATCH;
        char opt_cfg[256];
        snprintf(opt_cfg, sizeof opt_cfg, "{\"lr\": 2e-4, \"weight_decay\": 0.0, "
                 "\"lr_scheduler_type\": \"cosine\", \"warmup_ratio\": 0.03, "
                 "\"num_training_steps\": %zu, \"max_grad_norm\": 1.0}", per_epoch * epochs);
        if ((st = lora_optimizer_create(session, opt_cfg, &opt)) != LORA_OK)
            rc = fail("lora_optimizer_create", st);
        for (int e = 0; rc == 0 && e < epochs; e++) {
            double sum = 0;
            for (size_t b = 0; rc == 0 && b < per_epoch; b++) {
                size_t seq, rows;
                float loss;
                if ((st = lora_dataset_next_batch(data, BATCH, ids, labels, pos,
                                                  BATCH * MAX_LENGTH, &seq, &rows)) != LORA_OK ||
                    (st = lora_train_step_packed(opt, ids, labels, pos, rows, seq, &loss)) !=
                        LORA_OK)
                    rc = fail("training", st);
                sum += loss;
            }
            if (rc == 0) printf("epoch %d: mean loss %.4f\n", e + 1, sum / (double)per_epoch);
        }
    }
    if (rc == 0 && (st = lora_adapter_save(adapter, argv[3])) != LORA_OK)
        rc = fail("lora_adapter_save", st);
    else if (rc == 0)
        printf("saved the adapter to %s\n", argv[3]);
    lora_optimizer_free(opt);
    lora_adapter_free(adapter);
    lora_session_free(session);
    lora_dataset_free(data);
    lora_tokenizer_free(tok);
    lora_model_free(model);
    return rc;
}
