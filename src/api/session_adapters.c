/* lora_session_set_adapters: hot-swapping adapters on a session. */
#include <math.h>
#include <stdio.h>

#include "api/error.h"
#include "api/handle.h"
#include "model/session.h"

LORA_API lora_status lora_session_set_adapters(lora_session *s, lora_adapter *const *adapters,
                                               const float *scales, size_t n)
{
    lora__error_clear();
    static const char fn[] = "lora_session_set_adapters";
    lora_status st = lora__handle_check(s, LORA__KIND_SESSION, fn, "session");
    if (st)
        return st;
    if (n && (!adapters || !scales))
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                           !adapters ? "adapters" : "scales");
    if (n > LORA_MAX_ADAPTERS)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: %zu adapters; at most %d at once", fn, n,
                           LORA_MAX_ADAPTERS);
    int64_t max_rank = 0;
    for (size_t i = 0; i < n; i++) {
        char arg[32];
        snprintf(arg, sizeof arg, "adapters[%zu]", i);
        if ((st = lora__handle_check(adapters[i], LORA__KIND_ADAPTER, fn, arg)))
            return st;
        if (adapters[i]->model != s->model)
            return lora__error(LORA_ERR_INVALID_ARGUMENT,
                               "%s: adapters[%zu] was made for another model", fn, i);
        if (!isfinite(scales[i]))
            return lora__error(LORA_ERR_INVALID_ARGUMENT, "%s: scales[%zu] is not finite", fn, i);
        for (size_t k = 0; k < adapters[i]->n_mods; k++)
            if (adapters[i]->mods[k].r > max_rank)
                max_rank = adapters[i]->mods[k].r;
    }
    /* retain first: the new list may share adapters with the old one */
    for (size_t i = 0; i < n; i++)
        lora__adapter_retain(adapters[i]);
    for (size_t i = 0; i < s->n_adapters; i++)
        lora__adapter_release(s->adapters[i]);
    for (size_t i = 0; i < n; i++) {
        s->adapters[i] = adapters[i];
        s->scales[i] = scales[i];
    }
    s->n_adapters = n;
    s->max_rank = max_rank;
    /* a recorded step holds the old adapters' modules and scales; a new handle may even reuse
     * an old one's address */
    lora__graph_drop(s);
    s->graph_seen = false;
    s->pos = 0; /* cached keys and values were computed with the old adapters */
    return LORA_OK;
}
