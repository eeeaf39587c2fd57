#include "cpu/cpu.h"

typedef struct rope_job {
    float *x;
    const int32_t *pos;
    const float *cos, *sin;
    int64_t heads, D;
    float sign; /* +1 forward; -1 backward: the transpose of a rotation is the rotation by -theta */
} rope_job;

/* rotate-half: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) on the two halves of a head,
 * with sin negated (exactly) for the backward */
static void rope_rows(void *ctx, int64_t r0, int64_t r1, int tid)
{
    const rope_job *j = ctx;
    int64_t half = j->D / 2;
    for (int64_t r = r0; r < r1; r++) {
        const float *c = j->cos + (int64_t)j->pos[r] * half;
        const float *s = j->sin + (int64_t)j->pos[r] * half;
        for (int64_t h = 0; h < j->heads; h++) {
            float *v = j->x + (r * j->heads + h) * j->D;
            for (int64_t i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half], si = j->sign * s[i];
                v[i] = x1 * c[i] - x2 * si;
                v[i + half] = x2 * c[i] + x1 * si;
            }
        }
    }
}

// x (N, heads, D) rotated in place at positions pos (N); cos, sin (P, D/2)
void lora__cpu_rope_fwd(lora_backend *be, float *x, const int32_t *pos, const float *cos,
                        const float *sin, int64_t N, int64_t heads, int64_t D)
{
    rope_job j = {x, pos, cos, sin, heads, D, 1.0f};
    lora__pool_run(lora__cpu_pool(be), rope_rows, &j, N, lora__cpu_grain(heads * D * 3));
}

// dx (N, heads, D) rotated in place by -theta at positions pos (N): the forward's transpose
void lora__cpu_rope_bwd(lora_backend *be, float *dx, const int32_t *pos, const float *cos,
                        const float *sin, int64_t N, int64_t heads, int64_t D)
{
    rope_job j = {dx, pos, cos, sin, heads, D, -1.0f};
    lora__pool_run(lora__cpu_pool(be), rope_rows, &j, N, lora__cpu_grain(heads * D * 3));
}
