/* Causal grouped-query attention on cuDNN's fused flash attention, forward and backward, built
 * with the graph API's C backend descriptors (cudnn_graph.h).
 *
 * cuDNN recognises flash attention as a pattern of backend operations, the one cudnn-frontend's
 * SDPA nodes lower to (composite, pre-9.21 form), so that is what is built here:
 *   forward:  S = Q KT; S *= scale; padding mask; causal mask; softmax with its statistics
 *             (max, exp, sum, Stats = max + log sum, P = exp / sum, P in bf16); O = P V;
 *   backward: Delta = sum(dO * O) (kept in memory: softmax_sum); S = Q KT * scale - Stats;
 *             masks; P = exp S; dV = PT dO; dS = P * (dO VT - Delta) * scale; dK = dST Q;
 *             dQ = dS K through a float32 accumulator; for GQA the full-head dK, dV are
 *             summed over the group by a reduction.
 * Masks are select(cond, S, lowest float) over generated row / column indices: causal is
 * row >= col (the queries start at position 0), padding is row < seq_len_q and col < seq_len_kv
 * per sequence. The padding mask is always in the graph (lengths T when the caller has none):
 * one graph per shape either way, and cuDNN before 9.16 wanted it for S % 128 != 0 anyway.
 *
 * Tensors are the table's layout as strides: Q, O (B, T, H, D) as [B, H, T, D]; K, V
 * (B, T, KVH, D) as [B, KVH, T, D] (K transposed by swapping its last two strides). The inputs
 * are bfloat16 copies in the op scratch (attention_convert.cu), the results are converted back
 * into the float32 tensors (written by the forward, added by the backward).
 *
 * Plans are finalized once per (forward or backward, B, T, H, KVH, D) and kept in a small table
 * on the backend (least recently used out), with the descriptors they were built from; the
 * scale is a by-value scalar, so it is not part of the key. A shape cuDNN cannot plan is
 * remembered too, and served by the reference kernels from then on. */
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "api/error.h"
#include "internal.h"

#define MIN_VERSION 91002 /* 9.10.0 and 9.10.1: known bad flash attention; older: other graphs */
#define MAX_D 256
#define CACHE 64          /* plans per backend: forward and backward of 32 shapes */
#define MAX_DESCS 192     /* descriptors of one graph, plan included */
#define MAX_OPS 64
#define MAX_CONFIGS 8     /* engine configurations tried per graph */
#define ALIGN 256

enum { FWD, BWD };

/* the tensors the variant packs name; virtual tensors are numbered from U_VIRTUAL */
enum {
    U_Q = 1, U_K, U_V, U_O, U_STATS, U_DO, U_DQ, U_DK, U_DV, U_SEQ_Q, U_SEQ_KV, U_SCALE,
    U_LOWEST, U_ONE, U_SUM, U_DQ_ACC, U_VIRTUAL = 100
};

typedef struct plan {
    bool used;
    bool unsupported;  /* building failed: the reference kernels serve this shape */
    int kind;
    int64_t B, T, H, KVH, D;
    uint64_t last_use;
    cudnnBackendDescriptor_t exec;
    int64_t workspace;
    int n_descs;
    cudnnBackendDescriptor_t descs[MAX_DESCS];
} plan;

struct lora_sdpa {
    cudnnHandle_t handle;
    bool tried, usable;   /* handle creation tried; cuDNN loaded, new enough, handle made */
    uint64_t clock, built, hits, cudnn_calls, reference_calls;
    char why[320];
    plan plans[CACHE];
};

/* ---- graph building: every call checked, the first failure kept as a message ------------- */

typedef struct graph {
    const lora_cudnn *dn;
    plan *p;              /* owns the descriptors */
    cudnnBackendDescriptor_t ops[MAX_OPS];
    int n_ops;
    int64_t next_uid;
    bool failed;
    char msg[320];
} graph;

static bool ok(graph *g, cudnnStatus_t s, const char *call, const char *label, const char *attr)
{
    if (s == CUDNN_STATUS_SUCCESS)
        return true;
    if (!g->failed) {
        char what[160];
        snprintf(what, sizeof what, "%s (%s%s%s)", call, label, attr ? ", " : "",
                 attr ? attr : "");
        lora__cudnn_describe(g->dn, s, what, g->msg, sizeof g->msg);
        g->failed = true;
    }
    return false;
}

static cudnnBackendDescriptor_t make(graph *g, cudnnBackendDescriptorType_t type,
                                     const char *label)
{
    if (g->failed)
        return NULL;
    if (g->p->n_descs == MAX_DESCS) {
        snprintf(g->msg, sizeof g->msg, "attention graph: more than %d descriptors", MAX_DESCS);
        g->failed = true;
        return NULL;
    }
    cudnnBackendDescriptor_t d = NULL;
    if (!ok(g, g->dn->desc_create(type, &d), "cudnnBackendCreateDescriptor", label, NULL))
        return NULL;
    g->p->descs[g->p->n_descs++] = d;
    return d;
}

static void set_(graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a,
                 cudnnBackendAttributeType_t t, int64_t n, const void *v, const char *label,
                 const char *attr)
{
    if (!g->failed)
        ok(g, g->dn->set(d, a, t, n, v), "cudnnBackendSetAttribute", label, attr);
}
#define SET(g, d, a, t, n, v, label) set_(g, d, a, t, n, v, label, #a)

static void set_desc_(graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a,
                      cudnnBackendDescriptor_t v, const char *label, const char *attr)
{
    set_(g, d, a, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v, label, attr);
}
#define SET_DESC(g, d, a, v, label) set_desc_(g, d, a, v, label, #a)

static void fin(graph *g, cudnnBackendDescriptor_t d, const char *label)
{
    if (!g->failed)
        ok(g, g->dn->finalize(d), "cudnnBackendFinalize", label, NULL);
}

typedef struct layout {
    int64_t dim[4], stride[4];
} layout;

static layout lay(int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t s0, int64_t s1,
                  int64_t s2, int64_t s3)
{
    layout l = {{d0, d1, d2, d3}, {s0, s1, s2, s3}};
    return l;
}

/* packed [a, b, c, d] */
static layout packed(int64_t a, int64_t b, int64_t c, int64_t d)
{
    return lay(a, b, c, d, b * c * d, c * d, d, 1);
}

/* the last two dimensions swapped, the memory unchanged */
static layout transposed(layout l)
{
    return lay(l.dim[0], l.dim[1], l.dim[3], l.dim[2], l.stride[0], l.stride[1], l.stride[3],
               l.stride[2]);
}

static cudnnBackendDescriptor_t tensor_(graph *g, int64_t uid, cudnnDataType_t type, layout l,
                                        bool is_virtual, bool by_value, const char *label)
{
    cudnnBackendDescriptor_t t = make(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR, label);
    int64_t align = 16;
    SET(g, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, label);
    SET(g, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, l.dim, label);
    SET(g, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, l.stride, label);
    SET(g, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, label);
    SET(g, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, label);
    SET(g, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, label);
    if (by_value)
        SET(g, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, label);
    fin(g, t, label);
    return t;
}

/* a tensor the variant pack points at */
static cudnnBackendDescriptor_t tensor(graph *g, int64_t uid, cudnnDataType_t type, layout l,
                                       const char *label)
{
    return tensor_(g, uid, type, l, false, false, label);
}

/* a host scalar passed by value at execution */
static cudnnBackendDescriptor_t scalar(graph *g, int64_t uid, cudnnDataType_t type,
                                       const char *label)
{
    return tensor_(g, uid, type, packed(1, 1, 1, 1), false, true, label);
}

/* an intermediate: never in memory, numbered in order */
static cudnnBackendDescriptor_t virt(graph *g, cudnnDataType_t type, layout l, const char *label)
{
    return tensor_(g, g->next_uid++, type, l, true, false, label);
}

static void add_op(graph *g, cudnnBackendDescriptor_t op, const char *label)
{
    fin(g, op, label);
    if (g->failed)
        return;
    if (g->n_ops == MAX_OPS) {
        snprintf(g->msg, sizeof g->msg, "attention graph: more than %d operations", MAX_OPS);
        g->failed = true;
        return;
    }
    g->ops[g->n_ops++] = op;
}

/* y = mode(x, b, t); b, t may be NULL; axis < 0: none (GEN_INDEX takes one) */
static cudnnBackendDescriptor_t pointwise(graph *g, cudnnPointwiseMode_t mode,
                                          cudnnDataType_t math, cudnnBackendDescriptor_t x,
                                          cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t,
                                          cudnnBackendDescriptor_t y, int64_t axis,
                                          const char *label)
{
    cudnnBackendDescriptor_t pw = make(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, label);
    SET(g, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, label);
    SET(g, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &math, label);
    if (axis >= 0)
        SET(g, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, label);
    fin(g, pw, label);
    cudnnBackendDescriptor_t op = make(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, label);
    if (b)
        SET_DESC(g, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, label);
    if (t)
        SET_DESC(g, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, label);
    add_op(g, op, label);
    return y;
}

/* c = a b over the last two dimensions; the overrides (device int32 per sequence) bound the
 * rows (m), columns (n) or inner dimension (k) actually used */
static void matmul(graph *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                   cudnnBackendDescriptor_t c, cudnnBackendDescriptor_t m,
                   cudnnBackendDescriptor_t n, cudnnBackendDescriptor_t k, const char *label)
{
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t mm = make(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR, label);
    SET(g, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, label);
    fin(g, mm, label);
    cudnnBackendDescriptor_t op = make(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, mm, label);
    if (m)
        SET_DESC(g, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, m, label);
    if (n)
        SET_DESC(g, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, n, label);
    if (k)
        SET_DESC(g, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, k, label);
    add_op(g, op, label);
}

/* y = x reduced over the dimensions where y has extent 1 */
static void reduction(graph *g, cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x,
                      cudnnBackendDescriptor_t y, const char *label)
{
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t r = make(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, label);
    SET(g, r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, label);
    SET(g, r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, label);
    fin(g, r, label);
    cudnnBackendDescriptor_t op = make(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, r, label);
    add_op(g, op, label);
}

/* y: x seen through other dimensions and strides (the transposes) */
static void reshape(graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y,
                    const char *label)
{
    cudnnBackendDescriptor_t op = make(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x, label);
    SET_DESC(g, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y, label);
    add_op(g, op, label);
}

/* what both graphs share: the shape's layouts and the scalars */
typedef struct common {
    layout q, kv, scores, rows;
    cudnnBackendDescriptor_t seq_q, seq_kv, scale, lowest;
} common;

static common common_tensors(graph *g, const plan *p)
{
    common c;
    int64_t B = p->B, T = p->T, H = p->H, KVH = p->KVH, D = p->D;
    c.q = lay(B, H, T, D, T * H * D, D, H * D, 1);
    c.kv = lay(B, KVH, T, D, T * KVH * D, D, KVH * D, 1);
    c.scores = packed(B, H, T, T);
    c.rows = packed(B, H, T, 1);
    c.seq_q = tensor(g, U_SEQ_Q, CUDNN_DATA_INT32, packed(B, 1, 1, 1), "seq_len_q");
    c.seq_kv = tensor(g, U_SEQ_KV, CUDNN_DATA_INT32, packed(B, 1, 1, 1), "seq_len_kv");
    c.scale = scalar(g, U_SCALE, CUDNN_DATA_FLOAT, "attn_scale");
    c.lowest = scalar(g, U_LOWEST, CUDNN_DATA_FLOAT, "masked score");
    return c;
}

/* s where the row's query and the column's key are both within their sequence's length, else
 * the lowest float */
static cudnnBackendDescriptor_t padding_mask(graph *g, const common *c,
                                             cudnnBackendDescriptor_t s)
{
    cudnnBackendDescriptor_t row = virt(g, CUDNN_DATA_INT32, c->scores, "padding row index");
    cudnnBackendDescriptor_t col = virt(g, CUDNN_DATA_INT32, c->scores, "padding column index");
    pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, s, NULL, NULL, row, 2,
              "padding row index");
    pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, s, NULL, NULL, col, 3,
              "padding column index");
    cudnnBackendDescriptor_t rm = virt(g, CUDNN_DATA_BOOLEAN, c->scores, "row < seq_len_q");
    cudnnBackendDescriptor_t cm = virt(g, CUDNN_DATA_BOOLEAN, c->scores, "col < seq_len_kv");
    cudnnBackendDescriptor_t both = virt(g, CUDNN_DATA_BOOLEAN, c->scores, "padding mask");
    pointwise(g, CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, row, c->seq_q, NULL, rm, -1,
              "row < seq_len_q");
    pointwise(g, CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, col, c->seq_kv, NULL, cm, -1,
              "col < seq_len_kv");
    pointwise(g, CUDNN_POINTWISE_LOGICAL_AND, CUDNN_DATA_BOOLEAN, rm, cm, NULL, both, -1,
              "padding mask");
    return pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, s, c->lowest, both,
                     virt(g, CUDNN_DATA_FLOAT, c->scores, "padded scores"), -1,
                     "padding select");
}

/* s where row >= col (query t sees keys 0..t), else the lowest float */
static cudnnBackendDescriptor_t causal_mask(graph *g, const common *c,
                                            cudnnBackendDescriptor_t s)
{
    cudnnBackendDescriptor_t row = virt(g, CUDNN_DATA_INT32, c->scores, "causal row index");
    cudnnBackendDescriptor_t col = virt(g, CUDNN_DATA_INT32, c->scores, "causal column index");
    pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, s, NULL, NULL, row, 2,
              "causal row index");
    pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, s, NULL, NULL, col, 3,
              "causal column index");
    cudnnBackendDescriptor_t keep = virt(g, CUDNN_DATA_BOOLEAN, c->scores, "row >= col");
    pointwise(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL, keep, -1,
              "row >= col");
    return pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, s, c->lowest, keep,
                     virt(g, CUDNN_DATA_FLOAT, c->scores, "causal scores"), -1,
                     "causal select");
}

static void forward_ops(graph *g, const plan *p)
{
    common c = common_tensors(g, p);
    cudnnBackendDescriptor_t Q = tensor(g, U_Q, CUDNN_DATA_BFLOAT16, c.q, "Q");
    cudnnBackendDescriptor_t KT = tensor(g, U_K, CUDNN_DATA_BFLOAT16, transposed(c.kv), "KT");
    cudnnBackendDescriptor_t V = tensor(g, U_V, CUDNN_DATA_BFLOAT16, c.kv, "V");
    cudnnBackendDescriptor_t O = tensor(g, U_O, CUDNN_DATA_BFLOAT16, c.q, "O");
    cudnnBackendDescriptor_t stats = tensor(g, U_STATS, CUDNN_DATA_FLOAT, c.rows, "Stats");

    cudnnBackendDescriptor_t s = virt(g, CUDNN_DATA_FLOAT, c.scores, "Q KT");
    matmul(g, Q, KT, s, c.seq_q, c.seq_kv, NULL, "Q KT");
    s = pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, s, c.scale, NULL,
                  virt(g, CUDNN_DATA_FLOAT, c.scores, "scaled"), -1, "scale");
    s = padding_mask(g, &c, s);
    s = causal_mask(g, &c, s);

    cudnnBackendDescriptor_t max = virt(g, CUDNN_DATA_FLOAT, c.rows, "row max");
    reduction(g, CUDNN_REDUCE_TENSOR_MAX, s, max, "row max");
    cudnnBackendDescriptor_t e = pointwise(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, s, max, NULL,
                                           virt(g, CUDNN_DATA_FLOAT, c.scores, "s - max"), -1,
                                           "s - max");
    e = pointwise(g, CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, e, NULL, NULL,
                  virt(g, CUDNN_DATA_FLOAT, c.scores, "exp"), -1, "exp");
    cudnnBackendDescriptor_t sum = virt(g, CUDNN_DATA_FLOAT, c.rows, "row sum");
    reduction(g, CUDNN_REDUCE_TENSOR_ADD, e, sum, "row sum");
    cudnnBackendDescriptor_t lg = pointwise(g, CUDNN_POINTWISE_LOG, CUDNN_DATA_FLOAT, sum, NULL,
                                            NULL, virt(g, CUDNN_DATA_FLOAT, c.rows, "log sum"),
                                            -1, "log sum");
    pointwise(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, max, lg, NULL, stats, -1, "Stats");
    /* the second product reads P in the inputs' type */
    cudnnBackendDescriptor_t P = pointwise(g, CUDNN_POINTWISE_DIV, CUDNN_DATA_FLOAT, e, sum,
                                           NULL, virt(g, CUDNN_DATA_BFLOAT16, c.scores, "P"),
                                           -1, "P");
    matmul(g, P, V, O, c.seq_q, NULL, c.seq_kv, "P V");
}

static void backward_ops(graph *g, const plan *p)
{
    common c = common_tensors(g, p);
    layout full = packed(p->B, p->H, p->T, p->D), scores_t = transposed(c.scores);
    cudnnBackendDescriptor_t Q = tensor(g, U_Q, CUDNN_DATA_BFLOAT16, c.q, "Q");
    cudnnBackendDescriptor_t KT = tensor(g, U_K, CUDNN_DATA_BFLOAT16, transposed(c.kv), "KT");
    cudnnBackendDescriptor_t VT = tensor(g, U_V, CUDNN_DATA_BFLOAT16, transposed(c.kv), "VT");
    cudnnBackendDescriptor_t O = tensor(g, U_O, CUDNN_DATA_BFLOAT16, c.q, "O");
    cudnnBackendDescriptor_t dO = tensor(g, U_DO, CUDNN_DATA_BFLOAT16, c.q, "dO");
    cudnnBackendDescriptor_t stats = tensor(g, U_STATS, CUDNN_DATA_FLOAT, c.rows, "Stats");
    cudnnBackendDescriptor_t dQ = tensor(g, U_DQ, CUDNN_DATA_BFLOAT16, c.q, "dQ");
    cudnnBackendDescriptor_t dK = tensor(g, U_DK, CUDNN_DATA_BFLOAT16, c.kv, "dK");
    cudnnBackendDescriptor_t dV = tensor(g, U_DV, CUDNN_DATA_BFLOAT16, c.kv, "dV");
    cudnnBackendDescriptor_t one = scalar(g, U_ONE, CUDNN_DATA_FLOAT, "one");
    /* in memory (the caller's), as cudnn-frontend keeps them: Delta and the dQ accumulator */
    cudnnBackendDescriptor_t delta = tensor(g, U_SUM, CUDNN_DATA_FLOAT, c.rows, "softmax_sum");
    cudnnBackendDescriptor_t dq_acc = tensor(g, U_DQ_ACC, CUDNN_DATA_FLOAT, full, "dQ_accum");

    /* Delta = sum over d of dO * O */
    cudnnBackendDescriptor_t t = pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dO, O, NULL,
                                           virt(g, CUDNN_DATA_FLOAT, full, "dO O"), -1, "dO O");
    cudnnBackendDescriptor_t r = virt(g, CUDNN_DATA_FLOAT, c.rows, "sum dO O");
    reduction(g, CUDNN_REDUCE_TENSOR_ADD, t, r, "sum dO O");
    pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, r, one, NULL, delta, -1, "softmax_sum");

    /* P recomputed from the statistics */
    cudnnBackendDescriptor_t s = virt(g, CUDNN_DATA_FLOAT, c.scores, "Q KT");
    matmul(g, Q, KT, s, c.seq_q, c.seq_kv, NULL, "Q KT");
    s = pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, s, c.scale, NULL,
                  virt(g, CUDNN_DATA_FLOAT, c.scores, "scaled"), -1, "scale");
    s = pointwise(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, s, stats, NULL,
                  virt(g, CUDNN_DATA_FLOAT, c.scores, "s - Stats"), -1, "s - Stats");
    s = padding_mask(g, &c, s);
    s = causal_mask(g, &c, s);
    cudnnBackendDescriptor_t P = pointwise(g, CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, s, NULL,
                                           NULL, virt(g, CUDNN_DATA_FLOAT, c.scores, "P"), -1,
                                           "P");

    /* dV = PT dO, summed over the query heads of a group for GQA */
    cudnnBackendDescriptor_t PT = virt(g, CUDNN_DATA_BFLOAT16, scores_t, "PT");
    reshape(g, P, PT, "PT");
    bool gqa = p->H != p->KVH;
    cudnnBackendDescriptor_t dv_full =
        gqa ? virt(g, CUDNN_DATA_BFLOAT16, full, "dV full heads") : dV;
    matmul(g, PT, dO, dv_full, c.seq_kv, NULL, c.seq_q, "PT dO");
    if (gqa)
        reduction(g, CUDNN_REDUCE_TENSOR_ADD, dv_full, dV, "dV over the group");

    /* dS = P * (dO VT - Delta) * scale */
    cudnnBackendDescriptor_t dp = virt(g, CUDNN_DATA_FLOAT, c.scores, "dO VT");
    matmul(g, dO, VT, dp, c.seq_q, c.seq_kv, NULL, "dO VT");
    dp = pointwise(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, dp, delta, NULL,
                   virt(g, CUDNN_DATA_FLOAT, c.scores, "dP - Delta"), -1, "dP - Delta");
    dp = pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dp, P, NULL,
                   virt(g, CUDNN_DATA_FLOAT, c.scores, "P (dP - Delta)"), -1, "P (dP - Delta)");
    cudnnBackendDescriptor_t dS = pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dp,
                                            c.scale, NULL,
                                            virt(g, CUDNN_DATA_FLOAT, c.scores, "dS"), -1, "dS");

    /* dK = dST Q, summed over the group for GQA */
    cudnnBackendDescriptor_t dST = virt(g, CUDNN_DATA_BFLOAT16, scores_t, "dST");
    reshape(g, dS, dST, "dST");
    cudnnBackendDescriptor_t dk_full =
        gqa ? virt(g, CUDNN_DATA_BFLOAT16, full, "dK full heads") : dK;
    matmul(g, dST, Q, dk_full, c.seq_kv, NULL, c.seq_q, "dST Q");
    if (gqa)
        reduction(g, CUDNN_REDUCE_TENSOR_ADD, dk_full, dK, "dK over the group");

    /* dQ = dS K, accumulated in float32 */
    cudnnBackendDescriptor_t K = virt(g, CUDNN_DATA_FLOAT, c.kv, "K");
    reshape(g, KT, K, "K");
    matmul(g, dS, K, dq_acc, c.seq_q, NULL, c.seq_kv, "dS K");
    pointwise(g, CUDNN_POINTWISE_IDENTITY, CUDNN_DATA_FLOAT, dq_acc, NULL, NULL, dQ, -1, "dQ");
}

static void build_ops(graph *g, const plan *p)
{
    g->next_uid = U_VIRTUAL;
    if (p->kind == FWD)
        forward_ops(g, p);
    else
        backward_ops(g, p);
}

static void destroy_plan(const lora_cudnn *dn, plan *p)
{
    if (p->exec)
        dn->desc_destroy(p->exec);
    for (int i = p->n_descs - 1; i >= 0; i--)
        dn->desc_destroy(p->descs[i]);
    memset(p, 0, sizeof *p);
}

/* The operations as one graph; without a handle (cuDNN 9.19 finalizes it so) for the check. */
static cudnnBackendDescriptor_t op_graph(graph *g, cudnnHandle_t handle)
{
    cudnnBackendDescriptor_t og = make(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "graph");
    SET(g, og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->n_ops, g->ops,
        "graph");
    if (handle)
        SET(g, og, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "graph");
    fin(g, og, "graph");
    return og;
}

/* The operation graph, the heuristics' engine configurations, the first that finalizes as an
 * execution plan, and its workspace. false with g->msg when none does. */
static bool build_plan(graph *g, cudnnHandle_t handle, plan *p)
{
    build_ops(g, p);
    cudnnBackendDescriptor_t og = op_graph(g, handle);
    cudnnBackendDescriptor_t heur = make(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    SET_DESC(g, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, og, "heuristics");
    SET(g, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics");
    fin(g, heur, "heuristics");
    int64_t n = 0;
    if (!g->failed)
        ok(g, g->dn->get(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n,
                         NULL),
           "cudnnBackendGetAttribute", "heuristics", "CUDNN_ATTR_ENGINEHEUR_RESULTS");
    if (g->failed)
        return false;
    if (n == 0) {
        snprintf(g->msg, sizeof g->msg, "cuDNN's heuristics found no engine for the graph");
        return false;
    }
    if (n > MAX_CONFIGS)
        n = MAX_CONFIGS;
    cudnnBackendDescriptor_t cfg[MAX_CONFIGS];
    for (int64_t i = 0; i < n; i++)
        cfg[i] = make(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine configuration");
    int64_t got = 0;
    if (!g->failed)
        ok(g, g->dn->get(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n,
                         &got, cfg),
           "cudnnBackendGetAttribute", "heuristics", "CUDNN_ATTR_ENGINEHEUR_RESULTS");
    if (g->failed)
        return false;
    /* configurations that do not finalize (a kernel this device cannot run...) are skipped */
    for (int64_t i = 0; i < got && !p->exec; i++) {
        cudnnBackendDescriptor_t ep = NULL;
        cudnnStatus_t s = g->dn->desc_create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &ep);
        if (s == CUDNN_STATUS_SUCCESS)
            s = g->dn->set(ep, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
        if (s == CUDNN_STATUS_SUCCESS)
            s = g->dn->set(ep, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                           CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i]);
        if (s == CUDNN_STATUS_SUCCESS)
            s = g->dn->finalize(ep);
        if (s == CUDNN_STATUS_SUCCESS) {
            p->exec = ep;
            break;
        }
        lora__cudnn_describe(g->dn, s, "cudnnBackendFinalize (execution plan)", g->msg,
                             sizeof g->msg);
        if (ep)
            g->dn->desc_destroy(ep);
    }
    if (!p->exec)
        return false;
    int64_t count = 0;
    ok(g, g->dn->get(p->exec, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                     &count, &p->workspace),
       "cudnnBackendGetAttribute", "execution plan", "CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE");
    return !g->failed;
}

/* ---- the per-backend state ---------------------------------------------------------------- */

static struct lora_sdpa *state(lora_cuda *cu)
{
    if (!cu->sdpa)
        cu->sdpa = lora__calloc(1, sizeof *cu->sdpa);
    return cu->sdpa;
}

static bool reference(struct lora_sdpa *sd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static bool reference(struct lora_sdpa *sd, const char *fmt, ...)
{
    if (!sd)
        return false;
    sd->reference_calls++;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sd->why, sizeof sd->why, fmt, ap);
    va_end(ap);
    return false;
}

/* the handle, made once per backend; false (with the reason kept) when cuDNN is not usable */
static bool usable(lora_cuda *cu, struct lora_sdpa *sd, const lora_cudnn **dn)
{
    const char *why;
    *dn = lora__cudnn_get(&why);
    if (sd->tried)
        return sd->usable;
    sd->tried = true;
    if (!*dn) {
        snprintf(sd->why, sizeof sd->why, "%s", why);
        return false;
    }
    if ((*dn)->version < MIN_VERSION) {
        snprintf(sd->why, sizeof sd->why, "cuDNN %zu is older than %d", (*dn)->version,
                 MIN_VERSION);
        return false;
    }
    cudnnStatus_t s = (*dn)->create(&sd->handle);
    if (s == CUDNN_STATUS_SUCCESS) {
        s = (*dn)->set_stream(sd->handle, cu->stream);
        if (s != CUDNN_STATUS_SUCCESS) {
            lora__cudnn_describe(*dn, s, "cudnnSetStream", sd->why, sizeof sd->why);
            (*dn)->destroy(sd->handle);
            sd->handle = NULL;
            return false;
        }
    } else {
        sd->handle = NULL;
        lora__cudnn_describe(*dn, s, "cudnnCreate", sd->why, sizeof sd->why);
        return false;
    }
    sd->usable = true;
    return true;
}

/* the cached plan of the shape, built on a miss; NULL when cuDNN cannot run it (sd->why) */
static plan *get_plan(struct lora_sdpa *sd, const lora_cudnn *dn, int kind,
                      const lora_attention_shape *s)
{
    plan *slot = NULL;
    sd->clock++;
    for (int i = 0; i < CACHE; i++) {
        plan *p = &sd->plans[i];
        if (p->used && p->kind == kind && p->B == s->B && p->T == s->T && p->H == s->H &&
            p->KVH == s->KVH && p->D == s->D) {
            p->last_use = sd->clock;
            if (p->unsupported)
                return NULL; /* sd->why was set when it failed; keep the newest reason */
            sd->hits++;
            return p;
        }
        if (!slot || !p->used || (slot->used && p->last_use < slot->last_use))
            slot = p;
    }
    if (slot->used)
        destroy_plan(dn, slot);
    *slot = (plan){.used = true, .kind = kind, .B = s->B, .T = s->T, .H = s->H, .KVH = s->KVH,
                   .D = s->D, .last_use = sd->clock};
    graph g = {.dn = dn, .p = slot};
    if (!build_plan(&g, sd->handle, slot)) {
        snprintf(sd->why, sizeof sd->why, "attention_%s (B=%lld T=%lld H=%lld KVH=%lld "
                 "D=%lld): %.200s", kind == FWD ? "fwd" : "bwd", (long long)s->B, (long long)s->T,
                 (long long)s->H, (long long)s->KVH, (long long)s->D, g.msg);
        /* the descriptors go; the entry stays, so the shape is not tried again */
        destroy_plan(dn, slot);
        *slot = (plan){.used = true, .unsupported = true, .kind = kind, .B = s->B, .T = s->T,
                       .H = s->H, .KVH = s->KVH, .D = s->D, .last_use = sd->clock};
        return NULL;
    }
    sd->built++;
    return slot;
}

/* why the shape is not for cuDNN, or NULL */
static const char *unsupported(const lora_cuda *cu, const lora_attention_shape *s)
{
    if (cu->math != LORA_CUDA_MATH_BF16)
        return "FP32 math (cuDNN's flash attention rounds to bfloat16)";
    if (s->pos0 != 0)
        return "queries after position 0 (the KV cache)";
    if (s->key0)
        return "packed samples (key0)";
    if (s->D % 8 != 0 || s->D > MAX_D)
        return "head_dim not a multiple of 8 up to 256";
    if (s->B < 1 || s->T < 1 || s->T > INT32_MAX || s->S < s->T || s->KVH < 1 ||
        s->H % s->KVH != 0)
        return "an empty or irregular shape";
    return NULL;
}

/* ---- execution ---------------------------------------------------------------------------- */

/* slices of the op scratch, in order */
typedef struct carve {
    char *base;
    size_t off;
} carve;

static size_t round_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

static void *take(carve *c, size_t bytes)
{
    void *p = c->base + c->off;
    c->off += round_up(bytes);
    return p;
}

static bool execute(lora_cuda *cu, const lora_cudnn *dn, struct lora_sdpa *sd, const plan *p,
                    int n, const int64_t *uids, void **ptrs, void *workspace, const char *what)
{
    char call[96];
    cudnnBackendDescriptor_t vp = NULL;
    snprintf(call, sizeof call, "%s: cudnnBackendCreateDescriptor (variant pack)", what);
    if (lora__cuda_check_dnn(cu, dn->desc_create(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp),
                             call))
        return false;
    cudnnStatus_t s = dn->set(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (s == CUDNN_STATUS_SUCCESS)
        s = dn->set(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (s == CUDNN_STATUS_SUCCESS)
        s = dn->set(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
    if (s == CUDNN_STATUS_SUCCESS)
        s = dn->finalize(vp);
    snprintf(call, sizeof call, "%s: variant pack", what);
    bool good = !lora__cuda_check_dnn(cu, s, call);
    if (good) {
        snprintf(call, sizeof call, "%s: cudnnBackendExecute", what);
        cu->launches++;
        good = !lora__cuda_check_dnn(cu, dn->execute(sd->handle, p->exec, vp), call);
    }
    dn->desc_destroy(vp);
    return good;
}

/* what both directions prepare: the state, the plans, the bf16 inputs */
typedef struct run {
    struct lora_sdpa *sd;
    const lora_cudnn *dn;
    plan *fwd, *bwd;
    void *q, *k, *v, *o, *dout, *dq, *dk, *dv, *ws;
    float *stats, *delta, *dq_acc;
    const int32_t *len;
    float scale, lowest, one;
} run;

/* What a call over kept bfloat16 activations hands cuDNN where it lies: q, k, v, and the
 * forward's output and statistics (written by the forward, read by the backward). */
typedef struct kept_in {
    const void *q, *k, *v;
    void *o;
    float *stats;
} kept_in;

/* false: the reference kernels (not cuDNN's shape, or cuDNN not usable); true with r->sd NULL:
 * a failure was recorded. Without kept, q, k, v are rounded into the op scratch. */
static bool prepare(lora_cuda *cu, run *r, bool bwd, const float *q, const float *k,
                    const float *v, const float *dout, const lora_attention_shape *s,
                    const int32_t *seq_len, const kept_in *kept)
{
    memset(r, 0, sizeof *r);
    struct lora_sdpa *sd = state(cu);
    if (!sd)
        return false;
    const char *no = unsupported(cu, s);
    if (no)
        return reference(sd, "attention (B=%lld T=%lld H=%lld KVH=%lld D=%lld pos0=%lld): %s",
                         (long long)s->B, (long long)s->T, (long long)s->H, (long long)s->KVH,
                         (long long)s->D, (long long)s->pos0, no);
    const lora_cudnn *dn;
    if (!usable(cu, sd, &dn)) {
        sd->reference_calls++;
        return false;
    }
    plan *fwd = get_plan(sd, dn, FWD, s), *bp = NULL;
    if (!fwd || (bwd && !(bp = get_plan(sd, dn, BWD, s)))) {
        sd->reference_calls++;
        return false;
    }
    int64_t B = s->B, T = s->T, H = s->H, KVH = s->KVH, D = s->D;
    size_t nq = (size_t)(B * T * H * D), nk = (size_t)(B * T * KVH * D), rows = (size_t)(B * H * T);
    size_t ws = (size_t)fwd->workspace;
    if (bp && (size_t)bp->workspace > ws)
        ws = (size_t)bp->workspace;
    size_t inputs = round_up(nq * 2) * 2 + round_up(nk * 2) * 2 + round_up(rows * 4);
    size_t bytes = (kept ? 0 : inputs) + round_up((size_t)B * 4) + round_up(ws);
    if (bwd)
        bytes += round_up(nq * 2) * 2 + round_up(nk * 2) * 2 + round_up(rows * 4) +
                 round_up(nq * 4);
    carve c = {lora__cuda_scratch(cu, bytes), 0};
    sd->cudnn_calls++;
    if (!c.base)
        return true; /* recorded */
    r->sd = sd;
    r->dn = dn;
    r->fwd = fwd;
    r->bwd = bp;
    if (kept) {
        r->q = (void *)kept->q;
        r->k = (void *)kept->k;
        r->v = (void *)kept->v;
        r->o = kept->o;
        r->stats = kept->stats;
    } else {
        r->q = take(&c, nq * 2);
        r->o = take(&c, nq * 2);
        r->k = take(&c, nk * 2);
        r->v = take(&c, nk * 2);
        r->stats = take(&c, rows * 4);
    }
    int32_t *len = take(&c, (size_t)B * 4);
    r->ws = take(&c, ws);
    if (bwd) {
        r->dout = take(&c, nq * 2);
        r->dq = take(&c, nq * 2);
        r->dk = take(&c, nk * 2);
        r->dv = take(&c, nk * 2);
        r->delta = take(&c, rows * 4);
        r->dq_acc = take(&c, nq * 4);
    }
    r->scale = s->scale;
    r->lowest = -FLT_MAX;
    r->one = 1.0f;
    r->len = seq_len;
    if (!seq_len) {
        lora__cuda_fill_i32(cu, len, B, (int32_t)T, "attention: sequence lengths");
        r->len = len;
    }
    if (!kept) {
        lora__cuda_rows_to_bf16(cu, r->q, q, B, T, T, H * D, "attention: q to bf16");
        lora__cuda_rows_to_bf16(cu, r->k, k, B, T, s->S, KVH * D, "attention: k to bf16");
        lora__cuda_rows_to_bf16(cu, r->v, v, B, T, s->S, KVH * D, "attention: v to bf16");
    }
    if (bwd)
        lora__cuda_rows_to_bf16(cu, r->dout, dout, B, T, T, H * D, "attention: dout to bf16");
    return true;
}

static bool run_forward(lora_cuda *cu, run *r, const char *what)
{
    int64_t uids[] = {U_Q, U_K, U_V, U_O, U_STATS, U_SEQ_Q, U_SEQ_KV, U_SCALE, U_LOWEST};
    void *ptrs[] = {r->q, r->k, r->v, r->o, r->stats, (void *)r->len, (void *)r->len,
                    &r->scale, &r->lowest};
    return execute(cu, r->dn, r->sd, r->fwd, 9, uids, ptrs, r->ws, what);
}

bool lora__cuda_sdpa_fwd(lora_cuda *cu, float *out, const float *q, const float *k,
                         const float *v, const lora_attention_shape *s, const int32_t *seq_len)
{
    run r;
    if (!prepare(cu, &r, false, q, k, v, NULL, s, seq_len, NULL))
        return false;
    if (r.sd && run_forward(cu, &r, "attention_fwd"))
        lora__cuda_rows_from_bf16(cu, out, r.o, s->B, s->T, s->T, s->H * s->D, seq_len, false,
                                  "attention_fwd: out from bf16");
    return true;
}

/* the backward graph over what prepare (and the forward) left in r, the gradients added to
 * the float32 rows (or, not accumulate, written there) */
static void run_backward(lora_cuda *cu, run *r, float *dq, float *dk, float *dv,
                         const lora_attention_shape *s, const int32_t *seq_len, bool accumulate,
                         const char *what)
{
    int64_t B = s->B, T = s->T, HD = s->H * s->D, KD = s->KVH * s->D;
    if (lora__cuda_queued(cu, cudaMemsetAsync(r->dq_acc, 0, (size_t)(B * T * HD) * 4, cu->stream),
                         "attention_bwd: cudaMemset dQ_accum"))
        return;
    int64_t uids[] = {U_Q, U_K, U_V, U_O, U_DO, U_STATS, U_DQ, U_DK, U_DV, U_SEQ_Q,
                      U_SEQ_KV, U_SCALE, U_LOWEST, U_ONE, U_SUM, U_DQ_ACC};
    void *ptrs[] = {r->q, r->k, r->v, r->o, r->dout, r->stats, r->dq, r->dk, r->dv,
                    (void *)r->len, (void *)r->len, &r->scale, &r->lowest, &r->one, r->delta,
                    r->dq_acc};
    if (!execute(cu, r->dn, r->sd, r->bwd, 16, uids, ptrs, r->ws, what))
        return;
    if (dq)
        lora__cuda_rows_from_bf16(cu, dq, r->dq, B, T, T, HD, seq_len,
                                  accumulate, "attention_bwd: dq from bf16");
    if (dk)
        lora__cuda_rows_from_bf16(cu, dk, r->dk, B, T, s->S, KD, seq_len,
                                  accumulate, "attention_bwd: dk from bf16");
    if (dv)
        lora__cuda_rows_from_bf16(cu, dv, r->dv, B, T, s->S, KD, seq_len,
                                  accumulate, "attention_bwd: dv from bf16");
}

bool lora__cuda_sdpa_bwd(lora_cuda *cu, float *dq, float *dk, float *dv, const float *dout,
                         const float *q, const float *k, const float *v,
                         const lora_attention_shape *s, const int32_t *seq_len)
{
    run r;
    if (!prepare(cu, &r, true, q, k, v, dout, s, seq_len, NULL))
        return false;
    if (r.sd && run_forward(cu, &r, "attention_bwd (forward)"))
        run_backward(cu, &r, dq, dk, dv, s, seq_len, true, "attention_bwd");
    return true;
}

bool lora__cuda_sdpa_bf16_fwd(lora_cuda *cu, lora_bf16 *out, float *stats, const lora_bf16 *q,
                              const lora_bf16 *k, const lora_bf16 *v,
                              const lora_attention_shape *s)
{
    run r;
    kept_in kept = {q, k, v, out, stats};
    if (!prepare(cu, &r, false, NULL, NULL, NULL, NULL, s, NULL, &kept))
        return false;
    if (r.sd)
        run_forward(cu, &r, "attention_bf16_fwd");
    return true;
}

bool lora__cuda_sdpa_bf16_bwd(lora_cuda *cu, float *dq, float *dk, float *dv, const float *dout,
                              const lora_bf16 *q, const lora_bf16 *k, const lora_bf16 *v,
                              const lora_bf16 *out, const float *stats,
                              const lora_attention_shape *s)
{
    run r;
    /* cuDNN's backward only reads the output and the statistics */
    kept_in kept = {q, k, v, (void *)out, (float *)stats};
    if (!prepare(cu, &r, true, NULL, NULL, NULL, dout, s, NULL, &kept))
        return false;
    if (r.sd)
        run_backward(cu, &r, dq, dk, dv, s, NULL, false, "attention_bf16_bwd");
    return true;
}

void lora__cuda_sdpa_free(lora_cuda *cu)
{
    struct lora_sdpa *sd = cu->sdpa;
    if (!sd)
        return;
    const char *why;
    const lora_cudnn *dn = lora__cudnn_get(&why);
    if (dn) {
        for (int i = 0; i < CACHE; i++)
            if (sd->plans[i].used)
                destroy_plan(dn, &sd->plans[i]);
        if (sd->handle)
            dn->destroy(sd->handle);
    }
    free(sd);
    cu->sdpa = NULL;
}

void lora__cuda_sdpa_info(const lora_backend *be, lora_cuda_sdpa_info *out)
{
    const lora_cuda *cu = be->impl;
    const struct lora_sdpa *sd = cu->sdpa;
    const char *why;
    const lora_cudnn *dn = lora__cudnn_get(&why);
    memset(out, 0, sizeof *out);
    out->loaded = dn && dn->version >= MIN_VERSION;
    out->version = dn ? dn->version : 0;
    if (!sd) {
        snprintf(out->why, sizeof out->why, "%s", dn ? "" : why);
        return;
    }
    out->handle = sd->usable;
    for (int i = 0; i < CACHE; i++)
        out->plans += sd->plans[i].used && !sd->plans[i].unsupported;
    out->plans_built = sd->built;
    out->plan_hits = sd->hits;
    out->cudnn_calls = sd->cudnn_calls;
    out->reference_calls = sd->reference_calls;
    snprintf(out->why, sizeof out->why, "%s", sd->why);
}

lora_status lora__cuda_sdpa_check_graph(int64_t B, int64_t T, int64_t H, int64_t KVH,
                                        int64_t D, bool bwd, int *n_ops)
{
    const lora_cudnn *dn;
    lora_status st = lora__cudnn(&dn);
    *n_ops = 0;
    if (st)
        return st;
    plan *p = lora__calloc(1, sizeof *p);
    if (!p)
        return lora__oom("attention graph", sizeof *p);
    *p = (plan){.kind = bwd ? BWD : FWD, .B = B, .T = T, .H = H, .KVH = KVH, .D = D};
    graph g = {.dn = dn, .p = p};
    build_ops(&g, p);
    *n_ops = g.n_ops;
    op_graph(&g, NULL);
    st = g.failed ? lora__error(LORA_ERR_DEVICE, "attention_%s graph: %s", bwd ? "bwd" : "fwd",
                                g.msg)
                  : LORA_OK;
    destroy_plan(dn, p);
    free(p);
    return st;
}
