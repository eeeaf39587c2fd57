/* The CUDA emulator's kernel scheduler (emu_sched.c) and the device-memory registry it shares
 * with the runtime (emu_runtime.c): plain C, called from the rewritten kernels (emu_device.h). */
#ifndef LORA_CUDA_EMU_SCHED_H
#define LORA_CUDA_EMU_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include <vector_types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lora_emu_dim3 {
    unsigned x, y, z;
} lora_emu_dim3;

/* Runs body(ctx) once per thread of the grid, block after block, every thread of a block live
 * at once. A bad configuration (as the device would refuse it) runs nothing and leaves
 * cudaErrorInvalidConfiguration for cudaGetLastError; a barrier that can never complete (some
 * threads wait where others never arrive) stops the process with the kernel's name. */
void lora_emu_run(const char *kernel, lora_emu_dim3 grid, lora_emu_dim3 block, size_t shared,
                  void (*body)(void *ctx), void *ctx);

/* The running thread's coordinates (valid inside body only). */
uint3 lora_emu_thread_index(void);
uint3 lora_emu_block_index(void);
dim3 lora_emu_block_dim(void);
dim3 lora_emu_grid_dim(void);
unsigned lora_emu_lane(void);
void *lora_emu_dyn_shared(void);

void lora_emu_syncthreads(void);
/* Each lane of the warp offers *in; *out becomes what lane src offered. mask must name every
 * live lane of the warp (the only use of the shuffles in cuda/). */
void lora_emu_warp_exchange(unsigned mask, const void *in, void *out, size_t size, int src);

/* lora_emu_check_range of the one byte at p, unless p is NULL (a one-past-the-end pointer
 * passes). */
void lora_emu_check_pointer(const char *kernel, int arg, const void *p);
/* Poisons the context (the device's illegal address) unless [p, p + bytes) lies inside one
 * device allocation; operand arg of what, named on stderr. */
void lora_emu_check_range(const char *what, int arg, const void *p, size_t bytes);
void lora_emu_check_stream(const char *kernel, const void *stream);
/* 0 once the context is poisoned (a kernel given an illegal address): launches then do nothing. */
int lora_emu_context_ok(void);
/* 1 when [p, p + bytes) lies inside one device allocation. */
int lora_emu_is_device(const void *p, size_t bytes);
/* Stream capture (emu_graph.c): 1 while stream records its work; the work to record (run at
 * each launch of a graph made from the record, drop when the record goes); a synchronous call
 * named call made while a capture is open: 1, the capture invalidated and
 * cudaErrorStreamCaptureUnsupported left for cudaGetLastError, else 0. */
int lora_emu_capturing(const void *stream);
void lora_emu_capture_add(void (*run)(void *ctx), void (*drop)(void *ctx), void *ctx);
int lora_emu_capture_refuse(const char *call);
/* Records a launch failure for the next cudaGetLastError (emu_runtime.c). */
void lora_emu_set_launch_error(int cuda_error);
/* Writes "cuda-emu: ..." to stderr and aborts: a bug in the code under test. */
void lora_emu_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#ifdef __cplusplus
}
#endif

#endif
