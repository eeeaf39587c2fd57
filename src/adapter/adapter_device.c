/* An adapter of a GPU model keeps a device copy of its arena: what sessions read and what
 * training updates. The host arena stays the one that init, load, save and merge use; these
 * two calls keep both the same, through the model's backend (under its lock: any thread may
 * make or save an adapter). */
#include "adapter/adapter.h"

#include <pthread.h>

#include "api/error.h"

lora_status lora__adapter_upload(lora_adapter *a)
{
    lora_model *m = a->model;
    if (!m->dev)
        return LORA_OK;
    size_t bytes = a->arena_floats * sizeof(float);
    lora_backend *be = m->dev;
    pthread_mutex_lock(&m->dev_lock);
    lora_status st = LORA_OK;
    if (!a->dev_arena)
        st = be->ops->mem_alloc(be, bytes, "adapter weights", (void **)&a->dev_arena);
    if (!st)
        st = be->ops->upload(be, a->dev_arena, a->arena, bytes);
    pthread_mutex_unlock(&m->dev_lock);
    return st;
}

lora_status lora__adapter_download(lora_adapter *a)
{
    lora_model *m = a->model;
    if (!a->dev_arena)
        return LORA_OK;
    pthread_mutex_lock(&m->dev_lock);
    lora_status st = m->dev->ops->download(m->dev, a->arena, a->dev_arena,
                                           a->arena_floats * sizeof(float));
    pthread_mutex_unlock(&m->dev_lock);
    return st;
}
