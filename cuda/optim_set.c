/* The optimizer's tensor set on the device: the descriptors uploaded once (at
 * lora__optim_use_backend), with room for the partial sums of the gradient norm, so that a
 * step's reduction and update are a launch each (adamw.cu) rather than a few per tensor. */
#include <stdlib.h>

#include "api/error.h"
#include "util/alloc.h"
#include "internal.h"

void lora__cuda_tensor_set_free(lora_backend *be, lora_tensor_set *set)
{
    if (!set)
        return;
    lora__cuda_mem_free(be, set->t, set->bytes);
    free(set->host_sums);
    free(set);
}

lora_status lora__cuda_tensor_set_create(lora_backend *be, const lora_tensor_ref *t, size_t n,
                                         lora_tensor_set **out)
{
    *out = NULL;
    /* the final pass runs a block per tensor */
    if (n == 0 || n > INT32_MAX)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__cuda_tensor_set_create: %zu "
                           "tensors (1 to 2^31 - 1)", n);
    lora_tensor_set *set = lora__calloc(1, sizeof *set);
    lora_cuda_set_tensor *h = lora__calloc(n, sizeof *h);
    double *sums = lora__calloc(n, sizeof *sums);
    if (!set || !h || !sums) {
        free(set);
        free(h);
        free(sums);
        return lora__oom("tensor set", n * (sizeof *h + sizeof *sums));
    }
    set->n = n;
    set->host_sums = sums;
    for (size_t i = 0; i < n; i++)
        h[i] = (lora_cuda_set_tensor){.p = t[i].p, .g = t[i].g, .m = t[i].m, .v = t[i].v,
                                      .n = (int64_t)t[i].n, .group = t[i].group};
    uint64_t sb, ub;
    lora__cuda_set_plan(h, n, &sb, &ub);
    lora_status st = LORA_OK;
    if (sb > INT32_MAX || ub > INT32_MAX)
        st = lora__error(LORA_ERR_INVALID_ARGUMENT, "lora__cuda_tensor_set_create: %zu tensors "
                         "need more than 2^31 blocks", n);
    set->sum_blocks = (unsigned)sb;
    set->upd_blocks = (unsigned)ub;
    /* the descriptors, then the partial sums and the sums: a descriptor's size is a multiple
     * of 8, so the doubles are aligned */
    size_t tb = n * sizeof *h;
    set->bytes = tb + (size_t)(sb + n) * sizeof(double);
    if (!st)
        st = lora__cuda_mem_alloc(be, set->bytes, "optimizer tensor set", (void **)&set->t);
    if (!st) {
        set->part = (double *)((char *)set->t + tb);
        set->sums = set->part + sb;
        st = lora__cuda_upload(be, set->t, h, tb);
    }
    free(h);
    if (st) {
        lora__cuda_tensor_set_free(be, set);
        return st;
    }
    *out = set;
    return LORA_OK;
}
