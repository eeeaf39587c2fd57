/* Public tokenizer calls: argument checks, loading, encode and decode. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "api/handle.h"
#include "chat/render.h"
#include "model/model.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/internal.h"
#include "tokenizer/utf8.h"
#include "util/alloc.h"
#include "util/file.h"

#define MAX_TOKENIZER_BYTES (1u << 30)

/* The folder of a tokenizer.json path (malloc'd). */
static char *folder_of(const char *file)
{
    const char *slash = strrchr(file, '/');
    size_t n = slash ? (size_t)(slash - file) : 1;
    char *d = lora__malloc(n + 1);
    if (d) {
        memcpy(d, slash ? file : ".", n);
        d[n] = '\0';
    }
    return d;
}

/* The chat template the renderer will use: a forced built-in, the recognised folder's template,
 * "custom" for a folder's template no built-in renders, NULL when there is none. */
static const char *template_name(const lora_tokenizer *t)
{
    lora__chat_style style;
    if (t->template_override)
        return t->template_override;
    if (!t->chat_template)
        return NULL;
    return lora__chat_style_recognise(t->chat_template, &style) ? lora__chat_kind_name(style.kind)
                                                                : "custom";
}

/* What every load does once tokenizer.json and tokenizer_config.json are read. */
static lora_status finish(lora_tokenizer *t, const char *config_json)
{
    lora_status st = lora__tokenizer_options(t, config_json);
    if (!st)
        st = lora__tokenizer_info_build(t, template_name(t));
    return st;
}

static lora_status load(const char *path, const char *config_json, lora_tokenizer *t)
{
    int is_dir = lora__is_dir(path);
    if (!is_dir && !lora__is_file(path))
        return lora__error(LORA_ERR_IO, "%s: no such file or folder", path);
    char *file = is_dir ? lora__path_join(path, "tokenizer.json") : lora__strdup(path);
    char *dir = is_dir ? lora__strdup(path) : folder_of(path);
    char *cfg = dir ? lora__path_join(dir, "tokenizer_config.json") : NULL;
    lora_status st = file && cfg ? LORA_OK : lora__oom("path", strlen(path) + 32);
    char *text = NULL;
    size_t len = 0;
    if (!st)
        st = lora__read_file(file, MAX_TOKENIZER_BYTES, &text, &len);
    if (!st)
        st = lora__tokenizer_parse(t, text, len, file);
    free(text);
    if (!st)
        st = lora__added_prepare(t);
    if (!st)
        st = lora__tokenizer_config_read(t, cfg);
    if (!st)
        st = finish(t, config_json);
    free(file);
    free(dir);
    free(cfg);
    return st;
}

static lora_tokenizer *tokenizer_new(void)
{
    lora_tokenizer *t = lora__calloc(1, sizeof *t);
    if (!t)
        return NULL;
    atomic_init(&t->refs, 1);
    t->unk_id = -1;
    for (int i = 0; i < 3; i++)
        t->special_id[i] = -1;
    return t;
}

lora_status lora__tokenizer_from_text(const char *tokenizer_json, const char *config_json,
                                      const char *label, lora_tokenizer **out)
{
    *out = NULL;
    lora_tokenizer *t = tokenizer_new();
    if (!t)
        return lora__oom("tokenizer", sizeof *t);
    lora_status st = lora__handle_add(t, LORA__KIND_TOKENIZER);
    if (!st)
        st = lora__tokenizer_parse(t, tokenizer_json, strlen(tokenizer_json), label);
    if (!st)
        st = lora__added_prepare(t);
    if (!st && config_json)
        st = lora__tokenizer_config_parse(t, config_json, strlen(config_json), label);
    if (!st)
        st = finish(t, NULL);
    if (st) {
        lora__tokenizer_release(t);
        return st;
    }
    *out = t;
    return LORA_OK;
}

LORA_API lora_status lora_tokenizer_load(const char *path, const char *config_json,
                                         lora_tokenizer **out)
{
    lora__error_clear();
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_tokenizer_load: out is NULL");
    *out = NULL;
    if (!path)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_tokenizer_load: path is NULL");
    lora_tokenizer *t = tokenizer_new();
    if (!t)
        return lora__error_prefix(lora__oom("tokenizer", sizeof *t), "lora_tokenizer_load");
    lora_status st = lora__handle_add(t, LORA__KIND_TOKENIZER);
    if (!st)
        st = load(path, config_json, t);
    if (st) {
        lora__tokenizer_release(t);
        return lora__error_prefix(st, "lora_tokenizer_load");
    }
    *out = t;
    return LORA_OK;
}

LORA_API lora_status lora_model_tokenizer(lora_model *model, lora_tokenizer **out)
{
    lora__error_clear();
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_model_tokenizer: out is NULL");
    *out = NULL;
    lora_status st = lora__handle_check(model, LORA__KIND_MODEL, "lora_model_tokenizer", "model");
    if (st)
        return st;
    pthread_mutex_lock(&model->tokenizer_lock);
    if (!model->tokenizer) {
        char *file = lora__path_join(model->path, "tokenizer.json");
        if (!file)
            st = lora__oom("path", strlen(model->path) + 16);
        else if (!lora__is_file(file))
            st = lora__error(LORA_ERR_IO, "lora_model_tokenizer: %s: no tokenizer.json in the "
                             "model's folder", model->path);
        else
            st = lora_tokenizer_load(model->path, NULL, &model->tokenizer);
        free(file);
    }
    if (!st) {
        lora__tokenizer_retain(model->tokenizer);
        *out = model->tokenizer;
    }
    pthread_mutex_unlock(&model->tokenizer_lock);
    return st;
}

LORA_API void lora_tokenizer_free(lora_tokenizer *tokenizer)
{
    if (lora__handle_freeable(tokenizer, LORA__KIND_TOKENIZER, "lora_tokenizer_free", "tokenizer"))
        lora__tokenizer_release(tokenizer);
}

LORA_API size_t lora_tokenizer_vocab_size(const lora_tokenizer *tokenizer)
{
    if (lora__handle_check(tokenizer, LORA__KIND_TOKENIZER, "lora_tokenizer_vocab_size",
                           "tokenizer"))
        return 0;
    return tokenizer->n_ids;
}

LORA_API const char *lora_tokenizer_info_json(const lora_tokenizer *tokenizer)
{
    if (lora__handle_check(tokenizer, LORA__KIND_TOKENIZER, "lora_tokenizer_info_json",
                           "tokenizer"))
        return NULL;
    return tokenizer->info_json;
}

static lora_status check_encode(const char *where, const lora_tokenizer *t, const char *text,
                                size_t len, unsigned flags)
{
    if (!t || (!text && len))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", where,
                           !t ? "tokenizer" : "text");
    unsigned known = LORA_ENCODE_SPECIAL_AS_TEXT | LORA_ENCODE_UTF8_REPLACE;
    if (flags & ~known)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", where,
                           flags & ~known);
    return LORA_OK;
}

lora_status lora__tokenizer_encode(const lora_tokenizer *t, const char *text, size_t len,
                                   unsigned flags, lora__encoding *out)
{
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__tokenizer_encode: out is NULL");
    memset(out, 0, sizeof *out);
    lora_status st = check_encode("lora__tokenizer_encode", t, text, len, flags);
    if (!st)
        st = lora__encode(t, text ? text : "", len, flags, 1, out);
    return st;
}

LORA_API lora_status lora_tokenizer_encode(const lora_tokenizer *tokenizer, const char *text,
                                           size_t len, unsigned flags, int32_t *ids,
                                           size_t cap, size_t *n_out)
{
    lora__error_clear();
    if (!n_out || (!ids && cap))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_tokenizer_encode: %s is NULL",
                           !n_out ? "n_out" : "ids");
    *n_out = 0;
    lora_status st = lora__handle_check(tokenizer, LORA__KIND_TOKENIZER, "lora_tokenizer_encode",
                                        "tokenizer");
    if (!st)
        st = check_encode("lora_tokenizer_encode", tokenizer, text, len, flags);
    if (st)
        return st;
    lora__encoding e;
    if ((st = lora__encode(tokenizer, text ? text : "", len, flags, 0, &e)))
        return lora__error_prefix(st, "lora_tokenizer_encode");
    *n_out = e.n;
    if (e.n && cap)
        memcpy(ids, e.ids, (e.n < cap ? e.n : cap) * sizeof *ids);
    if (cap < e.n)
        st = lora__error(LORA_ERR_RANGE, "lora_tokenizer_encode: %zu ids do not fit in cap %zu",
                         e.n, cap);
    lora__encoding_free(&e);
    return st;
}

LORA_API lora_status lora_tokenizer_decode(const lora_tokenizer *tokenizer, const int32_t *ids,
                                           size_t n, unsigned flags, char **text_out,
                                           size_t *len_out)
{
    lora__error_clear();
    if (!text_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_tokenizer_decode: text_out is NULL");
    *text_out = NULL;
    if (len_out)
        *len_out = 0;
    if (lora__handle_check(tokenizer, LORA__KIND_TOKENIZER, "lora_tokenizer_decode", "tokenizer"))
        return LORA_ERR_INVALID_ARGUMENT;
    if (!ids && n)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_tokenizer_decode: ids is NULL");
    if (flags & ~LORA_DECODE_SKIP_SPECIAL)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_tokenizer_decode: unknown flags 0x%x",
                           flags & ~LORA_DECODE_SKIP_SPECIAL);
    lora__bytebuf raw = {0}, text = {0};
    lora_status st = lora__decode_bytes(tokenizer, ids, n, (flags & LORA_DECODE_SKIP_SPECIAL) != 0,
                                        &raw, "lora_tokenizer_decode");
    if (!st)
        st = lora__utf8_append_lossy(&text, raw.p, raw.len);
    if (!st)
        st = lora__bytebuf_reserve(&text, 0);
    lora__bytebuf_free(&raw);
    if (st) {
        lora__bytebuf_free(&text);
        return st;
    }
    text.p[text.len] = '\0';
    *text_out = (char *)text.p;
    if (len_out)
        *len_out = text.len;
    return LORA_OK;
}

LORA_API lora_status lora_tokenizer_token_id(const lora_tokenizer *tokenizer,
                                             const char *token, int32_t *id_out)
{
    lora__error_clear();
    if (!id_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_tokenizer_token_id: id_out is NULL");
    *id_out = -1;
    if (lora__handle_check(tokenizer, LORA__KIND_TOKENIZER, "lora_tokenizer_token_id",
                           "tokenizer"))
        return LORA_ERR_INVALID_ARGUMENT;
    if (!token)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_tokenizer_token_id: token is NULL");
    int32_t id = lora__tokenizer_lookup(tokenizer, token, strlen(token));
    if (id < 0)
        return lora__error(LORA_ERR_RANGE, "lora_tokenizer_token_id: no token '%.64s'", token);
    *id_out = id;
    return LORA_OK;
}
