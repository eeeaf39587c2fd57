/* The decoder backward pass: the forward in forward.c read in reverse, op by op. Gradients
 * accumulate into arenas parallel to the model's and the adapters' weights, so a parameter's
 * gradient sits at the same offset in its gradient arena as the parameter in its own. */
#include <math.h>
#include <stdlib.h>

#include "api/error.h"
#include "model/session.h"
#include "util/alloc.h"

typedef struct grad_bufs {
    float *dx;           // (N, C) gradient of the residual stream
    float *dh;           // (N, C) gradient of a normed input
    float *dq, *dk, *dv; // (N, H*D), (N, KVH*D), (N, KVH*D)
    float *dq_lin, *dk_lin;  // with q/k norms, else NULL
    float *datt;         // (N, H*D)
    float *dgate, *dup, *dact; // (N, I)
    lora_bf16 *dgate16, *dup16; // (N, I) dgate and dup rounded (SwiGLU's kept backward), or NULL
    lora_bf16 *dx16;     // (N, C) dx rounded by the last kept norm's backward, or NULL
    float *u;            // (N, max_rank) LoRA scratch; (N, 3 max_rank) for a grouped backward
    float *drop_x, *drop_dx; // (N, max in) LoRA dropout's input and its gradient
} grad_bufs;

typedef struct bwd_ctx {
    lora_session *s;
    const lora_grads *g;
    int64_t N;
    grad_bufs b;
    lora_layer_acts kept_set; /* keeping bfloat16 activations: the float32 set widened into */
    bool dx16_fresh;          /* b.dx16 holds dx as it is now (the norm that wrote dx made it) */
} bwd_ctx;

static float *base_grad(const bwd_ctx *c, const float *param)
{
    return c->g->base && param ? c->g->base + (param - c->s->model->arena) : NULL;
}

static void zero(const bwd_ctx *c, float *p, int64_t n)
{
    c->s->be->ops->zero(c->s->be, p, (size_t)n * sizeof *p);
}

static const float *W(const bwd_ctx *c, const float *p) { return lora__weight(c->s, p); }

/* dx (rows, C) += (or, first, =) through the RMSNorm with weight w of x, read as its kept
 * bfloat16 copy x16 where there is one (whose entry writes; the float32 one only adds, into
 * dx zeroed first). True when dx16 (may be NULL) got the resulting dx rounded (the kept
 * entry's). */
static bool norm_bwd(const bwd_ctx *c, float *dx, lora_bf16 *dx16, const float *w,
                     const float *dy, const float *x, const lora_bf16 *x16, const float *rstd,
                     int64_t rows, int64_t C, bool first)
{
    lora_backend *be = c->s->be;
    if (x16) {
        be->ops->rmsnorm_bf16_bwd(be, dx, dx16, base_grad(c, w), dy, x16, W(c, w), rstd, rows,
                                  C, !first);
        return dx16 != NULL;
    }
    if (first)
        zero(c, dx, rows * C);
    be->ops->rmsnorm_bwd(be, dx, base_grad(c, w), dy, x, W(c, w), rstd, rows, C);
    return false;
}

/* dx (N, in) += gradient through projection p (base weight w, optional bias, the attached
 * LoRA paths but those of the adapters in grouped) given dy (N, out) and the projection's
 * input x (N, in), dy16 NULL or dy rounded to bfloat16 (by the op that made it); first: dx
 * holds nothing yet (the base product writes it). */
static void projection_bwd(bwd_ctx *c, const lora_layer_acts *a, int64_t l, lora_proj p,
                           float *dx, const float *dy, const lora_bf16 *dy16, const float *x,
                           const float *w, const float *bias, bool first, unsigned grouped)
{
    lora_session *s = c->s;
    int64_t out, in;
    lora__proj_shape(&s->model->cfg, p, &out, &in);
    lora__base_bwd(s, dx, base_grad(c, w), base_grad(c, bias), dy, dy16, x, w, c->N, out, in,
                   !first);
    for (size_t i = 0; i < s->n_adapters; i++) {
        const lora_adapter *ad = s->adapters[i];
        const lora_adapter_module *m = lora__adapter_module(ad, l, p);
        if (!m || grouped & (1u << i))
            continue;
        float *ga = c->g->adapter[i];
        float drop = lora__dropout_p(s, i);
        uint64_t id = lora__dropout_module(s, i, l, p);
        const float *xin = x;
        float *dxin = dx;
        if (drop > 0.0f) { /* the forward's mask, regenerated */
            s->be->ops->dropout_fwd(s->be, c->b.drop_x, x, c->N, m->in, drop, s->dropout_seed,
                                    id);
            zero(c, c->b.drop_dx, c->N * m->in);
            xin = c->b.drop_x;
            dxin = c->b.drop_dx;
        }
        s->be->ops->lora_bwd(s->be, dxin, ga ? ga + (m->A - ad->arena) : NULL,
                             ga ? ga + (m->B - ad->arena) : NULL, c->b.u, dy, xin, a->t[p][i],
                             lora__adapter_mem(ad, m->A), lora__adapter_mem(ad, m->B), c->N,
                             m->in, m->r, m->out, s->scales[i] * m->scaling);
        if (drop > 0.0f)
            s->be->ops->dropout_bwd(s->be, dx, c->b.drop_dx, c->N, m->in, drop, s->dropout_seed,
                                    id);
    }
}

/* The adapters (a bit each) whose LoRA paths of layer l over projections ps[0..n-1] (one
 * input) the backend's grouped backward can take: no dropout (each path would see its own
 * mask of the input), two or more of the projections adapted, all with one rank and their A
 * matrices back to back (the adapter's layout, where r x in keeps the alignment). */
static unsigned lora_groups(const bwd_ctx *c, int64_t l, const lora_proj *ps, int n)
{
    const lora_session *s = c->s;
    unsigned mask = 0;
    if (!s->be->ops->lora_bwd_group)
        return 0;
    for (size_t i = 0; i < s->n_adapters; i++) {
        const lora_adapter_module *prev = NULL;
        int found = 0;
        bool ok = lora__dropout_p(s, i) == 0.0f;
        for (int j = 0; j < n && ok; j++) {
            const lora_adapter_module *m = lora__adapter_module(s->adapters[i], l, ps[j]);
            if (!m)
                continue;
            ok = !prev || (m->r == prev->r && m->A == prev->A + prev->r * prev->in);
            prev = m;
            found++;
        }
        if (ok && found >= 2)
            mask |= 1u << i;
    }
    return mask;
}

/* The LoRA backward of the adapters in grouped over projections ps[0..n-1] of layer l (one
 * input x (N, in), gradients dys[j] at their outputs), dx (N, in) += theirs: the backend's
 * grouped entry, one call per adapter. */
static void lora_group_bwd(bwd_ctx *c, const lora_layer_acts *a, int64_t l, const lora_proj *ps,
                           const float *const *dys, int n, float *dx, const float *x,
                           unsigned grouped)
{
    lora_session *s = c->s;
    for (size_t i = 0; i < s->n_adapters; i++) {
        if (!(grouped & (1u << i)))
            continue;
        const lora_adapter *ad = s->adapters[i];
        float *ga = c->g->adapter[i];
        lora_lora_group g = {0};
        const lora_adapter_module *first = NULL;
        for (int j = 0; j < n; j++) {
            const lora_adapter_module *m = lora__adapter_module(ad, l, ps[j]);
            if (!m)
                continue;
            first = first ? first : m;
            g.dy[g.n] = dys[j];
            g.B[g.n] = lora__adapter_mem(ad, m->B);
            g.dB[g.n] = ga ? ga + (m->B - ad->arena) : NULL;
            g.t[g.n] = a->t[ps[j]][i];
            g.out[g.n] = m->out;
            g.scale[g.n] = s->scales[i] * m->scaling;
            g.n++;
        }
        s->be->ops->lora_bwd_group(s->be, &g, dx, ga ? ga + (first->A - ad->arena) : NULL,
                                   c->b.u, x, lora__adapter_mem(ad, first->A), c->N, first->in,
                                   first->r);
    }
}

// dx: gradient at the layer's output in, at its input out
static void mlp_bwd(bwd_ctx *c, int64_t l, const lora_layer_acts *a)
{
    lora_session *s = c->s;
    const lora_config *cfg = &s->model->cfg;
    const lora_layer_weights *w = &s->model->layers[l];
    int64_t N = c->N, I = cfg->inter;
    grad_bufs *b = &c->b;
    /* dy is the residual stream's gradient, rounded by the norm's backward that made it */
    projection_bwd(c, a, l, LORA_PROJ_DOWN, b->dact, b->dx, c->dx16_fresh ? b->dx16 : NULL,
                   a->act, w->w_down, NULL, true, 0);
    if (a->kept) /* writes dgate and dup (and their rounding for the products) */
        s->be->ops->swiglu_bf16_bwd(s->be, b->dgate, b->dup, b->dgate16, b->dup16, b->dact,
                                    a->kept->gate, a->kept->up, N, I);
    else {
        zero(c, b->dgate, N * I);
        zero(c, b->dup, N * I);
        s->be->ops->swiglu_bwd(s->be, b->dgate, b->dup, b->dact, a->gate, a->up, N, I);
    }
    static const lora_proj gate_up[] = {LORA_PROJ_GATE, LORA_PROJ_UP};
    const float *dys[] = {b->dgate, b->dup};
    unsigned grouped = lora_groups(c, l, gate_up, 2);
    projection_bwd(c, a, l, LORA_PROJ_GATE, b->dh, b->dgate, b->dgate16, a->h2, w->w_gate, NULL, true,
                   grouped);
    projection_bwd(c, a, l, LORA_PROJ_UP, b->dh, b->dup, b->dup16, a->h2, w->w_up, NULL, false, grouped);
    lora_group_bwd(c, a, l, gate_up, dys, 2, b->dh, a->h2, grouped);
    c->dx16_fresh = norm_bwd(c, b->dx, b->dx16, w->mlp_norm, b->dh, a->x_mid,
                             a->kept ? a->kept->x_mid : NULL, a->rstd2, N, cfg->hidden, false);
}

static void attention_bwd(bwd_ctx *c, int64_t l, const lora_layer_acts *a, int64_t B,
                          int64_t T, const int32_t *pos, const int32_t *key0)
{
    lora_session *s = c->s;
    const lora_config *cfg = &s->model->cfg;
    const lora_layer_weights *w = &s->model->layers[l];
    const lora_backend_ops *op = s->be->ops;
    int64_t N = c->N, C = cfg->hidden, H = cfg->n_heads, KVH = cfg->n_kv_heads,
            D = cfg->head_dim;
    grad_bufs *b = &c->b;
    projection_bwd(c, a, l, LORA_PROJ_O, b->datt, b->dx, c->dx16_fresh ? b->dx16 : NULL, a->att,
                   w->wo, w->bo, true, 0);
    lora_attention_shape sh = {B, T, T, H, KVH, D, 0, (float)(1.0 / sqrt((double)D)), key0, NULL};
    const lora_layer_bf16 *k16 = a->kept;
    if (k16) /* writes dq, dk, dv */
        op->attention_bf16_bwd(s->be, b->dq, b->dk, b->dv, b->datt, k16->q, k16->k, k16->v,
                               k16->att, k16->att_stats, &sh);
    else {
        zero(c, b->dq, N * H * D);
        zero(c, b->dk, N * KVH * D);
        zero(c, b->dv, N * KVH * D);
        op->attention_bwd(s->be, b->dq, b->dk, b->dv, b->datt, a->q, a->k, a->v, &sh);
    }
    op->rope_bwd(s->be, b->dq, pos, s->rope_cos, s->rope_sin, N, H, D);
    op->rope_bwd(s->be, b->dk, pos, s->rope_cos, s->rope_sin, N, KVH, D);
    float *dq = b->dq, *dk = b->dk;
    if (cfg->qk_norm) {
        norm_bwd(c, b->dq_lin, NULL, w->q_norm, b->dq, a->q_lin, k16 ? k16->q_lin : NULL,
                 a->rstd_q, N * H, D, true);
        norm_bwd(c, b->dk_lin, NULL, w->k_norm, b->dk, a->k_lin, k16 ? k16->k_lin : NULL,
                 a->rstd_k, N * KVH, D, true);
        dq = b->dq_lin;
        dk = b->dk_lin;
    }
    static const lora_proj qkv[] = {LORA_PROJ_Q, LORA_PROJ_K, LORA_PROJ_V};
    const float *dys[] = {dq, dk, b->dv};
    unsigned grouped = lora_groups(c, l, qkv, 3);
    projection_bwd(c, a, l, LORA_PROJ_Q, b->dh, dq, NULL, a->h1, w->wq, w->bq, true, grouped);
    projection_bwd(c, a, l, LORA_PROJ_K, b->dh, dk, NULL, a->h1, w->wk, w->bk, false, grouped);
    projection_bwd(c, a, l, LORA_PROJ_V, b->dh, b->dv, NULL, a->h1, w->wv, w->bv, false, grouped);
    lora_group_bwd(c, a, l, qkv, dys, 3, b->dh, a->h1, grouped);
    c->dx16_fresh = norm_bwd(c, b->dx, b->dx16, w->attn_norm, b->dh, a->x_in,
                             k16 ? k16->x_in : NULL, a->rstd1, N, C, false);
}

static int by_key(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* dtable (V, C)[ids[n]] += dx[n]: on a backend with the grouped entry (a GPU), the tokens
 * sorted by id on the host first, so that each id's run of tokens can have threads of its
 * own and still add in token order. */
static lora_status embedding_bwd(lora_session *s, float *dtable, const float *dx,
                                 const lora_train_acts *acts, int64_t N, int64_t C)
{
    const lora_backend_ops *op = s->be->ops;
    if (!op->embedding_bwd_grouped) {
        op->embedding_bwd(s->be, dtable, dx, acts->ids, N, C);
        return LORA_OK;
    }
    uint64_t *key = lora__malloc((size_t)N * sizeof *key);
    int32_t *order = lora__malloc((size_t)N * sizeof *order);
    int32_t *runs = lora__malloc((size_t)(N + 1) * sizeof *runs);
    lora_status st = LORA_OK;
    if (!key || !order || !runs)
        st = lora__oom("embedding gradient order", (size_t)N * 16);
    int64_t n_runs = 0;
    if (!st) {
        /* ids are in 0..V-1 and token indices below 2^31: (id, n) packs into one sortable key */
        for (int64_t n = 0; n < N; n++)
            key[n] = (uint64_t)(uint32_t)acts->host_ids[n] << 32 | (uint64_t)n;
        qsort(key, (size_t)N, sizeof *key, by_key);
        for (int64_t k = 0; k < N; k++) {
            order[k] = (int32_t)(key[k] & 0xffffffffu);
            if (k == 0 || key[k] >> 32 != key[k - 1] >> 32)
                runs[n_runs++] = (int32_t)k;
        }
        runs[n_runs] = (int32_t)N;
    }
    const int32_t *d_order, *d_runs;
    if (!st && !(st = lora__stage_i32(s, LORA_STAGE_ORDER, order, (size_t)N, &d_order)) &&
        !(st = lora__stage_i32(s, LORA_STAGE_RUNS, runs, (size_t)(n_runs + 1), &d_runs)))
        op->embedding_bwd_grouped(s->be, dtable, dx, acts->ids, d_order, d_runs, n_runs, C);
    free(key);
    free(order);
    free(runs);
    return st;
}

/* The gradient buffers (and, keeping bfloat16 activations, the float32 layer set after them)
 * in the session's shared workspace. A layer's MLP gradients (dgate, dup, dact, and where
 * SwiGLU's kept backward rounds dgate and dup for bfloat16 products, those) are dead before
 * its attention's are made and the other way round, so the two share their floats. */
static lora_status alloc_bufs(bwd_ctx *c, bool kept)
{
    lora_session *s = c->s;
    const lora_config *cfg = &s->model->cfg;
    int64_t N = c->N, C = cfg->hidden, q = cfg->n_heads * cfg->head_dim,
            kv = cfg->n_kv_heads * cfg->head_dim, I = cfg->inter;
    int64_t drop = s->dropout_on ? 2 * lora__max_proj_in(cfg) : 0;
    bool dy16 = kept && lora__rounded_inputs(s);
    int64_t att = 2 * q + 2 * kv + (cfg->qk_norm ? q + kv : 0), mlp = (dy16 ? 4 : 3) * I;
    int64_t shared = att > mlp ? att : mlp;
    /* the LoRA scratch u: one path's, or a group's side by side where the backend groups */
    int64_t u = s->max_rank * (s->be->ops->lora_bwd_group ? LORA_GROUP_MAX : 1);
    /* dx rounded for the o and down products, bfloat16 from a 16-byte boundary */
    int64_t dx16 = dy16 ? (N * C + 7) / 8 * 4 : 0;
    size_t grads = (size_t)(N * (2 * C + shared + u + drop) + dx16);
    size_t need = grads + (kept ? lora__kept_layout(s, N, true, NULL, &c->kept_set) : 0);
    size_t bytes = s->ws_floats * sizeof(float);
    lora_status st = lora__session_grow(s, (void **)&s->ws, &bytes, need * sizeof(float),
                                        "gradient buffers");
    s->ws_floats = bytes / sizeof(float);
    if (st)
        return st;
    float *p = s->ws;
    grad_bufs *b = &c->b;
    b->dx = p, p += N * C;
    b->dh = p, p += N * C;
    float *a = p;
    b->dq = a, a += N * q;
    b->datt = a, a += N * q;
    b->dk = a, a += N * kv;
    b->dv = a, a += N * kv;
    if (cfg->qk_norm) {
        b->dq_lin = a, a += N * q;
        b->dk_lin = a;
    }
    b->dgate = p;
    b->dup = p + N * I;
    b->dact = p + 2 * N * I;
    if (dy16) {
        b->dgate16 = (lora_bf16 *)(p + 3 * N * I);
        b->dup16 = b->dgate16 + N * I;
    }
    p += N * shared;
    if (dx16) {
        b->dx16 = (lora_bf16 *)p;
        p += dx16;
    }
    b->u = p, p += N * u;
    if (drop) {
        b->drop_x = p, p += N * (drop / 2);
        b->drop_dx = p;
    }
    if (kept)
        lora__kept_layout(s, N, true, s->ws + grads, &c->kept_set);
    return LORA_OK;
}

lora_status lora__decoder_backward(lora_session *s, lora_train_acts *acts, float *dhidden,
                                   const lora_grads *g)
{
    const lora_model *m = s->model;
    const lora_config *cfg = &m->cfg;
    int64_t B = acts->B, T = acts->T, N = B * T, C = cfg->hidden;
    bwd_ctx c = {s, g, N, {0}, {0}, false};
    const int32_t *pos = acts->pos;
    lora_status st;
    if ((st = alloc_bufs(&c, acts->kept != NULL)) || (!pos && (st = lora__positions(s, B, T, 0, &pos))))
        return st;
    zero(&c, c.b.dx, N * C);
    s->be->ops->rmsnorm_bwd(s->be, c.b.dx, base_grad(&c, m->final_norm), dhidden, acts->x_final,
                            W(&c, m->final_norm), acts->rstd_final, N, C);
    for (int64_t l = cfg->n_layers - 1; l >= 0; l--) {
        lora_layer_acts *a = &acts->layers[l], tmp;
        if (acts->recompute) {
            /* rerun the layer from its kept input, in the scratch set */
            tmp = acts->scratch;
            s->be->ops->copy(s->be, tmp.x_in, a->x_in, (size_t)(N * C) * sizeof(float));
            float *work = tmp.x_in;
            tmp.x_in = NULL;
            lora__layer_forward(s, l, &tmp, work, B, T, false, false, NULL, pos, acts->key0);
            tmp.x_in = a->x_in;
            a = &tmp;
        } else if (acts->kept) {
            tmp = lora__kept_work(acts, &c.kept_set, l);
            lora__kept_unpack(s, acts, l, &tmp);
            a = &tmp;
        }
        mlp_bwd(&c, l, a);
        attention_bwd(&c, l, a, B, T, pos, acts->key0);
    }
    return g->base ? embedding_bwd(s, base_grad(&c, m->embed), c.b.dx, acts, N, C) : LORA_OK;
}
