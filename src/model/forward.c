/* The decoder forward pass, written once against the backend op table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "model/session.h"

typedef struct acts {
    float *x;     // (N, C) residual stream
    float *h;     // (N, C) normed input / projection output
    float *q;     // (N, H*D)
    float *k;     // (N, KVH*D)
    float *v;     // (N, KVH*D)
    float *att;   // (N, H*D)
    float *gate;  // (N, I), then silu(gate) * up
    float *up;    // (N, I)
    float *extra; /* caller's scratch */
} acts;

static size_t decoder_floats(const lora_config *c, int64_t N)
{
    int64_t q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    return (size_t)N * (size_t)(2 * c->hidden + 2 * q + 2 * kv + 2 * c->inter);
}

static lora_status ensure_ws(lora_session *s, int64_t N, size_t extra, acts *a)
{
    const lora_config *c = &s->model->cfg;
    size_t need = decoder_floats(c, N) + extra;
    if (need > s->ws_floats) {
        float *p = realloc(s->ws, need * sizeof(float));
        if (!p)
            return lora__oom("activations", need * sizeof(float));
        s->ws = p;
        s->ws_floats = need;
    }
    if ((size_t)N > s->ws_ids_cap) {
        int32_t *p = realloc(s->ws_ids, (size_t)N * sizeof(int32_t));
        if (!p)
            return lora__oom("positions", (size_t)N * sizeof(int32_t));
        s->ws_ids = p;
        s->ws_ids_cap = (size_t)N;
    }
    int64_t q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    float *p = s->ws;
    a->x = p, p += N * c->hidden;
    a->h = p, p += N * c->hidden;
    a->q = p, p += N * q;
    a->k = p, p += N * kv;
    a->v = p, p += N * kv;
    a->att = p, p += N * q;
    a->gate = p, p += N * c->inter;
    a->up = p, p += N * c->inter;
    a->extra = p;
    return LORA_OK;
}

/* cos/sin tables in double precision: the golden results are float64, and the angle
 * pos * inv_freq loses digits in float32 at large positions. */
static lora_status ensure_rope(lora_session *s, int64_t len)
{
    if (len <= s->rope_len)
        return LORA_OK;
    const lora_config *c = &s->model->cfg;
    int64_t half = c->head_dim / 2;
    size_t bytes = (size_t)len * (size_t)half * sizeof(float);
    float *cs = malloc(bytes), *sn = malloc(bytes);
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
    free(s->rope_cos);
    free(s->rope_sin);
    s->rope_cos = cs;
    s->rope_sin = sn;
    s->rope_len = len;
    return LORA_OK;
}

static void attention_block(lora_session *s, const lora_layer_weights *w, int64_t l, acts *a,
                            int64_t B, int64_t T, bool use_cache, const int32_t *pos)
{
    const lora_config *c = &s->model->cfg;
    const lora_backend_ops *op = s->be->ops;
    lora_backend *be = s->be;
    int64_t N = B * T, C = c->hidden, H = c->n_heads, KVH = c->n_kv_heads, D = c->head_dim;
    float eps = (float)c->rms_eps;

    op->rmsnorm_fwd(be, a->h, NULL, a->x, w->attn_norm, N, C, eps);
    op->matmul_fwd(be, a->q, a->h, w->wq, w->bq, N, H * D, C);
    op->matmul_fwd(be, a->k, a->h, w->wk, w->bk, N, KVH * D, C);
    op->matmul_fwd(be, a->v, a->h, w->wv, w->bv, N, KVH * D, C);
    if (c->qk_norm) {
        op->rmsnorm_fwd(be, a->q, NULL, a->q, w->q_norm, N * H, D, eps);
        op->rmsnorm_fwd(be, a->k, NULL, a->k, w->k_norm, N * KVH, D, eps);
    }
    op->rope_fwd(be, a->q, pos, s->rope_cos, s->rope_sin, N, H, D);
    op->rope_fwd(be, a->k, pos, s->rope_cos, s->rope_sin, N, KVH, D);

    lora_attention_shape sh = {B, T, T, H, KVH, D, 0, (float)(1.0 / sqrt((double)D))};
    const float *k = a->k, *v = a->v;
    if (use_cache) {
        size_t row = (size_t)(KVH * D);
        float *kc = s->k_cache + (size_t)l * (size_t)s->max_ctx * row;
        float *vc = s->v_cache + (size_t)l * (size_t)s->max_ctx * row;
        memcpy(kc + (size_t)s->pos * row, a->k, (size_t)T * row * sizeof(float));
        memcpy(vc + (size_t)s->pos * row, a->v, (size_t)T * row * sizeof(float));
        k = kc;
        v = vc;
        sh.S = s->max_ctx;
        sh.pos0 = s->pos;
    }
    op->attention_fwd(be, a->att, a->q, k, v, &sh);
    op->matmul_fwd(be, a->h, a->att, w->wo, w->bo, N, C, H * D);
    op->residual_fwd(be, a->x, a->h, N * C);
}

static void mlp_block(lora_session *s, const lora_layer_weights *w, acts *a, int64_t N)
{
    const lora_config *c = &s->model->cfg;
    const lora_backend_ops *op = s->be->ops;
    lora_backend *be = s->be;
    op->rmsnorm_fwd(be, a->h, NULL, a->x, w->mlp_norm, N, c->hidden, (float)c->rms_eps);
    op->matmul_fwd(be, a->gate, a->h, w->w_gate, NULL, N, c->inter, c->hidden);
    op->matmul_fwd(be, a->up, a->h, w->w_up, NULL, N, c->inter, c->hidden);
    op->swiglu_fwd(be, a->gate, a->gate, a->up, N, c->inter);
    op->matmul_fwd(be, a->h, a->gate, w->w_down, NULL, N, c->hidden, c->inter);
    op->residual_fwd(be, a->x, a->h, N * c->hidden);
}

lora_status lora__decoder_forward(lora_session *s, const int32_t *ids, int64_t B, int64_t T,
                                  bool use_cache, size_t extra_floats, float **hidden,
                                  float **extra)
{
    const lora_model *m = s->model;
    const lora_config *c = &m->cfg;
    int64_t N = B * T;
    int64_t pos0 = use_cache ? s->pos : 0;
    acts a = {0};
    lora_status st;
    if ((st = ensure_ws(s, N, extra_floats, &a)) || (st = ensure_rope(s, pos0 + T)))
        return st;
    int32_t *pos = s->ws_ids;
    for (int64_t n = 0; n < N; n++)
        pos[n] = (int32_t)(pos0 + n % T);

    s->be->ops->embedding_fwd(s->be, a.x, ids, m->embed, N, c->hidden);
    for (int64_t l = 0; l < c->n_layers; l++) {
        attention_block(s, &m->layers[l], l, &a, B, T, use_cache, pos);
        mlp_block(s, &m->layers[l], &a, N);
    }
    s->be->ops->rmsnorm_fwd(s->be, a.h, NULL, a.x, m->final_norm, N, c->hidden,
                            (float)c->rms_eps);
    *hidden = a.h;
    if (extra)
        *extra = a.extra;
    return LORA_OK;
}
