#include <stdlib.h>

#include "api/error.h"
#include "cpu/cpu.h"
#include "util/alloc.h"

/* Every entry, forward and backward: the CPU backend trains as well as it infers. */
const lora_backend_ops lora__cpu_ops = {
    .name = "cpu",
    .host_memory = true,
    .backend_free = lora__cpu_backend_free,
    .mem_alloc = lora__cpu_mem_alloc,
    .mem_free = lora__cpu_mem_free,
    .copy = lora__cpu_copy,
    .zero = lora__cpu_zero,
    .upload = lora__cpu_transfer,
    .download = lora__cpu_transfer,
    .sync = lora__cpu_sync,
    .sum_squares = lora__cpu_sum_squares,
    .adamw = lora__cpu_adamw,
    .sgd = lora__cpu_sgd,
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
    .dropout_fwd = lora__cpu_dropout_fwd,
    .dropout_bwd = lora__cpu_dropout_bwd,
    .residual_fwd = lora__cpu_residual_fwd,
    .cross_entropy_fwd = lora__cpu_cross_entropy_fwd,
    .cross_entropy_bwd = lora__cpu_cross_entropy_bwd,
};

lora_status lora__cpu_backend_create(int n_threads, lora_backend **out)
{
    *out = NULL;
    lora_backend *be = lora__calloc(1, sizeof *be);
    lora_cpu *cpu = lora__calloc(1, sizeof *cpu);
    if (!be || !cpu) {
        free(be);
        free(cpu);
        return lora__oom("cpu backend", sizeof *be + sizeof *cpu);
    }
    cpu->n_threads = n_threads < 1 ? 1 : n_threads > LORA_CPU_MAX_THREADS ? LORA_CPU_MAX_THREADS
                                                                            : n_threads;
    lora_status st = lora__pool_create(cpu->n_threads, &cpu->pool);
    if (st) {
        free(be);
        free(cpu);
        return st;
    }
    be->ops = &lora__cpu_ops;
    be->impl = cpu;
    *out = be;
    return LORA_OK;
}

int lora__cpu_reserve_scratch(lora_backend *be, size_t floats)
{
    lora_cpu *cpu = be->impl;
    for (int t = 0; t < cpu->n_threads; t++) {
        if (cpu->scratch_cap[t] >= floats)
            continue;
        float *p = lora__realloc(cpu->scratch[t], floats * sizeof(float));
        if (!p)
            return 0;
        cpu->scratch[t] = p;
        cpu->scratch_cap[t] = floats;
    }
    return 1;
}

void lora__cpu_backend_free(lora_backend *be)
{
    if (!be)
        return;
    lora_cpu *cpu = be->impl;
    lora__pool_free(cpu->pool);
    for (int t = 0; t < cpu->n_threads; t++)
        free(cpu->scratch[t]);
    free(cpu);
    free(be);
}
