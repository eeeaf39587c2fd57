/* Training activations kept in bfloat16 between the forward and the backward: a third of the
 * float32 set's bytes (the norms' outputs and SwiGLU's are not kept at all but rebuilt, one
 * elementwise pass each), for one rounding of each kept value, as a bfloat16 model in PyTorch
 * has. The arithmetic of every op stays float32: the backward widens what it reads into a
 * float32 set, except gate and up, which SwiGLU reads as kept where the backend can. */
#include "model/session.h"

typedef struct pair {
    float *f;       /* in the working set */
    lora_bf16 *h;   /* kept */
    int64_t n;
} pair;

/* the kept tensors of layer l after the attention's input and where each lives in work (without
 * gate and up unless mlp); returns how many */
static int pairs(const lora_session *s, const lora_train_acts *acts, int64_t l,
                 const lora_layer_acts *work, bool mlp, pair p[10])
{
    const lora_config *c = &s->model->cfg;
    const lora_layer_bf16 *k = &acts->kept[l];
    int64_t N = acts->B * acts->T, q = c->n_heads * c->head_dim,
            kv = c->n_kv_heads * c->head_dim, I = c->inter;
    int n = 0;
    if (k->q_lin) {
        p[n++] = (pair){work->q_lin, k->q_lin, N * q};
        p[n++] = (pair){work->k_lin, k->k_lin, N * kv};
    }
    p[n++] = (pair){work->q, k->q, N * q};
    p[n++] = (pair){work->k, k->k, N * kv};
    p[n++] = (pair){work->v, k->v, N * kv};
    p[n++] = (pair){work->att, k->att, N * q};
    if (mlp) {
        p[n++] = (pair){work->gate, k->gate, N * I};
        p[n++] = (pair){work->up, k->up, N * I};
    }
    return n;
}

lora_layer_acts lora__kept_work(const lora_train_acts *acts, int64_t l)
{
    const lora_layer_acts *own = &acts->layers[l];
    lora_layer_acts w = acts->scratch;
    if (own->rstd_q) {
        w.rstd_q = own->rstd_q;
        w.rstd_k = own->rstd_k;
    }
    for (int p = 0; p < LORA_PROJ_COUNT; p++)
        for (int i = 0; i < LORA_MAX_ADAPTERS; i++)
            w.t[p][i] = own->t[p][i];
    return w;
}

void lora__kept_pack(lora_session *s, const lora_train_acts *acts, int64_t l,
                     const lora_layer_acts *work)
{
    pair p[10];
    int n = pairs(s, acts, l, work, true, p);
    for (int i = 0; i < n; i++)
        s->be->ops->to_bf16(s->be, p[i].h, p[i].f, (size_t)p[i].n);
}

void lora__kept_unpack(lora_session *s, const lora_train_acts *acts, int64_t l,
                       lora_layer_acts *work)
{
    const lora_config *c = &s->model->cfg;
    const lora_layer_weights *w = &s->model->layers[l];
    const lora_backend_ops *op = s->be->ops;
    int64_t N = acts->B * acts->T, C = c->hidden;
    float eps = (float)c->rms_eps;
    const lora_layer_bf16 *k = &acts->kept[l];
    /* SwiGLU reads gate and up as kept where the backend can: they are not widened at all */
    bool mlp16 = op->swiglu_bf16_fwd && op->swiglu_bf16_bwd;
    pair p[10];
    int n = pairs(s, acts, l, work, !mlp16, p);
    op->from_bf16(s->be, work->x_in, k->x_in, (size_t)(N * C));
    op->from_bf16(s->be, work->x_mid, k->x_mid, (size_t)(N * C));
    for (int i = 0; i < n; i++)
        op->from_bf16(s->be, p[i].f, p[i].h, (size_t)p[i].n);
    /* the norms (and their rstd) again from the widened inputs, so that the backward
     * differentiates the norm of the x it is given */
    op->rmsnorm_fwd(s->be, work->h1, work->rstd1, work->x_in, lora__weight(s, w->attn_norm), N,
                    C, eps);
    op->rmsnorm_fwd(s->be, work->h2, work->rstd2, work->x_mid, lora__weight(s, w->mlp_norm), N,
                    C, eps);
    if (mlp16) {
        work->gate16 = k->gate;
        work->up16 = k->up;
        op->swiglu_bf16_fwd(s->be, work->act, k->gate, k->up, N, c->inter);
    } else
        op->swiglu_fwd(s->be, work->act, work->gate, work->up, N, c->inter);
}
