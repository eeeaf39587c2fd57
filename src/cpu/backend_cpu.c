#include <stdlib.h>

#include "api/error.h"
#include "cpu/cpu.h"

/* Every entry, forward and backward: the CPU backend trains as well as it infers. */
const lora_backend_ops lora__cpu_ops = {
    .name = "cpu",
    .matmul_fwd = lora__cpu_matmul_fwd,
    .matmul_bwd = lora__cpu_matmul_bwd,
    .embedding_fwd = lora__cpu_embedding_fwd,
    .embedding_bwd = lora__cpu_embedding_bwd,
    .rmsnorm_fwd = lora__cpu_rmsnorm_fwd,
    .rmsnorm_bwd = lora__cpu_rmsnorm_bwd,
    .rope_fwd = lora__cpu_rope_fwd,
    .rope_bwd = lora__cpu_rope_bwd,
    .attention_fwd = lora__cpu_attention_fwd,
    .attention_bwd = lora__cpu_attention_bwd,
    .swiglu_fwd = lora__cpu_swiglu_fwd,
    .swiglu_bwd = lora__cpu_swiglu_bwd,
    .lora_fwd = lora__cpu_lora_fwd,
    .lora_bwd = lora__cpu_lora_bwd,
    .residual_fwd = lora__cpu_residual_fwd,
    .cross_entropy_fwd = lora__cpu_cross_entropy_fwd,
    .cross_entropy_bwd = lora__cpu_cross_entropy_bwd,
};

lora_status lora__cpu_backend_create(int n_threads, lora_backend **out)
{
    *out = NULL;
    lora_backend *be = calloc(1, sizeof *be);
    if (!be)
        return lora__oom("cpu backend", sizeof *be);
    lora_pool *pool;
    lora_status st = lora__pool_create(n_threads, &pool);
    if (st) {
        free(be);
        return st;
    }
    be->ops = &lora__cpu_ops;
    be->impl = pool;
    *out = be;
    return LORA_OK;
}

void lora__cpu_backend_free(lora_backend *be)
{
    if (!be)
        return;
    lora__pool_free(lora__cpu_pool(be));
    free(be);
}
