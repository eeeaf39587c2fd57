/* A JSONL dataset: the input after its first byte is the file (one line, usually; a newline in
 * the input makes more), read with the Qwen2.5 tokenizer fixture (loaded once per process). The
 * first byte chooses the options: bits 0-1 the format, bit 2 "loss": "all", bit 3 max_length
 * 16, bit 4 packing, bit 5 lenient, bits 6-7 the chat template. A dataset that loads is read
 * row by row and in two batches, and split when it can be. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "lora.h"

static lora_tokenizer *tok;

static void options(uint8_t b, char *buf, size_t cap)
{
    static const char *const formats[] = {"auto", "messages", "prompt_completion", "text"};
    static const char *const templates[] = {
        "", ", \"chat\": {\"template\": \"qwen3\"}", ", \"chat\": {\"template\": \"llama3\"}",
        ", \"chat\": {\"template\": \"chatml\", \"enable_thinking\": false}"};
    snprintf(buf, cap, "{\"format\": \"%s\", \"loss\": \"%s\", \"max_length\": %d, "
             "\"packing\": %s, \"strict\": %s%s}", formats[b & 3], b & 4 ? "all" : "assistant",
             b & 8 ? 16 : 1024, b & 16 ? "true" : "false", b & 32 ? "false" : "true",
             templates[b >> 6 & 3]);
}

static void read_rows(lora_dataset *d)
{
    enum { CAP = 2 * 1024 };
    int32_t *ids = malloc(3 * CAP * sizeof *ids), *labels = ids + CAP, *pos = labels + CAP;
    if (!ids)
        fz_die("malloc");
    for (size_t i = 0; i < lora_dataset_size(d); i++) {
        size_t len;
        if (lora_dataset_row(d, i, ids, labels, pos, CAP / 2, &len) != LORA_OK && len <= CAP / 2)
            fz_die("lora_dataset_row refuses a row that fits");
    }
    size_t seq, rows;
    for (int b = 0; b < 2; b++)
        if (lora_dataset_next_batch(d, 2, ids, labels, pos, CAP, &seq, &rows) != LORA_OK)
            fz_die("lora_dataset_next_batch with room for two rows of max_length");
    free(ids);
    if (!lora_dataset_stats_json(d))
        fz_die("lora_dataset_stats_json");
    lora_dataset *train, *test;
    if (lora_dataset_size(d) >= 2 && lora_dataset_split(d, 1, 7, &train, &test) == LORA_OK) {
        lora_dataset_free(train);
        lora_dataset_free(test);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (lora_tokenizer_load(fz_fixture("qwen-tokenizer"), NULL, &tok) != LORA_OK)
        fz_die("lora_tokenizer_load");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char cfg[256];
    options(data[0], cfg, sizeof cfg);
    const char *path = fz_path("data.jsonl");
    fz_write(path, data + 1, size - 1);
    lora_dataset *d = NULL;
    if (lora_dataset_load(tok, path, cfg, &d) == LORA_OK)
        read_rows(d);
    lora_dataset_free(d);
    return 0;
}
