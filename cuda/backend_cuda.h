/* The CUDA backend: the op table of src/backend.h on one GPU, plus what the callers of that
 * table need around it (device choice, memory, transfers, the optimizer step). Plain C: the
 * library's C code and the tests include it without the CUDA headers.
 *
 * Every pointer an op of lora__cuda_ops receives is device memory: the float tensors, the
 * int32 arrays (ids, positions, targets, lora_attention_shape.key0) and the RoPE tables alike;
 * the shape struct itself is read on the host. Ops are asynchronous on the backend's stream
 * and return nothing (the table's contract), so the first failure of a CUDA, cuBLASLt or
 * kernel launch call is kept in the backend, later ops do nothing, and lora__cuda_sync
 * reports it. Built only when the Makefile finds nvcc (LORA_CUDA is then defined). */
#ifndef LORA_CUDA_BACKEND_CUDA_H
#define LORA_CUDA_BACKEND_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "lora.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const lora_backend_ops lora__cuda_ops;

/* How matrix products round their inputs: BF16 is the production mode (inputs rounded to
 * bfloat16 for the tensor cores, float32 accumulation: CUBLAS_COMPUTE_32F_FAST_16BF); FP32
 * multiplies in float32 (CUBLAS_COMPUTE_32F), for exact comparisons with the CPU backend. */
typedef enum lora_cuda_math {
    LORA_CUDA_MATH_BF16,
    LORA_CUDA_MATH_FP32
} lora_cuda_math;

/* Number of CUDA devices. LORA_ERR_DEVICE, with the runtime's reason (no driver, no device),
 * when the runtime cannot count them. */
lora_status lora__cuda_device_count(int *n);

/* The ordinal named by "cuda" (0) or "cuda:N" (decimal, no sign, no spaces); LORA_ERR_CONFIG
 * for anything else. Says nothing about whether the device exists. */
lora_status lora__cuda_parse_device(const char *name, int *ordinal);

/* Checks that device `ordinal` exists and copies its name into name (cap bytes, may be NULL).
 * LORA_ERR_DEVICE: no usable CUDA device, or ordinal past the last one. */
lora_status lora__cuda_probe(int ordinal, char *name, size_t cap);

/* A backend on device `ordinal`: its stream, cuBLASLt handle and workspace. LORA_ERR_DEVICE
 * (no device, cuBLASLt library missing, a failed call), LORA_ERR_DEVICE_OUT_OF_MEMORY,
 * LORA_ERR_OUT_OF_MEMORY. *out is NULL on failure. */
lora_status lora__cuda_backend_create(int ordinal, lora_cuda_math math, lora_backend **out);
/* Frees everything the backend allocated, on the device too; NULL is a no-op. The only call a
 * backend in a failed state accepts. */
void lora__cuda_backend_free(lora_backend *be);

/* Waits for the stream, then reports the first failure since the last call:
 * LORA_ERR_DEVICE_OUT_OF_MEMORY (device allocation, cuBLASLt's included) and LORA_ERR_DEVICE
 * for failures that leave the device usable: the failure is cleared and the backend works on.
 * A sticky device error (illegal address, launch failure...) leaves the backend failed: every
 * later call returns LORA_ERR_DEVICE and ops do nothing; only _free is left. */
lora_status lora__cuda_sync(lora_backend *be);

/* ---- memory -------------------------------------------------------------------------------- */

/* One arena of device memory, planned for a shape: the caller sizes what a pass needs
 * (lora__cuda_arena_size adds one tensor's rounded size), plans it once, takes slices in order
 * and resets between passes. A plan that does not fit leaves the previous arena in place
 * (best effort) and returns LORA_ERR_DEVICE_OUT_OF_MEMORY; LORA_ERR_STATE while slices are
 * out (a plan would move them). */
size_t lora__cuda_arena_size(size_t bytes);
lora_status lora__cuda_arena_plan(lora_backend *be, size_t bytes);
/* A slice of bytes, aligned to 256 bytes; LORA_ERR_INTERNAL when the plan was too small. */
lora_status lora__cuda_arena_take(lora_backend *be, size_t bytes, void **p);
void lora__cuda_arena_reset(lora_backend *be);

typedef struct lora_cuda_memory {
    size_t arena_bytes;   /* planned arena */
    size_t arena_peak;    /* most of it ever taken at once */
    size_t device_bytes;  /* everything the backend holds now: arena, workspace, scratch */
    size_t device_peak;   /* the most it ever held */
} lora_cuda_memory;
void lora__cuda_memory(const lora_backend *be, lora_cuda_memory *out);
/* Devices cuda:0..cuda:63 count what the process's backends hold on them (beyond: nothing). */
#define LORA_CUDA_COUNTED_DEVICES 64
/* What every backend of the process holds on device ordinal now, and the most it has held
 * since the start or the last reset_peak, which restarts the peak at the current use. */
void lora__cuda_device_memory(int ordinal, size_t *in_use, size_t *peak, bool reset_peak);

/* Synchronous copies and fills on the backend's stream (they wait for the ops before them);
 * the statuses of lora__cuda_sync, which they include. */
lora_status lora__cuda_upload(lora_backend *be, void *dst, const void *src, size_t bytes);
lora_status lora__cuda_download(lora_backend *be, void *dst, const void *src, size_t bytes);
lora_status lora__cuda_fill(lora_backend *be, void *dst, int byte, size_t bytes);

/* ---- the optimizer --------------------------------------------------------------------------- */

/* sum of x[i]^2 in double over n device floats, into *out (host); synchronous. */
lora_status lora__cuda_sum_squares(lora_backend *be, const float *x, size_t n, double *out);

/* One AdamW update of n parameters, torch.optim.AdamW's math as src/train/optim.c does it
 * (double per element, float32 moments; the arguments in src/backend.h). Asynchronous, like an
 * op. */
void lora__cuda_adamw(lora_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                      const lora_adamw_args *a);
/* One SGD update, torch.optim.SGD's math as src/cpu/optimizer.c does it; buf NULL without
 * momentum. Asynchronous. */
void lora__cuda_sgd(lora_backend *be, float *p, const float *g, float *buf, size_t n,
                    const lora_sgd_args *a);

#ifdef __cplusplus
}
#endif

#endif
