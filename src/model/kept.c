/* Training activations kept in bfloat16 between the forward and the backward: a third of the
 * float32 set's bytes (the norms' outputs and SwiGLU's are not kept at all but rebuilt, one
 * elementwise pass each), for one rounding of each kept value, as a bfloat16 model in PyTorch
 * has. The arithmetic of every op stays float32. The forward rounds each kept value in the
 * pass that makes it (forward.c): RoPE q and k (and v, where qkv_keep_fwd does the three),
 * the residual add x_mid, SwiGLU gate and up.
 * The attention takes q, k, v and gives its output in bfloat16 (cuDNN reads and writes nothing
 * else), so those are kept where it reads and writes them, and SwiGLU's backward reads the
 * kept gate and up, and the norms' forward and backward the kept layer input and mid-layer
 * residual; the backward widens the rest into a float32 set. */
#include "model/session.h"

bool lora__kept_ops(const lora_backend_ops *op)
{
    return op->to_bf16 && op->from_bf16 && op->swiglu_keep_fwd && op->swiglu_bf16_fwd &&
           op->swiglu_bf16_bwd && op->rope_bf16_fwd && op->attention_bf16_fwd &&
           op->attention_bf16_bwd && op->residual_rmsnorm_fwd && op->rmsnorm_bf16_fwd &&
           op->rmsnorm_bf16_bwd && op->rmsnorm_keep_fwd;
}

lora_layer_acts lora__kept_work(const lora_train_acts *acts, const lora_layer_acts *set,
                                int64_t l)
{
    const lora_layer_acts *own = &acts->layers[l];
    lora_layer_acts w = *set;
    w.rstd_q = own->rstd_q;
    w.rstd_k = own->rstd_k;
    w.drop_x = own->drop_x;
    for (int p = 0; p < LORA_PROJ_COUNT; p++)
        for (int i = 0; i < LORA_MAX_ADAPTERS; i++)
            w.t[p][i] = own->t[p][i];
    w.kept = &acts->kept[l];
    return w;
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
    /* the o projection's LoRA gradient (and a full fine-tune's weight gradient) read att */
    op->from_bf16(s->be, work->att, k->att, (size_t)(N * c->n_heads * c->head_dim));
    /* the norms (and their rstd) again from the kept inputs, so that the backward
     * differentiates the norm of the x it is given (read as kept, like its backward) */
    op->rmsnorm_bf16_fwd(s->be, work->h1, work->rstd1, k->x_in, lora__weight(s, w->attn_norm), N,
                         C, eps);
    op->rmsnorm_bf16_fwd(s->be, work->h2, work->rstd2, k->x_mid, lora__weight(s, w->mlp_norm),
                         N, C, eps);
    op->swiglu_bf16_fwd(s->be, work->act, k->gate, k->up, N, c->inter);
}
