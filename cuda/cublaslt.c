/* cuBLASLt is opened at run time (dlopen) rather than linked: liblora built with CUDA then
 * loads, and runs on the CPU, on machines that have neither a GPU nor the CUDA libraries; only
 * creating a CUDA backend needs libcublasLt. The soname is the major version of the headers
 * built against; LORA_CUDA_LIBDIR (the toolkit's library folder at build time) is the fallback
 * when the loader's path does not have it. LORA_CUBLASLT in the environment names the file to
 * open instead: the loader answers a soname with whichever library of that soname the process
 * has already loaded (PyTorch's, say), and a path only with that file. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/error.h"
#include "internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define SONAME "libcublasLt.so." STR(CUBLAS_VER_MAJOR)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static lora_cublaslt table;
static lora_status load_status;
static char load_msg[400];

static void *sym(void *h, const char *name, int *missing)
{
    void *p = dlsym(h, name);
    if (!p && !*missing) {
        snprintf(load_msg, sizeof load_msg, "%s has no symbol %s", SONAME, name);
        *missing = 1;
    }
    return p;
}

static void load(void)
{
    const char *chosen = getenv("LORA_CUBLASLT");
    void *h = dlopen(chosen && *chosen ? chosen : SONAME, RTLD_NOW | RTLD_LOCAL);
#ifdef LORA_CUDA_LIBDIR
    if (!h && !(chosen && *chosen))
        h = dlopen(LORA_CUDA_LIBDIR "/" SONAME, RTLD_NOW | RTLD_LOCAL);
#endif
    if (!h) {
        snprintf(load_msg, sizeof load_msg, "cuBLASLt could not be loaded%s%s: %s",
                 chosen && *chosen ? " from LORA_CUBLASLT=" : "", chosen ? chosen : "",
                 dlerror());
        load_status = LORA_ERR_DEVICE;
        return;
    }
    int missing = 0;
    /* POSIX: a function pointer round-trips through dlsym's void * */
#define LOAD(field, name) *(void **)&table.field = sym(h, #name, &missing)
    LOAD(create, cublasLtCreate);
    LOAD(destroy, cublasLtDestroy);
    LOAD(desc_create, cublasLtMatmulDescCreate);
    LOAD(desc_destroy, cublasLtMatmulDescDestroy);
    LOAD(desc_set, cublasLtMatmulDescSetAttribute);
    LOAD(layout_create, cublasLtMatrixLayoutCreate);
    LOAD(layout_destroy, cublasLtMatrixLayoutDestroy);
    LOAD(pref_create, cublasLtMatmulPreferenceCreate);
    LOAD(pref_destroy, cublasLtMatmulPreferenceDestroy);
    LOAD(pref_set, cublasLtMatmulPreferenceSetAttribute);
    LOAD(heuristic, cublasLtMatmulAlgoGetHeuristic);
    LOAD(matmul, cublasLtMatmul);
    LOAD(status_name, cublasLtGetStatusName);
    LOAD(status_string, cublasLtGetStatusString);
#undef LOAD
    /* the library stays loaded for the life of the process: handles may outlive any one user */
    load_status = missing ? LORA_ERR_DEVICE : LORA_OK;
}

lora_status lora__cublaslt(const lora_cublaslt **out)
{
    pthread_once(&once, load);
    *out = load_status ? NULL : &table;
    return load_status ? lora__error(load_status, "%s", load_msg) : LORA_OK;
}
