/* The emulator's stream capture and graphs: what cuda/graph.c calls. While a stream captures,
 * the work launched on it (kernels, asynchronous copies and fills) is recorded instead of run;
 * a graph made from the record runs it again, in order, at each launch, with the arguments it
 * was recorded with. As on the device, a synchronous call while a capture is open (a blocking
 * copy or fill, an allocation, a stream synchronisation) fails with
 * cudaErrorStreamCaptureUnsupported and invalidates the capture, whose end then fails with
 * cudaErrorStreamCaptureInvalidated. One capture at a time, which is all cuda/ opens. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "emu_sched.h"

typedef struct recorded {
    void (*run)(void *ctx);
    void (*drop)(void *ctx);
    void *ctx;
} recorded;

/* a record, shared by the graph made from it and the executables made from that */
typedef struct record {
    int refs;
    recorded *op;
    size_t n, cap;
} record;

struct CUgraph_st {
    record *rec;
};

struct CUgraphExec_st {
    record *rec;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const void *capturing; /* the stream, or NULL */
static int invalidated;
static record *open_rec;

static void release(record *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&lock);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&lock);
    if (!last)
        return;
    for (size_t i = 0; i < r->n; i++)
        r->op[i].drop(r->op[i].ctx);
    free(r->op);
    free(r);
}

int lora_emu_capturing(const void *stream)
{
    pthread_mutex_lock(&lock);
    int yes = capturing && capturing == stream;
    pthread_mutex_unlock(&lock);
    return yes;
}

void lora_emu_capture_add(void (*run)(void *), void (*drop)(void *), void *ctx)
{
    pthread_mutex_lock(&lock);
    record *r = open_rec;
    if (r && r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        recorded *t = realloc(r->op, cap * sizeof *t);
        if (t) {
            r->op = t;
            r->cap = cap;
        }
    }
    int kept = r && r->n < r->cap;
    if (kept)
        r->op[r->n++] = (recorded){run, drop, ctx};
    else
        invalidated = 1;
    pthread_mutex_unlock(&lock);
    if (!kept)
        drop(ctx);
}

int lora_emu_capture_refuse(const char *call)
{
    pthread_mutex_lock(&lock);
    int open = capturing != NULL;
    if (open && !invalidated) {
        fprintf(stderr, "cuda-emu: %s while a stream captures: the capture is invalidated\n",
                call);
        invalidated = 1;
    }
    pthread_mutex_unlock(&lock);
    if (open)
        lora_emu_set_launch_error(cudaErrorStreamCaptureUnsupported);
    return open;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode)
{
    (void)mode;
    lora_emu_check_stream("cudaStreamBeginCapture", (const void *)stream);
    record *r = calloc(1, sizeof *r);
    if (!r)
        return cudaErrorMemoryAllocation;
    r->refs = 1;
    pthread_mutex_lock(&lock);
    int busy = capturing != NULL || stream == NULL;
    if (!busy) {
        capturing = stream;
        invalidated = 0;
        open_rec = r;
    }
    pthread_mutex_unlock(&lock);
    if (busy) {
        free(r);
        lora_emu_set_launch_error(cudaErrorIllegalState);
        return cudaErrorIllegalState;
    }
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    *graph = NULL;
    pthread_mutex_lock(&lock);
    int mine = capturing && capturing == (const void *)stream;
    record *r = mine ? open_rec : NULL;
    int bad = invalidated;
    if (mine) {
        capturing = NULL;
        open_rec = NULL;
        invalidated = 0;
    }
    pthread_mutex_unlock(&lock);
    if (!mine) {
        lora_emu_set_launch_error(cudaErrorIllegalState);
        return cudaErrorIllegalState;
    }
    struct CUgraph_st *g = bad ? NULL : malloc(sizeof *g);
    if (!g) {
        release(r);
        cudaError_t e = bad ? cudaErrorStreamCaptureInvalidated : cudaErrorMemoryAllocation;
        lora_emu_set_launch_error(e);
        return e;
    }
    g->rec = r;
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags)
{
    (void)flags;
    *exec = NULL;
    if (!graph)
        return cudaErrorInvalidValue;
    struct CUgraphExec_st *x = malloc(sizeof *x);
    if (!x)
        return cudaErrorMemoryAllocation;
    pthread_mutex_lock(&lock);
    graph->rec->refs++;
    pthread_mutex_unlock(&lock);
    x->rec = graph->rec;
    *exec = x;
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    lora_emu_check_stream("cudaGraphLaunch", (const void *)stream);
    if (!exec)
        return cudaErrorInvalidValue;
    if (lora_emu_capturing((const void *)stream))
        lora_emu_fatal("cudaGraphLaunch into a capturing stream: not used by cuda/");
    for (size_t i = 0; i < exec->rec->n && lora_emu_context_ok(); i++)
        exec->rec->op[i].run(exec->rec->op[i].ctx);
    return lora_emu_context_ok() ? cudaSuccess : cudaErrorIllegalAddress;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    if (exec) {
        release(exec->rec);
        free(exec);
    }
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    if (graph) {
        release(graph->rec);
        free(graph);
    }
    return cudaSuccess;
}
