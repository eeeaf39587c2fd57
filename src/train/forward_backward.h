/* One micro-batch of training: forward with saved activations, Hugging Face's causal-LM loss,
 * backward into gradient arenas. */
#ifndef LORA_TRAIN_FORWARD_BACKWARD_H
#define LORA_TRAIN_FORWARD_BACKWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/session.h"

/* ids, labels (B, T), range-checked; position_ids NULL or (B, T) checked packed positions
 * (lora__check_packed_positions). The loss is the mean over counted tokens (labels[t + 1]
 * != -100 predicts from position t); the gradients of loss_scale * loss accumulate into g.
 * *loss_out gets the loss, *counted the counted tokens (0: no gradient, loss 0). */
lora_status lora__forward_backward(lora_session *s, const int32_t *ids, const int32_t *labels,
                                   const int32_t *position_ids, int64_t B, int64_t T,
                                   float loss_scale, bool recompute, const lora_grads *g,
                                   double *loss_out, size_t *counted);

/* Every row starts at 0 and each position id is 0 (a new sample) or the previous one plus 1.
 * Messages start with fn and name the row and column at fault. */
lora_status lora__check_packed_positions(const char *fn, const int32_t *position_ids, size_t B,
                                         size_t T);

#endif
