/* lora bench: shared pieces of the decode and train benchmarks. */
#ifndef LORA_CLI_BENCH_H
#define LORA_CLI_BENCH_H

#include <stdint.h>

#include "lora.h"

/* Peak resident memory of the process so far, in MiB. */
double bench_peak_rss_mib(void);
/* A random adapter of rank r (alpha 2r) on all seven projections, B non-zero so that the LoRA
 * path costs what a trained adapter costs; NULL on failure (lora_last_error says why). */
lora_adapter *bench_adapter(lora_model *model, uint64_t rank);
/* lora bench --mode train; see the help text in cmd_bench.c. */
int bench_train(const char *dir, const char *device, uint64_t threads, uint64_t seq,
                uint64_t batch, uint64_t steps, uint64_t rank);

#endif
