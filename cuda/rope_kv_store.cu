/* A decoding step's RoPE and KV-cache writes in one launch: rope_fwd of q and k, then
 * kv_store_bf16 of k and v, which were four launches of a few hundred threads each at batch 1;
 * with the q/k/v LoRA up-products added first where the group left them (a thread's element
 * summed as matvec.cu's up-product sums it; past a few rows qkv_keep.cu's tiles, in the same
 * order). The same arithmetic as theirs (lora_up_sum, lora__rope_pair, lora__round_bf16), so
 * the same bits. */
#include "lora_up_tile.cuh"

typedef struct rks_args {
    float *q, *k;
    const float *v;
    lora_bf16 *kc, *vc;
    const int32_t *pos;
    const float *cos, *sin;
    lora_lora_up lu;
    int64_t N, T, S, H, KVH, D;
    int64_t nq, nk, n; /* q pairs, k pairs, everything (pairs and v values) */
} rks_args;

/* x (row n, column col of side s) + its LoRA term where lu has one for s */
__device__ __forceinline__ float with_lora(const rks_args &a, int s, float x, int64_t n,
                                           int64_t col)
{
    const float *B;
    float scale;
    const float *t = lora_up_side(a.lu, s, &B, &scale);
    return t ? x + scale * lora_up_sum(t, B, a.N, a.lu.r, n, col) : x;
}

/* one thread per q pair, per k pair (rotated and stored), per v value (stored) */
__global__ void rope_kv_store_kernel(rks_args a)
{
    int64_t half = a.D / 2, row = a.KVH * a.D;
    LORA_CUDA_FOR(j, a.n)
    {
        if (j < a.nq + a.nk) {
            bool is_q = j < a.nq;
            int64_t p = is_q ? j : j - a.nq, heads = is_q ? a.H : a.KVH;
            int64_t i = p % half, rh = p / half, r = rh / heads, col = (rh % heads) * a.D + i;
            int64_t at = (int64_t)a.pos[r] * half + i;
            float *x = (is_q ? a.q : a.k) + rh * a.D;
            x[i] = with_lora(a, is_q ? 0 : 1, x[i], r, col);
            x[i + half] = with_lora(a, is_q ? 0 : 1, x[i + half], r, col + half);
            lora__rope_pair(x, i, half, a.cos[at], a.sin[at]);
            if (!is_q) {
                lora_bf16 *c = a.kc + ((r / a.T) * a.S + a.pos[r]) * row + (rh % heads) * a.D;
                c[i] = lora__round_bf16(x[i]);
                c[i + half] = lora__round_bf16(x[i + half]);
            }
        } else {
            int64_t e = j - a.nq - a.nk, tok = e / row;
            float v = with_lora(a, 2, a.v[e], tok, e % row);
            a.vc[((tok / a.T) * a.S + a.pos[tok]) * row + e % row] = lora__round_bf16(v);
        }
    }
}

// q (N, H, D), k (N, KVH, D) (+ LoRA) rotated in place at pos (N); cache (B, S, KVH*D)[b, pos]
// = k, v (+ LoRA)
void lora__cuda_rope_kv_store_bf16(lora_backend *be, float *q, float *k, float *v,
                                   lora_bf16 *k_cache, lora_bf16 *v_cache,
                                   const lora_lora_up *lu, const int32_t *pos, const float *cos,
                                   const float *sin, int64_t B, int64_t T, int64_t S, int64_t H,
                                   int64_t KVH, int64_t D)
{
    lora_cuda *cu = lora__cuda_enter(be);
    int64_t N = B * T, half = D / 2;
    rks_args a = {q, k, v, k_cache, v_cache, pos, cos, sin, {}, N, T, S, H, KVH, D,
                  N * H * half, N * KVH * half, 0};
    a.n = a.nq + a.nk + N * KVH * D;
    if (!cu || a.n == 0)
        return;
    if (lu && N > LORA_CUDA_MATVEC_ROWS) {
        /* a thread per element would read its row of B for every row: past a few rows, tiles
         * of rows that share each row of B (the same sums) */
        lora__cuda_qkv_cache_fwd(cu, q, k, v, k_cache, v_cache, lu, pos, cos, sin, B, T, S, H,
                                 KVH, D);
        return;
    }
    if (lu)
        a.lu = *lu;
    rope_kv_store_kernel<<<lora__cuda_blocks(a.n), LORA_CUDA_THREADS, 0, cu->stream>>>(a);
    lora__cuda_launched(cu, "rope_kv_store_bf16");
}
