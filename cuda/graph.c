/* The table's graph entries: a sequence of ops recorded once by stream capture and replayed as
 * one CUDA graph launch. A decode step is a few hundred small kernels whose launch cost (a few
 * µs each on the host) exceeds their run time; replayed, they cost about a microsecond each
 * (src/model/decode_graph.c, docs/perf-notes.md).
 *
 * Capture runs in thread-local mode, so other threads' CUDA calls are unaffected. A recorded
 * kernel keeps the pointers it was given: the op scratch may not move while recording
 * (memory.c refuses to grow it then), and a graph recorded before it moved is refused at
 * launch (scratch_gen). */
#include <stdlib.h>

#include "api/error.h"
#include "internal.h"
#include "util/alloc.h"

struct lora_graph {
    cudaGraphExec_t exec;
    uint64_t scratch_gen;
};

lora_status lora__cuda_graph_begin(lora_backend *be)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu)
        return lora__cuda_report(be->impl);
    if (lora__cuda_check(cu, cudaStreamBeginCapture(cu->stream, cudaStreamCaptureModeThreadLocal),
                         "cudaStreamBeginCapture"))
        return lora__cuda_report(cu);
    cu->capturing = true;
    return LORA_OK;
}

lora_status lora__cuda_graph_end(lora_backend *be, lora_graph **out)
{
    *out = NULL;
    lora_cuda *cu = be->impl;
    if (!cu->capturing)
        return lora__error(LORA_ERR_STATE, "cuda:%d: graph_end without graph_begin", cu->ordinal);
    cudaGraph_t graph = NULL;
    /* the capture ends whatever happened while it was open */
    cudaError_t e = cudaStreamEndCapture(cu->stream, &graph);
    cu->capturing = false;
    lora__cuda_check(cu, e, "cudaStreamEndCapture");
    cudaGraphExec_t exec = NULL;
    if (!cu->err && !cu->dead)
        lora__cuda_check(cu, cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
    if (graph)
        cudaGraphDestroy(graph);
    lora_graph *g = NULL;
    if (!cu->err && !cu->dead && !(g = lora__malloc(sizeof *g)))
        lora__cuda_fail(cu, LORA_ERR_OUT_OF_MEMORY, "graph: out of memory");
    lora_status st = lora__cuda_report(cu);
    if (st) {
        if (exec)
            cudaGraphExecDestroy(exec);
        free(g);
        return st;
    }
    g->exec = exec;
    g->scratch_gen = cu->scratch_gen;
    *out = g;
    return LORA_OK;
}

lora_status lora__cuda_graph_launch(lora_backend *be, const lora_graph *g)
{
    lora_cuda *cu = lora__cuda_enter(be);
    if (!cu)
        return lora__cuda_report(be->impl);
    if (g->scratch_gen != cu->scratch_gen)
        return lora__error(LORA_ERR_STATE, "cuda:%d: the op scratch moved since the graph was "
                           "recorded", cu->ordinal);
    lora__cuda_queued(cu, cudaGraphLaunch(g->exec, cu->stream), "cudaGraphLaunch");
    return lora__cuda_report(cu);
}

void lora__cuda_graph_free(lora_backend *be, lora_graph *g)
{
    (void)be;
    if (!g)
        return;
    cudaGraphExecDestroy(g->exec);
    free(g);
}
