/* Sequence lengths rounded up for device training, so that a GPU sees few batch shapes: each
 * new (B, T) builds cuDNN attention plans and cuBLASLt product plans, which a data loader's
 * longest-row padding would otherwise make for nearly every step. */
#ifndef LORA_TRAIN_BUCKET_H
#define LORA_TRAIN_BUCKET_H

#include <stdint.h>

#include "lora.h"

/* T rounded up to a multiple of an eighth of the largest power of two <= T (at least 8), at
 * most max_T (and T itself when T <= 8 or T >= max_T): at most 12.5% padding, eight lengths
 * per octave. */
int64_t lora__seq_bucket(int64_t T, int64_t max_T);

/* A (B, T) batch padded at the end of each row to (B, T2): ids 0, labels -100 (never counted:
 * the causal loss and attention leave the real tokens as they were), position ids (when given)
 * continuing the row's last sample. *ids2, *labels2, *pos2 are malloc'd (pos2 NULL without
 * pos). LORA_ERR_OUT_OF_MEMORY. */
lora_status lora__pad_batch(const int32_t *ids, const int32_t *labels, const int32_t *pos,
                            int64_t B, int64_t T, int64_t T2, int32_t **ids2, int32_t **labels2,
                            int32_t **pos2);

#endif
