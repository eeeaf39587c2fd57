/* The system calls every save goes through (write, fsync, rename, exchange), wrapped so that a test can
 * make the k-th of them fail with ENOSPC or EIO (lora__fault_io) and check that the status
 * says so and the previous file is intact. */
#ifndef LORA_UTIL_SYSIO_H
#define LORA_UTIL_SYSIO_H

#include <stdint.h>
#include <sys/types.h>

#include "util/alloc.h"

ssize_t lora__sys_write(int fd, const void *buf, size_t n);
int lora__sys_fsync(int fd);
int lora__sys_rename(const char *from, const char *to);
/* renameat2(RENAME_EXCHANGE): a and b (both existing) swap names atomically; counted as a
 * rename. */
int lora__sys_exchange(const char *a, const char *b);

/* ---- test control: which calls are counted (and may fail) -------------------------------- */
enum {
    LORA__IO_WRITE = 1u << 0,
    LORA__IO_FSYNC = 1u << 1,
    LORA__IO_RENAME = 1u << 2
};

/* Arms (LORA__FAULT_OFF disarms) and zeroes the counters: the calls named in ops are counted
 * from 1, and the k-th (ONCE) or every one from the k-th on (FROM) fails with errno err,
 * doing nothing. */
void lora__fault_io(unsigned ops, uint64_t k, lora__fault_mode mode, int err);
/* Counted calls and failures injected since the last lora__fault_io. */
uint64_t lora__fault_io_count(void);
uint64_t lora__fault_io_injected(void);

#endif
