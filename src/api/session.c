/* Public session calls: argument checks, then the decoder and the output head. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "api/handle.h"
#include "model/session.h"
#include "util/alloc.h"
#include "util/json_text.h"

#define IGNORE_INDEX (-100)

/* "train_activations" */
typedef enum keep { KEEP_AUTO, KEEP_BF16, KEEP_FLOAT32 } keep;

static lora_status parse_session_options(const char *json, const lora_model *m,
                                         int64_t *max_ctx, int *threads, keep *acts)
{
    *max_ctx = m->cfg.max_pos < 4096 ? m->cfg.max_pos : 4096;
    *threads = m->threads;
    *acts = KEEP_AUTO;
    if (!json)
        return LORA_OK;
    json_error_t jerr;
    json_t *o = lora__json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return lora__error(LORA_ERR_CONFIG, "lora_session_create: options: %s", jerr.text);
    lora_status st = LORA_OK;
    const char *key;
    json_t *v;
    if (!json_is_object(o))
        st = lora__error(LORA_ERR_CONFIG, "lora_session_create: options must be a JSON object");
    else
        json_object_foreach(o, key, v) {
            json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
            if (strcmp(key, "max_context") == 0) {
                if (x < 1 || x > m->cfg.max_pos) {
                    st = lora__error(LORA_ERR_CONFIG,
                                     "lora_session_create: option 'max_context' must be an integer "
                                     "in 1..%lld (max_position_embeddings)",
                                     (long long)m->cfg.max_pos);
                    break;
                }
                *max_ctx = x;
            } else if (strcmp(key, "threads") == 0) {
                if (x < 1 || x > 64) {
                    st = lora__error(LORA_ERR_CONFIG,
                                     "lora_session_create: option 'threads' must be an integer "
                                     "in 1..64");
                    break;
                }
                *threads = (int)x;
            } else if (strcmp(key, "train_activations") == 0) {
                const char *t = json_is_string(v) ? json_string_value(v) : "";
                if (strcmp(t, "auto") == 0 || strcmp(t, "bf16") == 0 || strcmp(t, "float32") == 0)
                    *acts = t[0] == 'a' ? KEEP_AUTO : t[0] == 'b' ? KEEP_BF16 : KEEP_FLOAT32;
                else {
                    st = lora__error(LORA_ERR_CONFIG, "lora_session_create: option "
                                     "'train_activations' must be \"auto\", \"bf16\" or "
                                     "\"float32\"");
                    break;
                }
            } else {
                st = lora__error(LORA_ERR_CONFIG, "lora_session_create: unknown option '%s'", key);
                break;
            }
        }
    json_decref(o);
    return st;
}

void lora__session_retain(lora_session *s) { atomic_fetch_add(&s->refs, 1); }

/* bytes of the K (or the V) cache */
static size_t kv_cache_bytes(const lora_session *s)
{
    const lora_config *c = &s->model->cfg;
    size_t n = (size_t)(c->n_layers * s->max_ctx * c->n_kv_heads * c->head_dim);
    return n * (s->kv_bf16 ? sizeof(lora_bf16) : sizeof(float));
}

LORA_API void lora_session_free(lora_session *s)
{
    if (lora__handle_freeable(s, LORA__KIND_SESSION, "lora_session_free", "session"))
        lora__session_release(s);
}

void lora__session_release(lora_session *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    lora__handle_remove(s);
    lora_backend *be = s->be;
    if (be) {
        const lora_config *c = &s->model->cfg;
        size_t cache = kv_cache_bytes(s);
        size_t rope = (size_t)s->rope_len * (size_t)(c->head_dim / 2) * sizeof(float);
        lora__graph_drop(s);
        be->ops->mem_free(be, s->k_cache, cache);
        be->ops->mem_free(be, s->v_cache, cache);
        be->ops->mem_free(be, s->rope_cos, rope);
        be->ops->mem_free(be, s->rope_sin, rope);
        be->ops->mem_free(be, s->ws, s->ws_floats * sizeof(float));
        be->ops->mem_free(be, s->head_ws, s->head_ws_floats * sizeof(float));
        be->ops->mem_free(be, s->train_ws, s->train_ws_floats * sizeof(float));
        be->ops->mem_free(be, s->dhidden, s->dhidden_floats * sizeof(float));
        for (int k = 0; k < LORA_STAGE_COUNT; k++)
            be->ops->mem_free(be, s->stage[k], s->stage_bytes[k]);
        be->ops->backend_free(be);
    }
    free(s->tokens);
    free(s->ws_ids);
    free(s->train_layers);
    free(s->train_kept);
    for (size_t i = 0; i < s->n_adapters; i++)
        lora__adapter_release(s->adapters[i]);
    lora__model_release(s->model);
    free(s);
}

LORA_API lora_status lora_session_create(lora_model *model, const char *config_json,
                                         lora_session **out)
{
    lora__error_clear();
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_session_create: out is NULL");
    *out = NULL;
    lora_status st = lora__handle_check(model, LORA__KIND_MODEL, "lora_session_create", "model");
    if (st)
        return st;
    int64_t max_ctx;
    int threads;
    keep acts;
    st = parse_session_options(config_json, model, &max_ctx, &threads, &acts);
    if (st)
        return st;
    lora_session *s = lora__calloc(1, sizeof *s);
    if (!s)
        return lora__oom("session", sizeof *s);
    atomic_init(&s->refs, 1);
    if ((st = lora__handle_add(s, LORA__KIND_SESSION))) {
        free(s);
        return lora__error_prefix(st, "lora_session_create");
    }
    lora__model_retain(model);
    s->model = model;
    s->max_ctx = max_ctx;
    s->tokens = lora__malloc((size_t)max_ctx * sizeof *s->tokens);
    if (!s->tokens)
        st = lora__oom("KV cache", (size_t)max_ctx * sizeof *s->tokens);
    else if (!(st = lora__model_backend_create(model, threads, &s->be))) {
        /* bfloat16 storage, where the model's weights are, and the backend reads it */
        s->kv_bf16 = model->dev_bf16 && s->be->ops->kv_store_bf16 &&
                     s->be->ops->attention_bf16kv_fwd;
        bool bf16 = model->dev_bf16 && lora__kept_ops(s->be->ops);
        s->acts_bf16 = acts == KEEP_AUTO ? bf16 : acts == KEEP_BF16;
        if (acts == KEEP_BF16 && !bf16)
            st = lora__error(LORA_ERR_UNSUPPORTED, "option 'train_activations': \"bf16\" needs "
                             "a model whose weights are bfloat16 on a GPU (\"cuda_math\": "
                             "\"bf16\"); this one's are float32 on the %s", s->be->ops->name);
        /* decode steps replayed from a recording (decode_graph.c) unless the environment, for
         * a comparison, says LORA_CUDA_GRAPHS=0 when the session is made */
        const char *graphs = getenv("LORA_CUDA_GRAPHS");
        s->graph_off = graphs && strcmp(graphs, "0") == 0;
        if (!st &&
            !(st = s->be->ops->mem_alloc(s->be, kv_cache_bytes(s), "KV cache", &s->k_cache)))
            st = s->be->ops->mem_alloc(s->be, kv_cache_bytes(s), "KV cache", &s->v_cache);
    }
    if (st) {
        lora__session_release(s);
        return lora__error_prefix(st, "lora_session_create");
    }
    *out = s;
    return LORA_OK;
}

LORA_API size_t lora_session_position(const lora_session *s)
{
    if (lora__handle_check(s, LORA__KIND_SESSION, "lora_session_position", "session"))
        return 0;
    return (size_t)s->pos;
}

LORA_API void lora_session_reset(lora_session *s)
{
    if (s && !lora__handle_check(s, LORA__KIND_SESSION, "lora_session_reset", "session"))
        s->pos = 0;
}

/* Validates a (B, T) batch and returns a copy of ids with padded positions set to 0, the one
 * id every vocabulary has, so that the embedding lookup never reads out of range. */
lora_status lora__batch_ids(const char *fn, const lora_session *s, const int32_t *ids,
                           const int32_t *lengths, size_t B, size_t T, int32_t **out)
{
    *out = NULL;
    lora_status st = lora__handle_check(s, LORA__KIND_SESSION, fn, "session");
    if (st)
        return st;
    if (!ids)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: ids is NULL", fn);
    if (B == 0 || T == 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: batch = %zu, seq = %zu: both must be >= 1",
                           fn, B, T);
    const lora_config *c = &s->model->cfg;
    if (T > (size_t)c->max_pos)
        return lora__error(LORA_ERR_RANGE, "%s: seq = %zu exceeds max_position_embeddings = %lld",
                           fn, T, (long long)c->max_pos);
    if (B > ((size_t)1 << 40) / T)
        return lora__error(LORA_ERR_RANGE, "%s: batch x seq = %zu x %zu is too large", fn, B, T);
    int32_t *clean = lora__malloc(B * T * sizeof *clean);
    if (!clean)
        return lora__oom("token ids", B * T * sizeof *clean);
    for (size_t b = 0; b < B; b++) {
        size_t len = T;
        if (lengths) {
            if (lengths[b] < 1 || (size_t)lengths[b] > T) {
                free(clean);
                return lora__error(LORA_ERR_RANGE, "%s: lengths[%zu] = %d is outside 1..%zu", fn,
                                   b, lengths[b], T);
            }
            len = (size_t)lengths[b];
        }
        for (size_t t = 0; t < T; t++) {
            int32_t id = ids[b * T + t];
            if (t < len && (id < 0 || id >= c->vocab)) {
                free(clean);
                return lora__error(LORA_ERR_RANGE,
                                   "%s: ids[%zu][%zu] = %d is outside the vocabulary (0..%lld)",
                                   fn, b, t, id, (long long)c->vocab - 1);
            }
            clean[b * T + t] = t < len ? id : 0;
        }
    }
    *out = clean;
    return LORA_OK;
}

/* logits (N, V) on the host = hidden (N, C) @ lm_head^T: straight into the caller's buffer on a
 * host-memory backend, else through the head workspace and one download. */
static lora_status project_logits(lora_session *s, const float *hidden, int64_t N, float *logits)
{
    const lora_config *c = &s->model->cfg;
    const float *lm_head = s->model->lm_head;
    lora_backend *be = s->be;
    if (be->ops->host_memory) {
        lora__base_fwd(s, logits, hidden, lm_head, NULL, N, c->vocab, c->hidden);
        return LORA_OK;
    }
    size_t bytes = s->head_ws_floats * sizeof(float), need = (size_t)(N * c->vocab) * sizeof(float);
    lora_status st = lora__session_grow(s, (void **)&s->head_ws, &bytes, need, "logits");
    s->head_ws_floats = bytes / sizeof(float);
    if (st)
        return st;
    lora__base_fwd(s, s->head_ws, hidden, lm_head, NULL, N, c->vocab, c->hidden);
    return be->ops->download(be, logits, s->head_ws, need);
}

LORA_API lora_status lora_session_logits(lora_session *s, const int32_t *ids,
                                         const int32_t *lengths, size_t batch, size_t seq,
                                         float *logits_out)
{
    lora__error_clear();
    int32_t *clean;
    lora_status st = lora__batch_ids("lora_session_logits", s, ids, lengths, batch, seq, &clean);
    if (st)
        return st;
    if (!logits_out) {
        free(clean);
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_session_logits: logits_out is NULL");
    }
    const lora_config *c = &s->model->cfg;
    int64_t N = (int64_t)(batch * seq);
    float *hidden;
    st = lora__decoder_forward(s, clean, (int64_t)batch, (int64_t)seq, false, NULL, &hidden);
    free(clean);
    if (!st)
        st = project_logits(s, hidden, N, logits_out);
    if (st)
        return lora__error_prefix(st, "lora_session_logits");
    for (size_t b = 0; lengths && b < batch; b++)
        for (size_t t = (size_t)lengths[b]; t < seq; t++)
            memset(logits_out + (b * seq + t) * (size_t)c->vocab, 0, (size_t)c->vocab * sizeof(float));
    return LORA_OK;
}

lora_status lora__check_labels(const char *fn, const lora_session *s, const int32_t *labels,
                              size_t B, size_t T)
{
    int64_t V = s->model->cfg.vocab;
    for (size_t i = 0; i < B * T; i++)
        if (labels[i] != IGNORE_INDEX && (labels[i] < 0 || labels[i] >= V))
            return lora__error(LORA_ERR_RANGE,
                               "%s: labels[%zu][%zu] = %d is neither -100 nor a token id (0..%lld)",
                               fn, i / T, i % T, labels[i], (long long)V - 1);
    return LORA_OK;
}

/* Runs the model over (B, T) and computes nll[n] = -log p(targets[n] | row n) for every row. */
static lora_status head_nll(lora_session *s, const int32_t *ids, size_t B, size_t T,
                            const int32_t *targets, float *nll)
{
    float *hidden;
    lora_status st = lora__decoder_forward(s, ids, (int64_t)B, (int64_t)T, false, NULL, &hidden);
    return st ? st : lora__head_nll(s, &s->head_ws, &s->head_ws_floats, hidden,
                                    (int64_t)(B * T), targets, nll, NULL, NULL, NULL);
}

LORA_API lora_status lora_session_loss(lora_session *s, const int32_t *ids, const int32_t *labels,
                                       size_t batch, size_t seq, float *loss_out,
                                       size_t *n_counted)
{
    lora__error_clear();
    static const char fn[] = "lora_session_loss";
    int32_t *clean;
    lora_status st = lora__batch_ids(fn, s, ids, NULL, batch, seq, &clean);
    if (st)
        return st;
    if (!labels || !loss_out) {
        free(clean);
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                           labels ? "loss_out" : "labels");
    }
    size_t N = batch * seq;
    int32_t *targets = lora__malloc(N * sizeof *targets);
    float *nll = lora__malloc(N * sizeof *nll);
    if (!targets || !nll) {
        st = lora__oom("loss targets", N * 8);
        goto done;
    }
    if ((st = lora__check_labels(fn, s, labels, batch, seq)))
        goto done;
    /* Hugging Face shifts inside the loss: the logits at t predict labels[t + 1]. */
    for (size_t b = 0; b < batch; b++)
        for (size_t t = 0; t < seq; t++)
            targets[b * seq + t] = t + 1 < seq ? labels[b * seq + t + 1] : IGNORE_INDEX;
    if ((st = head_nll(s, clean, batch, seq, targets, nll))) {
        lora__error_prefix(st, "%s", fn);
        goto done;
    }
    double sum = 0.0;
    size_t count = 0;
    for (size_t n = 0; n < N; n++)
        if (targets[n] != IGNORE_INDEX) {
            sum += nll[n];
            count++;
        }
    *loss_out = count ? (float)(sum / (double)count) : 0.0f;
    if (n_counted)
        *n_counted = count;
done:
    free(clean);
    free(targets);
    free(nll);
    return st;
}

LORA_API lora_status lora_session_logprobs(lora_session *s, const int32_t *ids,
                                           const int32_t *lengths, size_t batch, size_t seq,
                                           float *out)
{
    lora__error_clear();
    static const char fn[] = "lora_session_logprobs";
    int32_t *clean;
    lora_status st = lora__batch_ids(fn, s, ids, lengths, batch, seq, &clean);
    if (st)
        return st;
    if (!out) {
        free(clean);
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    }
    size_t N = batch * seq;
    int32_t *targets = lora__malloc(N * sizeof *targets);
    float *nll = lora__malloc(N * sizeof *nll);
    if (!targets || !nll) {
        st = lora__oom("log-probability targets", N * 8);
        goto done;
    }
    for (size_t b = 0; b < batch; b++) {
        size_t len = lengths ? (size_t)lengths[b] : seq;
        for (size_t t = 0; t < seq; t++)
            targets[b * seq + t] = t + 1 < len ? clean[b * seq + t + 1] : IGNORE_INDEX;
    }
    if ((st = head_nll(s, clean, batch, seq, targets, nll))) {
        lora__error_prefix(st, "%s", fn);
        goto done;
    }
    for (size_t b = 0; b < batch; b++) {
        out[b * seq] = 0.0f;
        for (size_t t = 1; t < seq; t++)
            out[b * seq + t] = targets[b * seq + t - 1] == IGNORE_INDEX ? 0.0f : -nll[b * seq + t - 1];
    }
done:
    free(clean);
    free(targets);
    free(nll);
    return st;
}

/* On a device backend, the last row's head in the step (lora_step_head), so that a replayed
 * decode step runs it in its graph: its logits in head_ws, and with greedy their argmax's two
 * int32 after them. */
static lora_status step_head(lora_session *s, bool greedy, lora_step_head *head)
{
    const lora_config *c = &s->model->cfg;
    size_t bytes = s->head_ws_floats * sizeof(float), need = (size_t)(c->vocab + 2) * sizeof(float);
    lora_status st = lora__session_grow(s, (void **)&s->head_ws, &bytes, need, "logits");
    s->head_ws_floats = bytes / sizeof(float);
    head->logits = s->head_ws;
    head->answer = greedy && !st ? (int32_t *)(s->head_ws + c->vocab) : NULL;
    return st;
}

/* The greedy token step_head's argmax found into *token, or -1 with the row in logits (host)
 * where the host sampler must look at it (a NaN, or only -inf). */
static lora_status greedy_token(lora_session *s, const lora_step_head *head, float *logits,
                                int32_t *token)
{
    lora_backend *be = s->be;
    int32_t got[2];
    lora_status st = be->ops->download(be, got, head->answer, sizeof got);
    if (st)
        return st;
    *token = got[1] ? -1 : got[0];
    return got[1] ? be->ops->download(be, logits, head->logits,
                                      (size_t)s->model->cfg.vocab * sizeof(float))
                  : LORA_OK;
}

/* lora_session_append; with token non-NULL on a backend with an argmax (the session's caller
 * takes the greedy token), the last row's token as greedy_token gives it instead of its logits
 * where that can be (logits must still be given, for the rows the host has to see). */
static lora_status append(lora_session *s, const int32_t *ids, size_t n, float *logits_out,
                          int32_t *token)
{
    static const char fn[] = "lora_session_append";
    lora_status st = lora__handle_check(s, LORA__KIND_SESSION, fn, "session");
    if (st)
        return st;
    if (!ids || n == 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s", fn,
                           !ids ? "ids is NULL" : "n is 0");
    const lora_config *c = &s->model->cfg;
    if (n > (size_t)(s->max_ctx - s->pos))
        return lora__error(LORA_ERR_RANGE,
                           "%s: %zu tokens after %lld would exceed max_context = %lld", fn, n,
                           (long long)s->pos, (long long)s->max_ctx);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return lora__error(LORA_ERR_RANGE, "%s: ids[%zu] = %d is outside the vocabulary (0..%lld)",
                               fn, i, ids[i], (long long)c->vocab - 1);
    const lora_backend_ops *op = s->be->ops;
    bool greedy = token && op->argmax && !op->host_memory;
    lora_step_head head;
    bool in_step = !op->host_memory && (greedy || logits_out);
    if (in_step && (st = step_head(s, greedy, &head)))
        return lora__error_prefix(st, "%s", fn);
    float *hidden;
    st = lora__decoder_forward(s, ids, 1, (int64_t)n, true, in_step ? &head : NULL, &hidden);
    if (st)
        return lora__error_prefix(st, "%s", fn);
    /* the cache holds the new rows only once the device says they were computed */
    if (greedy)
        st = greedy_token(s, &head, logits_out, token);
    else {
        if (token)
            *token = -1;
        if (in_step)
            st = op->download(s->be, logits_out, head.logits, (size_t)c->vocab * sizeof(float));
        else if (logits_out)
            st = project_logits(s, hidden + (n - 1) * (size_t)c->hidden, 1, logits_out);
        else
            st = op->sync(s->be);
    }
    if (st)
        return lora__error_prefix(st, "%s", fn);
    memcpy(s->tokens + s->pos, ids, n * sizeof *ids);
    s->pos += (int64_t)n;
    /* the step's argmax fed its token and the next position to the staged ids (a flagged row
     * fed nothing usable) */
    if (greedy && *token >= 0) {
        s->fed = true;
        s->fed_id = *token;
        s->fed_pos = s->pos;
    }
    return LORA_OK;
}

LORA_API lora_status lora_session_append(lora_session *s, const int32_t *ids, size_t n,
                                         float *logits_out)
{
    lora__error_clear();
    return append(s, ids, n, logits_out, NULL);
}

lora_status lora__session_append_greedy(lora_session *s, const int32_t *ids, size_t n,
                                        float *logits, int32_t *token)
{
    return append(s, ids, n, logits, token);
}
