/* generate -- chat with a model in one call: render a user message with the model's chat
 * template, then stream the reply as text as it is generated.
 *
 *   cc generate.c $(pkg-config --cflags --libs lora) -o generate
 *   ./generate MODEL_DIR "What is the capital of France?" [TEMPERATURE [TOP_P [SEED]]]
 *
 * With no temperature the decoding is greedy; otherwise it samples (top-p 0.9 by default).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lora.h>

static int fail(const char *what, lora_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, lora_status_string(st), lora_last_error());
    return 1;
}

/* s as a JSON string literal (quotes, backslashes and control characters escaped). */
static void json_string(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    out[n++] = '"';
    for (; *s && n + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') n += (size_t)snprintf(out + n, cap - n, "\\%c", c);
        else if (c < 0x20) n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        else out[n++] = (char)c;
    }
    out[n++] = '"';
    out[n] = '\0';
}

/* The streaming decoder turns token ids into whole UTF-8 characters as they come. */
static int print_token(int32_t id, void *user)
{
    const char *text;
    size_t len;
    if (lora_detokenizer_push(user, id, &text, &len) != LORA_OK) return 1; /* stop */
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT [TEMPERATURE [TOP_P [SEED]]]\n", argv[0]);
        return 2;
    }
    lora_model *model = NULL;
    lora_session *session = NULL;
    lora_tokenizer *tok = NULL;
    lora_detokenizer *detok = NULL;
    lora_sampler *sampler = NULL;
    char *prompt = NULL;
    int32_t ids[4096], out[128];
    size_t n_ids = 0, n_out = 0;
    int rc = 0;
    lora_status st;

    /* The conversation is JSON: one user message, rendered with the generation prompt. */
    char content[2048], messages[2100];
    json_string(content, sizeof content, argv[2]);
    snprintf(messages, sizeof messages, "[{\"role\": \"user\", \"content\": %s}]", content);

    /* The sampler: GenerationConfig keys. The end-of-turn token ends generation. */
    char config[256];
    if (argc > 3)
        snprintf(config, sizeof config, "{\"do_sample\": true, \"temperature\": %s, "
                 "\"top_p\": %s, \"seed\": %s, \"max_new_tokens\": 128",
                 argv[3], argc > 4 ? argv[4] : "0.9", argc > 5 ? argv[5] : "0");
    else
        snprintf(config, sizeof config, "{\"max_new_tokens\": 128");

    if ((st = lora_model_load(argv[1], NULL, &model)) != LORA_OK)
        rc = fail("lora_model_load", st);
    else if ((st = lora_model_tokenizer(model, &tok)) != LORA_OK)
        rc = fail("lora_model_tokenizer", st);
    else if ((st = lora_chat_render(tok, messages, "{\"add_generation_prompt\": true}",
                                    &prompt)) != LORA_OK)
        rc = fail("lora_chat_render", st);
    else if ((st = lora_tokenizer_encode(tok, prompt, strlen(prompt), 0, ids, 4096, &n_ids)) !=
             LORA_OK)
        rc = fail("lora_tokenizer_encode", st);
    if (rc == 0) {
        int32_t eos;
        size_t len = strlen(config);
        if (lora_tokenizer_token_id(tok, "<|im_end|>", &eos) == LORA_OK ||
            lora_tokenizer_token_id(tok, "<|eot_id|>", &eos) == LORA_OK)
            snprintf(config + len, sizeof config - len, ", \"eos_token_id\": %d}", (int)eos);
        else
            snprintf(config + len, sizeof config - len, "}");
        if ((st = lora_sampler_create(config, &sampler)) != LORA_OK)
            rc = fail("lora_sampler_create", st);
        else if ((st = lora_session_create(model, NULL, &session)) != LORA_OK)
            rc = fail("lora_session_create", st);
        else if ((st = lora_detokenizer_create(tok, LORA_DECODE_SKIP_SPECIAL, &detok)) != LORA_OK)
            rc = fail("lora_detokenizer_create", st);
        else if ((st = lora_generate(session, sampler, ids, n_ids, out, 128, &n_out, print_token,
                                     detok)) != LORA_OK)
            rc = fail("lora_generate", st);
        else {
            const char *rest;
            size_t n;
            if (lora_detokenizer_flush(detok, &rest, &n) == LORA_OK) fwrite(rest, 1, n, stdout);
            printf("\n[%zu prompt tokens, %zu generated]\n", n_ids, n_out);
        }
    }
    lora_string_free(prompt);
    lora_detokenizer_free(detok);
    lora_sampler_free(sampler);
    lora_session_free(session);
    lora_tokenizer_free(tok);
    lora_model_free(model);
    return rc;
}
