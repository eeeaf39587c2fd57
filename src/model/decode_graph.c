/* One-token decode steps as a recorded graph. A step of Qwen2.5-0.5B is about 400 small
 * kernels (more with adapters unmerged); launched one by one they take longer to queue than to
 * run (docs/perf-notes.md). Every kernel of a one-token step reads what changes between steps
 * (the token, its position, where its keys and values go) from device memory staged before the
 * step, so the same recording computes every step while the buffers and adapters it was made
 * with stay: the key. A step with a new key runs eagerly (buffers grow, plans are made); the
 * next with the same key is recorded and replayed, and so is every later one. */
#include <string.h>

#include "api/error.h"
#include "model/session.h"

void lora__graph_drop(lora_session *s)
{
    if (s->graph)
        s->be->ops->graph_free(s->be, s->graph);
    s->graph = NULL;
}

static lora_status record(lora_session *s, lora_step_ops ops, void *ctx)
{
    const lora_backend_ops *op = s->be->ops;
    lora_status st = op->graph_begin(s->be);
    if (st)
        return st;
    ops(s, ctx);
    return op->graph_end(s->be, &s->graph);
}

lora_status lora__graph_step(lora_session *s, const lora_graph_key *key, lora_step_ops ops,
                             void *ctx)
{
    const lora_backend_ops *op = s->be->ops;
    bool same = memcmp(key, &s->graph_key, sizeof *key) == 0;
    if (s->graph && same) {
        lora_status st = op->graph_launch(s->be, s->graph);
        if (st != LORA_ERR_STATE) {
            s->graph_replays += !st;
            return st;
        }
        lora__error_clear(); /* stale: the backend's memory moved; run eagerly and start over */
        same = false;
    }
    lora__graph_drop(s);
    if (!same || !s->graph_seen) {
        s->graph_key = *key;
        s->graph_seen = true;
        ops(s, ctx);
        return LORA_OK;
    }
    lora_status st = record(s, ops, ctx);
    if (st) {
        /* a recording the backend could not make: nothing ran; this session runs eagerly */
        lora__graph_drop(s);
        lora__error_clear();
        s->graph_off = true;
        ops(s, ctx);
        return LORA_OK;
    }
    st = op->graph_launch(s->be, s->graph);
    s->graph_replays += !st;
    return st;
}
