/* Counting a decoder's floating-point operations per token from its shape: every matrix
 * product as 2 x its multiply-adds, attention at a causal context, LoRA paths, and the
 * backward passes of LoRA training and of full fine-tuning (docs/evaluation.md derives each
 * term). Model FLOPs, as MFU counts them: what recomputation repeats is not counted. */
#include <stdint.h>

#include "api/error.h"
#include "eval/eval.h"

/* Checked arithmetic: every count must fit a JSON integer (int64). */
typedef struct counter {
    int overflow;
} counter;

static uint64_t mul(counter *k, uint64_t a, uint64_t b)
{
    if (a && b > (uint64_t)INT64_MAX / a) {
        k->overflow = 1;
        return 0;
    }
    return a * b;
}

static uint64_t add(counter *k, uint64_t a, uint64_t b)
{
    if (b > (uint64_t)INT64_MAX - a) {
        k->overflow = 1;
        return 0;
    }
    return a + b;
}

static uint64_t mul3(counter *k, uint64_t a, uint64_t b, uint64_t c)
{
    return mul(k, mul(k, a, b), c);
}

/* The LoRA paths: x A^T is 2 r in, then B^T 2 r out; scaling and the add to the base output
 * are element-wise, 2 out. */
static void adapter_counts(counter *k, const lora_config *c, const lora_adapter_spec *s,
                           lora_flops *f)
{
    for (int64_t l = 0; s && l < c->n_layers; l++) {
        if (!s->layer_on[l])
            continue;
        for (int p = 0; p < LORA_PROJ_COUNT; p++) {
            if (!(s->targets & (1u << p)))
                continue;
            int64_t r, out, in;
            double alpha;
            lora__adapter_spec_module(s, l, (lora_proj)p, &r, &alpha);
            lora__proj_shape(c, (lora_proj)p, &out, &in);
            uint64_t params = mul(k, (uint64_t)r, (uint64_t)(in + out));
            f->adapter_parameters = add(k, f->adapter_parameters, params);
            f->adapter = add(k, f->adapter, mul(k, 2, params));
            f->ew_adapter = add(k, f->ew_adapter, mul(k, 2, (uint64_t)out));
        }
    }
}

/* Element-wise work per token, by the operations each element costs: RMSNorm 4 (square, sum,
 * scale, weight), RoPE 3 per rotated element, SwiGLU 5 (SiLU's exp, add, divide, multiply,
 * then the product with up), softmax 6 per score (scale, max, subtract, exp, sum, divide),
 * residual adds 1, biases 1. */
static void elementwise_counts(counter *k, const lora_config *c, uint64_t T, lora_flops *f)
{
    uint64_t C = (uint64_t)c->hidden, L = (uint64_t)c->n_layers, D = (uint64_t)c->head_dim;
    uint64_t H = (uint64_t)c->n_heads, KVH = (uint64_t)c->n_kv_heads;
    uint64_t heads_qk = H + KVH;
    f->ew_rmsnorm = mul3(k, 4, C, 2 * L + 1);
    if (c->qk_norm)
        f->ew_rmsnorm = add(k, f->ew_rmsnorm, mul3(k, 4 * L, D, heads_qk));
    f->ew_rope = mul3(k, 3 * L, D, heads_qk);
    f->ew_swiglu = mul3(k, 5, L, (uint64_t)c->inter);
    /* a query at position t has t + 1 scores; the mean over t < T is (T + 1) / 2 */
    f->ew_softmax = mul3(k, 3 * L, H, T + 1);
    f->ew_residual = mul3(k, 2, L, C);
    uint64_t bias = (c->qkv_bias ? (H + 2 * KVH) * D : 0) + (c->o_bias ? C : 0);
    f->ew_bias = mul(k, L, bias);
    uint64_t parts[] = {f->ew_rmsnorm, f->ew_rope, f->ew_swiglu, f->ew_softmax,
                        f->ew_residual, f->ew_bias, f->ew_adapter};
    f->ew_total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        f->ew_total = add(k, f->ew_total, parts[i]);
}

lora_status lora__flops_count(const lora_config *c, const lora_adapter_spec *s,
                              uint64_t context, uint64_t batch, lora_flops *f)
{
    counter k = {0};
    *f = (lora_flops){.context = context, .batch = batch, .train_adapters = s != NULL};
    uint64_t L = (uint64_t)c->n_layers, H = (uint64_t)c->n_heads, D = (uint64_t)c->head_dim;
    uint64_t C = (uint64_t)c->hidden, V = (uint64_t)c->vocab, T = context;
    f->tokens_per_step = mul(&k, batch, context);
    f->parameters = lora__config_num_params(c);

    uint64_t layer_weights = 0;
    for (int p = 0; p < LORA_PROJ_COUNT; p++) {
        int64_t out, in;
        lora__proj_shape(c, (lora_proj)p, &out, &in);
        uint64_t w = mul(&k, (uint64_t)out, (uint64_t)in);
        layer_weights = add(&k, layer_weights, w);
        f->per_layer[p] = mul(&k, 2, w);
        f->projections = add(&k, f->projections, mul(&k, L, f->per_layer[p]));
    }
    f->matmul_parameters = add(&k, mul(&k, L, layer_weights), mul(&k, V, C));
    f->lm_head = mul3(&k, 2, C, V);

    /* per key, q.k is D multiply-adds per head and the weighted sum of v another D: 4 H D
     * FLOPs; a causal query at position t sees t + 1 keys, (T + 1) / 2 on average */
    f->attention = mul3(&k, mul(&k, 2, L), mul(&k, H, D), T + 1);
    f->attention_full = mul3(&k, mul(&k, 4, L), mul(&k, H, D), T);

    adapter_counts(&k, c, s, f);
    elementwise_counts(&k, c, T, f);

    uint64_t dense = add(&k, f->projections, f->lm_head);
    f->forward = add(&k, add(&k, dense, f->attention), f->adapter);
    /* Backward of y = x W^T: the input gradient dy W and the weight gradient dy^T x, each as
     * costly as the forward product. Frozen weights need the first only (the gradient must
     * still reach the adapters below); attention's backward is four products of the shape of
     * its two forward ones; a LoRA path's backward needs dA, dB and the input gradient, twice
     * its forward. */
    uint64_t weights_backward = s ? dense : mul(&k, 2, dense);
    f->backward = add(&k, add(&k, weights_backward, mul(&k, 2, f->attention)),
                      mul(&k, 2, f->adapter));
    f->train = add(&k, f->forward, f->backward);
    f->forward_step = mul(&k, f->forward, f->tokens_per_step);
    f->train_step = mul(&k, f->train, f->tokens_per_step);
    if (k.overflow)
        return lora__error(LORA_ERR_RANGE, "the counts for context %llu, batch %llu pass 2^63",
                           (unsigned long long)context, (unsigned long long)batch);
    return LORA_OK;
}
