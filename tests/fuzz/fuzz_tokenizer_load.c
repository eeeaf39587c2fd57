/* Loading a tokenizer folder: tokenizer.json, then (after FZ_SEP) tokenizer_config.json, absent
 * when the input has no separator, then (after another FZ_SEP) a text. A tokenizer that loads
 * encodes and decodes the text (a fixed one when the input has none), with and without special
 * tokens taken as text, and looks up a special token. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "harness.h"
#include "lora.h"

static const char text[] = "Hello, world! 12345 <|im_start|>user\n\xc3\xa9t\xc3\xa9 \xe4\xbd\xa0"
                           "\xe5\xa5\xbd  tabs\tand\r\nlines<|im_end|><|endoftext|>";

static void exercise(lora_tokenizer *t, const char *s, size_t len)
{
    for (unsigned flags = 0; flags < 2; flags++) {
        size_t n = 0;
        int32_t ids[512];
        if (lora_tokenizer_encode(t, s, len, flags, ids, 512, &n) != LORA_OK)
            continue;
        char *out = NULL;
        if (lora_tokenizer_decode(t, ids, n, flags, &out, NULL) != LORA_OK)
            fz_die("lora_tokenizer_decode of lora_tokenizer_encode's ids");
        lora_string_free(out);
    }
    int32_t id;
    (void)lora_tokenizer_token_id(t, "<|im_end|>", &id);
    if (!lora_tokenizer_info_json(t))
        fz_die("lora_tokenizer_info_json");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_part parts[3];
    size_t n = fz_split(data, size, parts, 3);
    char dir[4096], path[4096 + 64];
    snprintf(dir, sizeof dir, "%s", fz_path("tokenizer"));
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    fz_write_part(path, &parts[0]);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    fz_write_part(path, n > 1 ? &parts[1] : NULL);
    lora_tokenizer *t = NULL;
    if (lora_tokenizer_load(dir, NULL, &t) == LORA_OK)
        exercise(t, n > 2 ? (const char *)parts[2].data : text,
                 n > 2 ? parts[2].size : sizeof text - 1);
    lora_tokenizer_free(t);
    return 0;
}
