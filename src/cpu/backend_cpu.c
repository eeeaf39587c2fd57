#include <stdlib.h>

#include "api/error.h"
#include "cpu/cpu.h"

/* Backward entries arrive with the training path; the decoder only runs forwards for now. */
const lora_backend_ops lora__cpu_ops = {
    .name = "cpu",
    .matmul_fwd = lora__cpu_matmul_fwd,
    .embedding_fwd = lora__cpu_embedding_fwd,
    .rmsnorm_fwd = lora__cpu_rmsnorm_fwd,
    .rope_fwd = lora__cpu_rope_fwd,
    .attention_fwd = lora__cpu_attention_fwd,
    .swiglu_fwd = lora__cpu_swiglu_fwd,
    .residual_fwd = lora__cpu_residual_fwd,
    .cross_entropy_fwd = lora__cpu_cross_entropy_fwd,
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
