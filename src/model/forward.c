/* The decoder forward pass, written once against the backend op table, for inference (shared
 * buffers, optional KV cache) and for training (activations kept per layer). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "model/session.h"
#include "util/alloc.h"

/* Hands out consecutive slices of a float region; with a NULL base it only counts, so that one
 * function both sizes and lays out a workspace. */
typedef struct bump {
    float *base;
    size_t used;
} bump;

static float *take(bump *b, int64_t n)
{
    float *p = b->base ? b->base + b->used : NULL;
    b->used += (size_t)n;
    return p;
}

/* n floats starting on a 16-byte boundary when the base is on one: cuDNN reads and writes the
 * kept tensors where they are, and its descriptors declare 16-byte alignment */
static float *take_aligned(bump *b, int64_t n)
{
    b->used = (b->used + 3) / 4 * 4;
    return take(b, n);
}

/* n bfloat16 values, 16-byte aligned when the base is */
static lora_bf16 *take_bf16(bump *b, int64_t n)
{
    return (lora_bf16 *)take_aligned(b, (n + 7) / 8 * 4);
}

/* A projection's place in its group (q, k, v; o; gate, up; down): at inference the projections
 * of a group need LoRA intermediates of their own at once. */
static int64_t group_slot(lora_proj p)
{
    return p == LORA_PROJ_K || p == LORA_PROJ_UP ? 1 : p == LORA_PROJ_V ? 2 : 0;
}

/* LoRA intermediates: at inference one scratch per place in a group, shared by the layer's
 * groups and the adapters; one per module when training. Either way a group's t's lie back to
 * back, in projection order (where the ranks are the largest), so that a backend can make
 * them in one product (cuda/lora.c). */
static void layout_t(const lora_session *s, int64_t N, bool train, bump *b, lora_layer_acts *a)
{
    const lora_config *c = &s->model->cfg;
    float *shared = train ? NULL : take(b, LORA_GROUP_MAX * N * s->max_rank);
    for (size_t i = 0; i < s->n_adapters; i++)
        for (int p = 0; p < LORA_PROJ_COUNT; p++) {
            const lora_adapter *ad = s->adapters[i];
            bool any = false;
            for (int64_t l = 0; l < c->n_layers && !any; l++)
                any = lora__adapter_module(ad, l, (lora_proj)p) != NULL;
            if (any)
                a->t[p][i] = train ? take(b, N * s->max_rank)
                                   : shared + group_slot((lora_proj)p) * N * s->max_rank;
        }
}

/* one in16 per layer set then holds a forward's */
bool lora__rounded_inputs(const lora_session *s)
{
    const lora_model *m = s->model;
    return s->be->ops->matmul_bf16_fwd_group && m->cfg.n_layers > 0 &&
           lora__model_mem_bf16(m, m->layers[0].wq) != NULL;
}

static int64_t in16_values(const lora_config *c, int64_t N)
{
    return N * (c->hidden > c->inter ? c->hidden : c->inter);
}

/* Lays out one set of layer activations for N rows. train: everything the backward reads gets
 * its own buffer; otherwise aliases keep inference small. */
static void layout_layer(const lora_session *s, int64_t N, bool train, bump *b,
                         lora_layer_acts *a)
{
    const lora_config *c = &s->model->cfg;
    int64_t C = c->hidden, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    memset(a, 0, sizeof *a);
    a->x_in = train ? take(b, N * C) : NULL;
    a->h1 = take(b, N * C);
    a->q = take(b, N * q);
    a->k = take(b, N * kv);
    a->v = take(b, N * kv);
    a->att = take(b, N * q);
    a->x_mid = train ? take(b, N * C) : NULL;
    a->h2 = train ? take(b, N * C) : a->h1;
    a->gate = take(b, N * c->inter);
    a->up = take(b, N * c->inter);
    a->act = train ? take(b, N * c->inter) : a->gate;
    a->o = take(b, N * C);
    if (train) {
        a->rstd1 = take(b, N);
        a->rstd2 = take(b, N);
    }
    if (train && c->qk_norm) {
        a->q_lin = take(b, N * q);
        a->k_lin = take(b, N * kv);
        a->rstd_q = take(b, N * c->n_heads);
        a->rstd_k = take(b, N * c->n_kv_heads);
    } else {
        a->q_lin = a->q;
        a->k_lin = a->k;
    }
    layout_t(s, N, train, b, a);
    /* training keeps float32 layers apart (an in16 each would be the kept set's size again);
     * the kept layout's shared set has its own */
    if (!train && lora__rounded_inputs(s))
        a->in16 = take_bf16(b, in16_values(c, N));
}

/* One layer of a training forward that keeps bfloat16 activations: a's float32 part (rstd_q,
 * rstd_k, t) and k's. */
static void layout_kept(const lora_session *s, int64_t N, bump *b, lora_layer_acts *a,
                        lora_layer_bf16 *k)
{
    const lora_config *c = &s->model->cfg;
    int64_t C = c->hidden, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    memset(a, 0, sizeof *a);
    memset(k, 0, sizeof *k);
    if (c->qk_norm) {
        a->rstd_q = take(b, N * c->n_heads);
        a->rstd_k = take(b, N * c->n_kv_heads);
        k->q_lin = take_bf16(b, N * q);
        k->k_lin = take_bf16(b, N * kv);
    }
    layout_t(s, N, true, b, a);
    k->x_in = take_bf16(b, N * C);
    k->x_mid = take_bf16(b, N * C);
    k->q = take_bf16(b, N * q);
    k->k = take_bf16(b, N * kv);
    k->v = take_bf16(b, N * kv);
    k->att = take_bf16(b, N * q);
    k->gate = take_bf16(b, N * c->inter);
    k->up = take_bf16(b, N * c->inter);
    k->att_stats = take_aligned(b, N * c->n_heads);
}

size_t lora__kept_layout(const lora_session *s, int64_t N, bool backward, float *base,
                         lora_layer_acts *set)
{
    const lora_config *c = &s->model->cfg;
    int64_t C = c->hidden, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    bump b = {base, 0};
    memset(set, 0, sizeof *set);
    if (!backward && lora__rounded_inputs(s))
        set->in16 = take_bf16(&b, in16_values(c, N));
    set->h1 = take(&b, N * C);
    set->rstd1 = take(&b, N);
    set->att = take(&b, N * q);
    set->h2 = take(&b, N * C);
    set->rstd2 = take(&b, N);
    set->act = take(&b, N * c->inter);
    if (backward)
        return b.used;
    set->q = take(&b, N * q);
    set->k = take(&b, N * kv);
    set->v = take(&b, N * kv);
    set->gate = take(&b, N * c->inter);
    set->up = take(&b, N * c->inter);
    set->o = take(&b, N * C);
    set->q_lin = c->qk_norm ? take(&b, N * q) : set->q;
    set->k_lin = c->qk_norm ? take(&b, N * kv) : set->k;
    return b.used;
}

lora_status lora__session_grow(lora_session *s, void **buf, size_t *cap, size_t need,
                               const char *what)
{
    if (need <= *cap)
        return LORA_OK;
    /* nothing is kept, so the old block goes first: the backend needs room for one */
    s->be->ops->mem_free(s->be, *buf, *cap);
    *buf = NULL;
    *cap = 0;
    lora_status st = s->be->ops->mem_alloc(s->be, need, what, buf);
    if (!st)
        *cap = need;
    return st;
}

static lora_status grow(lora_session *s, float **buf, size_t *cap, size_t need, const char *what)
{
    size_t bytes = *cap * sizeof(float);
    lora_status st = lora__session_grow(s, (void **)buf, &bytes, need * sizeof(float), what);
    *cap = bytes / sizeof(float);
    return st;
}

lora_status lora__stage_i32(lora_session *s, lora_stage slot, const int32_t *host, size_t n,
                            const int32_t **out)
{
    *out = host;
    if (slot == LORA_STAGE_IDS)
        s->fed = false;
    if (s->be->ops->host_memory || !host)
        return LORA_OK;
    lora_status st = lora__session_grow(s, (void **)&s->stage[slot], &s->stage_bytes[slot],
                                        n * sizeof(int32_t), "token ids");
    if (!st)
        st = s->be->ops->upload(s->be, s->stage[slot], host, n * sizeof(int32_t));
    *out = st ? NULL : s->stage[slot];
    return st;
}

/* room for n int32 in the session's host buffer of positions */
static lora_status ws_ids_room(lora_session *s, size_t n)
{
    if (n > s->ws_ids_cap) {
        int32_t *p = lora__realloc(s->ws_ids, n * sizeof(int32_t));
        if (!p)
            return lora__oom("positions", n * sizeof(int32_t));
        s->ws_ids = p;
        s->ws_ids_cap = n;
    }
    return LORA_OK;
}

static void fill_positions(int32_t *pos, size_t N, int64_t T, int64_t pos0)
{
    for (size_t n = 0; n < N; n++)
        pos[n] = (int32_t)(pos0 + (int64_t)n % T);
}

lora_status lora__positions(lora_session *s, int64_t B, int64_t T, int64_t pos0,
                            const int32_t **pos)
{
    size_t N = (size_t)(B * T);
    lora_status st = ws_ids_room(s, N);
    if (st)
        return st;
    fill_positions(s->ws_ids, N, T, pos0);
    return lora__stage_i32(s, LORA_STAGE_POS, s->ws_ids, N, pos);
}

/* An inference call's ids (B, T) and positions as one staged buffer [ids | positions]: one
 * upload, and the wait for it, not two; a decoded token's are most of its host work besides
 * the graph's replay. None where the last step's greedy argmax fed this one token and
 * position (s->fed). */
static lora_status stage_ids_positions(lora_session *s, const int32_t *ids, int64_t B, int64_t T,
                                       int64_t pos0, const int32_t **dids, const int32_t **dpos)
{
    size_t N = (size_t)(B * T);
    const int32_t *d = NULL;
    if (N == 1 && s->fed && ids[0] == s->fed_id && pos0 == s->fed_pos) {
        /* the last step's argmax left this token and position there */
        s->fed = false;
        *dids = s->stage[LORA_STAGE_IDS];
        *dpos = *dids + 1;
        return LORA_OK;
    }
    lora_status st = ws_ids_room(s, 2 * N);
    if (!st) {
        memcpy(s->ws_ids, ids, N * sizeof *ids);
        fill_positions(s->ws_ids + N, N, T, pos0);
        st = lora__stage_i32(s, LORA_STAGE_IDS, s->ws_ids, 2 * N, &d);
    }
    *dids = d;
    *dpos = d ? d + N : NULL;
    return st;
}

/* cos/sin tables in double precision: the golden results are float64, and the angle
 * pos * inv_freq loses digits in float32 at large positions. */
lora_status lora__ensure_rope(lora_session *s, int64_t len)
{
    if (len <= s->rope_len)
        return LORA_OK;
    const lora_config *c = &s->model->cfg;
    int64_t half = c->head_dim / 2;
    size_t bytes = (size_t)len * (size_t)half * sizeof(float);
    float *cs = lora__malloc(bytes), *sn = lora__malloc(bytes);
    if (!cs || !sn) {
        free(cs);
        free(sn);
        return lora__oom("rope tables", 2 * bytes);
    }
    for (int64_t i = 0; i < half; i++) {
        double inv_freq = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)c->head_dim);
        for (int64_t p = 0; p < len; p++) {
            double angle = (double)p * inv_freq;
            cs[p * half + i] = (float)cos(angle);
            sn[p * half + i] = (float)sin(angle);
        }
    }
    /* into the backend's memory; the old tables stay until the new ones are there */
    lora_backend *be = s->be;
    float *dc = NULL, *ds = NULL;
    lora_status st = be->ops->mem_alloc(be, bytes, "rope tables", (void **)&dc);
    if (!st)
        st = be->ops->mem_alloc(be, bytes, "rope tables", (void **)&ds);
    if (!st)
        st = be->ops->upload(be, dc, cs, bytes);
    if (!st)
        st = be->ops->upload(be, ds, sn, bytes);
    free(cs);
    free(sn);
    if (st) {
        be->ops->mem_free(be, dc, bytes);
        be->ops->mem_free(be, ds, bytes);
        return st;
    }
    size_t old = (size_t)s->rope_len * (size_t)half * sizeof(float);
    be->ops->mem_free(be, s->rope_cos, old);
    be->ops->mem_free(be, s->rope_sin, old);
    s->rope_cos = dc;
    s->rope_sin = ds;
    s->rope_len = len;
    return LORA_OK;
}

int64_t lora__max_proj_in(const lora_config *c)
{
    int64_t q = c->n_heads * c->head_dim, m = c->hidden > q ? c->hidden : q;
    return m > c->inter ? m : c->inter;
}

/* y (N, out) += the attached adapters' LoRA paths for projection p of layer l, input x; while
 * training, each path sees its own dropout of x, as PEFT's lora_dropout. */
static void apply_lora(lora_session *s, lora_layer_acts *a, int64_t l, lora_proj p, float *y,
                       const float *x, int64_t N)
{
    for (size_t i = 0; i < s->n_adapters; i++) {
        const lora_adapter_module *m = lora__adapter_module(s->adapters[i], l, p);
        if (!m)
            continue;
        const float *xin = x;
        float drop = lora__dropout_p(s, i);
        if (drop > 0.0f) {
            s->be->ops->dropout_fwd(s->be, a->drop_x, x, N, m->in, drop, s->dropout_seed,
                                    lora__dropout_module(s, i, l, p));
            xin = a->drop_x;
        }
        const lora_adapter *ad = s->adapters[i];
        s->be->ops->lora_fwd(s->be, y, a->t[p][i], xin, lora__adapter_mem(ad, m->A),
                             lora__adapter_mem(ad, m->B), N, m->in, m->r, m->out,
                             s->scales[i] * m->scaling);
    }
}

void lora__base_fwd(lora_session *s, float *y, const float *x, const float *w, const float *bias,
                    int64_t N, int64_t out, int64_t in)
{
    const lora_bf16 *wb = lora__model_mem_bf16(s->model, w);
    if (wb)
        s->be->ops->matmul_bf16_fwd(s->be, y, x, wb, lora__weight(s, bias), N, out, in);
    else
        s->be->ops->matmul_fwd(s->be, y, x, lora__weight(s, w), lora__weight(s, bias), N, out,
                               in);
}

void lora__base_bwd(lora_session *s, float *dx, float *dw, float *dbias, const float *dy,
                    const lora_bf16 *dy16, const float *x, const float *w, int64_t N,
                    int64_t out, int64_t in, bool accumulate)
{
    const lora_bf16 *wb = lora__model_mem_bf16(s->model, w);
    if (wb) {
        if (dx)
            s->be->ops->matmul_bf16_bwd(s->be, dx, dy, dy16, wb, N, out, in, accumulate);
        /* dw = dy^T x and dbias read neither w nor dx */
        if (dw || dbias)
            s->be->ops->matmul_bwd(s->be, NULL, dw, dbias, dy, x, NULL, N, out, in);
    } else {
        /* the float32 entry adds (it is the CPU's): a first term goes into zeros */
        if (dx && !accumulate)
            s->be->ops->zero(s->be, dx, (size_t)(N * in) * sizeof(float));
        s->be->ops->matmul_bwd(s->be, dx, dw, dbias, dy, x, lora__weight(s, w), N, out, in);
    }
}

/* The up-products of the group's paths in defer (bit i: path i) into *lu rather than y, where
 * those paths have one rank: true when any was left there (g->t_only says which). */
static bool defer_ups(lora_bf16_group *g, unsigned defer, lora_lora_up *lu)
{
    memset(lu, 0, sizeof *lu);
    for (int i = 0; i < g->n; i++) {
        if (!g->A[i] || !(defer >> i & 1u))
            continue;
        if (lu->r && g->r[i] != lu->r)
            return false;
        lu->r = g->r[i];
        lu->t[i] = g->t[i];
        lu->B[i] = g->B[i];
        lu->scale[i] = g->scale[i];
    }
    for (int i = 0; i < g->n && lu->r > 0; i++)
        g->t_only[i] = lu->t[i] != NULL;
    return lu->r > 0;
}

/* Projections p[0..n-1] of the same input x (y = x w^T + bias, then the attached adapters' LoRA
 * paths): one group where the backend has it and every weight is bfloat16 there (decoding's
 * q/k/v: two launches instead of up to nine), with the LoRA paths inside it when one adapter
 * without dropout is attached, else after it; projection by projection otherwise. x16: NULL,
 * or x rounded by the op that made it. defer (bit i: projection i; 0: none): the LoRA
 * up-products that may be left to the op that reads y next (gate and up:
 * swiglu_lora_keep_fwd; q, k, v: qkv_keep_fwd; o, down: residual_lora_rmsnorm_fwd); true when
 * any was, *lu then says which. */
static bool projections(lora_session *s, lora_layer_acts *a, int64_t l, int n,
                        const lora_proj *p, float *const *y, const float *x,
                        const lora_bf16 *x16, const float *const *w, const float *const *bias,
                        int64_t N, unsigned defer, lora_lora_up *lu)
{
    lora_bf16_group g = {.n = n, .x16 = x16};
    bool grouped = s->be->ops->matmul_bf16_fwd_group != NULL;
    bool inside = s->n_adapters == 0 || (s->n_adapters == 1 && lora__dropout_p(s, 0) == 0.0f);
    int64_t in = 0;
    for (int i = 0; i < n && grouped; i++) {
        g.y[i] = y[i];
        g.w[i] = lora__model_mem_bf16(s->model, w[i]);
        g.bias[i] = lora__weight(s, bias[i]);
        lora__proj_shape(&s->model->cfg, p[i], &g.out[i], &in);
        grouped = g.w[i] != NULL;
        const lora_adapter_module *m = inside && s->n_adapters ?
                                       lora__adapter_module(s->adapters[0], l, p[i]) : NULL;
        if (m) {
            g.A[i] = lora__adapter_mem(s->adapters[0], m->A);
            g.B[i] = lora__adapter_mem(s->adapters[0], m->B);
            g.t[i] = a->t[p[i]][0];
            g.r[i] = m->r;
            g.scale[i] = s->scales[0] * m->scaling;
        }
    }
    if (!grouped) {
        for (int i = 0; i < n; i++) {
            int64_t out;
            lora__proj_shape(&s->model->cfg, p[i], &out, &in);
            lora__base_fwd(s, y[i], x, w[i], bias[i], N, out, in);
            apply_lora(s, a, l, p[i], y[i], x, N);
        }
        return false;
    }
    bool left = defer && inside && s->n_adapters == 1 && defer_ups(&g, defer, lu);
    s->be->ops->matmul_bf16_fwd_group(s->be, &g, x, N, in);
    for (int i = 0; i < n && !inside; i++)
        apply_lora(s, a, l, p[i], y[i], x, N);
    return left;
}

/* x (N, C) = the embedding rows of ids (staged), from its float32 or bfloat16 copy */
static void embed(lora_session *s, float *x, const int32_t *ids, int64_t N)
{
    const lora_model *m = s->model;
    const lora_bf16 *tb = lora__model_mem_bf16(m, m->embed);
    if (tb)
        s->be->ops->embedding_bf16_fwd(s->be, x, ids, tb, N, m->cfg.hidden);
    else
        s->be->ops->embedding_fwd(s->be, x, ids, lora__weight(s, m->embed), N, m->cfg.hidden);
}

/* RoPE and the attention of a training forward that keeps bfloat16 activations: the kept set
 * holds the attention's bfloat16 inputs and output, so RoPE rounds q and k into it (one pass
 * with v's rounding and, lu not NULL, the q/k/v LoRA up-products where the backend fuses them)
 * and cuDNN reads and writes it there; att gets the output widened, for the o projection. */
static void attend_kept(lora_session *s, lora_layer_acts *a, const int32_t *pos,
                        const lora_attention_shape *sh, const lora_lora_up *lu)
{
    const lora_backend_ops *op = s->be->ops;
    lora_backend *be = s->be;
    lora_layer_bf16 *k = a->kept;
    int64_t N = sh->B * sh->T;
    if (op->qkv_keep_fwd)
        op->qkv_keep_fwd(be, k->q, k->k, k->v, a->q, a->k, a->v, lu, pos, s->rope_cos,
                         s->rope_sin, N, sh->H, sh->KVH, sh->D);
    else {
        op->rope_bf16_fwd(be, k->q, a->q, pos, s->rope_cos, s->rope_sin, N, sh->H, sh->D);
        op->rope_bf16_fwd(be, k->k, a->k, pos, s->rope_cos, s->rope_sin, N, sh->KVH, sh->D);
        op->to_bf16(be, k->v, a->v, (size_t)(N * sh->KVH * sh->D));
    }
    op->attention_bf16_fwd(be, k->att, k->att_stats, k->q, k->k, k->v, sh);
    op->from_bf16(be, a->att, k->att, (size_t)(N * sh->H * sh->D));
}

/* Whether attend_cached adds the q/k/v LoRA up-products itself (lu), into a bfloat16 cache */
static bool cached_fuses_ups(const lora_session *s)
{
    return s->kv_bf16 && s->be->ops->rope_kv_store_bf16;
}

/* RoPE, the KV cache's writes at the session's position and the attention over the cache; lu
 * not NULL: the q/k/v LoRA up-products the group left (cached_fuses_ups) */
static void attend_cached(lora_session *s, int64_t l, lora_layer_acts *a, const int32_t *pos,
                          lora_attention_shape *sh, const lora_lora_up *lu)
{
    const lora_backend_ops *op = s->be->ops;
    lora_backend *be = s->be;
    int64_t B = sh->B, T = sh->T, N = B * T, H = sh->H, KVH = sh->KVH, D = sh->D;
    size_t row = (size_t)(KVH * D), layer = (size_t)l * (size_t)s->max_ctx * row;
    size_t at = (size_t)s->pos * row, n = (size_t)T * row;
    sh->S = s->max_ctx;
    sh->pos0 = s->pos;
    /* into a bfloat16 cache, RoPE and the cache writes are one op where the backend fuses them */
    bool fused = cached_fuses_ups(s);
    if (!fused) {
        op->rope_fwd(be, a->q, pos, s->rope_cos, s->rope_sin, N, H, D);
        op->rope_fwd(be, a->k, pos, s->rope_cos, s->rope_sin, N, KVH, D);
    }
    if (s->kv_bf16) {
        /* where the rows go and what they see come from the staged positions, so that the
         * step's kernels do not change with the position */
        lora_bf16 *kc = (lora_bf16 *)s->k_cache + layer, *vc = (lora_bf16 *)s->v_cache + layer;
        sh->pos = pos;
        if (fused)
            op->rope_kv_store_bf16(be, a->q, a->k, a->v, kc, vc, lu, pos, s->rope_cos,
                                   s->rope_sin, B, T, s->max_ctx, H, KVH, D);
        else {
            op->kv_store_bf16(be, kc, a->k, pos, B, T, s->max_ctx, (int64_t)row);
            op->kv_store_bf16(be, vc, a->v, pos, B, T, s->max_ctx, (int64_t)row);
        }
        op->attention_bf16kv_fwd(be, a->att, a->q, kc, vc, sh);
    } else {
        float *kc = (float *)s->k_cache + layer, *vc = (float *)s->v_cache + layer;
        op->copy(be, kc + at, a->k, n * sizeof(float));
        op->copy(be, vc + at, a->v, n * sizeof(float));
        op->attention_fwd(be, a->att, a->q, kc, vc, sh);
    }
}

/* The residual add of r into x and the norm after it (residual_rmsnorm_fwd), with the LoRA
 * up-product of the projection that made r summed in the same pass where it was left to it
 * (lu not NULL). */
static void residual_norm(lora_session *s, float *x, float *h, float *rstd, lora_bf16 *x16,
                          lora_bf16 *h16, const float *r, const lora_lora_up *lu,
                          const float *w, int64_t N)
{
    const lora_config *c = &s->model->cfg;
    if (lu)
        s->be->ops->residual_lora_rmsnorm_fwd(s->be, x, h, rstd, x16, h16, r, lu, w, N,
                                              c->hidden, (float)c->rms_eps);
    else
        s->be->ops->residual_rmsnorm_fwd(s->be, x, h, rstd, x16, h16, r, w, N, c->hidden,
                                         (float)c->rms_eps);
}

/* The attention and its o projection into a->o; true when o's LoRA up-product was left to the
 * residual norm that reads a->o (*lu_o: what it is), which defer_o allows. */
static bool attention_block(lora_session *s, int64_t l, lora_layer_acts *a, float *x, int64_t B,
                            int64_t T, bool use_cache, bool normed, const int32_t *pos,
                            const int32_t *key0, bool defer_o, lora_lora_up *lu_o)
{
    const lora_config *c = &s->model->cfg;
    const lora_layer_weights *w = &s->model->layers[l];
    const lora_backend_ops *op = s->be->ops;
    lora_backend *be = s->be;
    int64_t N = B * T, C = c->hidden, H = c->n_heads, KVH = c->n_kv_heads, D = c->head_dim;
    float eps = (float)c->rms_eps;

    if (!normed)
        op->rmsnorm_fwd(be, a->h1, a->rstd1, x, lora__weight(s, w->attn_norm), N, C, eps);
    const lora_proj qkv[3] = {LORA_PROJ_Q, LORA_PROJ_K, LORA_PROJ_V};
    float *const y[3] = {a->q_lin, a->k_lin, a->v};
    const float *const wt[3] = {w->wq, w->wk, w->wv}, *const bias[3] = {w->bq, w->bk, w->bv};
    /* h1 rounded by the previous layer's last op where it made h1; the LoRA up-products go
     * into the pass that rounds q, k, v into the kept set, or that rotates them and writes the
     * bfloat16 cache, where the backend fuses them, but for q's and k's where those are
     * normalised first (Qwen3: the LoRA terms are in the norms' inputs) */
    lora_lora_up lu;
    bool fuses = a->kept ? op->qkv_keep_fwd != NULL : use_cache && cached_fuses_ups(s);
    unsigned defer = fuses ? (c->qk_norm ? 4u : 7u) : 0u;
    bool fused = projections(s, a, l, 3, qkv, y, a->h1, normed ? a->in16 : NULL, wt, bias, N,
                             defer, &lu);
    if (c->qk_norm && a->kept) { /* the norms' inputs rounded into the kept set as read */
        op->rmsnorm_keep_fwd(be, a->q, a->rstd_q, a->kept->q_lin, a->q_lin,
                             lora__weight(s, w->q_norm), N * H, D, eps);
        op->rmsnorm_keep_fwd(be, a->k, a->rstd_k, a->kept->k_lin, a->k_lin,
                             lora__weight(s, w->k_norm), N * KVH, D, eps);
    } else if (c->qk_norm) {
        op->rmsnorm_fwd(be, a->q, a->rstd_q, a->q_lin, lora__weight(s, w->q_norm), N * H, D, eps);
        op->rmsnorm_fwd(be, a->k, a->rstd_k, a->k_lin, lora__weight(s, w->k_norm), N * KVH, D,
                        eps);
    }
    lora_attention_shape sh = {B, T, T, H, KVH, D, 0, (float)(1.0 / sqrt((double)D)), key0, NULL};
    if (a->kept)
        attend_kept(s, a, pos, &sh, fused ? &lu : NULL);
    else if (use_cache)
        attend_cached(s, l, a, pos, &sh, fused ? &lu : NULL);
    else {
        op->rope_fwd(be, a->q, pos, s->rope_cos, s->rope_sin, N, H, D);
        op->rope_fwd(be, a->k, pos, s->rope_cos, s->rope_sin, N, KVH, D);
        op->attention_fwd(be, a->att, a->q, a->k, a->v, &sh);
    }
    /* kept, the attention's output is bfloat16 already (att is its widening) */
    return projections(s, a, l, 1, (const lora_proj[]){LORA_PROJ_O}, &a->o, a->att,
                       a->kept ? a->kept->att : NULL, (const float *const[]){w->wo},
                       (const float *const[]){w->bo}, N, defer_o, lu_o);
}

static void mlp_block(lora_session *s, int64_t l, lora_layer_acts *a, float *x, int64_t N,
                      const lora_bf16 *h2_16, const lora_next_norm *next)
{
    const lora_config *c = &s->model->cfg;
    const lora_layer_weights *w = &s->model->layers[l];
    const lora_backend_ops *op = s->be->ops;
    const lora_proj gu[2] = {LORA_PROJ_GATE, LORA_PROJ_UP};
    float *const y[2] = {a->gate, a->up};
    const float *const wt[2] = {w->w_gate, w->w_up}, *const bias[2] = {NULL, NULL};
    /* the LoRA up-products of gate and up go into SwiGLU's pass where the backend fuses them
     * (y is not read and written again for them), unless the backward reads the float32 sums
     * (the float32 layouts: those with x_mid) */
    lora_lora_up lu;
    bool fused = projections(s, a, l, 2, gu, y, a->h2, h2_16, wt, bias, N,
                             !a->x_mid && op->swiglu_lora_keep_fwd ? 3u : 0u, &lu);
    /* SwiGLU's pass rounds gate and up into the kept set, and its output for down into in16
     * where that is kept or at inference (a kept pass without the kept copies); in16 held h2
     * rounded, which gate and up have read by now (the ops run in order) */
    lora_bf16 *g16 = a->kept ? a->kept->gate : NULL, *u16 = a->kept ? a->kept->up : NULL;
    bool rounds = a->kept || (!a->x_mid && a->in16 && op->swiglu_keep_fwd);
    if (fused)
        op->swiglu_lora_keep_fwd(s->be, a->act, a->in16, g16, u16, a->gate, a->up, &lu, N,
                                 c->inter);
    else if (rounds)
        op->swiglu_keep_fwd(s->be, a->act, a->in16, g16, u16, a->gate, a->up, N, c->inter);
    else
        op->swiglu_fwd(s->be, a->act, a->gate, a->up, N, c->inter);
    /* down's LoRA up-product goes into the next norm's pass where the backend fuses them */
    lora_lora_up ld;
    bool down_fused = projections(s, a, l, 1, (const lora_proj[]){LORA_PROJ_DOWN}, &a->o,
                                  a->act, rounds || fused ? a->in16 : NULL,
                                  (const float *const[]){w->w_down},
                                  (const float *const[]){NULL}, N,
                                  next && op->residual_lora_rmsnorm_fwd, &ld);
    if (next)
        residual_norm(s, x, next->h, next->rstd, next->x16, next->h16, a->o,
                      down_fused ? &ld : NULL, next->w, N);
    else
        op->residual_fwd(s->be, x, a->o, N * c->hidden);
}

void lora__layer_forward(lora_session *s, int64_t l, lora_layer_acts *a, float *x, int64_t B,
                         int64_t T, bool use_cache, bool normed, const lora_next_norm *next,
                         const int32_t *pos, const int32_t *key0)
{
    size_t bytes = (size_t)(B * T * s->model->cfg.hidden) * sizeof(float);
    if (a->x_in)
        s->be->ops->copy(s->be, a->x_in, x, bytes);
    const lora_backend_ops *op = s->be->ops;
    const lora_config *c = &s->model->cfg;
    const float *mlp_norm = lora__weight(s, s->model->layers[l].mlp_norm);
    int64_t N = B * T;
    /* the attention's output (in a->o) joins the residual stream, whose norm feeds the MLP
     * and where the backward reads it (x_mid, or rounded into the kept set); o's LoRA
     * up-product goes into that norm's pass where the backend fuses them */
    lora_lora_up lu;
    bool o_fused = attention_block(s, l, a, x, B, T, use_cache, normed, pos, key0,
                                   op->residual_rmsnorm_fwd && op->residual_lora_rmsnorm_fwd,
                                   &lu);
    const lora_bf16 *h2_16 = NULL;
    if (op->residual_rmsnorm_fwd) {
        residual_norm(s, x, a->h2, a->rstd2, a->kept ? a->kept->x_mid : NULL, a->in16, a->o,
                      o_fused ? &lu : NULL, mlp_norm, N);
        h2_16 = a->in16;
        if (a->x_mid)
            op->copy(s->be, a->x_mid, x, bytes);
    } else {
        op->residual_fwd(s->be, x, a->o, N * c->hidden);
        if (a->x_mid)
            op->copy(s->be, a->x_mid, x, bytes);
        op->rmsnorm_fwd(s->be, a->h2, a->rstd2, x, mlp_norm, N, c->hidden, (float)c->rms_eps);
    }
    mlp_block(s, l, a, x, N, h2_16, next);
}

/* an inference step's prepared buffers: what its ops read */
typedef struct step {
    lora_layer_acts a;
    float *x;
    const int32_t *ids, *pos;
    int64_t B, T;
    bool use_cache;
    const lora_step_head *head; /* NULL: the caller runs the head */
} step;

static void step_ops(lora_session *s, void *ctx)
{
    step *p = ctx;
    const lora_model *m = s->model;
    const lora_config *c = &m->cfg;
    int64_t N = p->B * p->T;
    embed(s, p->x, p->ids, N);
    /* where the backend fuses a residual add with the norm after it, each layer's last add
     * also makes the next layer's attention norm (or the final one) in h1 */
    bool fuse = s->be->ops->residual_rmsnorm_fwd != NULL;
    for (int64_t l = 0; l < c->n_layers; l++) {
        const float *w = l + 1 < c->n_layers ? m->layers[l + 1].attn_norm : m->final_norm;
        lora_next_norm next = {lora__weight(s, w), p->a.h1, NULL, NULL, p->a.in16};
        lora__layer_forward(s, l, &p->a, p->x, p->B, p->T, p->use_cache, fuse && l > 0,
                            fuse ? &next : NULL, p->pos, NULL);
    }
    if (!fuse)
        s->be->ops->rmsnorm_fwd(s->be, p->a.h1, NULL, p->x, lora__weight(s, m->final_norm), N,
                                c->hidden, (float)c->rms_eps);
    if (p->head) {
        lora__base_fwd(s, p->head->logits, p->a.h1 + (N - 1) * c->hidden, m->lm_head, NULL, 1,
                       c->vocab, c->hidden);
        /* the token and the position after it where a next step of that token reads them
         * (the staged ids and positions, read by now: the ops run in order) */
        if (p->head->answer)
            s->be->ops->argmax(s->be, p->head->answer, p->head->logits, c->vocab,
                               s->stage[LORA_STAGE_IDS], p->pos + (N - 1));
    }
}

/* One token into a bfloat16 cache on a backend that records graphs: the step is replayable
 * (every kernel reads the position from the staged positions). */
static bool replayable(const lora_session *s, const step *p)
{
    return p->use_cache && p->B == 1 && p->T == 1 && s->kv_bf16 && s->be->ops->graph_begin &&
           !s->graph_off && !s->dropout_on;
}

static lora_status run_step(lora_session *s, step *p)
{
    if (!replayable(s, p)) {
        step_ops(s, p);
        return LORA_OK;
    }
    lora_graph_key k;
    memset(&k, 0, sizeof k);
    k.ws = s->ws;
    k.k_cache = s->k_cache;
    k.v_cache = s->v_cache;
    k.rope_cos = s->rope_cos;
    k.rope_sin = s->rope_sin;
    k.ids = p->ids;
    k.pos = p->pos;
    k.head = p->head ? p->head->logits : NULL;
    k.answer = p->head ? p->head->answer : NULL;
    k.n_adapters = s->n_adapters;
    k.max_rank = s->max_rank;
    for (size_t i = 0; i < s->n_adapters; i++) {
        k.adapters[i] = s->adapters[i];
        k.scales[i] = s->scales[i];
    }
    return lora__graph_step(s, &k, step_ops, p);
}

lora_status lora__decoder_forward(lora_session *s, const int32_t *ids, int64_t B, int64_t T,
                                  bool use_cache, const lora_step_head *head, float **hidden)
{
    const lora_model *m = s->model;
    const lora_config *c = &m->cfg;
    int64_t N = B * T;
    int64_t pos0 = use_cache ? s->pos : 0;
    step p = {.B = B, .T = T, .use_cache = use_cache, .head = head};
    bump count = {NULL, 0};
    take(&count, N * c->hidden); /* the residual stream */
    layout_layer(s, N, false, &count, &p.a);
    lora_status st;
    /* with the cache, tables for all of it at once: they stay put from step to step */
    if ((st = grow(s, &s->ws, &s->ws_floats, count.used, "activations")) ||
        (st = lora__ensure_rope(s, use_cache ? s->max_ctx : T)) ||
        (st = stage_ids_positions(s, ids, B, T, pos0, &p.ids, &p.pos)))
        return st;
    bump b = {s->ws, 0};
    p.x = take(&b, N * c->hidden);
    layout_layer(s, N, false, &b, &p.a);
    if ((st = run_step(s, &p)))
        return st;
    *hidden = p.a.h1;
    return LORA_OK;
}

static lora_status layout_train(lora_session *s, int64_t N, bool recompute, lora_train_acts *t)
{
    const lora_config *c = &s->model->cfg;
    if (c->n_layers > s->train_layers_cap) {
        size_t n = (size_t)c->n_layers;
        lora_layer_acts *p = lora__realloc(s->train_layers, n * sizeof *p);
        if (p)
            s->train_layers = p;
        lora_layer_bf16 *k = p ? lora__realloc(s->train_kept, n * sizeof *k) : NULL;
        if (!k)
            return lora__oom("layer activations", n * (sizeof *p + sizeof *k));
        s->train_kept = k;
        s->train_layers_cap = c->n_layers;
    }
    t->layers = s->train_layers;
    /* bfloat16 where the weights are: their products round their inputs so anyway */
    t->kept = !recompute && s->acts_bf16 ? s->train_kept : NULL;
    for (int pass = 0; pass < 2; pass++) {
        bump b = {pass ? s->train_ws : NULL, 0};
        for (int64_t l = 0; l < c->n_layers; l++) {
            if (recompute) {
                memset(&t->layers[l], 0, sizeof t->layers[l]);
                t->layers[l].x_in = take(&b, N * c->hidden);
            } else if (t->kept)
                layout_kept(s, N, &b, &t->layers[l], &t->kept[l]);
            else
                layout_layer(s, N, true, &b, &t->layers[l]);
        }
        if (recompute)
            layout_layer(s, N, true, &b, &t->scratch);
        else
            memset(&t->scratch, 0, sizeof t->scratch);
        /* dropout's input is rebuilt wherever it is needed: one region serves every layer */
        float *drop_x = s->dropout_on ? take(&b, N * lora__max_proj_in(c)) : NULL;
        for (int64_t l = 0; l < c->n_layers; l++)
            t->layers[l].drop_x = drop_x;
        t->scratch.drop_x = drop_x;
        t->x_final = take(&b, N * c->hidden);
        t->rstd_final = take(&b, N);
        t->h_final = take(&b, N * c->hidden);
        if (pass == 0) {
            lora_status st = grow(s, &s->train_ws, &s->train_ws_floats, b.used,
                                  "training activations");
            if (st)
                return st;
        }
    }
    return LORA_OK;
}

lora_status lora__decoder_forward_train(lora_session *s, const int32_t *ids,
                                        const int32_t *packed_pos, const int32_t *key0,
                                        int64_t B, int64_t T, bool recompute,
                                        lora_train_acts *acts)
{
    const lora_model *m = s->model;
    const lora_config *c = &m->cfg;
    int64_t N = B * T;
    const int32_t *pos, *dids, *dkey0;
    lora_layer_acts set; /* a kept forward's float32 layer set, in the shared workspace */
    lora_status st;
    if ((st = layout_train(s, N, recompute, acts)) ||
        (acts->kept && (st = grow(s, &s->ws, &s->ws_floats,
                                  lora__kept_layout(s, N, false, NULL, &set), "activations"))) ||
        (st = lora__ensure_rope(s, T)) ||
        (st = packed_pos ? lora__stage_i32(s, LORA_STAGE_POS, packed_pos, (size_t)N, &pos)
                         : lora__positions(s, B, T, 0, &pos)) ||
        (st = lora__stage_i32(s, LORA_STAGE_KEY0, key0, (size_t)N, &dkey0)) ||
        (st = lora__stage_i32(s, LORA_STAGE_IDS, ids, (size_t)N, &dids)))
        return st;
    acts->B = B;
    acts->T = T;
    acts->recompute = recompute;
    acts->ids = dids;
    acts->host_ids = ids;
    acts->pos = packed_pos ? pos : NULL;
    acts->key0 = dkey0;
    key0 = dkey0;
    /* the residual stream runs in x_final, which ends up holding the last layer's output */
    float *x = acts->x_final;
    if (acts->kept)
        lora__kept_layout(s, N, false, s->ws, &set);
    embed(s, x, dids, N);
    /* where the backend fuses a residual add with the norm after it (a GPU), each layer's
     * last add also makes the next layer's attention norm (keeping bfloat16 activations, into
     * the float32 set every layer computes in, and the sum rounded into the next layer's kept
     * input), the last layer's the final norm. Recomputation keeps them apart: the backward
     * reruns each layer from its input alone, as the forward ran it. */
    bool fuse = !recompute && s->be->ops->residual_rmsnorm_fwd;
    for (int64_t l = 0; l < c->n_layers; l++) {
        if (recompute) {
            s->be->ops->copy(s->be, acts->layers[l].x_in, x,
                             (size_t)(N * c->hidden) * sizeof(float));
            lora_layer_acts tmp = acts->scratch;
            tmp.x_in = NULL; /* kept above */
            lora__layer_forward(s, l, &tmp, x, B, T, false, false, NULL, pos, key0);
            continue;
        }
        lora_layer_acts tmp, *a = &acts->layers[l];
        if (acts->kept) { /* fuse holds: the kept entries include residual_rmsnorm_fwd */
            tmp = lora__kept_work(acts, &set, l);
            a = &tmp;
            if (l == 0)
                s->be->ops->to_bf16(s->be, acts->kept[0].x_in, x, (size_t)(N * c->hidden));
        }
        bool last = l + 1 == c->n_layers;
        const lora_layer_acts *an = last ? NULL : acts->kept ? &set : &acts->layers[l + 1];
        lora_next_norm next = {
            lora__weight(s, last ? m->final_norm : m->layers[l + 1].attn_norm),
            last ? acts->h_final : an->h1, last ? acts->rstd_final : an->rstd1,
            last || !acts->kept ? NULL : acts->kept[l + 1].x_in, last ? NULL : an->in16};
        lora__layer_forward(s, l, a, x, B, T, false, fuse && l > 0, fuse ? &next : NULL, pos,
                            key0);
    }
    if (!fuse)
        s->be->ops->rmsnorm_fwd(s->be, acts->h_final, acts->rstd_final, x,
                                lora__weight(s, m->final_norm), N, c->hidden,
                                (float)c->rms_eps);
    return LORA_OK;
}
