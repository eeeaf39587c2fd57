/* Full fine-tuning of a GPU model: the optimizer needs float32 weights to update, and the device
 * copy keeps the matrices in bfloat16 (model_device.c). Each bfloat16 tensor gets a float32
 * master on the device, which the optimizer updates and which is rounded into the bfloat16 copy
 * after each step, as mixed-precision training keeps its master weights. The host arena is
 * brought up to date only when something reads it: a 0.5B model is 2 GB to download, as much
 * as the step's own memory traffic. */
#include "api/error.h"
#include "model/model.h"

lora_status lora__model_master_acquire(lora_model *m)
{
    if (!m->dev)
        return LORA_OK;
    pthread_mutex_lock(&m->dev_lock);
    lora_status st = LORA_OK;
    if (m->master_users == 0) {
        size_t floats = 0;
        for (size_t i = 0; i < m->n_dev_tensors; i++) {
            lora_dev_tensor *t = &m->dev_tensors[i];
            t->master_off = floats;
            /* 64 floats: the 256-byte alignment of the device copy's tensors */
            floats += t->bf16 ? (t->numel + 63) / 64 * 64 : 0;
        }
        if (floats)
            st = m->dev->ops->mem_alloc(m->dev, floats * sizeof(float), "float32 master weights",
                                        (void **)&m->dev_master);
        for (size_t i = 0; i < m->n_dev_tensors && !st; i++) {
            const lora_dev_tensor *t = &m->dev_tensors[i];
            if (t->bf16)
                st = m->dev->ops->upload(m->dev, m->dev_master + t->master_off, m->arena + t->off,
                                         t->numel * sizeof(float));
        }
        if (st) {
            m->dev->ops->mem_free(m->dev, m->dev_master, floats * sizeof(float));
            m->dev_master = NULL;
        } else
            m->dev_master_floats = floats;
    }
    if (!st)
        m->master_users++;
    pthread_mutex_unlock(&m->dev_lock);
    return st;
}

void lora__model_master_release(lora_model *m)
{
    if (!m->dev || m->master_users == 0)
        return;
    /* the masters hold the only float32 copy of the trained weights: the host arena first.
     * Where that download fails the device has failed for good, and they are lost with it. */
    if (m->master_users == 1 && lora__model_host_sync(m))
        m->host_stale = false;
    pthread_mutex_lock(&m->dev_lock);
    if (--m->master_users == 0) {
        m->dev->ops->mem_free(m->dev, m->dev_master, m->dev_master_floats * sizeof(float));
        m->dev_master = NULL;
        m->dev_master_floats = 0;
    }
    pthread_mutex_unlock(&m->dev_lock);
}

float *lora__model_param(lora_model *m, float *p)
{
    if (!m->dev)
        return p;
    const lora_dev_tensor *t = lora__model_find_tensor(m, p);
    if (!t)
        return NULL;
    size_t within = (size_t)(p - m->arena) - t->off;
    if (t->bf16)
        return m->dev_master ? m->dev_master + t->master_off + within : NULL;
    return (float *)(m->dev_mem + t->dev_off) + within;
}

lora_status lora__model_publish(lora_model *m, lora_backend *be)
{
    if (!m->dev)
        return LORA_OK;
    for (size_t i = 0; i < m->n_dev_tensors && m->dev_master; i++) {
        const lora_dev_tensor *t = &m->dev_tensors[i];
        if (t->bf16)
            be->ops->to_bf16(be, (lora_bf16 *)(m->dev_mem + t->dev_off),
                             m->dev_master + t->master_off, t->numel);
    }
    m->host_stale = true;
    return be->ops->sync(be);
}

lora_status lora__model_host_sync(lora_model *m)
{
    if (!m->dev)
        return LORA_OK;
    pthread_mutex_lock(&m->dev_lock);
    lora_status st = LORA_OK;
    for (size_t i = 0; i < m->n_dev_tensors && m->host_stale && !st; i++) {
        const lora_dev_tensor *t = &m->dev_tensors[i];
        const void *src = t->bf16 ? (const void *)(m->dev_master + t->master_off)
                                  : (const void *)(m->dev_mem + t->dev_off);
        st = m->dev->ops->download(m->dev, m->arena + t->off, src, t->numel * sizeof(float));
    }
    if (!st)
        m->host_stale = false;
    pthread_mutex_unlock(&m->dev_lock);
    return st;
}
