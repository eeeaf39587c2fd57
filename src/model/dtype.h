/* Conversions between stored dtypes and float32. Sources may be unaligned (safetensors data
 * sits at arbitrary offsets in the mapping). */
#ifndef LORA_MODEL_DTYPE_H
#define LORA_MODEL_DTYPE_H

#include <stddef.h>
#include <stdint.h>

void lora__f32_from_bf16(float *dst, const uint8_t *src, size_t n);
void lora__f32_from_f16(float *dst, const uint8_t *src, size_t n);
void lora__f32_from_f32(float *dst, const uint8_t *src, size_t n);
/* Round to nearest even; NaN stays NaN. */
uint16_t lora__bf16_from_f32(float x);
/* The same over n values (dst aligned): a GPU model's bfloat16 weights. */
void lora__bf16_from_f32_n(uint16_t *dst, const float *src, size_t n);

#endif
