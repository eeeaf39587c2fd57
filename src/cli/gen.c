#include "gen.h"

#include <stdlib.h>
#include <string.h>

json_t *cli_eos_ids(const char *model_dir, const lora_tokenizer *tok)
{
    /* Hugging Face takes the end-of-generation ids from generation_config.json */
    json_t *eos = NULL;
    if (model_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/generation_config.json", model_dir);
        json_t *gc = json_load_file(path, 0, NULL);
        json_t *e = json_object_get(gc, "eos_token_id");
        if (json_is_integer(e) || json_is_array(e)) eos = json_incref(e);
        json_decref(gc);
    }
    if (!eos && tok) {
        json_t *info = json_loads(lora_tokenizer_info_json(tok), 0, NULL);
        json_t *e = json_object_get(info, "eos_token_id");
        if (json_is_integer(e)) eos = json_incref(e);
        json_decref(info);
    }
    return eos;
}

int cli_sampler_json(const char *cmd, const cli_opt *opts, const char *model_dir,
                     const lora_tokenizer *tok, char **out)
{
    static const struct { const char *opt, *key; int integer; } map[] = {
        {"max-new-tokens", "max_new_tokens", 1}, {"temperature", "temperature", 0},
        {"top-k", "top_k", 1}, {"top-p", "top_p", 0}, {"min-p", "min_p", 0},
        {"repetition-penalty", "repetition_penalty", 0}, {"seed", "seed", 1},
    };
    json_t *cfg = json_object();
    json_object_set_new(cfg, "do_sample", json_boolean(cli_get(opts, "do-sample") != NULL));
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *s = cli_get(opts, map[i].opt);
        if (!s) continue;
        uint64_t u;
        double d;
        int rc = map[i].integer ? cli_uint(cmd, map[i].opt, s, 0, INT64_MAX, &u)
                                : cli_double(cmd, map[i].opt, s, &d);
        if (rc) {
            json_decref(cfg);
            return rc;
        }
        json_object_set_new(cfg, map[i].key,
                            map[i].integer ? json_integer((json_int_t)u) : json_real(d));
    }
    json_t *eos = cli_eos_ids(model_dir, tok);
    if (eos) json_object_set_new(cfg, "eos_token_id", eos);
    *out = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    return *out ? CLI_OK : cli_fail(cmd, CLI_RUNTIME, "out of memory");
}

typedef struct stream {
    lora_detokenizer *d;
    const lora_tokenizer *tok;
    int32_t n_model;      /* the model's vocabulary */
    FILE *out;
    char *text;
    size_t len, cap;
    lora_status st;
} stream;

static int keep(stream *s, const char *t, size_t n)
{
    if (s->out && n) {
        fwrite(t, 1, n, s->out);
        fflush(s->out);
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *p = realloc(s->text, cap);
        if (!p) return 1;
        s->text = p;
        s->cap = cap;
    }
    memcpy(s->text + s->len, t, n);
    s->len += n;
    s->text[s->len] = '\0';
    return 0;
}

static int on_token(int32_t id, void *user)
{
    stream *s = user;
    const char *t;
    size_t n;
    /* a model's vocabulary is often padded past the tokenizer's (Qwen: 151936 rows for 151669
     * ids): an id there has no text, as Hugging Face's decode gives it none */
    if (id >= 0 && (size_t)id >= lora_tokenizer_vocab_size(s->tok) && id < s->n_model) return 0;
    if ((s->st = lora_detokenizer_push(s->d, id, &t, &n)) != LORA_OK) return 1;
    return keep(s, t, n) ? (s->st = LORA_ERR_OUT_OF_MEMORY, 1) : 0;
}

int cli_generate_text(const char *cmd, cli_stack *s, lora_sampler *smp, size_t max_new,
                      const char *prompt, FILE *out, char **reply)
{
    size_t n = 0, cap = max_new ? max_new : 1;
    lora_status st = lora_tokenizer_encode(s->tok, prompt, strlen(prompt), 0, NULL, 0, &n);
    if (st != LORA_OK && st != LORA_ERR_RANGE) return cli_lib_fail(cmd, st);
    if (n == 0) return cli_fail(cmd, CLI_USAGE, "the prompt is empty");
    int32_t *ids = malloc(n * sizeof *ids), *gen = malloc(cap * sizeof *gen);
    stream ss = {NULL, s->tok, (int32_t)lora_model_vocab_size(s->model), out, NULL, 0, 0, LORA_OK};
    st = ids && gen ? lora_tokenizer_encode(s->tok, prompt, strlen(prompt), 0, ids, n, &n)
                    : LORA_ERR_OUT_OF_MEMORY;
    if (st == LORA_OK) st = lora_detokenizer_create(s->tok, LORA_DECODE_SKIP_SPECIAL, &ss.d);
    if (st == LORA_OK) {
        lora_session_reset(s->session);
        size_t n_gen = 0;
        st = lora_generate(s->session, smp, ids, n, gen, cap, &n_gen, on_token, &ss);
        if (ss.st != LORA_OK) st = ss.st;
    }
    if (st == LORA_OK) {
        const char *t;
        size_t tn;
        st = lora_detokenizer_flush(ss.d, &t, &tn);
        if (st == LORA_OK && keep(&ss, t, tn)) st = LORA_ERR_OUT_OF_MEMORY;
    }
    lora_detokenizer_free(ss.d);
    free(ids);
    free(gen);
    if (st != LORA_OK) {
        free(ss.text);
        return cli_lib_fail(cmd, st);
    }
    if (reply) *reply = ss.text ? ss.text : calloc(1, 1);
    else free(ss.text);
    return CLI_OK;
}

int cli_render(const char *cmd, const lora_tokenizer *tok, const json_t *messages, int thinking,
               char **text)
{
    json_t *o = json_object();
    json_object_set_new(o, "add_generation_prompt", json_true());
    if (thinking >= 0) json_object_set_new(o, "enable_thinking", json_boolean(thinking));
    char *opts = json_dumps(o, JSON_COMPACT), *msgs = json_dumps(messages, JSON_COMPACT);
    json_decref(o);
    lora_status st = opts && msgs ? lora_chat_render(tok, msgs, opts, text)
                                  : LORA_ERR_OUT_OF_MEMORY;
    free(opts);
    free(msgs);
    return st == LORA_OK ? CLI_OK : cli_lib_fail(cmd, st);
}
