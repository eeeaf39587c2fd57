/* A GPU model's device copy of its weights: one block laid out tensor by tensor, matrices in
 * bfloat16 when the math mode is bf16 (the frozen base weights of LoRA training need no more:
 * the products round their inputs to bfloat16 anyway) and everything else in float32; where a
 * backend finds each weight in it; and the uploads that fill it from the host arena. */
#include <stdlib.h>

#include "api/error.h"
#include "model/dtype.h"
#include "model/model.h"
#include "model/weights.h"
#include "util/alloc.h"

#define DEV_ALIGN 256 /* bytes: cuBLASLt's best kernels want it */

static size_t align_up(size_t x) { return (x + DEV_ALIGN - 1) / DEV_ALIGN * DEV_ALIGN; }

static int by_offset(const void *a, const void *b)
{
    const lora_dev_tensor *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

lora_status lora__model_device_plan(lora_model *m, bool bf16, lora_dev_tensor **out, size_t *n,
                                    size_t *bytes)
{
    *out = NULL;
    *n = *bytes = 0;
    lora_weight_slot *slots;
    size_t ns;
    lora_status st = lora__weight_slots(&m->cfg, m, &slots, &ns);
    if (st)
        return st;
    lora_dev_tensor *t = lora__calloc(ns ? ns : 1, sizeof *t);
    if (!t) {
        free(slots);
        return lora__oom("device weight layout", ns * sizeof *t);
    }
    for (size_t i = 0; i < ns; i++) {
        t[i].off = (size_t)(*slots[i].dst - m->arena);
        t[i].numel = (size_t)(slots[i].shape[0] * (slots[i].ndim == 2 ? slots[i].shape[1] : 1));
        t[i].bf16 = bf16 && slots[i].ndim == 2;
    }
    free(slots);
    qsort(t, ns, sizeof *t, by_offset);
    size_t at = 0;
    for (size_t i = 0; i < ns; i++) {
        t[i].dev_off = at;
        at += align_up(t[i].numel * (t[i].bf16 ? sizeof(lora_bf16) : sizeof(float)));
    }
    *out = t;
    *n = ns;
    *bytes = at;
    return LORA_OK;
}

lora_status lora__model_device_create(lora_model *m, bool bf16)
{
    lora_status st = lora__model_device_plan(m, bf16, &m->dev_tensors, &m->n_dev_tensors,
                                             &m->dev_bytes);
    if (st)
        return st;
    m->dev_bf16 = bf16;
    st = m->dev->ops->mem_alloc(m->dev, m->dev_bytes, "model weights", (void **)&m->dev_mem);
    return st ? st : lora__model_upload(m);
}

void lora__model_device_free(lora_model *m)
{
    if (m->dev)
        m->dev->ops->mem_free(m->dev, m->dev_mem, m->dev_bytes);
    m->dev_mem = NULL;
    free(m->dev_tensors);
    m->dev_tensors = NULL;
}

const lora_dev_tensor *lora__model_find_tensor(const lora_model *m, const float *p)
{
    size_t off = (size_t)(p - m->arena), lo = 0, hi = m->n_dev_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const lora_dev_tensor *t = &m->dev_tensors[mid];
        if (off < t->off)
            hi = mid;
        else if (off >= t->off + t->numel)
            lo = mid + 1;
        else
            return t;
    }
    return NULL;
}

const float *lora__model_mem(const lora_model *m, const float *p)
{
    if (!p || !m->dev_mem)
        return p;
    const lora_dev_tensor *t = lora__model_find_tensor(m, p);
    if (!t || t->bf16)
        return NULL;
    return (const float *)(m->dev_mem + t->dev_off) + (size_t)(p - m->arena) - t->off;
}

const lora_bf16 *lora__model_mem_bf16(const lora_model *m, const float *p)
{
    if (!p || !m->dev_mem)
        return NULL;
    const lora_dev_tensor *t = lora__model_find_tensor(m, p);
    if (!t || !t->bf16)
        return NULL;
    return (const lora_bf16 *)(m->dev_mem + t->dev_off) + (size_t)(p - m->arena) - t->off;
}

lora_status lora__model_upload(lora_model *m)
{
    if (!m->dev)
        return LORA_OK;
    size_t most = 0;
    for (size_t i = 0; i < m->n_dev_tensors; i++)
        if (m->dev_tensors[i].bf16 && m->dev_tensors[i].numel > most)
            most = m->dev_tensors[i].numel;
    /* one host buffer for the largest matrix: each is rounded there, then uploaded */
    lora_bf16 *half = most ? lora__malloc(most * sizeof *half) : NULL;
    if (most && !half)
        return lora__oom("bfloat16 weights", most * sizeof *half);
    lora_status st = LORA_OK;
    pthread_mutex_lock(&m->dev_lock);
    for (size_t i = 0; i < m->n_dev_tensors && !st; i++) {
        const lora_dev_tensor *t = &m->dev_tensors[i];
        const float *src = m->arena + t->off;
        if (t->bf16) {
            lora__bf16_from_f32_n(half, src, t->numel);
            st = m->dev->ops->upload(m->dev, m->dev_mem + t->dev_off, half,
                                     t->numel * sizeof *half);
            if (!st && m->dev_master)
                st = m->dev->ops->upload(m->dev, m->dev_master + t->master_off, src,
                                         t->numel * sizeof *src);
        } else
            st = m->dev->ops->upload(m->dev, m->dev_mem + t->dev_off, src,
                                     t->numel * sizeof *src);
    }
    pthread_mutex_unlock(&m->dev_lock);
    free(half);
    return st;
}
