#include "util/sysio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static atomic_int armed;            /* a lora__fault_mode */
static atomic_uint armed_ops;
static atomic_int fail_errno;
static _Atomic uint64_t fail_at, seen, injected;

/* 1 (errno set) when this call is to fail. */
static int fault(unsigned op)
{
    int mode = atomic_load_explicit(&armed, memory_order_relaxed);
    if (mode == LORA__FAULT_OFF || !(atomic_load(&armed_ops) & op))
        return 0;
    uint64_t k = atomic_fetch_add(&seen, 1) + 1, at = atomic_load(&fail_at);
    if (mode == LORA__FAULT_ONCE ? k != at : k < at)
        return 0;
    atomic_fetch_add(&injected, 1);
    errno = atomic_load(&fail_errno);
    return 1;
}

ssize_t lora__sys_write(int fd, const void *buf, size_t n)
{
    return fault(LORA__IO_WRITE) ? -1 : write(fd, buf, n);
}

int lora__sys_fsync(int fd) { return fault(LORA__IO_FSYNC) ? -1 : fsync(fd); }

int lora__sys_rename(const char *from, const char *to)
{
    return fault(LORA__IO_RENAME) ? -1 : rename(from, to);
}

int lora__sys_exchange(const char *a, const char *b)
{
    return fault(LORA__IO_RENAME) ? -1 : renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

void lora__fault_io(unsigned ops, uint64_t k, lora__fault_mode mode, int err)
{
    atomic_store(&armed, LORA__FAULT_OFF);
    atomic_store(&seen, 0);
    atomic_store(&injected, 0);
    atomic_store(&armed_ops, ops);
    atomic_store(&fail_errno, err);
    atomic_store(&fail_at, k);
    atomic_store(&armed, (int)mode);
}

uint64_t lora__fault_io_count(void) { return atomic_load(&seen); }

uint64_t lora__fault_io_injected(void) { return atomic_load(&injected); }
