/* cuDNN is opened at run time (dlopen), as cuBLASLt is (cublaslt.c): liblora then loads and
 * runs without it, and attention falls back to the reference kernels when it is missing. Only
 * the graph part is used (the backend descriptors of cudnn_graph.h): libcudnn.so.<major> is the
 * shim that loads the engine libraries when a plan needs them; libcudnn_graph.so.<major> alone
 * is the fallback. LORA_CUDA_LIBDIR (the toolkit's library folder at build time) is tried after
 * the loader's path. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "api/error.h"
#include "internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define MAJOR STR(CUDNN_MAJOR)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static lora_cudnn table;
static lora_status load_status;
static char load_msg[400];

static void *open_one(const char *name)
{
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
#ifdef LORA_CUDA_LIBDIR
    if (!h) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", LORA_CUDA_LIBDIR, name);
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
#endif
    return h;
}

static void *sym(void *h, const char *lib, const char *name, int *missing)
{
    void *p = dlsym(h, name);
    if (!p && !*missing) {
        snprintf(load_msg, sizeof load_msg, "%s has no symbol %s", lib, name);
        *missing = 1;
    }
    return p;
}

static void load(void)
{
    const char *lib = "libcudnn.so." MAJOR;
    void *h = open_one(lib);
    if (!h) {
        lib = "libcudnn_graph.so." MAJOR;
        h = open_one(lib);
    }
    if (!h) {
        snprintf(load_msg, sizeof load_msg, "cuDNN could not be loaded: %s", dlerror());
        load_status = LORA_ERR_DEVICE;
        return;
    }
    int missing = 0;
    /* POSIX: a function pointer round-trips through dlsym's void * */
#define LOAD(field, name) *(void **)&table.field = sym(h, lib, #name, &missing)
    LOAD(get_version, cudnnGetVersion);
    LOAD(error_string, cudnnGetErrorString);
    LOAD(last_error, cudnnGetLastErrorString);
    LOAD(create, cudnnCreate);
    LOAD(destroy, cudnnDestroy);
    LOAD(set_stream, cudnnSetStream);
    LOAD(desc_create, cudnnBackendCreateDescriptor);
    LOAD(desc_destroy, cudnnBackendDestroyDescriptor);
    LOAD(set, cudnnBackendSetAttribute);
    LOAD(get, cudnnBackendGetAttribute);
    LOAD(finalize, cudnnBackendFinalize);
    LOAD(execute, cudnnBackendExecute);
#undef LOAD
    if (missing) {
        load_status = LORA_ERR_DEVICE;
        return;
    }
    /* needs no device: it reports the library's own version */
    table.version = table.get_version();
    table.library = lib;
    /* the library stays loaded for the life of the process, like cuBLASLt */
    load_status = LORA_OK;
}

const lora_cudnn *lora__cudnn_get(const char **why)
{
    pthread_once(&once, load);
    *why = load_status ? load_msg : "";
    return load_status ? NULL : &table;
}

lora_status lora__cudnn(const lora_cudnn **out)
{
    const char *why;
    *out = lora__cudnn_get(&why);
    return *out ? LORA_OK : lora__error(load_status, "%s", why);
}

void lora__cudnn_describe(const lora_cudnn *dn, cudnnStatus_t s, const char *what, char *buf,
                          size_t cap)
{
    char last[256];
    last[0] = '\0';
    dn->last_error(last, sizeof last);
    snprintf(buf, cap, "%s: %s%s%s", what, dn->error_string(s), last[0] ? ": " : "", last);
}

int lora__cuda_check_dnn(lora_cuda *cu, cudnnStatus_t s, const char *what)
{
    if (s == CUDNN_STATUS_SUCCESS)
        return 0;
    const char *why;
    const lora_cudnn *dn = lora__cudnn_get(&why);
    char msg[300];
    if (dn)
        lora__cudnn_describe(dn, s, what, msg, sizeof msg);
    else
        snprintf(msg, sizeof msg, "%s: cuDNN status %d", what, (int)s);
    lora__cuda_fail(cu, s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED
                            ? LORA_ERR_DEVICE_OUT_OF_MEMORY
                            : LORA_ERR_DEVICE,
                    "%s", msg);
    /* statuses come in categories of a thousand; a failed kernel is an execution or internal
     * failure, after which the context may be gone */
    int category = (int)s / 1000 * 1000;
    if (category == CUDNN_STATUS_EXECUTION_FAILED || category == CUDNN_STATUS_INTERNAL_ERROR) {
        cudaError_t e = cudaStreamQuery(cu->stream);
        if (e != cudaSuccess && e != cudaErrorNotReady)
            lora__cuda_check(cu, e, what);
    }
    return 1;
}
