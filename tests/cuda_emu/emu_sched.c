/* The emulator's kernel scheduler: a launch runs its blocks one after another, and a block's
 * threads on fibers of the calling thread, switching only at barriers
 * (__syncthreads, the warp shuffles). A fiber runs threads back to back until one waits at a
 * barrier; the waiting thread keeps that fiber's stack, and the next thread starts on another.
 * A kernel without barriers then costs a function call per thread, and one with them holds a
 * fiber per thread, which keeps CUDA's one promise the kernels rely on: every thread of a block
 * reaches a barrier before any passes it. Deterministic, under ASan and UBSan, on one core; in
 * either of two orders (order() below).
 * What the scheduler sees the device would refuse (a barrier not every live thread reaches, a
 * shuffle across lanes that exited) stops the process with the kernel's name: it is a bug in the
 * code under test. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <driver_types.h>

#include "emu_sched.h"

#if !defined(__x86_64__)
#error "the CUDA emulator's fiber switch (lora_emu_switch) is written for x86-64"
#endif

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

/* Fiber stacks: kernels keep a few small arrays; the sanitizers' redzones multiply frames. */
#define STACK_BYTES (256u << 10)
#define MAX_THREADS 1024u
#define MAX_SHARED (48u << 10) /* what a launch may ask for without cudaFuncSetAttribute */

enum { UNSTARTED, RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };

typedef struct thread {
    int state;
    unsigned lin; /* linear thread index in the block */
    uint3 idx;
    struct worker *on; /* the fiber running it, while it runs or waits */
    unsigned shuffles; /* how many it has done: their parity picks the exchange buffer */
} thread;

typedef struct worker {
    void *sp; /* its saved stack pointer, while switched out */
    char *stack;
    int busy; /* holds a thread, or is between two */
#ifdef EMU_ASAN
    void *fake_stack;
#endif
} worker;

typedef struct emu {
    thread t[MAX_THREADS];
    worker *w;    /* MAX_THREADS fibers, their stacks each after a guard page */
    void *sched_sp;
#ifdef EMU_ASAN
    const void *sched_bottom;
    size_t sched_size;
#endif
    thread *cur;
    const char *kernel;
    void (*body)(void *);
    void *ctx;
    unsigned n, next, alive, at_block;
    int reverse; /* LORA_CUDA_EMU_ORDER=reverse: blocks and threads started last to first */
    unsigned warp_alive[MAX_THREADS / 32], at_warp[MAX_THREADS / 32];
    unsigned char slot[2][MAX_THREADS][8];
    void *shared;
    uint3 bidx;
    dim3 bdim, gdim;
} emu;

/* initial-exec: the scheduler's state is read on every threadIdx, and the general model would
 * make each read a call to __tls_get_addr (which ASan intercepts) */
static _Thread_local emu E __attribute__((tls_model("initial-exec")));

/* Saves the callee-saved registers, MXCSR and the x87 control word on the current stack, stores
 * the stack pointer in *from, and resumes the stack at to (saved by an earlier switch, or laid
 * out by start_worker). Unlike swapcontext it makes no system call (the signal mask is left
 * alone) and ASan does not intercept it; the fiber annotations below tell ASan of the stacks. */
void lora_emu_switch(void **from, void *to);
__asm__(".text\n"
        ".p2align 4\n"
        ".type lora_emu_switch, @function\n"
        "lora_emu_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size lora_emu_switch, .-lora_emu_switch\n");

void lora_emu_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cuda-emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    abort();
}

static thread *current(const char *what)
{
    if (!E.cur)
        lora_emu_fatal("%s outside a kernel", what);
    return E.cur;
}

uint3 lora_emu_thread_index(void) { return current("threadIdx")->idx; }
uint3 lora_emu_block_index(void) { return E.bidx; }
dim3 lora_emu_block_dim(void) { return E.bdim; }
dim3 lora_emu_grid_dim(void) { return E.gdim; }
unsigned lora_emu_lane(void) { return current("the lane")->lin % 32; }
void *lora_emu_dyn_shared(void) { return E.shared; }

static void to_worker(worker *w)
{
#ifdef EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, w->stack, STACK_BYTES);
#endif
    lora_emu_switch(&E.sched_sp, w->sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

static void to_scheduler(worker *w)
{
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(w->busy ? &w->fake_stack : NULL, E.sched_bottom,
                                   E.sched_size);
#endif
    lora_emu_switch(&w->sp, E.sched_sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(w->fake_stack, &E.sched_bottom, &E.sched_size);
#endif
}

/* The block's barrier and warp w's open when every live participant has arrived. Threads that
 * returned no longer count: the device lets the rest of the block pass a barrier after some
 * threads exited. */
static void release(unsigned w)
{
    if (E.at_block && E.at_block == E.alive) {
        for (unsigned i = 0; i < E.n; i++)
            if (E.t[i].state == AT_BLOCK_BARRIER)
                E.t[i].state = RUNNABLE;
        E.at_block = 0;
    }
    if (E.at_warp[w] && E.at_warp[w] == E.warp_alive[w]) {
        for (unsigned i = w * 32; i < E.n && i < w * 32 + 32; i++)
            if (E.t[i].state == AT_WARP_BARRIER)
                E.t[i].state = RUNNABLE;
        E.at_warp[w] = 0;
    }
}

static void wait_at(int state)
{
    thread *f = current("a barrier");
    f->state = state;
    if (state == AT_BLOCK_BARRIER)
        E.at_block++;
    else
        E.at_warp[f->lin / 32]++;
    release(f->lin / 32);
    if (f->state != RUNNABLE) {
        to_scheduler(f->on);
        E.cur = f;
    }
}

void lora_emu_syncthreads(void) { wait_at(AT_BLOCK_BARRIER); }

void lora_emu_warp_exchange(unsigned mask, const void *in, void *out, size_t size, int src)
{
    thread *f = current("a warp shuffle");
    unsigned w = f->lin / 32, first = w * 32;
    unsigned lanes = E.n - first < 32 ? E.n - first : 32;
    if (mask != 0xffffffffu || lanes != 32)
        lora_emu_fatal("%s: a shuffle with mask %#x in a warp of %u threads (only full warps are "
                       "emulated)", E.kernel, mask, lanes);
    /* Alternate buffers: a lane can be one shuffle ahead of another, never two (the next
     * shuffle's barrier waits for the slower lane, which reads before it arrives there). */
    unsigned char(*slot)[8] = E.slot[f->shuffles++ & 1];
    memcpy(slot[f->lin], in, size);
    /* no lane passes the barrier before all arrive, so a lane missing now has returned */
    if (E.warp_alive[w] != 32)
        lora_emu_fatal("%s: a shuffle in warp %u after %u of its lanes returned", E.kernel, w,
                       32 - E.warp_alive[w]);
    wait_at(AT_WARP_BARRIER);
    memcpy(out, slot[first + (unsigned)src], size);
}

/* The k-th thread to start. The device promises no order among a block's threads between two
 * barriers, nor among blocks: a kernel whose result changes when the emulator runs them last to
 * first (LORA_CUDA_EMU_ORDER=reverse) lacks a barrier, or has blocks that depend on each other. */
static unsigned order(unsigned k) { return E.reverse ? E.n - 1 - k : k; }

/* A worker's life: threads not yet started, one after another, until none is left. */
static void entry(void)
{
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &E.sched_bottom, &E.sched_size);
#endif
    worker *w = E.cur->on;
    while (E.cur) {
        thread *f = E.cur;
        f->state = RUNNABLE;
        E.body(E.ctx);
        f->state = DONE;
        f->on = NULL;
        E.alive--;
        E.warp_alive[f->lin / 32]--;
        release(f->lin / 32);
        E.cur = E.next < E.n ? &E.t[order(E.next++)] : NULL;
        if (E.cur)
            E.cur->on = w;
    }
    w->busy = 0;
    to_scheduler(w); /* never resumed */
}

static int check_config(lora_emu_dim3 g, lora_emu_dim3 b, size_t shared)
{
    uint64_t threads = (uint64_t)b.x * b.y * b.z;
    return g.x && g.y && g.z && b.x && b.y && b.z && threads <= MAX_THREADS && b.x <= 1024 &&
           b.y <= 1024 && b.z <= 64 && g.x <= 0x7fffffffu && g.y <= 65535 && g.z <= 65535 &&
           shared <= MAX_SHARED;
}

static void ensure_workers(void)
{
    if (E.w)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), each = page + STACK_BYTES;
    char *m = mmap(NULL, each * MAX_THREADS, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    E.w = calloc(MAX_THREADS, sizeof *E.w);
    if (m == MAP_FAILED || !E.w)
        lora_emu_fatal("no memory for %u fiber stacks", MAX_THREADS);
    for (unsigned i = 0; i < MAX_THREADS; i++) {
        mprotect(m + i * each, page, PROT_NONE); /* an overflow faults instead of corrupting */
        E.w[i].stack = m + i * each + page;
    }
}

/* a fiber that starts the next unstarted thread */
static void start_worker(void)
{
    worker *w = NULL;
    for (unsigned i = 0; i < MAX_THREADS && !w; i++)
        if (!E.w[i].busy)
            w = &E.w[i];
    if (!w)
        lora_emu_fatal("%s: no free fiber", E.kernel);
    /* what lora_emu_switch pops: MXCSR and the control word as they are now, six registers,
     * then entry as the return address; entry starts with the stack 8 off a 16-byte boundary,
     * as after a call */
    uint64_t *sp = (uint64_t *)(w->stack + STACK_BYTES) - 9;
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    memset(sp, 0, 9 * sizeof *sp);
    memcpy(sp, &mxcsr, 4);
    memcpy((char *)sp + 4, &fpucw, 2);
    sp[7] = (uint64_t)(uintptr_t)entry;
    w->sp = sp;
    w->busy = 1;
    E.cur = &E.t[order(E.next++)];
    E.cur->on = w;
    to_worker(w);
    E.cur = NULL;
}

static void run_block(void)
{
    for (unsigned i = 0; i < E.n; i++) {
        thread *f = &E.t[i];
        f->state = UNSTARTED;
        f->lin = i;
        f->idx.x = i % E.bdim.x;
        f->idx.y = i / E.bdim.x % E.bdim.y;
        f->idx.z = i / (E.bdim.x * E.bdim.y);
        f->on = NULL;
        f->shuffles = 0;
    }
    E.next = 0;
    E.alive = E.n;
    E.at_block = 0;
    for (unsigned w = 0; w < (E.n + 31) / 32; w++) {
        E.warp_alive[w] = E.n - w * 32 < 32 ? E.n - w * 32 : 32;
        E.at_warp[w] = 0;
    }
    while (E.alive) {
        int ran = 0;
        for (unsigned k = 0; k < E.next; k++)
            if (E.t[order(k)].state == RUNNABLE) {
                unsigned i = order(k);
                E.cur = &E.t[i];
                to_worker(E.t[i].on);
                E.cur = NULL;
                ran = 1;
            }
        if (E.next < E.n) {
            start_worker();
            ran = 1;
        }
        if (!ran && E.alive)
            lora_emu_fatal("%s: block (%u, %u, %u) deadlocks: %u threads wait at __syncthreads, "
                           "%u live in all (a barrier in divergent code)",
                           E.kernel, E.bidx.x, E.bidx.y, E.bidx.z, E.at_block, E.alive);
    }
}

void lora_emu_run(const char *kernel, lora_emu_dim3 grid, lora_emu_dim3 block, size_t shared,
                  void (*body)(void *ctx), void *ctx)
{
    if (E.cur)
        lora_emu_fatal("%s launched from inside a kernel", kernel);
    if (!check_config(grid, block, shared)) {
        lora_emu_set_launch_error(cudaErrorInvalidConfiguration);
        return;
    }
    ensure_workers();
    E.kernel = kernel;
    E.body = body;
    E.ctx = ctx;
    E.n = block.x * block.y * block.z;
    E.bdim.x = block.x, E.bdim.y = block.y, E.bdim.z = block.z;
    E.gdim.x = grid.x, E.gdim.y = grid.y, E.gdim.z = grid.z;
    /* shared memory is uninitialised on the device: all-ones bytes (a float NaN) make a read
     * before a write show */
    E.shared = shared ? malloc(shared) : NULL;
    if (shared && !E.shared)
        lora_emu_fatal("%s: no memory for %zu bytes of shared memory", kernel, shared);
    const char *o = getenv("LORA_CUDA_EMU_ORDER");
    E.reverse = o && strcmp(o, "reverse") == 0;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                E.bidx.x = E.reverse ? grid.x - 1 - x : x;
                E.bidx.y = E.reverse ? grid.y - 1 - y : y;
                E.bidx.z = E.reverse ? grid.z - 1 - z : z;
                if (shared)
                    memset(E.shared, 0xff, shared);
                run_block();
            }
    free(E.shared);
    E.shared = NULL;
    E.kernel = NULL;
}
