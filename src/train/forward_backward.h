/* One micro-batch of training: forward with saved activations, Hugging Face's causal-LM loss,
 * backward into gradient arenas. */
#ifndef LORA_TRAIN_FORWARD_BACKWARD_H
#define LORA_TRAIN_FORWARD_BACKWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/session.h"

/* ids, labels (B, T), range-checked. The loss is the mean over counted tokens (labels[t + 1]
 * != -100 predicts from position t); the gradients of loss_scale * loss accumulate into g.
 * *loss_out gets the loss, *counted the counted tokens (0: no gradient, loss 0). */
lora_status lora__forward_backward(lora_session *s, const int32_t *ids, const int32_t *labels,
                                   int64_t B, int64_t T, float loss_scale, bool recompute,
                                   const lora_grads *g, double *loss_out, size_t *counted);

#endif
