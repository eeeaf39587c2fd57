/* CUDA's device dialect for g++: what the .cu files of cuda/ use of it, so that the backend's
 * kernels compile as host C++ and run on the CPU under the emulator's scheduler (emu_sched.c).
 * Force-included
 * (-include) ahead of each .cu file that tests/cuda_emu/launch.sed has rewritten: the sed turns
 * `k<<<grid, block, shared, stream>>>(args)` into `lora_emu::launcher(k, "k", grid, block,
 * shared, stream)(args)` and `extern __shared__ T name[];` into a pointer to the block's
 * dynamic shared memory.
 *
 * Semantics kept: every thread of a block is live at once (a fiber each), __syncthreads is a
 * block barrier, the warp shuffles exchange through a warp barrier, static __shared__ variables
 * are per block (blocks run one after another), kernel arguments are copied per thread, launch
 * configurations are checked as the device checks them, and pointer arguments must point into
 * device memory (or be null). Not kept: concurrency between blocks and streams (everything runs
 * in launch order, synchronously), the device's rounding of expf and friends (the host's libm
 * is used), and timing. */
#ifndef LORA_CUDA_EMU_DEVICE_H
#define LORA_CUDA_EMU_DEVICE_H

/* The CUDA headers leave these alone when they are already defined (crt/host_defines.h). */
#define __shared__ static
#define __device__
#define __global__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...) /* a register budget for ptxas: nothing to emulate */

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emu_sched.h"

#define threadIdx (lora_emu_thread_index())
#define blockIdx (lora_emu_block_index())
#define blockDim (lora_emu_block_dim())
#define gridDim (lora_emu_grid_dim())

static inline void __syncthreads(void) { lora_emu_syncthreads(); }

template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask)
{
    static_assert(sizeof(T) <= 8, "a shuffled value is at most 8 bytes");
    T out;
    lora_emu_warp_exchange(mask, &v, &out, sizeof(T), (int)(lora_emu_lane() ^ (unsigned)lane_mask));
    return out;
}

template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src_lane)
{
    T out;
    lora_emu_warp_exchange(mask, &v, &out, sizeof(T), src_lane & 31);
    return out;
}

static inline float __uint_as_float(uint32_t u)
{
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t __float_as_uint(float f)
{
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

/* Blocks run one at a time and their threads switch only at barriers, so a plain
 * read-modify-write is atomic here. */
template <typename T> static inline T atomicAdd(T *p, T v)
{
    T old = *p;
    *p = old + v;
    return old;
}

namespace lora_emu {

template <typename T> inline void check_arg(const char *kernel, int index, T *p)
{
    lora_emu_check_pointer(kernel, index, (const void *)p);
}
template <typename T> inline void check_arg(const char *, int, const T &) {}

template <typename... P> struct launch {
    typedef std::tuple<typename std::decay<P>::type...> args_t;
    void (*kernel)(P...);
    const char *name;
    dim3 grid, block;
    size_t shared;
    cudaStream_t stream;

    /* a launch as a capturing stream records it: everything copied, run at each replay */
    struct recorded {
        launch l;
        args_t args;
    };

    void run(args_t &args) const
    {
        if (!lora_emu_context_ok())
            return; /* the device would fault: the context is poisoned, nothing runs */
        struct ctx {
            void (*kernel)(P...);
            args_t *args;
        } c = {kernel, &args};
        lora_emu_run(name, lora_emu_dim3{grid.x, grid.y, grid.z},
                     lora_emu_dim3{block.x, block.y, block.z}, shared,
                     [](void *p) {
                         ctx *cc = (ctx *)p;
                         std::apply(cc->kernel, *cc->args); /* each thread its own copies */
                     },
                     &c);
    }

    template <typename... A> void operator()(A &&...a) const
    {
        static_assert(sizeof...(A) == sizeof...(P), "a kernel launch with the wrong argument count");
        args_t args(std::forward<A>(a)...);
        int index = 0;
        std::apply([&](auto &...x) { (check_arg(name, index++, x), ...); }, args);
        if (!lora_emu_capturing((const void *)stream)) {
            run(args);
            return;
        }
        /* malloc and placement new: the kernels link without the C++ runtime */
        void *m = std::malloc(sizeof(recorded));
        if (!m)
            lora_emu_fatal("%s: out of memory recording the launch", name);
        recorded *r = new (m) recorded{*this, args};
        lora_emu_capture_add([](void *p) { ((recorded *)p)->l.run(((recorded *)p)->args); },
                             [](void *p) {
                                 ((recorded *)p)->~recorded();
                                 std::free(p);
                             },
                             r);
    }
};

template <typename... P>
inline launch<P...> launcher(void (*kernel)(P...), const char *name, dim3 grid, dim3 block,
                             size_t shared = 0, cudaStream_t stream = 0)
{
    lora_emu_check_stream(name, (const void *)stream);
    return launch<P...>{kernel, name, grid, block, shared, stream};
}

} // namespace lora_emu

#endif
