/* Counting CUDA devices for the GPU suites, in a child process: CUDA initialised before Check
 * forks cannot be used in the forked test processes. */
#ifndef TESTS_UTIL_CUDA_PROBE_H
#define TESTS_UTIL_CUDA_PROBE_H

#include <stddef.h>

/* The number of CUDA devices (0 without the CUDA backend in the build); why gets the reason
 * when there are none. */
int tu_cuda_devices(char *why, size_t cap);

/* The name tests/cuda_emu/emu_runtime.c gives its one device. */
#define TU_CUDA_EMULATOR "liblora CUDA emulator"

/* 1 when device 0 is the CUDA emulator's (tests/cuda_emu): the cases that need what it does
 * not emulate (cuDNN's kernels) then say they are skipped. */
int tu_cuda_emulated(void);

#endif
