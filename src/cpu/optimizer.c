/* The optimizer's entries of the CPU backend: the gradient norm's sum of squares and torch's
 * AdamW and SGD updates, single-threaded so that sums run in index order. They do not use the backend
 * (be may be NULL): src/train/optim.c calls them directly for host parameters. */
#include <math.h>

#include "cpu/cpu.h"

lora_status lora__cpu_sum_squares(lora_backend *be, const float *x, size_t n, double *acc)
{
    (void)be;
    double sum = *acc;
    for (size_t k = 0; k < n; k++)
        sum += (double)x[k] * x[k];
    *acc = sum;
    return LORA_OK;
}

void lora__cpu_adamw(lora_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                     const lora_adamw_args *a)
{
    (void)be;
    const double b1 = a->beta1, b2 = a->beta2, eps = a->eps, lr = a->lr, scale = a->grad_scale;
    const double decay = 1.0 - lr * a->weight_decay;
    const double bc1 = 1.0 - pow(b1, (double)(a->t + 1));
    const double bc2_sqrt = sqrt(1.0 - pow(b2, (double)(a->t + 1)));
    const double step_size = lr / bc1;
    for (size_t k = 0; k < n; k++) {
        double gk = (double)g[k] * scale;
        double pk = (double)p[k] * decay;
        m[k] = (float)(b1 * m[k] + (1.0 - b1) * gk);
        v[k] = (float)(b2 * v[k] + (1.0 - b2) * gk * gk);
        double denom = sqrt((double)v[k]) / bc2_sqrt + eps;
        p[k] = (float)(pk - step_size * ((double)m[k] / denom));
    }
}

void lora__cpu_sgd(lora_backend *be, float *p, const float *g, float *buf, size_t n,
                   const lora_sgd_args *a)
{
    (void)be;
    const double wd = a->weight_decay, mu = a->momentum, damp = a->dampening;
    for (size_t k = 0; k < n; k++) {
        double gk = (double)g[k] * a->grad_scale;
        if (wd != 0)
            gk += wd * p[k];
        if (buf) {
            buf[k] = (float)(a->t == 0 ? gk : mu * buf[k] + (1.0 - damp) * gk);
            gk = a->nesterov ? gk + mu * buf[k] : (double)buf[k];
        }
        p[k] = (float)((double)p[k] - a->lr * gk);
    }
}
