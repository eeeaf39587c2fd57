#include "internal.h"

/* Every entry, forward and backward, as in the CPU backend's table. */
const lora_backend_ops lora__cuda_ops = {
    .name = "cuda",
    .matmul_fwd = lora__cuda_matmul_fwd,
    .matmul_bwd = lora__cuda_matmul_bwd,
    .embedding_fwd = lora__cuda_embedding_fwd,
    .embedding_bwd = lora__cuda_embedding_bwd,
    .rmsnorm_fwd = lora__cuda_rmsnorm_fwd,
    .rmsnorm_bwd = lora__cuda_rmsnorm_bwd,
    .rope_fwd = lora__cuda_rope_fwd,
    .rope_bwd = lora__cuda_rope_bwd,
    .attention_fwd = lora__cuda_attention_fwd,
    .attention_bwd = lora__cuda_attention_bwd,
    .swiglu_fwd = lora__cuda_swiglu_fwd,
    .swiglu_bwd = lora__cuda_swiglu_bwd,
    .lora_fwd = lora__cuda_lora_fwd,
    .lora_bwd = lora__cuda_lora_bwd,
    .dropout_fwd = lora__cuda_dropout_fwd,
    .dropout_bwd = lora__cuda_dropout_bwd,
    .residual_fwd = lora__cuda_residual_fwd,
    .cross_entropy_fwd = lora__cuda_cross_entropy_fwd,
    .cross_entropy_bwd = lora__cuda_cross_entropy_bwd,
};
