/* Learning-rate schedules: transformers' get_*_schedule_with_warmup lambdas, in the same
 * operations and order (Python floats are doubles), evaluated at the number of updates done. */
#include <math.h>

#include "train/optim.h"

static int64_t max1(int64_t x)
{
    return x > 1 ? x : 1;
}

double lora__optim_schedule_factor(const lora_optim_config *cfg, uint64_t updates)
{
    int64_t t = updates > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)updates;
    int64_t w = cfg->warmup_steps, total = cfg->num_training_steps;
    if (cfg->scheduler == LORA_SCHED_CONSTANT)
        return 1.0;
    if (t < w)
        return (double)t / (double)max1(w);
    switch (cfg->scheduler) {
    case LORA_SCHED_LINEAR:
        return fmax(0.0, (double)(total - t) / (double)max1(total - w));
    case LORA_SCHED_COSINE: {
        double progress = (double)(t - w) / (double)max1(total - w);
        const double num_cycles = 0.5;
        return fmax(0.0, 0.5 * (1.0 + cos(M_PI * num_cycles * 2.0 * progress)));
    }
    default:
        return 1.0;
    }
}
