/* The emulator's CUDA runtime: the part of libcudart that cuda/ calls, over host memory. One
 * device ("liblora CUDA emulator", compute capability 9.0) of LORA_CUDA_EMU_MEMORY bytes
 * (default 8 GiB); work runs at once on the calling thread, so streams are handles only.
 *
 * What it checks, as the device would fail: a copy's direction against the registry of device
 * allocations (a host pointer given as device memory, or the reverse, is cudaErrorInvalidValue
 * and a line on stderr), a kernel's pointer argument outside every allocation (the device's
 * illegal address: the launch is skipped and the context is poisoned, every later call returns
 * cudaErrorIllegalAddress), a destroyed or unknown stream, an allocation past the memory size.
 * New allocations are filled with all-ones bytes (a float NaN), so a read of what nothing wrote
 * shows. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "emu_sched.h"

typedef struct region {
    uintptr_t base;
    size_t bytes;
} region;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static region *regions; /* sorted by base */
static size_t n_regions, cap_regions, used_bytes;
static void **streams;
static size_t n_streams, cap_streams;
static cudaError_t sticky;                  /* a poisoned context: every call returns it */
static _Thread_local cudaError_t last_error; /* the runtime's per-thread last error */

static size_t memory_size(void)
{
    const char *s = getenv("LORA_CUDA_EMU_MEMORY");
    return s && *s ? (size_t)strtoull(s, NULL, 10) : (size_t)8 << 30;
}

static cudaError_t ret(cudaError_t e)
{
    if (e != cudaSuccess)
        last_error = e;
    return e;
}

static cudaError_t poisoned(void)
{
    pthread_mutex_lock(&lock);
    cudaError_t e = sticky;
    pthread_mutex_unlock(&lock);
    return e;
}

/* the region holding [p, p + bytes), or NULL; lock held */
static region *find(uintptr_t p, size_t bytes)
{
    size_t lo = 0, hi = n_regions;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (regions[mid].base <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    region *r = &regions[lo - 1];
    return p - r->base <= r->bytes && bytes <= r->bytes - (p - r->base) ? r : NULL;
}

int lora_emu_is_device(const void *p, size_t bytes)
{
    pthread_mutex_lock(&lock);
    int yes = find((uintptr_t)p, bytes) != NULL;
    pthread_mutex_unlock(&lock);
    return yes;
}

void lora_emu_set_launch_error(int cuda_error) { last_error = (cudaError_t)cuda_error; }

void lora_emu_check_range(const char *what, int arg, const void *p, size_t bytes)
{
    if (lora_emu_is_device(p, bytes))
        return;
    fprintf(stderr, "cuda-emu: %s: argument %d (%p, %zu bytes) is not device memory: illegal "
            "address\n", what, arg, p, bytes);
    pthread_mutex_lock(&lock);
    sticky = cudaErrorIllegalAddress;
    pthread_mutex_unlock(&lock);
}

void lora_emu_check_pointer(const char *kernel, int arg, const void *p)
{
    if (p)
        lora_emu_check_range(kernel, arg, p, 0);
}

void lora_emu_check_stream(const char *kernel, const void *stream)
{
    pthread_mutex_lock(&lock);
    int known = stream == NULL;
    for (size_t i = 0; i < n_streams && !known; i++)
        known = streams[i] == stream;
    pthread_mutex_unlock(&lock);
    if (!known)
        lora_emu_fatal("%s: launched on stream %p, which is not a live stream", kernel, stream);
}

int lora_emu_context_ok(void) { return poisoned() == cudaSuccess; }

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    if (poisoned())
        return ret(poisoned());
    return ret(device == 0 ? cudaSuccess : cudaErrorInvalidDevice);
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device != 0)
        return ret(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "liblora CUDA emulator");
    prop->totalGlobalMem = memory_size();
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    prop->maxThreadsPerBlock = 1024;
    prop->warpSize = 32;
    prop->sharedMemPerBlock = 48 << 10;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = NULL;
    if (lora_emu_capture_refuse("cudaMalloc"))
        return ret(cudaErrorStreamCaptureUnsupported);
    if (poisoned())
        return ret(poisoned());
    if (bytes == 0)
        return cudaSuccess;
    pthread_mutex_lock(&lock);
    cudaError_t e = cudaSuccess;
    void *m = NULL;
    if (bytes > memory_size() - used_bytes || !(m = malloc(bytes)))
        e = cudaErrorMemoryAllocation;
    else if (n_regions == cap_regions) {
        size_t cap = cap_regions ? 2 * cap_regions : 64;
        region *r = realloc(regions, cap * sizeof *r);
        if (!r) {
            free(m);
            e = cudaErrorMemoryAllocation;
        } else {
            regions = r;
            cap_regions = cap;
        }
    }
    if (e == cudaSuccess) {
        size_t at = 0;
        while (at < n_regions && regions[at].base < (uintptr_t)m)
            at++;
        memmove(regions + at + 1, regions + at, (n_regions - at) * sizeof *regions);
        regions[at] = (region){(uintptr_t)m, bytes};
        n_regions++;
        used_bytes += bytes;
        memset(m, 0xff, bytes);
        *p = m;
    }
    pthread_mutex_unlock(&lock);
    return ret(e);
}

cudaError_t cudaFree(void *p)
{
    if (lora_emu_capture_refuse("cudaFree"))
        return ret(cudaErrorStreamCaptureUnsupported);
    if (!p)
        return cudaSuccess;
    pthread_mutex_lock(&lock);
    region *r = find((uintptr_t)p, 0);
    cudaError_t e = cudaSuccess;
    if (!r || r->base != (uintptr_t)p)
        e = cudaErrorInvalidDevicePointer;
    else {
        used_bytes -= r->bytes;
        size_t at = (size_t)(r - regions);
        memmove(regions + at, regions + at + 1, (n_regions - at - 1) * sizeof *regions);
        n_regions--;
        free(p);
    }
    pthread_mutex_unlock(&lock);
    if (e != cudaSuccess)
        fprintf(stderr, "cuda-emu: cudaFree(%p): not the start of a device allocation\n", p);
    return ret(e);
}

static const char *kind_name(enum cudaMemcpyKind k)
{
    return k == cudaMemcpyHostToDevice   ? "host to device"
           : k == cudaMemcpyDeviceToHost ? "device to host"
           : k == cudaMemcpyDeviceToDevice ? "device to device"
           : k == cudaMemcpyHostToHost   ? "host to host"
                                         : "default";
}

static cudaError_t copy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    if (poisoned())
        return ret(poisoned());
    if (bytes == 0)
        return cudaSuccess;
    int dd = lora_emu_is_device(dst, bytes), sd = lora_emu_is_device(src, bytes);
    int want_dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    int want_sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind != cudaMemcpyDefault && (dd != want_dd || sd != want_sd)) {
        fprintf(stderr, "cuda-emu: cudaMemcpy %s of %zu bytes: destination %p is %s, source %p "
                "is %s\n", kind_name(kind), bytes, dst, dd ? "device memory" : "not device memory",
                src, sd ? "device memory" : "not device memory");
        return ret(cudaErrorInvalidValue);
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    if (lora_emu_capture_refuse("cudaMemcpy"))
        return ret(cudaErrorStreamCaptureUnsupported);
    return copy(dst, src, bytes, kind);
}

/* an asynchronous copy or fill a capturing stream records */
typedef struct transfer {
    void *dst;
    const void *src;
    size_t bytes;
    enum cudaMemcpyKind kind;
    int value, is_fill;
} transfer;

static cudaError_t fill(void *p, int value, size_t bytes);

static void run_transfer(void *ctx)
{
    const transfer *t = ctx;
    if (t->is_fill)
        fill(t->dst, t->value, t->bytes);
    else
        copy(t->dst, t->src, t->bytes, t->kind);
}

static cudaError_t record(transfer t)
{
    transfer *c = malloc(sizeof *c);
    if (!c)
        return ret(cudaErrorMemoryAllocation);
    *c = t;
    lora_emu_capture_add(run_transfer, free, c);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    lora_emu_check_stream("cudaMemcpyAsync", (const void *)stream);
    if (lora_emu_capturing((const void *)stream))
        return record((transfer){dst, src, bytes, kind, 0, 0});
    return copy(dst, src, bytes, kind);
}

static cudaError_t fill(void *p, int value, size_t bytes)
{
    if (poisoned())
        return ret(poisoned());
    if (bytes == 0)
        return cudaSuccess;
    if (!lora_emu_is_device(p, bytes)) {
        fprintf(stderr, "cuda-emu: cudaMemset of %zu bytes at %p: not device memory\n", bytes, p);
        return ret(cudaErrorInvalidValue);
    }
    memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes)
{
    if (lora_emu_capture_refuse("cudaMemset"))
        return ret(cudaErrorStreamCaptureUnsupported);
    return fill(p, value, bytes);
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream)
{
    lora_emu_check_stream("cudaMemsetAsync", (const void *)stream);
    if (lora_emu_capturing((const void *)stream))
        return record((transfer){p, NULL, bytes, cudaMemcpyDefault, value, 1});
    return fill(p, value, bytes);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    *stream = NULL;
    if (poisoned())
        return ret(poisoned());
    void *s = malloc(1);
    pthread_mutex_lock(&lock);
    if (s && n_streams == cap_streams) {
        size_t cap = cap_streams ? 2 * cap_streams : 16;
        void **t = realloc(streams, cap * sizeof *t);
        if (t) {
            streams = t;
            cap_streams = cap;
        } else {
            free(s);
            s = NULL;
        }
    }
    if (s)
        streams[n_streams++] = s;
    pthread_mutex_unlock(&lock);
    if (!s)
        return ret(cudaErrorMemoryAllocation);
    *stream = (cudaStream_t)s;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    pthread_mutex_lock(&lock);
    size_t i = 0;
    while (i < n_streams && streams[i] != (void *)stream)
        i++;
    int found = i < n_streams;
    if (found)
        streams[i] = streams[--n_streams];
    if (n_streams == 0) { /* the last one gone: nothing left for the leak checker to chase */
        free(streams);
        streams = NULL;
        cap_streams = 0;
    }
    pthread_mutex_unlock(&lock);
    if (!found)
        return ret(cudaErrorInvalidResourceHandle);
    free(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    lora_emu_check_stream("cudaStreamSynchronize", (const void *)stream);
    if (lora_emu_capture_refuse("cudaStreamSynchronize"))
        return ret(cudaErrorStreamCaptureUnsupported);
    return ret(poisoned());
}

cudaError_t cudaStreamQuery(cudaStream_t stream)
{
    lora_emu_check_stream("cudaStreamQuery", (const void *)stream);
    return ret(poisoned());
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = poisoned();
    if (e)
        return e;
    e = last_error;
    last_error = cudaSuccess;
    return e;
}

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorNotReady: return "device not ready";
    default: return "unknown error (the emulator does not produce it)";
    }
}
