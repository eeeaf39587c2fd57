/* The emulator's cuBLASLt: the part cuda/ calls, built as libcublasLt.so.<major> so that
 * cuda/cublaslt.c's dlopen finds it first on LD_LIBRARY_PATH. Products are computed on the host
 * by OpenBLAS, column-major as cuBLASLt defines them: D (m, n) = alpha op(A) op(B) + beta C
 * (+ bias (m) over the columns, CUBLASLT_EPILOGUE_BIAS, the one epilogue emulated), float32
 * accumulation; CUBLAS_COMPUTE_32F_FAST_16BF rounds both operands to bfloat16 first,
 * CUBLAS_COMPUTE_32F_FAST_TF32 to TF32 (10 mantissa bits), as the tensor cores take them.
 *
 * Checked as cuBLASLt checks: attribute sizes, layouts (leading dimension at least the rows),
 * the shapes of A, B, C and D against each other and the transposes, the operand types (A and B
 * alike, float32 or bfloat16; C and D float32), the alignments the heuristic was promised
 * against the pointers the product is given, the workspace, the stream. Operands outside device
 * memory poison the context, as the device's fault would. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cublasLt.h>

#include "emu_sched.h"

typedef struct desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t ta, tb;
    cublasLtEpilogue_t epilogue;
    const float *bias; /* CUBLASLT_EPILOGUE_BIAS's vector (float32, D's type) */
} desc;

typedef struct layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
} layout;

typedef struct pref {
    uint64_t workspace;
    uint32_t align[4]; /* A, B, C, D */
} pref;

/* what the heuristic's "algorithm" carries to the product: the alignments it assumed */
typedef struct algo {
    uint32_t align[4];
} algo;

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
    *h = (cublasLtHandle_t)malloc(1);
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h)
{
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *out, cublasComputeType_t compute,
                                        cudaDataType_t scale)
{
    desc *d = calloc(1, sizeof *d);
    if (!d)
        return CUBLAS_STATUS_ALLOC_FAILED;
    d->compute = compute;
    d->scale = scale;
    d->ta = d->tb = CUBLAS_OP_N;
    d->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    *out = (cublasLtMatmulDesc_t)d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    free(d);
    return CUBLAS_STATUS_SUCCESS;
}

static int set(void *field, size_t field_size, const void *buf, size_t size)
{
    if (!buf || size != field_size)
        return 0;
    memcpy(field, buf, size);
    return 1;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t dp,
                                              cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size)
{
    desc *d = (desc *)dp;
    int ok = 0;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: ok = set(&d->ta, sizeof d->ta, buf, size); break;
    case CUBLASLT_MATMUL_DESC_TRANSB: ok = set(&d->tb, sizeof d->tb, buf, size); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: /* the two emulated */
        ok = set(&d->epilogue, sizeof d->epilogue, buf, size) &&
             (d->epilogue == CUBLASLT_EPILOGUE_DEFAULT || d->epilogue == CUBLASLT_EPILOGUE_BIAS);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: ok = set(&d->bias, sizeof d->bias, buf, size); break;
    default: ok = 0;
    }
    if (!ok)
        fprintf(stderr, "cuda-emu: cublasLtMatmulDescSetAttribute(%d, %zu bytes) refused\n",
                (int)attr, size);
    return ok ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *out, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld)
{
    *out = NULL;
    if (ld < 1 || (uint64_t)ld < rows)
        return CUBLAS_STATUS_INVALID_VALUE;
    layout *l = malloc(sizeof *l);
    if (!l)
        return CUBLAS_STATUS_ALLOC_FAILED;
    *l = (layout){type, rows, cols, ld};
    *out = (cublasLtMatrixLayout_t)l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *out)
{
    pref *p = malloc(sizeof *p);
    if (!p)
        return CUBLAS_STATUS_ALLOC_FAILED;
    *p = (pref){0, {256, 256, 256, 256}}; /* cuBLASLt's defaults */
    *out = (cublasLtMatmulPreference_t)p;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pp,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size)
{
    pref *p = (pref *)pp;
    int ok;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        ok = set(&p->workspace, sizeof p->workspace, buf, size);
        break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
        ok = set(&p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], sizeof(uint32_t),
                 buf, size);
        break;
    default: ok = 0;
    }
    if (!ok)
        fprintf(stderr, "cuda-emu: cublasLtMatmulPreferenceSetAttribute(%d, %zu bytes) refused\n",
                (int)attr, size);
    return ok ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

static size_t elem_size(cudaDataType_t t) { return t == CUDA_R_16BF ? 2 : 4; }

/* the problem (m, n, k) when the descriptors agree with each other, else 0 */
static int shape(const desc *d, const layout *a, const layout *b, const layout *c,
                 const layout *dd, uint64_t *m, uint64_t *n, uint64_t *k)
{
    uint64_t am = d->ta == CUBLAS_OP_T ? a->cols : a->rows;
    uint64_t ak = d->ta == CUBLAS_OP_T ? a->rows : a->cols;
    uint64_t bk = d->tb == CUBLAS_OP_T ? b->cols : b->rows;
    uint64_t bn = d->tb == CUBLAS_OP_T ? b->rows : b->cols;
    int types = a->type == b->type && (a->type == CUDA_R_32F || a->type == CUDA_R_16BF) &&
                c->type == CUDA_R_32F && dd->type == CUDA_R_32F && d->scale == CUDA_R_32F &&
                (d->compute == CUBLAS_COMPUTE_32F ||
                 ((d->compute == CUBLAS_COMPUTE_32F_FAST_16BF ||
                   d->compute == CUBLAS_COMPUTE_32F_FAST_TF32) && a->type == CUDA_R_32F));
    int ops = (d->ta == CUBLAS_OP_N || d->ta == CUBLAS_OP_T) &&
              (d->tb == CUBLAS_OP_N || d->tb == CUBLAS_OP_T);
    *m = am, *n = bn, *k = ak;
    return types && ops && ak == bk && c->rows == am && c->cols == bn && dd->rows == am &&
           dd->cols == bn && c->ld == dd->ld;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t dp,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pp, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int *returned)
{
    uint64_t m, n, k;
    *returned = 0;
    if (!h || requested < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!shape((desc *)dp, (layout *)a, (layout *)b, (layout *)c, (layout *)d, &m, &n, &k)) {
        fprintf(stderr, "cuda-emu: cublasLtMatmulAlgoGetHeuristic: the descriptors disagree\n");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    /* LORA_CUDA_EMU_NO_EPILOGUE: no algorithm for a product with an epilogue, as cuBLASLt may
     * answer for some shape, so that the callers' other path runs */
    const char *no_epi = getenv("LORA_CUDA_EMU_NO_EPILOGUE");
    if (no_epi && *no_epi && ((desc *)dp)->epilogue != CUBLASLT_EPILOGUE_DEFAULT)
        return CUBLAS_STATUS_SUCCESS;
    const pref *p = (const pref *)pp;
    memset(&results[0], 0, sizeof results[0]);
    algo al;
    memcpy(al.align, p->align, sizeof al.align);
    memcpy(&results[0].algo, &al, sizeof al);
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

/* x with all but keep of its 23 mantissa bits rounded away (to nearest, ties to even, as the
 * emulator assumes the tensor cores do); NaN stays NaN */
static float round_mantissa(float x, int keep)
{
    uint32_t u, drop = 23u - (uint32_t)keep, half = (1u << (drop - 1)) - 1u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        u |= 0x00400000u;
    else
        u += half + ((u >> drop) & 1u);
    u &= ~((1u << drop) - 1u);
    memcpy(&x, &u, sizeof x);
    return x;
}

enum { EXACT = 0, BF16 = 7, TF32 = 10 }; /* the mantissa bits an operand keeps */

static float load(const layout *l, const void *p, uint64_t r, uint64_t col, int keep)
{
    uint64_t i = col * (uint64_t)l->ld + r;
    float v;
    if (l->type == CUDA_R_16BF) {
        uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
        memcpy(&v, &u, sizeof v);
        return v;
    }
    v = ((const float *)p)[i];
    return keep ? round_mantissa(v, keep) : v;
}

/* the bytes a (rows, cols, ld) matrix spans */
static size_t span(const layout *l)
{
    return l->cols ? ((l->cols - 1) * (uint64_t)l->ld + l->rows) * elem_size(l->type) : 0;
}

static int aligned(const void *p, uint32_t a) { return a == 0 || (uintptr_t)p % a == 0; }

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t dp, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t ap, const void *B,
                              cublasLtMatrixLayout_t bp, const void *beta, const void *C,
                              cublasLtMatrixLayout_t cp, void *D, cublasLtMatrixLayout_t dlp,
                              const cublasLtMatmulAlgo_t *algop, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream)
{
    const desc *d = (const desc *)dp;
    const layout *a = (const layout *)ap, *b = (const layout *)bp, *c = (const layout *)cp,
                 *dl = (const layout *)dlp;
    uint64_t m, n, k;
    if (!h || !algop)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!shape(d, a, b, c, dl, &m, &n, &k)) {
        fprintf(stderr, "cuda-emu: cublasLtMatmul: the descriptors disagree\n");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    algo al;
    memcpy(&al, algop, sizeof al);
    if (!aligned(A, al.align[0]) || !aligned(B, al.align[1]) || !aligned(C, al.align[2]) ||
        !aligned(D, al.align[3])) {
        fprintf(stderr, "cuda-emu: cublasLtMatmul: an operand (A %p, B %p, C %p, D %p) has less "
                "alignment than the plan was made for (%u, %u, %u, %u)\n", A, B, C, D,
                al.align[0], al.align[1], al.align[2], al.align[3]);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    (void)workspace, (void)workspace_bytes; /* the heuristic asked for none */
    lora_emu_check_stream("cublasLtMatmul", (const void *)stream);
    /* products run at once here, so one a capture would record cannot be: the capture fails */
    if (lora_emu_capturing((const void *)stream) &&
        lora_emu_capture_refuse("cublasLtMatmul (not recorded by the emulator)"))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!lora_emu_context_ok())
        return CUBLAS_STATUS_EXECUTION_FAILED;
    float al_f = *(const float *)alpha, be_f = *(const float *)beta;
    const float *bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS ? d->bias : NULL;
    if (d->epilogue == CUBLASLT_EPILOGUE_BIAS && !bias) {
        fprintf(stderr, "cuda-emu: cublasLtMatmul: the bias epilogue without a bias pointer\n");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    /* cuBLASLt's bias kernels may read the vector 16 bytes at a time (no preference says
     * otherwise): with less alignment the device faults, a bug in the caller */
    if (bias && (uintptr_t)bias % 16)
        lora_emu_fatal("cublasLtMatmul: bias %p is under 16-byte alignment", (const void *)bias);
    const void *ops[5] = {A, B, C, D, bias};
    const layout *ls[4] = {a, b, c, dl};
    for (int i = 0; i < 4; i++)
        if ((i != 2 || be_f != 0.0f) && span(ls[i]))
            lora_emu_check_range("cublasLtMatmul", i, ops[i], span(ls[i]));
    if (bias)
        lora_emu_check_range("cublasLtMatmul bias", 4, ops[4], m * sizeof *bias);
    if (!lora_emu_context_ok())
        return CUBLAS_STATUS_SUCCESS; /* the device faults later, at the next synchronisation */
    int fast = d->compute == CUBLAS_COMPUTE_32F_FAST_16BF   ? BF16
               : d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 ? TF32
                                                            : EXACT;
    /* op(A) (m, k) and op(B) (k, n) widened (and rounded) into dense float32 copies */
    float *x = malloc((size_t)(m * k + k * n + m * n) * sizeof *x), *y = x + m * k,
          *out = y + k * n;
    if (!x)
        return CUBLAS_STATUS_ALLOC_FAILED;
    for (uint64_t p = 0; p < k; p++)
        for (uint64_t i = 0; i < m; i++)
            x[p * m + i] = d->ta == CUBLAS_OP_T ? load(a, A, p, i, fast) : load(a, A, i, p, fast);
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t p = 0; p < k; p++)
            y[j * k + p] = d->tb == CUBLAS_OP_T ? load(b, B, j, p, fast) : load(b, B, p, j, fast);
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)n, (blasint)k,
                1.0f, x, (blasint)m, y, (blasint)k, 0.0f, out, (blasint)m);
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t i = 0; i < m; i++) {
            float v = al_f * out[j * m + i];
            if (be_f != 0.0f) /* beta 0: C is not read, so NaN in it does not leak into D */
                v += be_f * ((const float *)C)[j * (uint64_t)c->ld + i];
            if (bias) /* one per row of D, before any postprocessing */
                v += bias[i];
            ((float *)D)[j * (uint64_t)dl->ld + i] = v;
        }
    free(x);
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasLtGetStatusName(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

const char *cublasLtGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "unknown status (the emulator does not produce it)";
    }
}
