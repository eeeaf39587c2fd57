/* The CUDA backend's device, stream and cuBLASLt handle, and its failure bookkeeping: ops
 * return nothing, so a failed call is recorded here and reported by lora__cuda_sync. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/alloc.h"
#include "internal.h"

/* 32 MiB: what cuBLASLt's Hopper kernels ask for at most */
#define LT_WORKSPACE ((size_t)32 << 20)

lora_status lora__cuda_device_count(int *n)
{
    *n = 0;
    cudaError_t e = cudaGetDeviceCount(n);
    if (e != cudaSuccess) {
        *n = 0;
        /* clears the runtime's record of it, so that the next call starts clean */
        (void)cudaGetLastError();
        return lora__error(LORA_ERR_DEVICE, "no usable CUDA device: cudaGetDeviceCount: %s (%s)",
                           cudaGetErrorName(e), cudaGetErrorString(e));
    }
    if (*n == 0)
        return lora__error(LORA_ERR_DEVICE, "no CUDA device: cudaGetDeviceCount found none");
    return LORA_OK;
}

lora_status lora__cuda_parse_device(const char *name, int *ordinal)
{
    *ordinal = 0;
    if (strcmp(name, "cuda") == 0)
        return LORA_OK;
    if (strncmp(name, "cuda:", 5) != 0 || name[5] == '\0')
        return lora__error(LORA_ERR_CONFIG, "device '%.32s' is not \"cuda\" or \"cuda:N\"", name);
    long n = 0;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9' || n > 9999)
            return lora__error(LORA_ERR_CONFIG, "device '%.32s': N in \"cuda:N\" must be a "
                               "device number", name);
        n = n * 10 + (*p - '0');
    }
    *ordinal = (int)n;
    return LORA_OK;
}

lora_status lora__cuda_probe(int ordinal, char *name, size_t cap)
{
    int n;
    lora_status st = lora__cuda_device_count(&n);
    if (st)
        return st;
    if (ordinal < 0 || ordinal >= n)
        return lora__error(LORA_ERR_DEVICE, "cuda:%d: no such device (%d CUDA device%s, "
                           "cuda:0..cuda:%d)", ordinal, n, n == 1 ? "" : "s", n - 1);
    struct cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, ordinal);
    if (e != cudaSuccess)
        return lora__error(LORA_ERR_DEVICE, "cuda:%d: cudaGetDeviceProperties: %s (%s)", ordinal,
                           cudaGetErrorName(e), cudaGetErrorString(e));
    if (name && cap)
        snprintf(name, cap, "%s", prop.name);
    return LORA_OK;
}

void lora__cuda_fail(lora_cuda *cu, lora_status st, const char *fmt, ...)
{
    if (cu->err || cu->dead)
        return;
    cu->err = st;
    int k = snprintf(cu->msg, sizeof cu->msg, "cuda:%d: ", cu->ordinal);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cu->msg + k, sizeof cu->msg - (size_t)k, fmt, ap);
    va_end(ap);
}

/* Errors after which the context still works; anything else (illegal address, launch failure,
 * ECC, assert...) is sticky: the CUDA context is lost for this process. */
static bool recoverable(cudaError_t e)
{
    switch (e) {
    case cudaErrorInvalidValue:
    case cudaErrorMemoryAllocation:
    case cudaErrorInvalidConfiguration:
    case cudaErrorInvalidPitchValue:
    case cudaErrorInvalidSymbol:
    case cudaErrorInvalidDevicePointer:
    case cudaErrorInvalidMemcpyDirection:
    case cudaErrorLaunchOutOfResources:
    case cudaErrorInvalidDeviceFunction:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidResourceHandle:
    case cudaErrorInvalidDevice:
    case cudaErrorNotSupported:
    /* a capture that went wrong ends with the capture; the context is fine */
    case cudaErrorStreamCaptureUnsupported:
    case cudaErrorStreamCaptureInvalidated:
    case cudaErrorStreamCaptureMerge:
    case cudaErrorStreamCaptureUnmatched:
    case cudaErrorStreamCaptureUnjoined:
    case cudaErrorStreamCaptureIsolation:
    case cudaErrorStreamCaptureImplicit:
    case cudaErrorStreamCaptureWrongThread:
    case cudaErrorCapturedEvent:
    case cudaErrorIllegalState:
        return true;
    default:
        return false;
    }
}

int lora__cuda_check(lora_cuda *cu, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 0;
    bool sticky = !recoverable(e);
    if (!sticky)
        (void)cudaGetLastError(); /* the runtime keeps non-sticky errors too: forget this one */
    lora__cuda_fail(cu, e == cudaErrorMemoryAllocation ? LORA_ERR_DEVICE_OUT_OF_MEMORY
                                                       : LORA_ERR_DEVICE,
                    "%s: %s (%s)%s", what, cudaGetErrorName(e), cudaGetErrorString(e),
                    sticky ? "; the device is in a failed state" : "");
    if (sticky)
        cu->dead = true;
    return 1;
}

int lora__cuda_check_blas(lora_cuda *cu, cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return 0;
    const lora_cublaslt *lt;
    bool loaded = lora__cublaslt(&lt) == LORA_OK;
    lora__cuda_fail(cu, s == CUBLAS_STATUS_ALLOC_FAILED ? LORA_ERR_DEVICE_OUT_OF_MEMORY
                                                        : LORA_ERR_DEVICE,
                    "%s: cuBLASLt %s (%s)", what, loaded ? lt->status_name(s) : "status",
                    loaded ? lt->status_string(s) : "?");
    /* cuBLAS reports a failed kernel as EXECUTION_FAILED: the context may be gone */
    if (s == CUBLAS_STATUS_EXECUTION_FAILED) {
        cudaError_t e = cudaStreamQuery(cu->stream);
        if (e != cudaSuccess && e != cudaErrorNotReady && !recoverable(e))
            cu->dead = true;
    }
    return 1;
}

int lora__cuda_launched(lora_cuda *cu, const char *kernel)
{
    cu->launches++;
    return lora__cuda_check(cu, cudaGetLastError(), kernel);
}

int lora__cuda_queued(lora_cuda *cu, cudaError_t e, const char *what)
{
    cu->launches++;
    return lora__cuda_check(cu, e, what);
}

lora_cuda *lora__cuda_enter(lora_backend *be)
{
    lora_cuda *cu = be->impl;
    if (cu->err || cu->dead)
        return NULL;
    return lora__cuda_check(cu, cudaSetDevice(cu->ordinal), "cudaSetDevice") ? NULL : cu;
}

lora_status lora__cuda_sync(lora_backend *be)
{
    lora_cuda *cu = be->impl;
    if (!cu->dead) {
        cudaError_t e = cudaSetDevice(cu->ordinal);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(cu->stream);
        lora__cuda_check(cu, e, "cudaStreamSynchronize");
    }
    return lora__cuda_report(cu);
}

lora_status lora__cuda_report(lora_cuda *cu)
{
    if (cu->dead)
        return lora__error(LORA_ERR_DEVICE, "%s (only freeing the backend is possible now)",
                           cu->msg);
    if (!cu->err)
        return LORA_OK;
    lora_status st = cu->err;
    cu->err = LORA_OK;
    return lora__error(st, "%s", cu->msg);
}

lora_status lora__cuda_backend_create(int ordinal, lora_cuda_math math, lora_backend **out)
{
    *out = NULL;
    const lora_cublaslt *lt;
    lora_status st;
    if ((st = lora__cuda_probe(ordinal, NULL, 0)) || (st = lora__cublaslt(&lt)))
        return st;
    lora_backend *be = lora__calloc(1, sizeof *be);
    lora_cuda *cu = lora__calloc(1, sizeof *cu);
    if (!be || !cu) {
        free(be);
        free(cu);
        return lora__oom("cuda backend", sizeof *be + sizeof *cu);
    }
    cu->ordinal = ordinal;
    cu->math = math;
    be->ops = &lora__cuda_ops;
    be->impl = cu;
    if (!lora__cuda_check(cu, cudaSetDevice(ordinal), "cudaSetDevice") &&
        !lora__cuda_check(cu, cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking),
                          "cudaStreamCreate") &&
        !lora__cuda_check_blas(cu, lt->create(&cu->lt), "cublasLtCreate")) {
        cu->lt_ws = lora__cuda_malloc(cu, LT_WORKSPACE, "cuBLASLt workspace");
        cu->lt_ws_bytes = cu->lt_ws ? LT_WORKSPACE : 0;
    }
    if (cu->err || cu->dead) {
        st = lora__error(cu->dead ? LORA_ERR_DEVICE : cu->err, "%s", cu->msg);
        lora__cuda_backend_free(be);
        return st;
    }
    *out = be;
    return LORA_OK;
}

void lora__cuda_backend_free(lora_backend *be)
{
    if (!be)
        return;
    lora_cuda *cu = be->impl;
    const lora_cublaslt *lt;
    /* after a sticky error these calls fail too; there is nothing left to report them to */
    (void)cudaSetDevice(cu->ordinal);
    if (cu->stream)
        (void)cudaStreamSynchronize(cu->stream);
    lora__cuda_sdpa_free(cu);
    lora__cuda_gemm_free(cu);
    lora__cuda_free_mem(cu, cu->arena, cu->arena_cap);
    lora__cuda_free_mem(cu, cu->scratch, cu->scratch_cap);
    lora__cuda_free_mem(cu, cu->lt_ws, cu->lt_ws_bytes);
    if (cu->lt && lora__cublaslt(&lt) == LORA_OK)
        lt->destroy(cu->lt);
    if (cu->stream)
        (void)cudaStreamDestroy(cu->stream);
    (void)cudaGetLastError();
    free(cu);
    free(be);
}
