/* The residual add and the RMSNorm after it with the LoRA up-product of the projection that made
 * the residual term summed in the same pass (residual_lora_rmsnorm_fwd): the o and down
 * projections, whose float32 outputs only the norm's pass reads. Forward only: the backward is
 * the norm's (rmsnorm.cu) and the projections'. */
#include "lora_up_tile.cuh"

/* A block per tile of LUT_ROWS rows, LORA_CUDA_THREADS threads: thread c holds the up-product
 * sums of columns c, c + blockDim.x, ... for the tile's rows (lora_up_tile.cuh), so that B's row
 * is read once per tile rather than per row. Each row's arithmetic is residual_rmsnorm_fwd's
 * (rmsnorm.cu): a thread adds and squares its columns in the same order, the squares' block sum
 * is the same, so over the same sums the results are the same bits. The rows' double sums of
 * squares take 64 registers; two blocks an SM (128 registers a thread, 128 bytes spilled by
 * ptxas on sm_90) rather than one (168). */
__global__ void __launch_bounds__(LORA_CUDA_THREADS, 2)
residual_lora_rmsnorm_kernel(float *x, float *y, float *rstd, lora_bf16 *x16, lora_bf16 *y16,
                             const float *r, lora_lora_up lu, const float *w, int64_t N,
                             int64_t C, float eps)
{
    __shared__ float ts[1][LUT_J][LUT_ROWS];
    __shared__ float scale_row[LUT_ROWS];
    const float *t = lu.t[0];
    for (int64_t n0 = (int64_t)blockIdx.x * LUT_ROWS; n0 < N; n0 += (int64_t)gridDim.x * LUT_ROWS) {
        int rows = N - n0 < LUT_ROWS ? (int)(N - n0) : LUT_ROWS;
        double ss[LUT_ROWS];
#pragma unroll
        for (int k = 0; k < LUT_ROWS; k++)
            ss[k] = 0.0;
        for (int64_t c0 = 0; c0 < C; c0 += blockDim.x) { /* the same trips for every thread */
            int64_t c = c0 + threadIdx.x;
            const float *b = c < C && t ? lu.B[0] + c * lu.r : NULL;
            float acc[1][LUT_ROWS];
            lora_up_tile<1, 1>(ts, &t, &b, lu.r, N, n0, rows, acc);
            if (c >= C)
                continue;
#pragma unroll
            for (int k = 0; k < LUT_ROWS; k++) {
                if (k >= rows)
                    break;
                int64_t e = (n0 + k) * C + c;
                float o = r[e];
                if (t)
                    o += lu.scale[0] * acc[0][k];
                float v = x[e] + o;
                x[e] = v;
                if (x16)
                    x16[e] = lora__round_bf16(v);
                ss[k] += (double)v * v;
            }
        }
#pragma unroll
        for (int k = 0; k < LUT_ROWS; k++) {
            if (k >= rows) /* rows is the block's: every thread leaves together */
                break;
            double tot = lora__block_sum(ss[k]);
            if (threadIdx.x == 0)
                scale_row[k] = (float)(1.0 / sqrt(tot / (double)C + (double)eps));
        }
        __syncthreads();
        if (rstd && (int)threadIdx.x < rows)
            rstd[n0 + threadIdx.x] = scale_row[threadIdx.x];
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
            for (int k = 0; k < rows; k++) {
                int64_t e = (n0 + k) * C + c;
                float v = x[e] * scale_row[k] * w[c];
                y[e] = v;
                if (y16)
                    y16[e] = lora__round_bf16(v);
            }
        __syncthreads(); /* scale_row is read before the next tile writes it */
    }
}

// x (N, C) += r + scale t^T B^T; y = rmsnorm(x) w; rstd, x16, y16 as residual_rmsnorm_fwd's
void lora__cuda_residual_lora_rmsnorm_fwd(lora_backend *be, float *x, float *y, float *rstd,
                                          lora_bf16 *x16, lora_bf16 *y16, const float *r,
                                          const lora_lora_up *lu, const float *w, int64_t N,
                                          int64_t C, float eps)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu || N == 0 || C == 0)
        return;
    int64_t tiles = (N + LUT_ROWS - 1) / LUT_ROWS;
    unsigned grid = (unsigned)(tiles < 65535 ? tiles : 65535);
    residual_lora_rmsnorm_kernel<<<grid, LORA_CUDA_THREADS, 0, cu->stream>>>(x, y, rstd, x16, y16, r, *lu, w, N, C, eps);
    lora__cuda_launched(cu, "residual_lora_rmsnorm_fwd");
}
