/* q, k, v in one pass over the q/k/v products' outputs, their LoRA up-products added
 * (lora_up_tile.cuh), q and k rotated (RoPE, rope_bf16_fwd's arithmetic), for any number of
 * rows. Two ends: a training forward's kept set (qkv_keep_fwd: all three rounded into it), or
 * a prefill's cache (lora__cuda_qkv_cache_fwd, for rope_kv_store_bf16 past a few rows: q and k
 * written back rotated, k and v rounded into the bfloat16 KV cache at their positions).
 * Forward only: the backward reads the kept values, and RoPE's backward is rope.cu's. */
#include "lora_up_tile.cuh"

/* pairs (i, i + D/2) of a head per block, a thread each */
#define QK_PAIRS 128

typedef struct qkv_keep {
    lora_bf16 *dst[3];        /* the kept set; NULL where the cache is the end */
    const float *src[3];
    float *back[2];           /* cache: q and k written back rotated (src[0], src[1]) */
    lora_bf16 *kc, *vc;       /* cache: (B, S, KVH*D), row n at ((n / T) S + pos[n]) */
    int64_t T, S;
    lora_lora_up lu;
    const int32_t *pos;
    const float *cos, *sin;
    int64_t N, H, KVH, D;
} qkv_keep;

/* blockIdx.z: 0 q, 1 k, 2 v; blockIdx.x: QK_PAIRS of that side's pairs (past them the block
 * has nothing to do); blockIdx.y: tiles of LUT_ROWS rows, striding by gridDim.y */
__global__ void qkv_keep_kernel(qkv_keep p)
{
    __shared__ float ts[1][LUT_J][LUT_ROWS];
    int side = blockIdx.z;
    /* by cases, not p.src[side]: p stays in the parameter space */
    lora_bf16 *dst = side == 0 ? p.dst[0] : side == 1 ? p.dst[1] : p.dst[2];
    const float *src = side == 0 ? p.src[0] : side == 1 ? p.src[1] : p.src[2];
    const float *B;
    float scale;
    const float *t = lora_up_side(p.lu, side, &B, &scale);
    int64_t half = p.D / 2, width = (side ? p.KVH : p.H) * p.D, pairs = width / 2;
    if ((int64_t)blockIdx.x * QK_PAIRS >= pairs)
        return; /* the whole block, before any barrier */
    int64_t pr = (int64_t)blockIdx.x * QK_PAIRS + threadIdx.x;
    bool on = pr < pairs;
    int64_t e0 = on ? pr / half * p.D + pr % half : 0, e1 = e0 + half; /* (head, i), (head, i + D/2) */
    const float *b[2] = {on && t ? B + e0 * p.lu.r : NULL, on && t ? B + e1 * p.lu.r : NULL};
    for (int64_t n0 = (int64_t)blockIdx.y * LUT_ROWS; n0 < p.N;
         n0 += (int64_t)gridDim.y * LUT_ROWS) {
        int rows = p.N - n0 < LUT_ROWS ? (int)(p.N - n0) : LUT_ROWS;
        float acc[2][LUT_ROWS];
        lora_up_tile<1, 2>(ts, &t, b, p.lu.r, p.N, n0, rows, acc);
        if (!on)
            continue;
#pragma unroll
        for (int k = 0; k < LUT_ROWS; k++) {
            if (k >= rows)
                break;
            int64_t n = n0 + k;
            float pair[2] = {src[n * width + e0], src[n * width + e1]};
            if (t) {
                pair[0] += scale * acc[0][k];
                pair[1] += scale * acc[1][k];
            }
            if (side < 2) {
                int64_t at = (int64_t)p.pos[n] * half + pr % half;
                lora__rope_pair(pair, 0, 1, p.cos[at], p.sin[at]);
            }
            lora_bf16 *row = dst ? dst + n * width : NULL;
            if (!dst) { /* the cache: q and k back in place, k and v into their cache rows */
                if (side < 2) {
                    float *x = (side == 0 ? p.back[0] : p.back[1]) + n * width;
                    x[e0] = pair[0];
                    x[e1] = pair[1];
                }
                if (side > 0)
                    row = (side == 1 ? p.kc : p.vc) + ((n / p.T) * p.S + p.pos[n]) * width;
            }
            if (row) {
                row[e0] = lora__round_bf16(pair[0]);
                row[e1] = lora__round_bf16(pair[1]);
            }
        }
    }
}

static void launch(lora_cuda *cu, const qkv_keep &p, const char *what)
{
    int64_t wide = (p.H > p.KVH ? p.H : p.KVH) * (p.D / 2),
            row_blocks = (p.N + LUT_ROWS - 1) / LUT_ROWS;
    dim3 grid((unsigned)((wide + QK_PAIRS - 1) / QK_PAIRS),
              (unsigned)(row_blocks < 65535 ? row_blocks : 65535), 3);
    qkv_keep_kernel<<<grid, QK_PAIRS, 0, cu->stream>>>(p);
    lora__cuda_launched(cu, what);
}

// q16 (N, H, D) = RoPE(q + LoRA), k16 (N, KVH, D) = RoPE(k + LoRA), v16 = v + LoRA, rounded
void lora__cuda_qkv_keep_fwd(lora_backend *be, lora_bf16 *q16, lora_bf16 *k16, lora_bf16 *v16,
                             const float *q, const float *k, const float *v,
                             const lora_lora_up *lu, const int32_t *pos, const float *cos,
                             const float *sin, int64_t N, int64_t H, int64_t KVH, int64_t D)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N * H * D == 0)
        return;
    qkv_keep p = {{q16, k16, v16}, {q, k, v}, {}, NULL, NULL, 0, 0, {}, pos, cos, sin,
                  N, H, KVH, D};
    if (lu)
        p.lu = *lu;
    launch(cu, p, "qkv_keep_fwd");
}

// q (N, H, D), k (N, KVH, D) = RoPE(. + LoRA) in place; cache (B, S, KVH*D)[b, pos] = k, v + LoRA
void lora__cuda_qkv_cache_fwd(lora_cuda *cu, float *q, float *k, const float *v,
                              lora_bf16 *k_cache, lora_bf16 *v_cache, const lora_lora_up *lu,
                              const int32_t *pos, const float *cos, const float *sin, int64_t B,
                              int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D)
{
    qkv_keep p = {{NULL, NULL, NULL}, {q, k, v}, {q, k}, k_cache, v_cache, T, S, *lu, pos,
                  cos, sin, B * T, H, KVH, D};
    launch(cu, p, "rope_kv_store_bf16");
}
